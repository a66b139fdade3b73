// The photo pipeline in the browser, as the Python SDK runs it (client/attachments/
// images.py; docs/attachments.md says why each step is there):
//
//   type by magic bytes → size and pixel bound read from the header (a decompression
//   bomb is refused before any pixel is decoded) → decode with the EXIF orientation
//   applied (createImageBitmap, imageOrientation "from-image"; colours converted to the
//   canvas's sRGB) → resize to the long edge → draw the pixels alone on a fresh canvas
//   → re-encode (JPEG or WebP): nothing of the file but its pixels survives (EXIF, GPS,
//   XMP, IPTC, comments, ICC profile; the encoder's own sRGB profile is dropped too),
//   which `metadataSegments` checks on every output →
//   a thumbnail small enough to travel inside the encrypted message.
//
// HEIC/HEIF (iPhone photos) and TIFF: Chromium cannot decode them; they are refused
// with a message saying what to do.
import { MAX_THUMBNAIL_BYTES, type ThumbnailMime } from "./descriptor";
import { AttachmentError, refusal } from "./errors";
import { imageTypeOf, readImageHeader, type ImageType } from "./sniff";

export type OutputMime = ThumbnailMime;

export interface PhotoOptions {
  maxPixels: number;
  maxInputBytes: number;
  longEdge: number;
  outputMime: OutputMime;
  quality: number; // 1–100, as the SDK's
  thumbnailLongEdge: number;
  thumbnailQuality: number;
  thumbnailMaxBytes: number;
}

/** The SDK's defaults (ImageOptions): they suit clinical photos on a phone screen. */
export const PHOTO_DEFAULTS: PhotoOptions = {
  maxPixels: 64_000_000, // 48–50 MP phone sensors pass; bombs do not
  maxInputBytes: 64 * 1024 * 1024,
  longEdge: 2048,
  outputMime: "image/jpeg",
  quality: 85,
  thumbnailLongEdge: 320,
  thumbnailQuality: 70,
  thumbnailMaxBytes: MAX_THUMBNAIL_BYTES,
};

// After the first try, lower qualities, then smaller edges, each at the three qualities.
const THUMBNAIL_QUALITY_STEPS = [0, -15, -30];
const THUMBNAIL_SMALLER_EDGES = [256, 192, 128, 96, 64];

/** The image types this browser decodes (createImageBitmap). */
export const DECODABLE: ReadonlySet<ImageType> = new Set(["image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp"]);

export interface EncodedImage {
  data: Uint8Array;
  mime: OutputMime;
  width: number;
  height: number;
}

/** A cleaned photo and its thumbnail (null only when nothing fitted the byte bound). */
export interface ProcessedPhoto extends EncodedImage {
  thumbnail: EncodedImage | null;
}

function heicRefusal(mime: ImageType): AttachmentError {
  const name = mime === "image/heic" ? "HEIC/HEIF" : "TIFF";
  return refusal(
    "mime_unsupported",
    `This browser cannot read ${name} photos. On an iPhone, choose Settings › Camera › Formats › "Most Compatible" (JPEG), or take the photo from Relais's camera button.`,
    `Ce navigateur ne sait pas lire les photos ${name}. Sur iPhone, choisissez Réglages › Appareil photo › Formats › « Le plus compatible » (JPEG), ou prenez la photo avec le bouton appareil photo de Relais.`,
  );
}

export function targetSize(width: number, height: number, longEdge: number): [number, number] {
  const scale = Math.min(1, longEdge / Math.max(width, height));
  return [Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale))];
}

/** Checks a picked file before decoding: its size, its type by content, its pixel
 * count from the header. The content decides, as the SDK's guess_type does for a file a
 * user picked (a browser's type comes from the name); a caller that declares a type
 * (``declared``) has it checked against the content (mime_mismatch). */
export async function inspectImage(file: Blob, options: PhotoOptions = PHOTO_DEFAULTS, declaredType?: string): Promise<{ mime: ImageType; width: number; height: number }> {
  if (file.size > options.maxInputBytes) {
    throw refusal("file_too_large", `${file.size} bytes; at most ${options.maxInputBytes}.`, `${file.size} octets ; au plus ${options.maxInputBytes}.`);
  }
  const data = new Uint8Array(await file.arrayBuffer());
  const found = imageTypeOf(data);
  if (found === null) throw refusal("image_unreadable");
  const declared = (declaredType ?? "").toLowerCase().replace("image/jpg", "image/jpeg").replace("image/heif", "image/heic");
  if (declared && declared !== found && !(found === "image/bmp" && declared === "image/x-ms-bmp")) {
    throw refusal("mime_mismatch", `Declared ${declared}, the content is ${found}.`, `Déclaré ${declared}, le contenu est ${found}.`);
  }
  if (!DECODABLE.has(found)) throw heicRefusal(found);
  const header = readImageHeader(data);
  if (header === null) throw refusal("image_unreadable");
  if (header.width * header.height > options.maxPixels) {
    throw refusal("image_too_many_pixels", `${header.width} x ${header.height} is more than ${options.maxPixels} pixels.`, `${header.width} x ${header.height} dépasse ${options.maxPixels} pixels.`);
  }
  return header;
}

/** The canvas's pixels as a JPEG or WebP file that holds nothing else: Chromium's
 * encoder adds the canvas's sRGB colour profile (APP2), which is dropped — the pixels
 * are sRGB, which viewers assume without a profile. Anything else that is not pixels
 * is refused rather than sent. */
