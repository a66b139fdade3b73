// The attachment descriptor, version 2 (docs/protocol.md §11.2): what an end-to-end
// encrypted message carries so that its recipients can fetch, verify and decrypt an
// attachment, and show a photo's preview at once. Canonical JSON (§10.2), exactly
// DESCRIPTOR_BYTES long thanks to `pad`, so a photo's message is as long as a document's.
// The compact form (no thumbnail, empty pad) is the one a téléexpertise event carries
// (§12.2), where up to twelve files share one envelope padded as a whole.
// Every check mirrors the Python SDK's (client/attachments/descriptor.py).
import { b64u, unb64u } from "../e2ee/bytes";
import { canonicalJson, canonicalText } from "../e2ee/canonical";
import { refusal } from "./errors";
import { paddedSize } from "./padding";
import { readImageHeader } from "./sniff";
import { KEY_BYTES, SCHEME, ciphertextSize } from "./stream";

export const VERSION = 2;
export const DESCRIPTOR_BYTES = 18_432;
export const MAX_THUMBNAIL_BYTES = 12_000;
export const MAX_THUMBNAIL_EDGE = 1024;
const MAX_THUMBNAIL_CHARS = (MAX_THUMBNAIL_BYTES * 4) / 3;
const MAX_SIZE = 2 ** 53 - 1;

export type ThumbnailMime = "image/jpeg" | "image/webp";

export interface Thumbnail {
  data: string; // base64url of the thumbnail file
  mime: ThumbnailMime;
  width: number;
  height: number;
}

export interface Descriptor {
  v: 2;
  scheme: typeof SCHEME;
  blob: string;
  key: string;
  sha256: string;
  ciphertext_size: number;
  size: number;
  mime: string;
  name?: string;
  width?: number;
  height?: number;
  thumbnail?: Thumbnail;
  pad: string;
}

const FIELDS = new Set(["v", "scheme", "blob", "key", "sha256", "ciphertext_size", "size", "mime", "name", "width", "height", "thumbnail", "pad"]);
const THUMBNAIL_FIELDS = new Set(["data", "mime", "width", "height"]);
const MIME = /^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*$/;

function bad(why: string): Error {
  return refusal("bad_descriptor", why);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function integer(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value > max) {
    throw bad(`${field} must be an integer from ${min} to ${max}.`);
  }
  return value;
}

function text(value: unknown, field: string, pattern: RegExp | null, min: number, max: number): string {
  if (typeof value !== "string") throw bad(`${field} must be a string.`);
  const length = [...value].length;
  if (length < min || length > max || (pattern !== null && !pattern.test(value))) throw bad(`${field} is malformed.`);
  return value;
}

function checkUnknown(value: Record<string, unknown>, allowed: Set<string>, where: string): void {
  const unknown = Object.keys(value).filter((key) => !allowed.has(key));
  if (unknown.length) throw bad(`Unknown field in ${where}: ${unknown[0]}.`);
}

/** The thumbnail is an image of its declared type and size, read from its header only. */
function checkThumbnail(value: unknown): Thumbnail {
  if (!isObject(value)) throw bad("thumbnail must be an object.");
  checkUnknown(value, THUMBNAIL_FIELDS, "thumbnail");
  const data = text(value.data, "thumbnail.data", /^[A-Za-z0-9_-]+$/, 2, MAX_THUMBNAIL_CHARS);
  const mime = value.mime;
  if (mime !== "image/jpeg" && mime !== "image/webp") throw bad("thumbnail.mime must be image/jpeg or image/webp.");
  const width = integer(value.width, "thumbnail.width", 1, MAX_THUMBNAIL_EDGE);
  const height = integer(value.height, "thumbnail.height", 1, MAX_THUMBNAIL_EDGE);
  let image: Uint8Array;
  try {
    image = unb64u(data, undefined, "thumbnail.data");
  } catch {
    throw bad("thumbnail.data is not base64url.");
  }
  const header = readImageHeader(image);
  if (header === null || header.mime !== mime) throw bad(`The thumbnail is not an image of type ${mime}.`);
  if (header.width !== width || header.height !== height) {
    throw bad(`The thumbnail is ${header.width}x${header.height}, not ${width}x${height} as declared.`);
  }
  return { data, mime, width, height };
}

