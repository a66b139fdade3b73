"""The photo pipeline on real images made in the test: orientation, metadata, sizes, and
every refusal (bombs, truncated files, lying MIME types)."""

from __future__ import annotations

import io
import struct
import zlib

import pillow_heif
import pytest
from PIL import ExifTags, Image, ImageOps, PngImagePlugin

from client.attachments.descriptor import MAX_THUMBNAIL_BYTES
from client.attachments.errors import AttachmentError
from client.attachments.images import ImageOptions, process_image
from tests.attachments.photos import SECRETS, jpeg_segments, marked_image, phone_jpeg, red_corner

# JFIF, quantisation and Huffman tables, start of frame, start of scan: pixels, no metadata.
PLAIN_JPEG_MARKERS = {0xE0, 0xDB, 0xC4, 0xC0, 0xDA}


def assert_no_metadata(jpeg: bytes) -> None:
    assert set(jpeg_segments(jpeg)) <= PLAIN_JPEG_MARKERS
    assert not [secret for secret in SECRETS if secret in jpeg]
    image = Image.open(io.BytesIO(jpeg))
    assert not image.getexif()
    assert not {"exif", "xmp", "icc_profile", "comment", "photoshop"} & set(image.info)


@pytest.mark.parametrize(
    ("orientation", "corner"),
    [(1, "top-left"), (3, "bottom-right"), (6, "top-right"), (8, "bottom-left")],
)
def test_a_phone_photo_comes_out_upright_resized_and_without_any_metadata(orientation, corner):
    original = phone_jpeg(3000, 2000, orientation=orientation)
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(original)))
    assert red_corner(expected) == corner  # the test photo really needs turning

    result = process_image(original, declared_mime="image/jpeg")

    image = Image.open(io.BytesIO(result.data))
    assert image.format == "JPEG"
    assert red_corner(image) == corner
    assert max(image.size) == 2048
    assert image.size == (result.width, result.height)
    # the aspect ratio of the upright photo is kept
    assert abs(image.width / image.height - expected.width / expected.height) < 0.01
    assert_no_metadata(result.data)

    assert result.thumbnail is not None
    assert len(result.thumbnail) <= MAX_THUMBNAIL_BYTES  # it fits in the message
    thumbnail = Image.open(io.BytesIO(result.thumbnail))
    assert max(thumbnail.size) == 320
    assert thumbnail.size == (result.thumbnail_width, result.thumbnail_height)
    assert red_corner(thumbnail) == corner
    assert_no_metadata(result.thumbnail)


def test_a_small_photo_is_not_enlarged_and_webp_output_is_clean_too():
    result = process_image(
        phone_jpeg(800, 600, orientation=6),
        declared_mime="image/jpeg",
        options=ImageOptions(output_format="WEBP", long_edge=2048),
    )
    image = Image.open(io.BytesIO(result.data))
    assert (image.format, image.size, result.mime) == ("WEBP", (600, 800), "image/webp")
    assert not image.getexif()
    assert not {"exif", "xmp", "icc_profile"} & set(image.info)
    assert not [secret for secret in SECRETS if secret in result.data]


def test_png_with_transparency_and_text_chunks_is_flattened_and_cleaned():
    image = marked_image(500, 400).convert("RGBA")
    image.paste((0, 0, 0, 0), (440, 340, 500, 400))  # a transparent corner

    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "Patient Dupont")
    buffer = io.BytesIO()
    image.save(buffer, "PNG", pnginfo=text)
    result = process_image(buffer.getvalue(), declared_mime="image/png")
    assert result.mime == "image/jpeg"
    out = Image.open(io.BytesIO(result.data))
    assert out.mode == "RGB"
    assert out.getpixel((470, 370)) == pytest.approx((255, 255, 255), abs=8)  # white, not black
    assert b"Patient Dupont" not in result.data


def test_heic_photos_from_iphones_are_read_and_cleaned():
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "RelaisTestCam"
    exif.get_ifd(ExifTags.IFD.GPSInfo).update({1: "N", 2: (48.0, 51.0, 24.0)})
    heif = pillow_heif.from_pillow(marked_image(640, 480))
    buffer = io.BytesIO()
    heif.save(buffer, quality=90, exif=exif.tobytes())
    original = buffer.getvalue()
    assert b"RelaisTestCam" in original

    result = process_image(original, declared_mime="image/heic")

    image = Image.open(io.BytesIO(result.data))
    assert (image.format, image.size, red_corner(image)) == ("JPEG", (640, 480), "top-left")
    assert_no_metadata(result.data)


def png_bomb(width: int, height: int) -> bytes:
    """A real PNG of one colour: many megapixels in a small file."""
    compressor = zlib.compressobj(1)
    row = b"\x00" + bytes(width)
    raw = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", raw)
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "side",
    [
        9_000,  # 81 MP: under Pillow's own warning, over Relais' 64 MP bound
        12_000,  # 144 MP: Pillow warns
        20_000,  # 400 MP: Pillow refuses
    ],
)
def test_a_decompression_bomb_is_refused_before_decoding(side):
    bomb = png_bomb(side, side)
    assert len(bomb) < side * side // 100  # under 1 % of its pixel count: a bomb
    with pytest.raises(AttachmentError) as refused:
        process_image(bomb, declared_mime="image/png")
    assert refused.value.code == "image_too_many_pixels"
    assert "décompression" in refused.value.message_fr


def test_the_pixel_bound_is_configurable_and_checked_on_the_header():
    with pytest.raises(AttachmentError) as refused:
        process_image(
            phone_jpeg(1200, 900),
            declared_mime="image/jpeg",
            options=ImageOptions(max_pixels=10**6),
        )
    assert refused.value.code == "image_too_many_pixels"
    assert "1200 x 900" in refused.value.message


def test_a_truncated_photo_is_refused():
    original = phone_jpeg(1600, 1200)
    with pytest.raises(AttachmentError) as refused:
        process_image(original[: len(original) // 2], declared_mime="image/jpeg")
    assert refused.value.code == "image_unreadable"
    assert refused.value.message_fr


def test_garbage_declared_as_an_image_is_refused():
    with pytest.raises(AttachmentError) as refused:
        process_image(b"%PDF-1.7 not an image", declared_mime="image/jpeg")
    assert refused.value.code == "image_unreadable"


@pytest.mark.parametrize("declared", ["image/png", "image/webp", "image/heic"])
def test_a_jpeg_declared_as_another_image_type_is_refused(declared):
    with pytest.raises(AttachmentError) as refused:
        process_image(phone_jpeg(300, 200), declared_mime=declared)
    assert refused.value.code == "mime_mismatch"
    assert "JPEG" in refused.value.message


def test_an_oversized_input_file_is_refused_before_opening():
    with pytest.raises(AttachmentError) as refused:
        process_image(
            phone_jpeg(300, 200),
            declared_mime="image/jpeg",
            options=ImageOptions(max_input_bytes=1000),
        )
    assert refused.value.code == "file_too_large"