async function encode(canvas: OffscreenCanvas, mime: OutputMime, quality: number): Promise<Uint8Array> {
  const blob = await canvas.convertToBlob({ type: mime, quality: quality / 100 });
  if (blob.type !== mime) throw refusal("image_unreadable", `This browser cannot encode ${mime}.`, `Ce navigateur ne sait pas encoder ${mime}.`);
  const encoded = new Uint8Array(await blob.arrayBuffer());
  const data = mime === "image/jpeg" ? withoutJpegMetadata(encoded) : encoded;
  const leftovers = metadataSegments(data);
  if (leftovers.length) throw refusal("image_unreadable", `The encoder wrote metadata (${leftovers.join(", ")}).`, `L'encodeur a écrit des métadonnées (${leftovers.join(", ")}).`);
  return data;
}

/** A JPEG without the segments before its scan that are not needed to decode it. */
export function withoutJpegMetadata(jpeg: Uint8Array): Uint8Array {
  const kept: Uint8Array[] = [jpeg.subarray(0, 2)];
  let at = 2;
  while (at + 4 <= jpeg.length && jpeg[at] === 0xff) {
    const marker = jpeg[at + 1]!;
    if (marker === 0xda) break;
    const end = at + 2 + ((jpeg[at + 2]! << 8) | jpeg[at + 3]!);
    if (PLAIN_JPEG_MARKERS.has(marker)) kept.push(jpeg.subarray(at, end));
    at = end;
  }
  kept.push(jpeg.subarray(at));
  const out = new Uint8Array(kept.reduce((n, part) => n + part.length, 0));
  let offset = 0;
  for (const part of kept) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** A fresh canvas holding ``source`` scaled to width × height, on white for JPEG (which
 * has no transparency). Only pixels are drawn: nothing else of the file can follow. */
function draw(source: CanvasImageSource, width: number, height: number, mime: OutputMime): OffscreenCanvas {
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext("2d", { alpha: mime !== "image/jpeg", colorSpace: "srgb" });
  if (context === null) throw refusal("image_unreadable");
  if (mime === "image/jpeg") {
    context.fillStyle = "#ffffff";
    context.fillRect(0, 0, width, height);
  }
  context.imageSmoothingEnabled = true;
  context.imageSmoothingQuality = "high";
  context.drawImage(source, 0, 0, width, height);
  return canvas;
}

async function thumbnailOf(pixels: OffscreenCanvas, options: PhotoOptions): Promise<EncodedImage | null> {
  const edges = [options.thumbnailLongEdge, ...THUMBNAIL_SMALLER_EDGES.filter((edge) => edge < options.thumbnailLongEdge)];
  for (const edge of edges) {
    const [width, height] = targetSize(pixels.width, pixels.height, edge);
    const small = draw(pixels, width, height, options.outputMime);
    for (const step of THUMBNAIL_QUALITY_STEPS) {
      const data = await encode(small, options.outputMime, Math.max(10, options.thumbnailQuality + step));
      if (data.length <= options.thumbnailMaxBytes) return { data, mime: options.outputMime, width, height };
    }
  }
  return null;
}

/** Clean a photo for sending: upright, resized, re-encoded without any metadata, with
 * its thumbnail; ``declaredType``, when given, must be the content's. AttachmentError: file_too_large, mime_mismatch, mime_unsupported (HEIC),
 * image_unreadable, image_too_many_pixels. */
export async function processPhoto(file: Blob, overrides: Partial<PhotoOptions> = {}, declaredType?: string): Promise<ProcessedPhoto> {
  const options = { ...PHOTO_DEFAULTS, ...overrides };
  await inspectImage(file, options, declaredType);
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image", colorSpaceConversion: "default", premultiplyAlpha: "default" });
  } catch {
    throw refusal("image_unreadable");
  }
  let pixels: OffscreenCanvas;
  try {
    if (bitmap.width * bitmap.height > options.maxPixels) throw refusal("image_too_many_pixels");
    const [width, height] = targetSize(bitmap.width, bitmap.height, options.longEdge);
    pixels = draw(bitmap, width, height, options.outputMime);
  } finally {
    bitmap.close();
  }
  const data = await encode(pixels, options.outputMime, options.quality);
  const thumbnail = await thumbnailOf(pixels, options);
  return { data, mime: options.outputMime, width: pixels.width, height: pixels.height, thumbnail };
}

// The segments a plain JPEG needs: JFIF (APP0), quantisation and Huffman tables, frame
// headers, restart interval, scan. Anything else before the scan (APP1 EXIF/XMP, APP2
// ICC, APP13 IPTC, COM…) is metadata.
const PLAIN_JPEG_MARKERS = new Set([0xe0, 0xdb, 0xc4, 0xc0, 0xc1, 0xc2, 0xdd, 0xda]);

/** The names of the metadata a re-encoded image still carries: JPEG segments other
 * than the plain ones, WebP chunks EXIF/XMP/ICCP. Empty for a clean file. */
export function metadataSegments(data: Uint8Array): string[] {
  const found: string[] = [];
  if (data[0] === 0xff && data[1] === 0xd8) {
    let at = 2;
    while (at + 4 <= data.length && data[at] === 0xff) {
      const marker = data[at + 1]!;
      if (!PLAIN_JPEG_MARKERS.has(marker)) found.push(`0x${marker.toString(16)}`);
      if (marker === 0xda) break;
      at += 2 + ((data[at + 2]! << 8) | data[at + 3]!);
    }
    return found;
  }
  if (String.fromCharCode(...data.subarray(8, 12)) === "WEBP") {
    let at = 12;
    while (at + 8 <= data.length) {
      const name = String.fromCharCode(...data.subarray(at, at + 4));
      if (name === "EXIF" || name === "XMP " || name === "ICCP") found.push(name);
      const length = data[at + 4]! | (data[at + 5]! << 8) | (data[at + 6]! << 16) | (data[at + 7]! * 2 ** 24);
      at += 8 + length + (length % 2);
    }
  }
  return found;
}