/** Validate a parsed descriptor; ``compact``: the téléexpertise form. */
export function checkDescriptor(value: unknown, compact = false): Descriptor {
  if (!isObject(value)) throw bad("A descriptor is a JSON object.");
  if (value.v !== VERSION) {
    throw bad(`Descriptor version ${String(value.v)} is not supported (this client reads version ${VERSION}).`);
  }
  checkUnknown(value, FIELDS, "the descriptor");
  if (value.scheme !== SCHEME) throw bad("Unknown scheme.");
  const descriptor: Descriptor = {
    v: VERSION,
    scheme: SCHEME,
    blob: text(value.blob, "blob", /^[0-9a-f]{32}$/, 32, 32),
    key: text(value.key, "key", /^[A-Za-z0-9_-]{43}$/, 43, 43),
    sha256: text(value.sha256, "sha256", /^[0-9a-f]{64}$/, 64, 64),
    ciphertext_size: integer(value.ciphertext_size, "ciphertext_size", 0, MAX_SIZE),
    size: integer(value.size, "size", 0, MAX_SIZE),
    mime: text(value.mime, "mime", MIME, 1, 127),
    pad: text(value.pad, "pad", /^0*$/, 0, DESCRIPTOR_BYTES),
  };
  if (value.name !== undefined) descriptor.name = text(value.name, "name", null, 1, 255);
  if (value.width !== undefined) descriptor.width = integer(value.width, "width", 1, 65535);
  if (value.height !== undefined) descriptor.height = integer(value.height, "height", 1, 65535);
  if (value.thumbnail !== undefined) descriptor.thumbnail = checkThumbnail(value.thumbnail);
  fileKey(descriptor);
  const expected = ciphertextSize(paddedSize(descriptor.size));
  if (descriptor.ciphertext_size !== expected) {
    throw bad(`A file of ${descriptor.size} bytes, padded, is a blob of ${expected} bytes, not ${descriptor.ciphertext_size}.`);
  }
  if (compact) {
    if (descriptor.pad !== "" || descriptor.thumbnail !== undefined) throw bad("A compact descriptor has an empty pad and no thumbnail.");
    return descriptor;
  }
  const length = encodeDescriptor(descriptor).length;
  if (length !== DESCRIPTOR_BYTES) throw bad(`The descriptor is ${length} bytes long, not ${DESCRIPTOR_BYTES}.`);
  return descriptor;
}

/** The canonical encoding (keys sorted, no whitespace, absent fields omitted). */
export function encodeDescriptor(descriptor: Descriptor): Uint8Array {
  return canonicalJson(descriptor);
}

/** Parse and validate a descriptor's JSON (bad_descriptor on any defect). */
export function decodeDescriptor(data: Uint8Array | string, compact = false): Descriptor {
  const source = typeof data === "string" ? data : new TextDecoder().decode(data);
  if (source.length > 4 * DESCRIPTOR_BYTES) throw bad("Too long.");
  let value: unknown;
  try {
    value = JSON.parse(source);
  } catch {
    throw bad("Not JSON.");
  }
  return checkDescriptor(value, compact);
}

/** The 32-byte file key of a descriptor. */
export function fileKey(descriptor: Descriptor): Uint8Array {
  try {
    return unb64u(descriptor.key, KEY_BYTES, "key");
  } catch {
    throw bad("key is not a 32-byte base64url value.");
  }
}

export interface DescriptorFields {
  blob: string;
  key: Uint8Array;
  sha256: string;
  size: number;
  mime: string;
  name?: string;
  width?: number;
  height?: number;
  thumbnail?: Thumbnail;
}

/** The descriptor of a file of ``size`` bytes uploaded, padded, as ``blob``; ``pad``
 * brings its encoding to exactly DESCRIPTOR_BYTES. Checked as a receiver would. */
export function buildDescriptor(fields: DescriptorFields): Descriptor {
  const unpadded: Descriptor = {
    v: VERSION,
    scheme: SCHEME,
    blob: fields.blob,
    key: b64u(fields.key),
    sha256: fields.sha256,
    ciphertext_size: ciphertextSize(paddedSize(fields.size)),
    size: fields.size,
    mime: fields.mime,
    pad: "",
  };
  if (fields.name !== undefined) unpadded.name = fields.name;
  if (fields.width !== undefined) unpadded.width = fields.width;
  if (fields.height !== undefined) unpadded.height = fields.height;
  if (fields.thumbnail !== undefined) unpadded.thumbnail = fields.thumbnail;
  const missing = DESCRIPTOR_BYTES - encodeDescriptor(unpadded).length;
  if (missing < 0) throw new RangeError(`descriptor longer than ${DESCRIPTOR_BYTES} bytes`);
  return checkDescriptor(JSON.parse(canonicalText({ ...unpadded, pad: "0".repeat(missing) })));
}

/** The descriptor without its thumbnail and with an empty pad (téléexpertise, §12.2). */
export function compactDescriptor(descriptor: Descriptor): Descriptor {
  const { thumbnail: _thumbnail, ...rest } = descriptor;
  return { ...rest, pad: "" };
}

/** A thumbnail for the descriptor from an encoded image (checked from its header). */
export function thumbnailOf(image: Uint8Array, mime: ThumbnailMime, width: number, height: number): Thumbnail {
  if (image.length > MAX_THUMBNAIL_BYTES) throw new RangeError(`a thumbnail is at most ${MAX_THUMBNAIL_BYTES} bytes`);
  return checkThumbnail({ data: b64u(image), mime, width, height });
}

/** The thumbnail's image bytes, already checked when the descriptor was parsed. */
export function thumbnailBytes(thumbnail: Thumbnail): Uint8Array {
  return unb64u(thumbnail.data, undefined, "thumbnail.data");
}
