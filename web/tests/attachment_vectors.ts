// The attachment vectors' runner (tests/vectors/attachments.json, docs/protocol.md §11.3),
// loaded by the browser tests' own page; never shipped with the app. It recomputes every
// blob and descriptor from the vector's inputs, as tests/attachments/test_vectors.py does.
import { compactDescriptor, decodeDescriptor, encodeDescriptor, DESCRIPTOR_BYTES } from "../src/attachments/descriptor";
import { AttachmentError } from "../src/attachments/errors";
import { paddedSize, unpad } from "../src/attachments/padding";
import { decryptBlob, encryptBlob, payloadKeyBytes, chunkNonce, HEADER_BYTES, makeHeader } from "../src/attachments/stream";
import { concat, fromHex, hex, utf8 } from "../src/e2ee/bytes";
import { canonicalText } from "../src/e2ee/canonical";
import { sha256 } from "../src/e2ee/primitives";
import { assertEqual, assertTrue } from "./assert";

interface CaseResult {
  name: string;
  ok: boolean;
  error?: string;
}

interface StreamVector {
  plaintext_size: number;
  file_key: string;
  salt: string;
  payload_key: string;
  header: string;
  chunks: number;
  ciphertext_size: number;
  ciphertext_sha256: string;
  ciphertext?: string;
  ciphertext_first_64?: string;
  ciphertext_last_64?: string;
}

interface PaddedVector extends Omit<StreamVector, "plaintext_size" | "payload_key" | "header" | "chunks"> {
  size: number;
  padded_size: number;
}

interface Tampered {
  name: string;
  vector: number;
  flip_bit_at_byte?: number;
  truncate_to?: number;
  append_hex?: string;
  append_empty_final_chunk?: boolean;
}

interface BadPadding {
  name: string;
  number: number;
  size: number;
  plaintext_size: number;
  zeros: number;
  extra_hex: string;
}

interface BadDescriptor {
  name: string;
  base?: string;
  set?: Record<string, unknown>;
  shorten_pad_by?: number;
  set_pad_char?: string;
  set_thumbnail?: Record<string, unknown>;
}

interface Vectors {
  streams: StreamVector[];
  tampered: Tampered[];
  padding: { sizes: { size: number; padded_size: number }[] };
  padded_blobs: PaddedVector[];
  bad_padding: BadPadding[];
  descriptor_bytes: number;
  descriptors: Record<string, { value: unknown; canonical_json: string }>;
  bad_descriptors: BadDescriptor[];
}

function plaintextOf(size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = i % 251;
  return out;
}

async function keyOf(number: number): Promise<Uint8Array> {
  return sha256(utf8(`relais attachment vector key ${number}`));
}

async function saltOf(number: number): Promise<Uint8Array> {
  return (await sha256(utf8(`relais attachment vector salt ${number}`))).subarray(0, 16);
}

async function refusedWith(code: string, body: () => Promise<unknown>, what: string): Promise<void> {
  try {
    await body();
  } catch (error) {
    if (!(error instanceof AttachmentError)) throw new Error(`${what}: not an AttachmentError: ${String(error)}`);
    if (error.code !== code) throw new Error(`${what}: refused with ${error.code}, expected ${code}`);
    if (!error.message || !error.messageFr) throw new Error(`${what}: a message is missing`);
    return;
  }
  throw new Error(`${what}: accepted`);
}

async function checkBlob(blob: Uint8Array, vector: Omit<PaddedVector, "size" | "padded_size">): Promise<void> {
  assertEqual(blob.length, vector.ciphertext_size, "ciphertext_size");
  assertEqual(hex(await sha256(blob)), vector.ciphertext_sha256, "ciphertext_sha256");
  if (vector.ciphertext !== undefined) {
    assertEqual(hex(blob), vector.ciphertext, "ciphertext");
  } else {
    assertEqual(hex(blob.subarray(0, 64)), vector.ciphertext_first_64, "first 64 bytes");
    assertEqual(hex(blob.subarray(blob.length - 64)), vector.ciphertext_last_64, "last 64 bytes");
  }
}

/** The forbidden encoding: the full chunks, none marked last, then an empty last chunk. */
async function withEmptyFinalChunk(vector: StreamVector, key: Uint8Array, salt: Uint8Array): Promise<Uint8Array> {
  const header = makeHeader(salt);
  const payload = await crypto.subtle.importKey("raw", new Uint8Array(await payloadKeyBytes(key, salt)), "AES-GCM", false, ["encrypt"]);
  const plain = plaintextOf(vector.plaintext_size);
  const parts: Uint8Array[] = [header];
  for (let index = 0; index * 65536 < plain.length; index++) {
    const chunk = new Uint8Array(plain.subarray(index * 65536, (index + 1) * 65536));
    parts.push(new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv: chunkNonce(index, false), additionalData: header as Uint8Array<ArrayBuffer> }, payload, chunk)));
  }
  const last = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv: chunkNonce(vector.chunks, true), additionalData: header as Uint8Array<ArrayBuffer> }, payload, new Uint8Array(0)));
  return concat(...parts, last);
}

