"""The CLI in ordinary failures: the server down, an unknown person, a key store from
before a database reset, an unknown command, the server restarting mid-chat. Each time
one line in French and English, a reconnection where it makes sense, never a Python
traceback."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest
from channels.db import database_sync_to_async as sync_to_async
from django.core.management import call_command

from directory.demo import ensure_demo_practitioners
from tests.e2e.server import ROOT, ServerProcess, free_port
from tests.e2e.terminal import Terminal

pytestmark = pytest.mark.e2e
NURSE, DOCTOR = "810003456786", "810001987659"


async def run_cli(home, *args: str) -> tuple[int, str]:
    """Run ``python -m client`` to its end; its exit code and everything it printed."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "client",
        *args,
        cwd=ROOT,
        env={**clean, "RELAIS_HOME": str(home), "RELAIS_PASSPHRASE": "demo passphrase"},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(60):
            async for line in process.stdout:
                lines.append(line.decode())
            await process.wait()
    except TimeoutError:
        process.kill()
        raise AssertionError(f"the CLI did not finish; it said: {lines}") from None
    return process.returncode or 0, "".join(lines)


def one_bilingual_line(output: str, french: str, english: str) -> None:
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.startswith("!! ")]
    assert len(lines) == 1, output
    assert french in lines[0]
    assert english in lines[0]


async def test_the_server_down_and_unknown_people_answer_in_one_line(server, tmp_path):
    down = f"http://127.0.0.1:{free_port()}"
    code, output = await run_cli(
        tmp_path, "chat", "--as", NURSE, "--with", DOCTOR, "--server", down
    )
    assert code == 2
    one_bilingual_line(output, "ne répond pas", "does not answer")

    code, output = await run_cli(
        tmp_path, "chat", "--as", "899999999999", "--with", DOCTOR, "--server", server.http_url
    )
    assert code == 2
    one_bilingual_line(output, "n'est pas un professionnel connu", "not a known practitioner")

    code, output = await run_cli(
        tmp_path, "chat", "--as", NURSE, "--with", "899999999999", "--server", server.http_url
    )
    assert code == 2
    one_bilingual_line(output, "n'est pas un professionnel connu", "is not a practitioner")


async def test_a_key_store_from_before_a_database_reset_says_what_to_do(server, tmp_path):
    doctor = await Terminal.start(server, tmp_path / "b", DOCTOR, NURSE)
    await doctor.wait_for("waiting for")
    nurse = await Terminal.start(server, tmp_path / "a", NURSE, DOCTOR)
    await nurse.wait_for("type a message")
    assert await nurse.quit() == 0
    assert await doctor.quit() == 0

    def reset() -> None:
        call_command("flush", "--noinput")
        ensure_demo_practitioners()

    await sync_to_async(reset)()
    code, output = await run_cli(
        tmp_path / "a", "chat", "--as", NURSE, "--with", DOCTOR, "--server", server.http_url
    )
    assert code == 2
    one_bilingual_line(output, "ne correspond plus au serveur", "no longer matches the server")


async def test_an_unknown_command_is_not_sent_and_help_lists_them(server, tmp_path):
    doctor = await Terminal.start(server, tmp_path / "b", DOCTOR, NURSE)
    await doctor.wait_for("waiting for")
    nurse = await Terminal.start(server, tmp_path / "a", NURSE, DOCTOR)
    await nurse.wait_for("type a message")
    await doctor.wait_for("type a message")
    await nurse.type("/frobnicate tout le monde")
    line = await nurse.wait_for("unknown command")
    assert "commande inconnue /frobnicate" in line
    await nurse.type("/help")
    await nurse.wait_for("/photo")
    await nurse.type("Bonjour docteur")
    received = await doctor.wait_for("Bonjour docteur")
    assert "Claire Martin" in received  # names, not national ids
    assert not any("frobnicate" in line for line in doctor.lines)
    assert await nurse.quit() == 0
    assert await doctor.quit() == 0
    assert not any("Traceback" in line for line in nurse.lines + doctor.lines)


async def test_the_chat_survives_a_server_restart(server_env, tmp_path, practitioners):
    port = free_port()
    env = {**server_env, "RELAIS_DEBUG": "1"}
    server = ServerProcess(env=env, log_path=tmp_path / "s.log", port=port)
    server.start()
    doctor = await Terminal.start(server, tmp_path / "b", DOCTOR, NURSE)
    await doctor.wait_for("waiting for")
    nurse = await Terminal.start(server, tmp_path / "a", NURSE, DOCTOR)
    await nurse.wait_for("type a message")
    await doctor.wait_for("type a message")
    server.stop()
    await nurse.wait_for("connection lost")
    await nurse.type("Message écrit pendant la coupure")
    server = ServerProcess(env=env, log_path=tmp_path / "s2.log", port=port)
    server.start()
    await nurse.wait_for("reconnected")
    await nurse.wait_for("(sent")
    assert "Message écrit pendant la coupure" in await doctor.wait_for("pendant la coupure")
    assert await nurse.quit() == 0
    assert await doctor.quit() == 0
    assert not any("Traceback" in line for line in nurse.lines + doctor.lines)
    server.stop()
