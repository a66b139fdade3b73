// Sending a photo or a file: clean (photos), check the type, pad, encrypt, upload,
// describe — as the Python SDK's send_attachment (client/attachments/sending.py). The
// result is the descriptor the caller puts inside the end-to-end encrypted message it
// then sends with the same message id into the same room (docs/protocol.md §11.2).
import { hex } from "../e2ee/bytes";
import { sha256 } from "../e2ee/primitives";
import { buildDescriptor, thumbnailOf, type Descriptor } from "./descriptor";
import { refusal } from "./errors";
import { checkDocumentType, documentType, isImageContent, MAX_DOCUMENT_BYTES, SNIFF_BYTES } from "./mime";
import { pad } from "./padding";
import { processPhoto, type PhotoOptions, type ProcessedPhoto } from "./photo";
import { encryptBlob, newFileKey } from "./stream";
import type { AttachmentApi, Progress } from "./transfer";

export interface Target {
  room: number;
  messageId: string;
}

export interface EncryptedFile {
  blob: Uint8Array;
  key: Uint8Array;
  sha256: string; // of the whole blob
  size: number; // of the file, before padding
}

/** Pad and encrypt a file with a fresh key. */
export async function encryptFile(file: Uint8Array): Promise<EncryptedFile> {
  const key = newFileKey();
  const blob = await encryptBlob(pad(file), key);
  return { blob, key, sha256: hex(await sha256(blob)), size: file.length };
}

async function upload(api: AttachmentApi, encrypted: EncryptedFile, target: Target, onProgress?: Progress): Promise<string> {
  return api.uploadBlob(encrypted.blob, encrypted.sha256, target, onProgress);
}

/** Upload a photo already cleaned by processPhoto (the preview the user saw). */
export async function sendPhoto(api: AttachmentApi, photo: ProcessedPhoto, target: Target, name?: string, onProgress?: Progress): Promise<Descriptor> {
  const thumbnail = photo.thumbnail && thumbnailOf(photo.thumbnail.data, photo.thumbnail.mime, photo.thumbnail.width, photo.thumbnail.height);
  const encrypted = await encryptFile(photo.data);
  const blob = await upload(api, encrypted, target, onProgress);
  return buildDescriptor({
    blob,
    key: encrypted.key,
    sha256: encrypted.sha256,
    size: encrypted.size,
    mime: photo.mime,
    width: photo.width,
    height: photo.height,
    ...(name === undefined ? {} : { name }),
    ...(thumbnail ? { thumbnail } : {}),
  });
}

/** Upload a file that is not an image, its type checked against its content. */
export async function sendDocument(
  api: AttachmentApi,
  file: Blob,
  target: Target,
  options: { name?: string; mime?: string; onProgress?: Progress; maxBytes?: number } = {},
): Promise<Descriptor> {
  const maxBytes = options.maxBytes ?? MAX_DOCUMENT_BYTES;
  if (file.size > maxBytes) throw refusal("file_too_large", `${file.size} bytes; at most ${maxBytes}.`, `${file.size} octets ; au plus ${maxBytes}.`);
  const data = new Uint8Array(await file.arrayBuffer());
  const head = data.subarray(0, SNIFF_BYTES);
  const complete = head.length === data.length;
  const mime = options.mime ?? documentType(head, file.type, complete);
  checkDocumentType(mime, head, complete);
  const encrypted = await encryptFile(data);
  const blob = await upload(api, encrypted, target, options.onProgress);
  return buildDescriptor({
    blob,
    key: encrypted.key,
    sha256: encrypted.sha256,
    size: encrypted.size,
    mime,
    ...(options.name === undefined ? {} : { name: options.name }),
  });
}

/** Whether a picked file goes through the photo pipeline: by its content, never by its
 * name (an image renamed .pdf still has its metadata removed). */
export async function isPhoto(file: Blob): Promise<boolean> {
  return isImageContent(new Uint8Array(await file.slice(0, 64).arrayBuffer()));
}

export type { PhotoOptions, ProcessedPhoto };
export { processPhoto };
