"""The photo pipeline: what happens to a wound photo before it is encrypted.

open with a pixel bound → check the declared type → decode (JPEG at a reduced DCT scale
when the target allows) → resize to the long edge → apply the EXIF orientation →
convert to sRGB when the photo carries another colour profile → copy the pixels into a
fresh image (no EXIF, GPS, XMP, IPTC, comments or ICC profile survive) → re-encode
(JPEG or WebP) → thumbnail, small enough to travel inside the encrypted message.
docs/attachments.md says why each step is there.

HEIC/HEIF (iPhone photos) is read through ``pi-heif``, the decode-only build of the
``pillow-heif`` plugin.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import BinaryIO, Literal

from PIL import Image, ImageCms, UnidentifiedImageError

from client.attachments.descriptor import MAX_THUMBNAIL_BYTES, MAX_THUMBNAIL_EDGE
from client.attachments.errors import AttachmentError, ClientCode
from client.attachments.mime import IMAGE_FORMATS

OutputFormat = Literal["JPEG", "WEBP"]
OUTPUT_MIME: dict[str, str] = {"JPEG": "image/jpeg", "WEBP": "image/webp"}

_ORIENTATION_TAG = 0x0112
# EXIF orientation → the transposition that makes the image upright (as ImageOps does).
_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = {5, 6, 7, 8}


@dataclass(frozen=True, slots=True)
class ImageOptions:
    """How photos are prepared. The defaults suit clinical photos on a phone screen."""

    max_pixels: int = 64_000_000  # 48-50 MP phone sensors pass; bombs do not
    max_input_bytes: int = 64 * 1024 * 1024
    long_edge: int = 2048
    output_format: OutputFormat = "JPEG"
    quality: int = 85
    thumbnail_long_edge: int = 320
    thumbnail_quality: int = 70
    # The thumbnail travels inside the encrypted message: when it comes out larger than
    # this, it is encoded again at a lower quality, then smaller (THUMBNAIL_QUALITY_STEPS,
    # THUMBNAIL_SMALLER_EDGES).
    thumbnail_max_bytes: int = MAX_THUMBNAIL_BYTES

    def __post_init__(self) -> None:
        if not 1 <= self.thumbnail_long_edge <= MAX_THUMBNAIL_EDGE:
            raise ValueError(f"thumbnail_long_edge: 1 to {MAX_THUMBNAIL_EDGE}")
        if not 1 <= self.thumbnail_max_bytes <= MAX_THUMBNAIL_BYTES:
            raise ValueError(f"thumbnail_max_bytes: 1 to {MAX_THUMBNAIL_BYTES}")


# After the first try (the configured edge and quality): lower qualities, then smaller
# edges, each at the three qualities. A 64 px JPEG at quality 40 is a few kB whatever
# the picture, so in practice a thumbnail always fits.
THUMBNAIL_QUALITY_STEPS = (0, -15, -30)
THUMBNAIL_SMALLER_EDGES = (256, 192, 128, 96, 64)


@dataclass(frozen=True, slots=True)
class ProcessedImage:
    """A cleaned photo and its thumbnail, both re-encoded, neither with metadata.
    ``thumbnail`` is None only when no size and quality fitted ``thumbnail_max_bytes``."""

    data: bytes
    mime: str
    width: int
    height: int
    thumbnail: bytes | None
    thumbnail_mime: str
    thumbnail_width: int
    thumbnail_height: int


@cache
def _heif_registered() -> bool:
    try:
        from pi_heif import register_heif_opener  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - pi-heif is a dependency; a broken install
        return False
    register_heif_opener()
    return True


@cache
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _open(source: bytes | BinaryIO | Path, options: ImageOptions) -> Image.Image:
    formats = sorted(set(IMAGE_FORMATS.values()) - (set() if _heif_registered() else {"HEIF"}))
    stream: BinaryIO | str
    if isinstance(source, bytes):
        if len(source) > options.max_input_bytes:
            raise AttachmentError(ClientCode.FILE_TOO_LARGE)
        stream = io.BytesIO(source)
    elif isinstance(source, Path):
        if source.stat().st_size > options.max_input_bytes:
            raise AttachmentError(ClientCode.FILE_TOO_LARGE)
        stream = str(source)  # Pillow opens it, and closes it with the image
    else:
        stream = source
    try:
        with warnings.catch_warnings():
            # Pillow warns between its own bound and twice it; both are refusals here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(stream, formats=formats)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise AttachmentError(ClientCode.IMAGE_TOO_MANY_PIXELS) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise AttachmentError(ClientCode.IMAGE_UNREADABLE) from error
    width, height = image.size
    if width * height > options.max_pixels:
        image.close()
        raise AttachmentError(
            ClientCode.IMAGE_TOO_MANY_PIXELS,
            f"{width} x {height} is more than {options.max_pixels:,} pixels.",
        )
    return image


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block must not stop a photo: ignore it
        return 1
    return value if isinstance(value, int) and value in _TRANSPOSE else 1


def _target_size(width: int, height: int, long_edge: int) -> tuple[int, int]:
    scale = min(1.0, long_edge / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _decode(image: Image.Image, target: tuple[int, int]) -> Image.Image:
    """Decode the first frame; JPEG may decode at 1/2, 1/4 or 1/8 scale when that still
    covers ``target`` (libjpeg's DCT scaling, much faster than a full decode)."""
    if image.format == "JPEG":
        image.draft(None, target)
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise AttachmentError(ClientCode.IMAGE_UNREADABLE) from error
    return image


def _to_display_mode(image: Image.Image, output_format: OutputFormat) -> Image.Image:
    has_alpha = image.mode in {"RGBA", "LA", "PA", "RGBa", "La"} or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        if output_format == "WEBP":
            return rgba
        flattened = Image.new("RGB", rgba.size, (255, 255, 255))
        flattened.paste(rgba, mask=rgba.getchannel("A"))
        return flattened
    if image.mode in {"RGB", "L"}:
        return image
    return image.convert("RGB")


def _to_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """Pixels in sRGB, so the file can go without a profile (viewers assume sRGB).

    A Display P3 iPhone photo shown without its profile would shift the colours of a
    wound; converting keeps them and drops the profile's own metadata.
    """
    if not icc_profile or image.mode not in {"RGB", "RGBA"}:
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        if "srgb" in (ImageCms.getProfileDescription(source) or "").lower():
            return image
        converted = ImageCms.profileToProfile(image, source, _srgb(), outputMode=image.mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image  # an unreadable profile: keep the pixels as they are, i.e. as sRGB
    return converted if converted is not None else image


def _clean_copy(image: Image.Image) -> Image.Image:
    """A new image holding only pixels: nothing of ``info`` (EXIF, XMP, ICC, comments)."""
    return Image.frombytes(image.mode, image.size, image.tobytes())


def _encode(image: Image.Image, output_format: OutputFormat, quality: int) -> bytes:
    buffer = io.BytesIO()
    if output_format == "JPEG":
        image.save(buffer, "JPEG", quality=quality)
    else:
        image.save(buffer, "WEBP", quality=quality, method=4)
    return buffer.getvalue()


def _thumbnail(pixels: Image.Image, options: ImageOptions) -> tuple[bytes, tuple[int, int]] | None:
    """The largest, best thumbnail of at most ``thumbnail_max_bytes``: the configured
    edge and quality first, then lower qualities, then smaller edges."""
    first = pixels.copy()
    first.thumbnail(
        (options.thumbnail_long_edge, options.thumbnail_long_edge), Image.Resampling.LANCZOS
    )
    edges = [options.thumbnail_long_edge]
    edges += [edge for edge in THUMBNAIL_SMALLER_EDGES if edge < options.thumbnail_long_edge]
    for edge in edges:
        smaller = first.copy()
        smaller.thumbnail((edge, edge), Image.Resampling.LANCZOS)
        for step in THUMBNAIL_QUALITY_STEPS:
            quality = max(10, options.thumbnail_quality + step)
            data = _encode(smaller, options.output_format, quality)
            if len(data) <= options.thumbnail_max_bytes:
                return data, smaller.size
    return None


def process_image(
    source: bytes | BinaryIO | Path, *, declared_mime: str, options: ImageOptions | None = None
) -> ProcessedImage:
    """Clean a photo for sending. ``declared_mime`` must name the image's real format.

    Raises AttachmentError with image_too_many_pixels, image_unreadable, file_too_large
    or mime_mismatch. CPU-bound: an async caller runs it in a worker thread.
    """
    options = options or ImageOptions()
    declared = declared_mime.strip().lower()
    expected_format = IMAGE_FORMATS.get(declared)
    if expected_format is None:
        raise AttachmentError(ClientCode.MIME_UNSUPPORTED, f"{declared} is not an image type.")
    image = _open(source, options)
    try:
        if image.format != expected_format:
            raise AttachmentError(
                ClientCode.MIME_MISMATCH,
                f"Declared {declared}, the content is {image.format or 'unknown'}.",
            )
        orientation = _orientation(image)
        icc_profile = image.info.get("icc_profile")
        width, height = image.size
        if orientation in _SWAPS_AXES:
            upright = _target_size(height, width, options.long_edge)
            target = (upright[1], upright[0])
        else:
            target = _target_size(width, height, options.long_edge)
        decoded = _decode(image, target)
        pixels = _to_display_mode(decoded, options.output_format)
        if pixels.size != target:
            # Pillow's bicubic is an antialiased convolution: at these ratios it looks
            # the same as Lanczos and costs a third less on a 12 MP photo.
            pixels = pixels.resize(target, Image.Resampling.BICUBIC)
        if orientation in _TRANSPOSE:
            pixels = pixels.transpose(_TRANSPOSE[orientation])
        pixels = _clean_copy(_to_srgb(pixels, icc_profile))
    finally:
        image.close()
    data = _encode(pixels, options.output_format, options.quality)
    thumbnail = _thumbnail(pixels, options)
    thumbnail_data, (thumbnail_width, thumbnail_height) = thumbnail or (None, (0, 0))
    mime = OUTPUT_MIME[options.output_format]
    return ProcessedImage(
        data=data,
        mime=mime,
        width=pixels.width,
        height=pixels.height,
        thumbnail=thumbnail_data,
        thumbnail_mime=mime,
        thumbnail_width=thumbnail_width,
        thumbnail_height=thumbnail_height,
    )