/** ``compact``: each descriptor's compact form as the Python SDK encodes it (§12.2). */
async function run(data: Vectors, compact: Record<string, string> = {}): Promise<CaseResult[]> {
  const results: CaseResult[] = [];
  const check = async (name: string, body: () => Promise<void>): Promise<void> => {
    try {
      await body();
      results.push({ name, ok: true });
    } catch (error) {
      results.push({ name, ok: false, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) });
    }
  };

  for (const vector of data.streams) {
    await check(`stream ${vector.plaintext_size}`, async () => {
      const key = fromHex(vector.file_key);
      const salt = fromHex(vector.salt);
      assertEqual(hex(await payloadKeyBytes(key, salt)), vector.payload_key, "payload_key");
      const plaintext = plaintextOf(vector.plaintext_size);
      const blob = await encryptBlob(plaintext, key, { salt });
      assertEqual(hex(blob.subarray(0, HEADER_BYTES)), vector.header, "header");
      await checkBlob(blob, vector);
      assertEqual(hex(await decryptBlob(blob, key)), hex(plaintext), "decrypted");
    });
  }

  for (const tampered of data.tampered) {
    await check(`tampered: ${tampered.name}`, async () => {
      const vector = data.streams[tampered.vector]!;
      const key = fromHex(vector.file_key);
      const salt = fromHex(vector.salt);
      let blob = await encryptBlob(plaintextOf(vector.plaintext_size), key, { salt });
      if (tampered.flip_bit_at_byte !== undefined) blob[tampered.flip_bit_at_byte]! ^= 1;
      if (tampered.truncate_to !== undefined) blob = blob.slice(0, tampered.truncate_to);
      if (tampered.append_hex !== undefined) blob = concat(blob, fromHex(tampered.append_hex));
      if (tampered.append_empty_final_chunk) blob = await withEmptyFinalChunk(vector, key, salt);
      await refusedWith("decrypt_failed", () => decryptBlob(blob, key), tampered.name);
    });
  }

  await check("padding table", async () => {
    for (const row of data.padding.sizes) assertEqual(paddedSize(row.size), row.padded_size, `padded size of ${row.size}`);
  });

  for (const vector of data.padded_blobs) {
    await check(`padded blob ${vector.size}`, async () => {
      const key = fromHex(vector.file_key);
      const file = plaintextOf(vector.size);
      assertEqual(paddedSize(vector.size), vector.padded_size, "padded size");
      const padded = new Uint8Array(vector.padded_size);
      padded.set(file);
      const blob = await encryptBlob(padded, key, { salt: fromHex(vector.salt) });
      await checkBlob(blob, vector);
      assertEqual(hex(unpad(await decryptBlob(blob, key), vector.size)), hex(file), "unpadded");
    });
  }

  for (const bad of data.bad_padding) {
    await check(`bad padding: ${bad.name}`, async () => {
      const key = await keyOf(bad.number);
      const plaintext = concat(plaintextOf(bad.plaintext_size), new Uint8Array(bad.zeros), fromHex(bad.extra_hex));
      const blob = await encryptBlob(plaintext, key, { salt: await saltOf(bad.number) });
      const opened = await decryptBlob(blob, key);
      await refusedWith("size_mismatch", async () => unpad(opened, bad.size), bad.name);
    });
  }

  for (const [name, descriptor] of Object.entries(data.descriptors)) {
    await check(`descriptor ${name}`, async () => {
      const parsed = decodeDescriptor(descriptor.canonical_json);
      const encoded = encodeDescriptor(parsed);
      assertEqual(new TextDecoder().decode(encoded), descriptor.canonical_json, "canonical JSON");
      assertEqual(canonicalText(parsed), canonicalText(descriptor.value), "value");
      assertEqual(encoded.length, DESCRIPTOR_BYTES, "length");
      assertTrue(data.descriptor_bytes === DESCRIPTOR_BYTES, "descriptor_bytes");
    });
  }

  for (const [name, expected] of Object.entries(compact)) {
    await check(`compact descriptor ${name}`, async () => {
      const full = decodeDescriptor(data.descriptors[name]!.canonical_json);
      const encoded = new TextDecoder().decode(encodeDescriptor(compactDescriptor(full)));
      assertEqual(encoded, expected, "compact JSON");
      assertEqual(canonicalText(decodeDescriptor(encoded, true)), canonicalText(compactDescriptor(full)), "compact parsed");
      await refusedWith("bad_descriptor", async () => decodeDescriptor(encoded), "a compact descriptor read as a full one");
      await refusedWith("bad_descriptor", async () => decodeDescriptor(data.descriptors[name]!.canonical_json, true), "a full descriptor read as a compact one");
    });
  }

  for (const bad of data.bad_descriptors) {
    await check(`bad descriptor: ${bad.name}`, async () => {
      const value = JSON.parse(data.descriptors[bad.base ?? "document"]!.canonical_json) as Record<string, unknown>;
      Object.assign(value, bad.set ?? {});
      const pad = value.pad as string;
      if (bad.shorten_pad_by !== undefined) value.pad = pad.slice(0, pad.length - bad.shorten_pad_by);
      if (bad.set_pad_char !== undefined) value.pad = bad.set_pad_char.repeat(pad.length);
      if (bad.set_thumbnail !== undefined) Object.assign(value.thumbnail as object, bad.set_thumbnail);
      await refusedWith("bad_descriptor", async () => decodeDescriptor(canonicalText(value)), bad.name);
    });
  }
  return results;
}

(globalThis as unknown as { relaisAttachmentVectors: unknown }).relaisAttachmentVectors = { run };
