"""Transcript PDFs with ReportLab: who wrote what and when, photos inline.

ReportLab is the long-maintained PDF library of the Python world (pure Python, BSD
licence, used by Django's own documentation for generated PDFs); its ``platypus`` layer
flows paragraphs and images over pages, so a long conversation needs no layout code
here. The font is Bitstream Vera, shipped inside ReportLab and embedded in the file, so
accented French and typographic quotes render the same on every reader; a character the
font lacks is shown as ``?`` rather than silently dropped.

The output is reproducible (ReportLab's ``invariant`` mode: no creation date or random
document id), so the same transcript always gives the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Final
from xml.sax.saxutils import escape

from PIL import Image as PillowImage
from PIL import ImageOps
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import cm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    Flowable,
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

FONT: Final = "RelaisVera"
FONT_BOLD: Final = "RelaisVeraBold"
PHOTO_MAX_PIXELS: Final = 1400  # longest side of a photo as drawn in the transcript
PHOTO_MAX_HEIGHT: Final = 11 * cm
PHOTO_JPEG_QUALITY: Final = 80
MAX_IMAGE_PIXELS: Final = 50_000_000  # a decompression bomb is refused, not drawn


@dataclass(frozen=True, slots=True)
class TranscriptEntry:
    """One line of the transcript. ``photo`` is an image file's bytes (drawn inline,
    downscaled); ``notes`` are extra lines in grey (a file's name and hash, a caption,
    an event the archiver records such as a message it could not read)."""

    time: datetime
    author: str
    author_detail: str = ""
    text: str = ""
    photo: bytes | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Transcript:
    title: str
    header: Sequence[tuple[str, str]]  # label, value rows under the title
    entries: Sequence[TranscriptEntry]
    footer: str = ""
    author: str = "Relais"
    subject: str = ""
    keywords: tuple[str, ...] = field(default=())


@cache
def _fonts() -> None:
    import reportlab

    folder = Path(reportlab.__file__).resolve().parent / "fonts"
    pdfmetrics.registerFont(TTFont(FONT, str(folder / "Vera.ttf")))
    pdfmetrics.registerFont(TTFont(FONT_BOLD, str(folder / "VeraBd.ttf")))


@cache
def _covered() -> frozenset[int]:
    _fonts()
    font = pdfmetrics.getFont(FONT)
    assert isinstance(font, TTFont)
    return frozenset(font.face.charToGlyph)


def printable(text: str) -> str:
    """``text`` with the characters the embedded font cannot draw replaced by ``?``."""
    covered = _covered()
    return "".join(c if ord(c) in covered or c in "\n\t" else "?" for c in text)


def _markup(text: str) -> str:
    return escape(printable(text)).replace("\n", "<br/>")


def _styles() -> dict[str, ParagraphStyle]:
    _fonts()
    base = ParagraphStyle("base", fontName=FONT, fontSize=9.5, leading=12.5)
    return {
        "title": ParagraphStyle("title", parent=base, fontName=FONT_BOLD, fontSize=15, leading=19),
        "header": ParagraphStyle("header", parent=base, fontSize=9, leading=11.5),
        "who": ParagraphStyle("who", parent=base, fontName=FONT_BOLD, fontSize=9.5),
        "text": base,
        "note": ParagraphStyle("note", parent=base, fontSize=8, leading=10, textColor=colors.grey),
    }


def photo_for_print(data: bytes) -> tuple[bytes, int, int]:
    """A photo as drawn in the transcript: upright, at most ``PHOTO_MAX_PIXELS`` on its
    longest side, JPEG. Returns (jpeg bytes, width, height)."""
    PillowImage.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    with PillowImage.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened)
        image.thumbnail((PHOTO_MAX_PIXELS, PHOTO_MAX_PIXELS))
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        output = io.BytesIO()
        image.save(output, format="JPEG", quality=PHOTO_JPEG_QUALITY, optimize=True)
        return output.getvalue(), image.width, image.height


def _photo(data: bytes, max_width: float) -> Flowable:
    jpeg, width, height = photo_for_print(data)
    scale = min(max_width / width, PHOTO_MAX_HEIGHT / height, 1.0)
    return Image(io.BytesIO(jpeg), width=width * scale, height=height * scale, hAlign="LEFT")


def _entry(
    entry: TranscriptEntry, styles: dict[str, ParagraphStyle], width: float
) -> list[Flowable]:
    when = entry.time.strftime("%d/%m/%Y %H:%M")
    who = f"{_markup(when)} — {_markup(entry.author)}"
    if entry.author_detail:
        who += f' <font name="{FONT}" color="grey">({_markup(entry.author_detail)})</font>'
    head: list[Flowable] = [Paragraph(who, styles["who"])]
    if entry.text:
        head.append(Paragraph(_markup(entry.text), styles["text"]))
    flow: list[Flowable] = [KeepTogether(head)]
    if entry.photo is not None:
        try:
            flow.append(_photo(entry.photo, width))
        except (OSError, ValueError, PillowImage.DecompressionBombError):
            flow.append(Paragraph(_markup("[photo illisible / unreadable photo]"), styles["note"]))
    flow.extend(Paragraph(_markup(note), styles["note"]) for note in entry.notes)
    flow.append(Spacer(1, 0.25 * cm))
    return flow


def transcript_pdf(transcript: Transcript) -> bytes:
    """The transcript as a PDF (A4, reproducible bytes)."""
    styles = _styles()
    output = io.BytesIO()
    document = SimpleDocTemplate(
        output,
        pagesize=A4,
        leftMargin=1.8 * cm,
        rightMargin=1.8 * cm,
        topMargin=1.6 * cm,
        bottomMargin=1.6 * cm,
        title=printable(transcript.title),
        author=printable(transcript.author),
        subject=printable(transcript.subject),
        keywords=list(transcript.keywords),
        creator="Relais",
        lang="fr-FR",
        invariant=1,
    )
    width = document.width
    flow: list[Flowable] = [
        Paragraph(_markup(transcript.title), styles["title"]),
        Spacer(1, 0.3 * cm),
    ]
    if transcript.header:
        rows = [
            [
                Paragraph(_markup(label), styles["header"]),
                Paragraph(_markup(value), styles["header"]),
            ]
            for label, value in transcript.header
        ]
        table = Table(rows, colWidths=[4.2 * cm, width - 4.2 * cm])
        table.setStyle(
            TableStyle(
                [
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("LINEBELOW", (0, -1), (-1, -1), 0.5, colors.grey),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
                ]
            )
        )
        flow.extend([table, Spacer(1, 0.4 * cm)])
    for entry in transcript.entries:
        flow.extend(_entry(entry, styles, width))
    footer = printable(transcript.footer)

    def number_pages(canvas: object, doc: object) -> None:
        from reportlab.pdfgen.canvas import Canvas

        assert isinstance(canvas, Canvas)
        canvas.saveState()
        canvas.setFont(FONT, 7.5)
        canvas.setFillColor(colors.grey)
        canvas.drawString(1.8 * cm, 0.9 * cm, footer)
        canvas.drawRightString(A4[0] - 1.8 * cm, 0.9 * cm, f"{canvas.getPageNumber()}")
        canvas.restoreState()

    document.build(flow, onFirstPage=number_pages, onLaterPages=number_pages)
    return output.getvalue()
