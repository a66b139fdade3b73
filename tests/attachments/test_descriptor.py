"""The version 2 descriptor: always the same length, consistent sizes, a thumbnail that
is what it says, and every defect refused as bad_descriptor."""

from __future__ import annotations

import io
import json

import msgspec
import pytest
from PIL import Image

from client.attachments.descriptor import (
    DESCRIPTOR_BYTES,
    MAX_THUMBNAIL_BYTES,
    AttachmentDescriptor,
    ThumbnailDescriptor,
    build_descriptor,
    descriptor_from_dict,
    descriptor_from_json,
    thumbnail_of,
)
from client.attachments.errors import AttachmentError
from client.attachments.padding import padded_size
from client.attachments.stream import SCHEME, ciphertext_size
from e2ee.encoding import b64u


def jpeg(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 40)).save(buffer, "JPEG", quality=60)
    return buffer.getvalue()


def largest_thumbnail() -> ThumbnailDescriptor:
    """A real JPEG header, grown to the largest size a thumbnail may have."""
    data = jpeg(1024, 1024)[:MAX_THUMBNAIL_BYTES]
    data += bytes(MAX_THUMBNAIL_BYTES - len(data))
    return ThumbnailDescriptor(data=b64u(data), mime="image/jpeg", width=1024, height=1024)


def test_the_longest_descriptor_the_limits_allow_fits_in_the_fixed_length():
    longest = AttachmentDescriptor(
        v=2,
        scheme=SCHEME,
        blob="f" * 32,
        key="A" * 43,
        sha256="f" * 64,
        ciphertext_size=2**53 - 1,
        size=2**53 - 1,
        mime="x/" + "y" * 125,
        name="\x01" * 255,  # each control character is escaped to 6 bytes
        width=65535,
        height=65535,
        thumbnail=largest_thumbnail(),
        pad="",
    )
    assert len(longest.to_json()) <= DESCRIPTOR_BYTES


def test_a_photo_and_a_document_descriptor_have_the_same_length():
    photo = build_descriptor(
        blob="1" * 32,
        key=bytes(32),
        sha256="2" * 64,
        size=366_516,
        mime="image/jpeg",
        name="IMG_2041.jpg",
        width=1536,
        height=2048,
        thumbnail=thumbnail_of(jpeg(240, 320), mime="image/jpeg", width=240, height=320),
    )
    document = build_descriptor(
        blob="3" * 32, key=bytes(32), sha256="4" * 64, size=1, mime="text/plain"
    )
    assert len(photo.to_json()) == len(document.to_json()) == DESCRIPTOR_BYTES
    assert photo.ciphertext_size == ciphertext_size(padded_size(366_516)) == 368_757
    assert document.ciphertext_size == 21 + 512 + 16
    assert descriptor_from_dict(photo.to_dict()) == photo
    assert photo.thumbnail is not None
    assert photo.thumbnail.image == jpeg(240, 320)


def refused(value: dict) -> AttachmentError:
    with pytest.raises(AttachmentError) as error:
        descriptor_from_json(json.dumps(value, sort_keys=True, separators=(",", ":")))
    assert error.value.code == "bad_descriptor"
    assert error.value.message_fr
    return error.value


@pytest.fixture
def photo() -> dict:
    return build_descriptor(
        blob="1" * 32,
        key=bytes(32),
        sha256="2" * 64,
        size=50_000,
        mime="image/jpeg",
        thumbnail=thumbnail_of(jpeg(320, 240), mime="image/jpeg", width=320, height=240),
    ).to_dict()


def test_a_version_1_descriptor_is_refused_by_its_version(photo):
    photo["v"] = 1
    assert "version 1 is not supported" in refused(photo).message


def test_sizes_that_do_not_follow_the_padding_rule_are_refused(photo):
    photo["ciphertext_size"] = ciphertext_size(50_000)  # the unpadded blob
    assert "padded, is a blob of" in refused(photo).message


def test_a_descriptor_of_another_length_is_refused(photo):
    photo["pad"] += "0"
    assert f"not {DESCRIPTOR_BYTES}" in refused(photo).message
    photo["pad"] = "1" * (len(photo["pad"]) - 1)
    refused(photo)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"width": 240, "height": 320}, "not 240x320 as declared"),
        ({"mime": "image/webp"}, "not an image of type image/webp"),
        ({"mime": "image/png"}, "Invalid enum value 'image/png'"),
        ({"data": b64u(b"GIF89a not a jpeg")}, "not an image of type image/jpeg"),
        ({"data": "_x"}, "not canonical base64url"),  # "_w" is the only encoding of 0xff
        ({"data": "A" * (MAX_THUMBNAIL_BYTES * 4 // 3 + 4)}, "length <= 16000"),
        ({"blob": "0" * 32}, "unknown field"),
    ],
)
def test_a_thumbnail_that_is_not_what_it_declares_is_refused(photo, change, why):
    photo["thumbnail"].update(change)
    assert why in refused(photo).message


def test_a_thumbnail_can_be_built_only_from_a_small_real_image():
    with pytest.raises(ValueError, match="at most"):
        thumbnail_of(bytes(MAX_THUMBNAIL_BYTES + 1), mime="image/jpeg", width=1, height=1)
    with pytest.raises(msgspec.ValidationError):
        thumbnail_of(jpeg(2000, 10), mime="image/jpeg", width=2000, height=10)
