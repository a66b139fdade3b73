// Receiving an attachment: download, verify, decrypt, unpad — all or nothing, as the
// Python SDK's receive_attachment (client/attachments/receiving.py). The blob must be
// exactly `ciphertext_size` bytes (size_mismatch) with the announced SHA-256
// (hash_mismatch); every chunk must authenticate (decrypt_failed); the padding must be
// zeros of the rule's length (size_mismatch). Nothing of a refused blob is returned.
import { equal, fromHex } from "../e2ee/bytes";
import { sha256 } from "../e2ee/primitives";
import { fileKey, thumbnailBytes, type Descriptor } from "./descriptor";
import { refusal } from "./errors";
import { unpad } from "./padding";
import { decryptBlob } from "./stream";
import type { AttachmentApi, Progress } from "./transfer";

/** The file's bytes from a downloaded blob, checked against its descriptor. */
export async function openBlob(blob: Uint8Array, descriptor: Descriptor): Promise<Uint8Array> {
  if (blob.length !== descriptor.ciphertext_size) throw refusal("size_mismatch");
  if (!equal(await sha256(blob), fromHex(descriptor.sha256))) throw refusal("hash_mismatch");
  return unpad(await decryptBlob(blob, fileKey(descriptor)), descriptor.size);
}

export async function fetchAttachment(api: AttachmentApi, descriptor: Descriptor, onProgress?: Progress): Promise<Uint8Array> {
  const blob = await api.downloadBlob(descriptor.blob, descriptor.ciphertext_size, onProgress);
  return openBlob(blob, descriptor);
}

/** A photo's preview: carried in the descriptor, checked when it was parsed; no network. */
export function thumbnailBlob(descriptor: Descriptor): Blob | null {
  const thumbnail = descriptor.thumbnail;
  return thumbnail ? new Blob([thumbnailBytes(thumbnail) as Uint8Array<ArrayBuffer>], { type: thumbnail.mime }) : null;
}
