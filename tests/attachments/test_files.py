"""The SDK's choices around a file, without a server: the type declared for a picked
file, the name a received file is saved under (never a path from the sender), and how
saved files never replace one another."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from client.attachments import AttachmentDescriptor
from client.attachments.descriptor import build_descriptor
from client.attachments.errors import AttachmentError
from client.attachments.mime import guess_type
from client.files import attachment_content, attachment_in, reserve_path, safe_file_name
from tests.attachments.photos import phone_jpeg


def descriptor(name: str | None, mime: str) -> AttachmentDescriptor:
    return build_descriptor(
        blob="0" * 32, key=bytes(32), sha256="0" * 64, size=0, mime=mime, name=name
    )


def image_bytes(kind: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, kind)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("head", "name", "expected"),
    [
        (phone_jpeg(64, 48), "IMG_0001.JPG", "image/jpeg"),
        # content wins: a photo named like a document still loses its metadata
        (phone_jpeg(64, 48), "ordonnance.pdf", "image/jpeg"),
        (phone_jpeg(64, 48), None, "image/jpeg"),
        (image_bytes("PNG"), "capture", "image/png"),
        (image_bytes("BMP"), "scan.bmp", "image/bmp"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "ordonnance.pdf", "application/pdf"),
        # a name the content contradicts is not believed
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "notes.txt", "application/octet-stream"),
        (b"Pansement tous les deux jours.\n", "consignes.txt", "text/plain"),
        (b"\x00\x01\x02 opaque", "export.dat", "application/octet-stream"),
        # named as an image but is not one: the photo pipeline will refuse it clearly
        (b"not a picture", "plaie.jpg", "image/jpeg"),
    ],
)
def test_the_declared_type_comes_from_the_content_first(head, name, expected):
    assert guess_type(head=head[:65536], name=name) == expected


@pytest.mark.parametrize(
    ("name", "mime", "saved_as"),
    [
        ("IMG_2041.jpg", "image/jpeg", "IMG_2041.jpg"),
        ("plaie.JPEG", "image/jpeg", "plaie.JPEG"),
        (None, "image/jpeg", "photo.jpg"),
        (None, "application/pdf", "attachment.pdf"),
        ("../../.ssh/authorized_keys", "application/octet-stream", "authorized_keys"),
        ("..\\..\\Windows\\System32\\evil.exe", "application/pdf", "evil.exe.pdf"),
        ("/etc/passwd", "text/plain", "passwd.txt"),
        (".bashrc", "application/octet-stream", "bashrc"),
        ("..", "application/pdf", "attachment.pdf"),
        ("CON.txt", "text/plain", "_CON.txt"),
        ('a\x00b\nc<>:"|?*.pdf', "application/pdf", "a_b_c_______.pdf"),
        ("compte rendu.pdf. ", "application/pdf", "compte rendu.pdf"),
        ("photo\u202egpj.exe", "application/octet-stream", "photo_gpj.exe"),
        ("\x1b[2J\x1b[31mplaie.jpg", "image/jpeg", "_[2J_[31mplaie.jpg"),
    ],
)
def test_a_received_file_is_saved_under_a_bare_safe_name(name, mime, saved_as):
    assert safe_file_name(descriptor(name, mime)) == saved_as


def test_a_long_name_is_shortened_and_keeps_its_extension():
    saved = safe_file_name(descriptor("é" * 250 + ".pdf", "application/pdf"))
    assert saved.endswith(".pdf")
    assert len(saved.encode("utf-8")) <= 200


def test_saving_twice_never_replaces_the_first_file(tmp_path):
    first = reserve_path(tmp_path, "plaie.jpg")
    first.write_bytes(b"first")
    second = reserve_path(tmp_path, "plaie.jpg")
    assert (first.name, second.name) == ("plaie.jpg", "plaie (2).jpg")
    assert first.read_bytes() == b"first"
    (tmp_path / "link.jpg").symlink_to(tmp_path / "elsewhere.jpg")  # dangling
    assert reserve_path(tmp_path, "link.jpg").name == "link (2).jpg"
    assert not (tmp_path / "elsewhere.jpg").exists()


def test_an_attachment_message_round_trips_and_a_malformed_one_is_refused():
    sent = descriptor("ordonnance.pdf", "application/pdf")
    content = attachment_content(sent, "pour la pharmacie")
    assert content["text"] == "pour la pharmacie"
    assert attachment_in(content) == sent
    assert attachment_in({"type": "text", "text": "Bonjour"}) is None
    version_1 = {**sent.to_dict(), "v": 1}
    for broken in (
        {"type": "attachment"},
        {"type": "attachment", "attachment": {"v": 2}},
        {"type": "attachment", "attachment": version_1},
    ):
        with pytest.raises(AttachmentError) as refused:
            attachment_in(broken)
        assert refused.value.code == "bad_descriptor"


def test_captions_and_texts_from_others_cannot_drive_the_terminal():
    from client.cli_files import printable

    assert printable("Plaie\x1b[2J\x1b]0;pwned\x07 J+3\n\u202eok") == "Plaie [2J ]0;pwned  J+3  ok"
    assert printable("Température 38,5 °C — à revoir") == "Température 38,5 °C — à revoir"
