// What a file is, from its first bytes (magic numbers), and an image's size from its
// header alone: the type a user's file is declared as, the pixel bound checked before
// anything decodes an image, and the check that a received thumbnail is the image it
// declares before any viewer decodes it (docs/protocol.md §11.2).

export type ImageType = "image/jpeg" | "image/png" | "image/webp" | "image/gif" | "image/bmp" | "image/tiff" | "image/heic";

export interface ImageHeader {
  mime: ImageType;
  width: number;
  height: number;
}

function startsWith(data: Uint8Array, prefix: number[], at = 0): boolean {
  return data.length >= at + prefix.length && prefix.every((byte, i) => data[at + i] === byte);
}

function ascii(data: Uint8Array, at: number, length: number): string {
  return String.fromCharCode(...data.subarray(at, at + length));
}

const HEIF_BRANDS = new Set(["heic", "heix", "heim", "heis", "hevc", "hevx", "mif1", "msf1", "avif"]);

/** The image type of a file's first bytes, or null when it is no image format known here. */
export function imageTypeOf(head: Uint8Array): ImageType | null {
  if (startsWith(head, [0xff, 0xd8, 0xff])) return "image/jpeg";
  if (startsWith(head, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return "image/png";
  if (ascii(head, 0, 4) === "RIFF" && ascii(head, 8, 4) === "WEBP") return "image/webp";
  if (ascii(head, 0, 6) === "GIF87a" || ascii(head, 0, 6) === "GIF89a") return "image/gif";
  if (ascii(head, 0, 2) === "BM" && head.length >= 26) return "image/bmp";
  if (startsWith(head, [0x49, 0x49, 0x2a, 0x00]) || startsWith(head, [0x4d, 0x4d, 0x00, 0x2a])) return "image/tiff";
  if (ascii(head, 4, 4) === "ftyp" && HEIF_BRANDS.has(ascii(head, 8, 4))) return "image/heic";
  return null;
}

function u16be(d: Uint8Array, at: number): number {
  return (d[at]! << 8) | d[at + 1]!;
}
function u16le(d: Uint8Array, at: number): number {
  return d[at]! | (d[at + 1]! << 8);
}
function u24le(d: Uint8Array, at: number): number {
  return d[at]! | (d[at + 1]! << 8) | (d[at + 2]! << 16);
}
function u32be(d: Uint8Array, at: number): number {
  return d[at]! * 2 ** 24 + ((d[at + 1]! << 16) | (d[at + 2]! << 8) | d[at + 3]!);
}
function i32le(d: Uint8Array, at: number): number {
  return d[at]! | (d[at + 1]! << 8) | (d[at + 2]! << 16) | (d[at + 3]! << 24);
}

// The start-of-frame markers (baseline, progressive, lossless, arithmetic…): C0–CF but
// DHT (C4), JPG (C8) and DAC (CC).
function isStartOfFrame(marker: number): boolean {
  return marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
}

function jpegSize(d: Uint8Array): [number, number] | null {
  let at = 2;
  while (at + 4 <= d.length) {
    if (d[at] !== 0xff) return null;
    const marker = d[at + 1]!;
    if (marker === 0xff) {
      at += 1; // fill byte
      continue;
    }
    if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      at += 2;
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) return null; // no frame header before the data
    const length = u16be(d, at + 2);
    if (length < 2) return null;
    if (isStartOfFrame(marker)) {
      if (at + 9 > d.length) return null;
      return [u16be(d, at + 7), u16be(d, at + 5)];
    }
    at += 2 + length;
  }
  return null;
}

function webpSize(d: Uint8Array): [number, number] | null {
  const chunk = ascii(d, 12, 4);
  if (chunk === "VP8 " && d.length >= 30 && startsWith(d, [0x9d, 0x01, 0x2a], 23)) {
    return [u16le(d, 26) & 0x3fff, u16le(d, 28) & 0x3fff];
  }
  if (chunk === "VP8L" && d.length >= 25 && d[20] === 0x2f) {
    const bits = d[21]! | (d[22]! << 8) | (d[23]! << 16) | (d[24]! << 24);
    return [(bits & 0x3fff) + 1, ((bits >>> 14) & 0x3fff) + 1];
  }
  if (chunk === "VP8X" && d.length >= 30) return [u24le(d, 24) + 1, u24le(d, 27) + 1];
  return null;
}

function dimensions(mime: ImageType, d: Uint8Array): [number, number] | null {
  switch (mime) {
    case "image/jpeg":
      return jpegSize(d);
    case "image/png":
      return d.length >= 24 && ascii(d, 12, 4) === "IHDR" ? [u32be(d, 16), u32be(d, 20)] : null;
    case "image/webp":
      return webpSize(d);
    case "image/gif":
      return d.length >= 10 ? [u16le(d, 6), u16le(d, 8)] : null;
    case "image/bmp":
      return d.length >= 26 ? [Math.abs(i32le(d, 18)), Math.abs(i32le(d, 22))] : null;
    default:
      return null; // TIFF and HEIF: not decoded by the browser, refused before this matters
  }
}

/** An image's type and size from its header only (no pixel decoded), or null. */
export function readImageHeader(data: Uint8Array): ImageHeader | null {
  const mime = imageTypeOf(data);
  if (mime === null) return null;
  const size = dimensions(mime, data);
  if (size === null || size[0] < 1 || size[1] < 1) return null;
  return { mime, width: size[0], height: size[1] };
}

/** The document types recognised by their first bytes (an image is never a document:
 * it goes through the photo pipeline so that its metadata is removed). */
export function documentTypeOf(head: Uint8Array): string | null {
  if (ascii(head, 0, 5) === "%PDF-") return "application/pdf";
  if (startsWith(head, [0x50, 0x4b, 0x03, 0x04]) || startsWith(head, [0x50, 0x4b, 0x05, 0x06])) return "application/zip";
  if (startsWith(head, [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1])) return "application/x-ole-storage";
  if (startsWith(head, [0x1f, 0x8b])) return "application/gzip";
  return null;
}

/** Whether ``head`` reads as UTF-8 text (no NUL byte); ``complete``: it is the whole file,
 * so a multi-byte character may not be cut at its end. */
export function isUtf8Text(head: Uint8Array, complete: boolean): boolean {
  if (head.includes(0)) return false;
  let data = head;
  if (!complete) {
    // Drop a character cut by the end of the sniffed bytes.
    let back = 0;
    while (back < 3 && back < data.length && (data[data.length - 1 - back]! & 0xc0) === 0x80) back++;
    const lead = data[data.length - 1 - back];
    if (lead !== undefined && lead >= 0xc0) data = data.subarray(0, data.length - 1 - back);
  }
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(data);
    return true;
  } catch {
    return false;
  }
}
