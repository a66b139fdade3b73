"""The two-terminal chat with photos and files: ``/photo`` and ``/file`` in one CLI
process, the other saving what arrives, against a real server process (PostgreSQL,
Redis, the attachment store). Refusals are shown in English and French."""

from __future__ import annotations

import io
import os
import shlex
from pathlib import Path

import pytest
from PIL import Image

from tests.attachments.conftest import SERVER_LIMITS
from tests.attachments.photos import phone_jpeg, red_corner
from tests.attachments.test_images import assert_no_metadata, png_bomb
from tests.e2e.server import ServerProcess
from tests.e2e.terminal import Terminal

pytestmark = pytest.mark.e2e
NURSE, DOCTOR = "810003456786", "810001987659"


def quote(path: Path) -> str:
    return shlex.quote(str(path))


@pytest.fixture
def server(server_env, tmp_path, practitioners):
    """Development login on (the CLI's login), a 3 MiB per-file limit."""
    env = {
        **server_env,
        **SERVER_LIMITS,
        "RELAIS_DEBUG": "1",
        "RELAIS_ATTACHMENT_ROOT": str(tmp_path / "store"),
    }
    process = ServerProcess(env=env, log_path=tmp_path / "server.log")
    process.start()
    yield process
    process.stop()


async def test_a_photo_and_a_prescription_go_from_one_terminal_to_the_other(server, tmp_path):
    camera = tmp_path / "camera roll"
    camera.mkdir()
    (camera / "IMG 2041.jpg").write_bytes(phone_jpeg(3000, 2000, orientation=6, grain=True))
    original = phone_jpeg(1600, 1200)
    (camera / "cut.jpg").write_bytes(original[: len(original) // 2])
    (camera / "bomb.png").write_bytes(png_bomb(9_000, 9_000))
    (camera / "scan.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 1))
    prescription = b"%PDF-1.7\n" + os.urandom(1_200_000)
    (camera / "ordonnance.pdf").write_bytes(prescription)
    received = tmp_path / "received"

    doctor = await Terminal.start(server, tmp_path / "b", DOCTOR, NURSE, "--save-to", str(received))
    await doctor.wait_for("waiting for")
    nurse = await Terminal.start(server, tmp_path / "a", NURSE, DOCTOR)
    assert str(received) in await doctor.wait_for("received photos and files are saved in")
    await nurse.wait_for("received photos and files are saved in")

    # A photo with a caption; its path has a space, so it is quoted.
    await nurse.type(f'/photo "{camera / "IMG 2041.jpg"}" Plaie talon J+3')
    sent = await nurse.wait_for("(sent")
    assert "[photo: IMG 2041.jpg, 1365x2048," in sent
    line = await doctor.wait_for("[photo:")
    assert line.rstrip().endswith("Plaie talon J+3")
    assert "Claire Martin (Infirmier): [photo: IMG 2041.jpg, 1365x2048," in line
    await doctor.wait_for("receiving IMG 2041.jpg: 50 %")
    saved_line = await doctor.wait_for("saved:")
    assert f"saved: {received / 'IMG 2041.jpg'} (" in saved_line
    assert "SHA-256 checked" in saved_line
    photo = (received / "IMG 2041.jpg").read_bytes()
    assert red_corner(Image.open(io.BytesIO(photo))) == "top-right"  # upright
    assert_no_metadata(photo)  # no EXIF, no GPS

    # Refusals, each in English and French with its code; nothing reaches the doctor.
    refusals = {
        f"/photo {quote(camera / 'cut.jpg')}": ("image_unreadable", "endommagée"),
        f"/photo {quote(camera / 'bomb.png')}": ("image_too_many_pixels", "décompression"),
        f"/photo {quote(camera / 'ordonnance.pdf')}": ("mime_mismatch", "pas une photo"),
        f"/file {quote(camera / 'scan.bin')}": ("attachment_too_large", "taille"),
        f"/file {quote(camera / 'missing.pdf')}": ("unreadable_file", "introuvable"),
    }
    for command, (code, french) in refusals.items():
        await nurse.type(command)
        english = await nurse.wait_for("!! ")
        assert f"({code})" in english, command
        assert "not sent" in english
        translated = (await nurse.wait_for(" : ")).lower()
        assert "non envoyé" in translated, command
        assert french in translated, command

    # A prescription goes as it is, with progress on the way out and in.
    await nurse.type(f"/file {quote(camera / 'ordonnance.pdf')} pour la pharmacie")
    await nurse.wait_for("sending ordonnance.pdf: 50 %")
    assert "[file: ordonnance.pdf, 1.2 MB]" in await nurse.wait_for("(sent")
    line = await doctor.wait_for("[file:")
    assert line.rstrip().endswith("[file: ordonnance.pdf, 1.2 MB] pour la pharmacie")
    await doctor.wait_for("receiving ordonnance.pdf: 75 %")
    await doctor.wait_for("saved:")
    assert (received / "ordonnance.pdf").read_bytes() == prescription

    await doctor.type("Bien reçu, merci.")
    assert "Bien reçu" in await nurse.wait_for("Bien reçu")
    assert await nurse.quit() == 0
    assert await doctor.quit() == 0
    assert sorted(path.name for path in received.iterdir()) == ["IMG 2041.jpg", "ordonnance.pdf"]
    assert not [line for line in doctor.lines if "!!" in line]
