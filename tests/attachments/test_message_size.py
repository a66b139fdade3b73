"""A photo's thumbnail travels inside the end-to-end encrypted message: the worst photo
still gives a thumbnail that fits, and the worst message (largest descriptor, longest
caption) stays well under the envelope limit. A message carrying a photo is exactly as
long as one carrying a document with the same caption."""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from client.attachments.descriptor import (
    MAX_THUMBNAIL_BYTES,
    AttachmentDescriptor,
    build_descriptor,
    thumbnail_of,
)
from client.attachments.errors import AttachmentError
from client.attachments.images import ImageOptions, process_image
from client.attachments.message import MAX_CAPTION_BYTES, caption_bytes, check_caption
from client.files import attachment_content, attachment_in
from e2ee.envelopes import MAX_ENVELOPE_BYTES, decrypt_envelope, parse_envelope
from tests.attachments.test_images import assert_no_metadata
from tests.e2ee.helpers import NURSE, make_room, session_pair

ROOM = make_room()
# "Well under" the 48 KiB envelope limit: room for the fields other layers add.
WORST_MESSAGE_BYTES = 32 * 1024


def noise_png(width: int, height: int) -> bytes:
    """Random pixels: nothing a JPEG encoder can compress, at any scale it is shown."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(buffer, "PNG")
    return buffer.getvalue()


def worst_photo_descriptor() -> tuple[AttachmentDescriptor, bytes]:
    """The thumbnail of the hardest picture there is, with the longest name."""
    image = process_image(noise_png(320, 320), declared_mime="image/png")
    assert image.thumbnail is not None
    descriptor = build_descriptor(
        blob="a" * 32,
        key=os.urandom(32),
        sha256="b" * 64,
        size=len(image.data),
        mime=image.mime,
        name="\u202e" * 255,  # 3 bytes each in UTF-8
        width=image.width,
        height=image.height,
        thumbnail=thumbnail_of(
            image.thumbnail,
            mime=image.thumbnail_mime,
            width=image.thumbnail_width,
            height=image.thumbnail_height,
        ),
    )
    return descriptor, image.thumbnail


def envelope_of(content: dict) -> bytes:
    outbound, sessions = session_pair(ROOM)
    # The largest sender number and clock a real envelope carries, and a log head.
    envelope = outbound.encrypt(
        state=ROOM.state,
        key_pair=ROOM.keys[NURSE],
        content=content,
        seq=2**53 - 1,
        ts=2**53 - 1,
        log={"size": 2**53 - 1, "root": "A" * 43},
    )
    parsed = parse_envelope(envelope)
    assert decrypt_envelope(state=ROOM.state, envelope=parsed, sessions=sessions).content == content
    return envelope


def test_the_worst_photo_gets_a_thumbnail_that_fits_smaller_not_refused():
    image = process_image(noise_png(320, 320), declared_mime="image/png")
    # At 320 px and quality 70 these pixels take about 57 kB: the pipeline steps down.
    assert image.thumbnail is not None
    assert len(image.thumbnail) <= MAX_THUMBNAIL_BYTES
    preview = Image.open(io.BytesIO(image.thumbnail))
    assert preview.format == "JPEG"
    assert preview.size == (image.thumbnail_width, image.thumbnail_height)
    assert max(preview.size) < 320
    assert_no_metadata(image.thumbnail)


def test_an_ordinary_photo_keeps_a_320_px_thumbnail():
    image = process_image(noise_png(2048, 1536), declared_mime="image/png")
    assert image.thumbnail is not None
    assert (image.thumbnail_width, image.thumbnail_height) == (320, 240)
    assert len(image.thumbnail) <= MAX_THUMBNAIL_BYTES


def test_a_budget_no_encoding_meets_sends_the_photo_without_thumbnail():
    image = process_image(
        noise_png(320, 320), declared_mime="image/png", options=ImageOptions(thumbnail_max_bytes=1)
    )
    assert image.thumbnail is None
    assert image.data[:2] == b"\xff\xd8"  # the photo itself is there


def test_the_worst_attachment_message_stays_well_under_the_envelope_limit():
    descriptor, thumbnail = worst_photo_descriptor()
    caption = "é" * (MAX_CAPTION_BYTES // 2)
    assert caption_bytes(caption) == MAX_CAPTION_BYTES
    check_caption(caption)
    content = attachment_content(descriptor, caption)

    envelope = envelope_of(content)
    assert len(envelope) <= WORST_MESSAGE_BYTES < MAX_ENVELOPE_BYTES
    received = attachment_in(content)
    assert received is not None
    assert received.thumbnail is not None
    assert received.thumbnail.image == thumbnail
    assert thumbnail not in envelope  # encrypted, as everything in the message


def test_a_photo_message_is_as_long_as_a_document_message():
    photo, _ = worst_photo_descriptor()
    document = build_descriptor(
        blob="c" * 32, key=os.urandom(32), sha256="d" * 64, size=12, mime="text/plain"
    )
    for caption in (None, "Plaie talon J+3", "x" * 1000):
        lengths = {
            len(envelope_of(attachment_content(descriptor, caption)))
            for descriptor in (photo, document)
        }
        assert len(lengths) == 1, caption


def test_a_caption_too_long_for_the_message_is_refused_in_both_languages():
    check_caption(None)
    check_caption("x" * MAX_CAPTION_BYTES)
    with pytest.raises(AttachmentError) as refused:
        check_caption("x" * (MAX_CAPTION_BYTES + 1))
    assert refused.value.code == "caption_too_long"
    assert "4097 bytes; at most 4096" in refused.value.message
    assert "légende" in refused.value.message_fr
    with pytest.raises(AttachmentError):
        check_caption("\x01" * 700)  # escaped to 6 bytes each in the message
