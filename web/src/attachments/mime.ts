// A file's type, checked against its content before it is encrypted (the rules of the
// Python SDK, client/attachments/mime.py; docs/attachments.md says why):
// * an image always goes through the photo pipeline, so that its metadata is removed:
//   a file whose content is an image is never sent as a document;
// * a recognised document must be declared as what it is (or application/octet-stream);
// * unrecognised content goes as text/plain when it is UTF-8 text, else as
//   application/octet-stream.
import { refusal } from "./errors";
import { documentTypeOf, imageTypeOf, isUtf8Text } from "./sniff";

export const OCTET_STREAM = "application/octet-stream";
export const TEXT_PLAIN = "text/plain";
export const SNIFF_BYTES = 64 * 1024;
export const MAX_DOCUMENT_BYTES = 100 * 1024 * 1024;

// Containers: the types whose files start as these recognised ones.
const CONTAINED: Record<string, string> = {
  "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "application/zip",
  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "application/zip",
  "application/vnd.openxmlformats-officedocument.presentationml.presentation": "application/zip",
  "application/vnd.oasis.opendocument.text": "application/zip",
  "application/vnd.oasis.opendocument.spreadsheet": "application/zip",
  "application/x-zip-compressed": "application/zip",
  "application/msword": "application/x-ole-storage",
  "application/vnd.ms-excel": "application/x-ole-storage",
  "application/x-pdf": "application/pdf",
  "application/x-gzip": "application/gzip",
};

function contentTypeOf(declared: string): string {
  return CONTAINED[declared] ?? declared;
}

/** Whether the first bytes are an image (for the photo pipeline, whatever the name says). */
export function isImageContent(head: Uint8Array): boolean {
  return imageTypeOf(head) !== null;
}

/** The type to declare for a picked file that is not an image: the browser's type (from
 * the name) when the content confirms it; text/plain for unrecognised UTF-8 text; else
 * application/octet-stream. */
export function documentType(head: Uint8Array, browserType: string, complete: boolean): string {
  const declared = browserType.trim().toLowerCase();
  const found = documentTypeOf(head);
  if (found !== null) return declared && contentTypeOf(declared) === found ? declared : found;
  if (isUtf8Text(head, complete)) return declared.startsWith("text/") || declared === "" ? TEXT_PLAIN : OCTET_STREAM;
  return OCTET_STREAM;
}

/** Refuse a document whose content contradicts ``declared`` (mime_mismatch,
 * mime_unsupported), and an image sent as a document. */
export function checkDocumentType(declared: string, head: Uint8Array, complete: boolean): void {
  const image = imageTypeOf(head);
  if (image !== null) {
    throw refusal(
      "mime_mismatch",
      `The content is an image (${image}); send it as a photo so its metadata is removed.`,
      `Le contenu est une image (${image}) ; envoyez-la comme photo pour que ses métadonnées soient retirées.`,
    );
  }
  if (declared === OCTET_STREAM) return;
  const found = documentTypeOf(head);
  if (found !== null) {
    if (contentTypeOf(declared) === found) return;
    throw refusal("mime_mismatch", `Declared ${declared}, content looks like ${found}.`, `Déclaré ${declared}, le contenu ressemble à ${found}.`);
  }
  if (declared === TEXT_PLAIN) {
    if (isUtf8Text(head, complete)) return;
    throw refusal("mime_mismatch", "Declared text/plain, content is not text.", "Déclaré text/plain, le contenu n'est pas du texte.");
  }
  throw refusal("mime_unsupported", `The content of this ${declared} file is not recognised.`, `Le contenu de ce fichier ${declared} n'est pas reconnu.`);
}
