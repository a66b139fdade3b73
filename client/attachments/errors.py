"""Errors of the attachment path, with stable codes and English and French messages.

Codes the server answers with (``attachment_too_large``, ``quota_exceeded``, ...) arrive as
:class:`AttachmentServerError`; codes the client itself raises are :class:`ClientCode`.
Callers branch on ``code``, never on the text.
"""

from __future__ import annotations

from enum import StrEnum


class ClientCode(StrEnum):
    IMAGE_TOO_MANY_PIXELS = "image_too_many_pixels"
    IMAGE_UNREADABLE = "image_unreadable"
    FILE_TOO_LARGE = "file_too_large"
    MIME_MISMATCH = "mime_mismatch"
    MIME_UNSUPPORTED = "mime_unsupported"
    DECRYPT_FAILED = "decrypt_failed"
    HASH_MISMATCH = "hash_mismatch"
    SIZE_MISMATCH = "size_mismatch"
    BAD_DESCRIPTOR = "bad_descriptor"
    TRANSFER_FAILED = "transfer_failed"
    CAPTION_TOO_LONG = "caption_too_long"


MESSAGES: dict[ClientCode, tuple[str, str]] = {
    ClientCode.IMAGE_TOO_MANY_PIXELS: (
        "The image has too many pixels to be opened safely (possible decompression bomb).",
        "L'image compte trop de pixels pour être ouverte sans risque "
        "(possible bombe de décompression).",
    ),
    ClientCode.IMAGE_UNREADABLE: (
        "The image is damaged, truncated or in an unsupported format.",
        "L'image est endommagée, tronquée ou dans un format non pris en charge.",
    ),
    ClientCode.FILE_TOO_LARGE: (
        "The file is larger than allowed.",
        "Le fichier dépasse la taille autorisée.",
    ),
    ClientCode.MIME_MISMATCH: (
        "The file's content does not match its declared type.",
        "Le contenu du fichier ne correspond pas au type déclaré.",
    ),
    ClientCode.MIME_UNSUPPORTED: (
        "This file type cannot be sent; send it as application/octet-stream.",
        "Ce type de fichier ne peut pas être envoyé ; envoyez-le en application/octet-stream.",
    ),
    ClientCode.DECRYPT_FAILED: (
        "The attachment could not be decrypted: it was altered, truncated or reordered.",
        "La pièce jointe n'a pas pu être déchiffrée : elle a été altérée, tronquée ou réordonnée.",
    ),
    ClientCode.HASH_MISMATCH: (
        "The downloaded attachment does not match the hash announced in the message.",
        "La pièce jointe téléchargée ne correspond pas à l'empreinte annoncée dans le message.",
    ),
    ClientCode.SIZE_MISMATCH: (
        "The attachment does not have the size announced in the message.",
        "La pièce jointe n'a pas la taille annoncée dans le message.",
    ),
    ClientCode.BAD_DESCRIPTOR: (
        "The attachment description in the message is malformed.",
        "La description de la pièce jointe dans le message est mal formée.",
    ),
    ClientCode.TRANSFER_FAILED: (
        "The transfer failed after several attempts; it can be resumed.",
        "Le transfert a échoué après plusieurs tentatives ; il peut être repris.",
    ),
    ClientCode.CAPTION_TOO_LONG: (
        "The caption is too long for a photo or file; send the text as its own message.",
        "La légende est trop longue pour une photo ou un fichier ; "
        "envoyez le texte dans un message à part.",
    ),
}


class AttachmentError(Exception):
    """A refusal on the client side: ``code`` is stable, ``message`` English,
    ``message_fr`` French."""

    def __init__(
        self, code: ClientCode, detail: str | None = None, detail_fr: str | None = None
    ) -> None:
        english, french = MESSAGES[code]
        self.code: str = code.value
        self.message = f"{english} {detail}" if detail else english
        self.message_fr = f"{french} {detail_fr}" if detail_fr else french
        super().__init__(self.message)


class AttachmentServerError(AttachmentError):
    """The server refused a request; ``code`` is one of the server's stable codes
    (docs/protocol.md, Attachments) and ``status`` the HTTP status."""

    def __init__(self, *, code: str, message: str, message_fr: str, status: int) -> None:
        Exception.__init__(self, message)
        self.code = code
        self.message = message
        self.message_fr = message_fr
        self.status = status
