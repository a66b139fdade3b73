"""The embedded first-run setup (what ``make run`` starts): SQLite, in-process fan-out,
demo practitioners and the development login, on a real server process; and the first
thing the README asks a new user to try: two terminals chatting end to end with the
CLI (``python -m client chat``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from client.store import KeyStore
from tests.e2e.server import ROOT, ServerProcess
from tests.e2e.terminal import Terminal

pytestmark = pytest.mark.e2e
NURSE, PHARMACIST = "810003456786", "810002765435"


@pytest.fixture
def embedded_server(tmp_path: Path):
    env = {"RELAIS_DEBUG": "1", "RELAIS_DATABASE_URL": f"sqlite:///{tmp_path}/relais.sqlite3"}
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_")}
    for command in (["migrate", "--noinput"], ["seed_demo"]):
        subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=ROOT,
            env={**clean, **env},
            check=True,
            capture_output=True,
            timeout=120,
        )
    # Daphne, as ``make run`` (runserver) serves the embedded default.
    server = ServerProcess(env=env, log_path=tmp_path / "server.log", kind="daphne")
    server.start()
    yield server
    server.stop()


async def test_two_terminals_chat_end_to_end_on_the_embedded_server(embedded_server, tmp_path):
    health = embedded_server.wait_healthy()
    assert health["database"]["vendor"] == "sqlite"
    assert health["fanout"]["fanout"] == "in-process"
    pharmacist = await Terminal.start(embedded_server, tmp_path / "b", PHARMACIST, NURSE)
    await pharmacist.wait_for("waiting for")
    nurse = await Terminal.start(embedded_server, tmp_path / "a", NURSE, PHARMACIST)
    numbers = [
        (await terminal.wait_for("safety number")).split(": ")[-1].strip()
        for terminal in (nurse, pharmacist)
    ]
    assert numbers[0] == numbers[1]
    assert len(numbers[0].replace(" ", "")) == 60
    await nurse.wait_for("type a message")
    await pharmacist.wait_for("type a message")
    await nurse.type("Bonjour, une question sur l'ordonnance de Mme B.")
    line = await pharmacist.wait_for("ordonnance")
    assert line.strip().endswith(f"{NURSE}: Bonjour, une question sur l'ordonnance de Mme B.")
    await pharmacist.type("Je regarde tout de suite.")
    assert "Je regarde tout de suite." in await nurse.wait_for("Je regarde")
    assert await nurse.quit() == 0
    assert await pharmacist.quit() == 0
    # The key stores are encrypted: the text and the keys are not readable on disk.
    for store in (tmp_path / "a" / f"{NURSE}.store", tmp_path / "b" / f"{PHARMACIST}.store"):
        assert b"ordonnance" not in store.read_bytes()
        assert b"sign" not in store.read_bytes().split(b'"ct"')[1]


async def test_a_new_device_gets_a_room_it_belongs_to(embedded_server, tmp_path):
    """The nurse comes back on a new device (a fresh key store): the old room does not
    list that device, so the CLI must not write there (it could not be read); the
    pharmacist's side opens a room with the new device and the chat goes on."""

    async def chat_once(nurse_home: Path, text: str) -> None:
        # The nurse opens the app first (on a new phone: it certifies its keys), then the
        # pharmacist, who sees the nurse's devices as they are now.
        nurse = await Terminal.start(embedded_server, nurse_home, NURSE, PHARMACIST)
        await nurse.wait_for("waiting for")
        pharmacist = await Terminal.start(embedded_server, tmp_path / "b", PHARMACIST, NURSE)
        await nurse.wait_for("type a message")
        await pharmacist.wait_for("type a message")
        await nurse.type(text)
        assert (await nurse.wait_for("sent")).strip().startswith("(sent")
        assert text in await pharmacist.wait_for(text)
        assert await nurse.quit() == 0
        assert await pharmacist.quit() == 0

    await chat_once(tmp_path / "first-phone", "Premier message")
    # Linking the new phone from the first brings it the identity key (the CLI has no
    # linking yet: the test copies the key from store to store, as linking would).
    first = KeyStore.open(tmp_path / "first-phone" / f"{NURSE}.store", "demo passphrase")
    new = KeyStore.open(tmp_path / "new-phone" / f"{NURSE}.store", "demo passphrase")
    new.data["identity"] = first.data["identity"]
    new.save()
    await chat_once(tmp_path / "new-phone", "Depuis mon nouveau téléphone")
