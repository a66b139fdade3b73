"""Test photos made on the spot: a JPEG as a phone writes it, with every kind of metadata
the pipeline must remove, and helpers to prove that nothing of it survived."""

from __future__ import annotations

import io
import struct

from PIL import ExifTags, Image, ImageCms

# Strings planted in the metadata; none may appear in anything that leaves the device.
SECRETS = [
    b"RelaisTestCam",  # EXIF Make
    b"Rue des Lilas",  # EXIF ImageDescription
    b"xmp-secret-48.8566",  # XMP packet
    b"Patient Dupont",  # JPEG comment
    b"iptc-secret-city",  # IPTC (Photoshop APP13)
]
GPS = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)}


def marked_image(width: int, height: int, *, grain: bool = False) -> Image.Image:
    """Blue, with a red block in the top-left corner: orientation is visible. ``grain``
    adds sensor-like noise, so the JPEG is as large as a real photo."""
    image = Image.new("RGB", (width, height), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, width // 4, height // 4))
    if grain:
        noise = Image.effect_noise((width, height), 40).convert("RGB")
        image = Image.blend(image, noise, 0.15)
    return image


def _with_iptc(jpeg: bytes, text: bytes) -> bytes:
    payload = b"Photoshop 3.0\x00" + b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(text) + 5)
    payload += b"\x1c\x02\x5a" + struct.pack(">H", len(text)) + text
    segment = b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + segment + jpeg[2:]


def phone_jpeg(
    width: int = 1200,
    height: int = 900,
    *,
    orientation: int = 6,
    quality: int = 90,
    grain: bool = False,
) -> bytes:
    """A JPEG with EXIF (orientation, make, description, GPS), XMP, a comment, IPTC and
    an sRGB ICC profile."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "RelaisTestCam"
    exif[ExifTags.Base.ImageDescription] = "Rue des Lilas"
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(GPS)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buffer = io.BytesIO()
    marked_image(width, height, grain=grain).save(
        buffer,
        "JPEG",
        quality=quality,
        exif=exif,
        xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/">xmp-secret-48.8566</x:xmpmeta>',
        comment=b"Patient Dupont",
        icc_profile=icc,
    )
    return _with_iptc(buffer.getvalue(), b"iptc-secret-city")


def jpeg_segments(data: bytes) -> list[int]:
    """The marker bytes of a JPEG's segments before the image data (SOS)."""
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    markers, position = [], 2
    while position < len(data):
        assert data[position] == 0xFF
        marker = data[position + 1]
        markers.append(marker)
        if marker == 0xDA:  # start of scan: metadata cannot come after this point
            return markers
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        position += 2 + length
    return markers


def red_corner(image: Image.Image) -> str:
    """Which corner holds the red block: 'top-left', 'top-right', ..."""
    width, height = image.size
    corners = {
        "top-left": (width // 10, height // 10),
        "top-right": (width - 1 - width // 10, height // 10),
        "bottom-left": (width // 10, height - 1 - height // 10),
        "bottom-right": (width - 1 - width // 10, height - 1 - height // 10),
    }
    rgb = image.convert("RGB")
    reds = [name for name, xy in corners.items() if _is_red(rgb.getpixel(xy))]
    assert len(reds) == 1, reds
    return reds[0]


def _is_red(pixel: object) -> bool:
    assert isinstance(pixel, tuple)
    red, green, blue = pixel[:3]
    return bool(red > 180 and green < 80 and blue < 80)
