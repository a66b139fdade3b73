"""Declared MIME types are checked against the content before anything is encrypted."""

from __future__ import annotations

import io
import zipfile

import pytest

from client.attachments.errors import AttachmentError
from client.attachments.padding import padded_size
from client.attachments.sending import prepare_document
from client.attachments.stream import ciphertext_size, decrypt_bytes
from tests.attachments.photos import phone_jpeg

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n%%EOF\n"


def docx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "declared"),
    [
        (PDF, "application/pdf"),
        (PDF, "application/octet-stream"),
        ("Compte rendu : plaie propre, pansement à refaire.\n".encode(), "text/plain"),
        (
            docx(),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        (bytes(range(256)) * 10, "application/octet-stream"),
    ],
)
def test_documents_of_the_declared_type_are_encrypted_as_they_are(content, declared):
    blob = prepare_document(content, declared_mime=declared)
    try:
        ciphertext = blob.file.read()
    finally:
        blob.file.close()
    assert content not in ciphertext
    padding = bytes(padded_size(len(content)) - len(content))
    assert decrypt_bytes(ciphertext, file_key=blob.key) == content + padding
    assert blob.plaintext_size == len(content)
    assert blob.ciphertext_size == len(ciphertext) == ciphertext_size(padded_size(len(content)))


@pytest.mark.parametrize(
    ("content", "declared", "code"),
    [
        (PDF, "text/plain", "mime_mismatch"),
        (PDF, "application/msword", "mime_mismatch"),
        (docx(), "application/pdf", "mime_mismatch"),
        (b"\x00\x01binary\xff", "text/plain", "mime_mismatch"),
        # A photo sent as "just bytes" would skip the metadata removal.
        (phone_jpeg(200, 100), "application/octet-stream", "mime_mismatch"),
        (phone_jpeg(200, 100), "application/pdf", "mime_mismatch"),
        (b"\x13\x37 unknown format", "application/x-unknown", "mime_unsupported"),
    ],
)
def test_a_lying_or_unknown_type_is_refused(content, declared, code):
    with pytest.raises(AttachmentError) as refused:
        prepare_document(content, declared_mime=declared)
    assert refused.value.code == code
    assert refused.value.message
    assert refused.value.message_fr


def test_a_document_over_the_client_limit_is_refused():
    with pytest.raises(AttachmentError) as refused:
        prepare_document(PDF, declared_mime="application/pdf", max_bytes=10)
    assert refused.value.code == "file_too_large"
