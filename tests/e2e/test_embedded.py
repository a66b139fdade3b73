"""The embedded first-run setup (what ``make run`` starts): SQLite, in-process fan-out,
demo practitioners and the development login, on a real server process; and the first
thing the README asks a new user to try: two terminals chatting end to end with the
CLI (``python -m client chat``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.terminal import Terminal

pytestmark = pytest.mark.e2e
NURSE, PHARMACIST = "810003456786", "810002765435"


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
    # People appear by name and profession, as the directory gives them.
    assert line.strip().endswith(
        "Claire Martin (Infirmier): Bonjour, une question sur l'ordonnance de Mme B."
    )
    await pharmacist.type("Je regarde tout de suite.")
    assert "Je regarde tout de suite." in await nurse.wait_for("Je regarde")
    assert await nurse.quit() == 0
    assert await pharmacist.quit() == 0
    # The key stores are encrypted: the text and the keys are not readable on disk.
    for store in (tmp_path / "a" / f"{NURSE}.store", tmp_path / "b" / f"{PHARMACIST}.store"):
        assert b"ordonnance" not in store.read_bytes()
        assert b"sign" not in store.read_bytes().split(b'"ct"')[1]


async def test_a_new_device_linked_by_code_joins_the_conversation(embedded_server, tmp_path):
    """The nurse gets a new phone: she links it from the first with the code it shows.
    It joins the direct room she already has with the pharmacist (no new room), reads
    its history, and the chat goes on."""

    async def chat_once(nurse_home: Path, text: str) -> list[str]:
        nurse = await Terminal.start(embedded_server, nurse_home, NURSE, PHARMACIST)
        pharmacist = await Terminal.start(embedded_server, tmp_path / "b", PHARMACIST, NURSE)
        await nurse.wait_for("type a message")
        await pharmacist.wait_for("type a message")
        await nurse.type(text)
        assert (await nurse.wait_for("sent")).strip().startswith("(sent")
        assert text in await pharmacist.wait_for(text)
        assert await nurse.quit() == 0
        assert await pharmacist.quit() == 0
        return nurse.lines

    first_lines = await chat_once(tmp_path / "first-phone", "Premier message")
    first_room = next(line for line in first_lines if line.startswith("salon "))
    # The new phone shows a code; the first phone approves it.
    linking = await Terminal.command(embedded_server, tmp_path / "new-phone", "link", "--as", NURSE)
    shown = await linking.wait_for("python -m client approve")
    code = shown.split("approve ")[1].split(" ")[0]
    approving = await Terminal.command(
        embedded_server, tmp_path / "first-phone", "approve", code, "--as", NURSE, "--yes"
    )
    await approving.wait_for("linked")
    assert await approving.exit_code() == 0
    await linking.wait_for("linked")
    assert await linking.exit_code() == 0
    new_lines = await chat_once(tmp_path / "new-phone", "Depuis mon nouveau téléphone")
    assert next(line for line in new_lines if line.startswith("salon ")) == first_room
