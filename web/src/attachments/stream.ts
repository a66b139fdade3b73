// The blob format `aes256gcm-hkdf-sha256-stream64k`, version 1 (docs/protocol.md §11.1):
// the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár, 2015) as age and Tink's
// AES-GCM-HKDF streaming lay it out, with the browser's WebCrypto only:
//
//   header   = "RLAT" || 0x01 || salt (16 random bytes)                       21 bytes
//   key      = HKDF-SHA256(ikm = file key, salt, info = PAYLOAD_INFO, 32 bytes)
//   chunk i  = AES-256-GCM(key, nonce = i as 11 bytes big-endian || last flag,
//                          plaintext chunk i (64 KiB, the last one 0–64 KiB),
//                          associated data = header)
//   blob     = header || chunk 0 || … || last chunk
//
// The browser holds a whole file in memory (at most the server's per-file limit,
// 100 MiB by default), so blobs are encrypted and decrypted whole here; the chunks are
// independent, so several go to WebCrypto at once. Decryption gives nothing back unless
// every chunk authenticated and the blob ended exactly where its last chunk ends.
import { refusal } from "./errors";

const subtle = globalThis.crypto.subtle;
type Bytes = Uint8Array<ArrayBuffer>;

export const SCHEME = "aes256gcm-hkdf-sha256-stream64k";
export const MAGIC = new Uint8Array([0x52, 0x4c, 0x41, 0x54]); // "RLAT"
export const VERSION = 1;
export const SALT_BYTES = 16;
export const HEADER_BYTES = MAGIC.length + 1 + SALT_BYTES;
export const KEY_BYTES = 32;
export const TAG_BYTES = 16;
export const CHUNK_BYTES = 64 * 1024;
export const CIPHER_CHUNK_BYTES = CHUNK_BYTES + TAG_BYTES;
export const PAYLOAD_INFO = new TextEncoder().encode("relais attachment v1 payload key");
const COUNTER_BYTES = 11;
const PARALLEL_CHUNKS = 16;

function bytes(data: Uint8Array): Bytes {
  return data.buffer instanceof ArrayBuffer ? (data as Bytes) : new Uint8Array(data);
}

/** A fresh random 256-bit file key: one per file, never reused. */
export function newFileKey(): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(KEY_BYTES));
}

/** The exact blob size for a plaintext of ``plaintextSize`` bytes. */
export function ciphertextSize(plaintextSize: number): number {
  if (!Number.isSafeInteger(plaintextSize) || plaintextSize < 0) throw new RangeError("plaintext size must be ≥ 0");
  const chunks = Math.max(1, Math.ceil(plaintextSize / CHUNK_BYTES));
  return HEADER_BYTES + plaintextSize + chunks * TAG_BYTES;
}

export function makeHeader(salt: Uint8Array): Uint8Array {
  if (salt.length !== SALT_BYTES) throw new RangeError("the salt is 16 bytes");
  const header = new Uint8Array(HEADER_BYTES);
  header.set(MAGIC);
  header[MAGIC.length] = VERSION;
  header.set(salt, MAGIC.length + 1);
  return header;
}

function hkdfParams(salt: Uint8Array): HkdfParams {
  return { name: "HKDF", hash: "SHA-256", salt: bytes(salt), info: bytes(PAYLOAD_INFO) };
}

async function fileKeyMaterial(fileKey: Uint8Array): Promise<CryptoKey> {
  if (fileKey.length !== KEY_BYTES) throw new RangeError("a file key is 32 bytes");
  return subtle.importKey("raw", bytes(fileKey), "HKDF", false, ["deriveBits", "deriveKey"]);
}

/** The derived payload key's bytes (for the test vectors; the app keeps it non-extractable). */
export async function payloadKeyBytes(fileKey: Uint8Array, salt: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await subtle.deriveBits(hkdfParams(salt), await fileKeyMaterial(fileKey), KEY_BYTES * 8));
}

async function payloadKey(fileKey: Uint8Array, salt: Uint8Array): Promise<CryptoKey> {
  return subtle.deriveKey(hkdfParams(salt), await fileKeyMaterial(fileKey), { name: "AES-GCM", length: 256 }, false, [
    "encrypt",
    "decrypt",
  ]);
}

