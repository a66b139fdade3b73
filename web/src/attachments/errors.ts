// Errors of the attachment path (docs/protocol.md §11.5): a stable code and a message in
// French and English. Codes the server answers with arrive with its own messages; the
// codes the browser raises itself (before or after the network) carry the texts below,
// the same as the Python SDK's (client/attachments/errors.py).

export type ClientCode =
  | "image_too_many_pixels"
  | "image_unreadable"
  | "file_too_large"
  | "mime_mismatch"
  | "mime_unsupported"
  | "decrypt_failed"
  | "hash_mismatch"
  | "size_mismatch"
  | "bad_descriptor"
  | "transfer_failed"
  | "caption_too_long";

const MESSAGES: Record<ClientCode, [english: string, french: string]> = {
  image_too_many_pixels: [
    "The image has too many pixels to be opened safely (possible decompression bomb).",
    "L'image compte trop de pixels pour être ouverte sans risque (possible bombe de décompression).",
  ],
  image_unreadable: [
    "The image is damaged, truncated or in an unsupported format.",
    "L'image est endommagée, tronquée ou dans un format non pris en charge.",
  ],
  file_too_large: ["The file is larger than allowed.", "Le fichier dépasse la taille autorisée."],
  mime_mismatch: [
    "The file's content does not match its declared type.",
    "Le contenu du fichier ne correspond pas au type déclaré.",
  ],
  mime_unsupported: [
    "This file type cannot be sent; send it as application/octet-stream.",
    "Ce type de fichier ne peut pas être envoyé ; envoyez-le en application/octet-stream.",
  ],
  decrypt_failed: [
    "The attachment could not be decrypted: it was altered, truncated or reordered.",
    "La pièce jointe n'a pas pu être déchiffrée : elle a été altérée, tronquée ou réordonnée.",
  ],
  hash_mismatch: [
    "The downloaded attachment does not match the hash announced in the message.",
    "La pièce jointe téléchargée ne correspond pas à l'empreinte annoncée dans le message.",
  ],
  size_mismatch: [
    "The attachment does not have the size announced in the message.",
    "La pièce jointe n'a pas la taille annoncée dans le message.",
  ],
  bad_descriptor: [
    "The attachment description in the message is malformed.",
    "La description de la pièce jointe dans le message est mal formée.",
  ],
  transfer_failed: [
    "The transfer failed after several attempts; it can be resumed.",
    "Le transfert a échoué après plusieurs tentatives ; il peut être repris.",
  ],
  caption_too_long: [
    "The caption is too long for a photo or file; send the text as its own message.",
    "La légende est trop longue pour une photo ou un fichier ; envoyez le texte dans un message à part.",
  ],
};

/** A refusal: ``code`` is stable (callers branch on it, never on the text), ``message``
 * English, ``messageFr`` French. ``status`` is the HTTP status when the server refused. */
export class AttachmentError extends Error {
  readonly messageFr: string;
  readonly status: number | undefined;

  constructor(
    readonly code: string,
    message: string,
    messageFr: string,
    status?: number,
  ) {
    super(message);
    this.name = "AttachmentError";
    this.messageFr = messageFr;
    this.status = status;
  }
}

/** The client's own refusal ``code``, with an optional detail in each language. */
export function refusal(code: ClientCode, detail?: string, detailFr?: string): AttachmentError {
  const [english, french] = MESSAGES[code];
  return new AttachmentError(
    code,
    detail ? `${english} ${detail}` : english,
    detailFr ? `${french} ${detailFr}` : detail ? `${french} ${detail}` : french,
  );
}
