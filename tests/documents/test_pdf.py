"""Transcript PDFs: they render (poppler's pdftoppm), carry the text, draw the photos
inline, and come out byte-identical for the same transcript."""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta

import pytest

from documents.pdf import (
    PHOTO_MAX_PIXELS,
    Transcript,
    TranscriptEntry,
    photo_for_print,
    printable,
    transcript_pdf,
)
from tests.documents.samples import PARIS_WINTER, photo

START = datetime(2026, 12, 2, 9, 0, tzinfo=PARIS_WINTER)


def transcript(entries) -> Transcript:
    return Transcript(
        title="Salon de soins — transcription",
        header=[("Patient", "Dominique PAT-TROIS (née le 28/03/1979)"), ("Messages", "1 à 3")],
        entries=entries,
        footer="Relais — archive 1-3",
    )


def entries():
    return [
        TranscriptEntry(
            time=START,
            author="Claire MARTIN",
            author_detail="Infirmier, RPPS 10003456786",
            text="Pansement refait, plaie propre.\nL\u2019œdème diminue.",
        ),
        TranscriptEntry(
            time=START + timedelta(minutes=3),
            author="Claire MARTIN",
            author_detail="Infirmier, RPPS 10003456786",
            text="Plaie talon gauche J+3",
            photo=photo(2400, 1800),
            notes=("Photo : IMG_2041.jpg, 412 Ko, SHA-256 3f2a…",),
        ),
        TranscriptEntry(
            time=START + timedelta(minutes=40),
            author="Dr Paul DURAND",
            author_detail="Médecin, RPPS 10001987659",
            text="Vu, je passe jeudi. <b>pas du HTML</b> & co",
        ),
    ]


def run(*command: str, stdin: bytes) -> bytes:
    return subprocess.run(command, input=stdin, capture_output=True, check=True, timeout=60).stdout


def test_the_transcript_renders_with_its_text_and_photo(tmp_path):
    pdf = transcript_pdf(transcript(entries()))
    assert pdf.startswith(b"%PDF-")
    # pdftoppm renders the first page: a real PNG, as a reader would show it.
    png = run("pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", "-", stdin=pdf)
    assert png.startswith(b"\x89PNG")
    text = run("pdftotext", "-layout", "-", "-", stdin=pdf).decode("utf-8")
    for line in (
        "Salon de soins — transcription",
        "Pansement refait, plaie propre.",
        "L\u2019œdème diminue.",
        "Dr Paul DURAND",
        "RPPS 10001987659",
        "<b>pas du HTML</b> & co",  # text, never markup
        "Photo : IMG_2041.jpg",
        "02/12/2026 09:03",
    ):
        assert line in text
    images = run("pdfimages", "-list", "-", stdin=pdf).decode().splitlines()[2:]
    assert len(images) == 1
    width, height = (int(v) for v in images[0].split()[3:5])
    assert (width, height) == (PHOTO_MAX_PIXELS, PHOTO_MAX_PIXELS * 3 // 4)


def test_the_same_transcript_gives_the_same_bytes():
    assert transcript_pdf(transcript(entries())) == transcript_pdf(transcript(entries()))
    assert transcript_pdf(transcript(entries())) != transcript_pdf(transcript(entries()[:2]))


def test_an_unreadable_photo_is_said_not_dropped():
    broken = TranscriptEntry(time=START, author="Claire MARTIN", photo=b"not an image")
    text = run("pdftotext", "-", "-", stdin=transcript_pdf(transcript([broken]))).decode()
    assert "photo illisible / unreadable photo" in text


def test_characters_outside_the_font_become_question_marks():
    assert printable("Plaie ✓ propre") == "Plaie ? propre"
    assert printable("é à ç œ € \u2019 «»") == "é à ç œ € \u2019 «»"


def test_photos_are_drawn_upright_and_bounded():
    jpeg, width, height = photo_for_print(photo(600, 400))
    assert (width, height) == (600, 400)  # never enlarged
    assert jpeg.startswith(b"\xff\xd8")
    with pytest.raises(OSError, match=r"cannot identify image file|truncated"):
        photo_for_print(b"\x89PNG\r\n\x1a\nbroken")