/** i as 11 bytes big-endian, then 0x01 on the last chunk, else 0x00. */
export function chunkNonce(index: number, last: boolean): Bytes {
  const nonce = new Uint8Array(COUNTER_BYTES + 1);
  let rest = index;
  for (let position = COUNTER_BYTES - 1; position >= 0 && rest > 0; position--) {
    nonce[position] = rest % 256;
    rest = Math.floor(rest / 256);
  }
  nonce[COUNTER_BYTES] = last ? 1 : 0;
  return nonce;
}

/** Runs ``work(i)`` for i in [0, count), at most PARALLEL_CHUNKS at a time. */
async function forEachChunk(count: number, work: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) await work(next++);
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_CHUNKS, count) }, lane));
}

export interface EncryptOptions {
  /** Given only to reproduce test vectors; random otherwise. */
  salt?: Uint8Array;
  /** Called with (plaintext bytes encrypted, plaintext bytes in all). */
  onProgress?: (done: number, total: number) => void;
}

/** The whole blob of ``plaintext`` under ``fileKey``. */
export async function encryptBlob(plaintext: Uint8Array, fileKey: Uint8Array, options: EncryptOptions = {}): Promise<Uint8Array> {
  const salt = options.salt ?? globalThis.crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  const header = bytes(makeHeader(salt));
  const key = await payloadKey(fileKey, salt);
  const out = new Uint8Array(ciphertextSize(plaintext.length));
  out.set(header);
  const chunks = Math.max(1, Math.ceil(plaintext.length / CHUNK_BYTES));
  let done = 0;
  await forEachChunk(chunks, async (index) => {
    const start = index * CHUNK_BYTES;
    const chunk = plaintext.subarray(start, Math.min(start + CHUNK_BYTES, plaintext.length));
    const sealed = await subtle.encrypt(
      { name: "AES-GCM", iv: chunkNonce(index, index === chunks - 1), additionalData: header },
      key,
      bytes(chunk),
    );
    out.set(new Uint8Array(sealed), HEADER_BYTES + index * CIPHER_CHUNK_BYTES);
    done += chunk.length;
    options.onProgress?.(done, plaintext.length);
  });
  return out;
}

/** The plaintext of a whole blob; AttachmentError(decrypt_failed) when the format is
 * unknown, a chunk does not authenticate (altered, moved, dropped, duplicated, from
 * another blob), the blob is truncated or extended, or an empty last chunk follows
 * other chunks. */
export async function decryptBlob(blob: Uint8Array, fileKey: Uint8Array): Promise<Uint8Array> {
  const body = blob.length - HEADER_BYTES;
  if (body < TAG_BYTES) throw refusal("decrypt_failed", "The blob is truncated.", "La pièce jointe est tronquée.");
  for (let i = 0; i < MAGIC.length; i++) {
    if (blob[i] !== MAGIC[i]) throw refusal("decrypt_failed", "Unknown blob format.", "Format de pièce jointe inconnu.");
  }
  if (blob[MAGIC.length] !== VERSION) throw refusal("decrypt_failed", "Unknown blob format.", "Format de pièce jointe inconnu.");
  const header = bytes(blob.slice(0, HEADER_BYTES));
  const key = await payloadKey(fileKey, header.subarray(MAGIC.length + 1));
  const full = Math.floor(body / CIPHER_CHUNK_BYTES);
  const rest = body % CIPHER_CHUNK_BYTES;
  if (rest !== 0 && (rest < TAG_BYTES || (rest === TAG_BYTES && full > 0))) {
    // A truncated tag, or an empty last chunk after others: no plaintext has this blob.
    throw refusal("decrypt_failed", "The blob does not end with a last chunk.", "La pièce jointe ne se termine pas par un dernier bloc.");
  }
  const chunks = rest === 0 ? full : full + 1;
  const out = new Uint8Array(body - chunks * TAG_BYTES);
  await forEachChunk(chunks, async (index) => {
    const start = HEADER_BYTES + index * CIPHER_CHUNK_BYTES;
    const sealed = blob.subarray(start, Math.min(start + CIPHER_CHUNK_BYTES, blob.length));
    let opened: ArrayBuffer;
    try {
      opened = await subtle.decrypt(
        { name: "AES-GCM", iv: chunkNonce(index, index === chunks - 1), additionalData: header },
        key,
        bytes(sealed),
      );
    } catch {
      throw refusal("decrypt_failed", `Chunk ${index} did not authenticate.`, `Le bloc ${index} n'est pas authentique.`);
    }
    out.set(new Uint8Array(opened), index * CHUNK_BYTES);
  });
  return out;
}
