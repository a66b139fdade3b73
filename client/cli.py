"""``python -m client chat``: end-to-end encrypted chat between two terminals.

Terminal 1: ``python -m client chat --as 810003456786 --with 810002765435``
Terminal 2: ``python -m client chat --as 810002765435 --with 810003456786``

Each terminal is a device: it logs in (development login), certifies its keys in the
key-transparency log, and keeps them in an encrypted store (passphrase from
``RELAIS_PASSPHRASE`` or asked). The practitioner whose national id sorts first creates
the direct room once the other has a certified device; the other joins it. Then type
lines; ``/photo PATH [caption]`` sends a photo (cleaned of its metadata, GPS first),
``/file PATH [caption]`` any file, ``/safety`` shows the safety number to compare in
person, ``/quit`` leaves. Received photos and files are saved, encrypted in transit and
checked on arrival, to the folder ``--save-to`` names (``cli_files.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from client import cli_teleexpertise
from client.archiver import archiver_notice
from client.cli_files import FILE_COMMANDS, describe, printable, save_received, send_command
from client.events import SecurityError
from client.rooms import LocalRoom
from client.session import RelaisClient
from client.store import KeyStore, StoreError


def _out(line: str) -> None:
    print(line, flush=True)


def _is_chat_with(peer: str, me: tuple[str, int]) -> Callable[[LocalRoom], bool]:
    """A verified direct room of ``me`` and ``peer`` that this very device belongs to (a
    new device of the same person is not in the rooms of the old one until someone adds
    it, so it cannot read or write there)."""

    def matches(room: LocalRoom) -> bool:
        return (
            not room.compromised
            and room.state.kind == "direct"
            and set(room.state.members) == {me[0], peer}
            and room.state.current_device(*me) is not None
        )

    return matches


async def _open_room(client: RelaisClient, peer: str) -> int:
    match = _is_chat_with(peer, client.me)
    if client.national_id < peer:
        announced = False
        while not (devices := await client.directory.devices_of(peer)):
            if not announced:
                _out(f"… waiting for {peer} to start the chat on their side")
                announced = True
            await asyncio.sleep(1)  # polling the public key directory, nothing to wait on
        for room in client.rooms.values():
            peer_member = room.state.members.get(peer)
            # Reuse a room only if it also holds every device the peer has now.
            if match(room) and peer_member and set(devices) <= set(peer_member.devices):
                return room.room_id
        return await client.create_room(kind="direct", members=[peer])
    existing = [r.room_id for r in client.rooms.values() if match(r)]
    if existing:
        return max(existing)  # the newest: the peer creates a new room when devices change
    _out(f"… waiting for {peer} to open the conversation")
    return await client.wait_for_room(match)


async def _print_incoming(client: RelaisClient, room_id: int, save_to: Path) -> None:
    while True:
        message = await client.messages.get()
        if message.room == room_id and not message.own:
            stamp = time.strftime("%H:%M")
            if message.attachment is None:
                _out(f"[{stamp}] {message.sender[0]}: {printable(message.text)}")
                continue
            _out(f"[{stamp}] {message.sender[0]}: {describe(message.attachment, message.text)}")
            await save_received(client, message.attachment, save_to, out=_out)


async def _print_alerts(client: RelaisClient) -> None:
    while True:
        alert = await client.alerts.get()
        _out(f"!! security: {alert.kind}: {alert.detail}")


async def chat(
    *, server: str, me: str, peer: str, store_path: Path, passphrase: str, save_to: Path
) -> int:
    try:
        store = KeyStore.open(store_path, passphrase)
    except StoreError as error:
        _out(f"cannot open the key store: {error}")
        return 2
    client = RelaisClient(server=server, store=store)
    if not client.registered:
        await client.register_dev(me, device_name="terminal")
        _out(f"device {client.device_id} of {me}: keys certified in the key-transparency log")
    elif client.national_id != me:
        _out(f"this key store belongs to {client.national_id}")
        return 2
    await client.connect()
    room_id = await _open_room(client, peer)
    number = await client.safety_number(peer)
    _out(f"room {room_id} with {peer}, end-to-end encrypted.")
    if (notice := await archiver_notice(client, room_id)) is not None:
        _out(notice)
    _out(f"safety number (compare with {peer} in person): {number.digits}")
    _out("type a message and press Enter; /photo PATH and /file PATH send a photo or a file,")
    _out("/safety shows the safety number, /quit leaves.")
    _out(f"received photos and files are saved in {save_to}")
    tasks = [
        asyncio.create_task(_print_incoming(client, room_id, save_to)),
        asyncio.create_task(_print_alerts(client)),
    ]
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line or line.strip() == "/quit":
                break
            text = line.rstrip("\n")
            if text == "/safety":
                _out((await client.safety_number(peer)).digits)
            elif text.split(" ", 1)[0] in FILE_COMMANDS:
                await send_command(client, room_id, text, out=_out)
            elif text:
                try:
                    seq = await client.send_text(room_id, text)
                except SecurityError as error:
                    _out(f"!! not sent / non envoyé: {error}")
                    continue
                _out(f"  (sent, #{seq})")
    finally:
        for task in tasks:
            task.cancel()
        await client.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m client", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    talk = commands.add_parser("chat", help="chat end to end with another practitioner")
    talk.add_argument("--as", dest="me", required=True, help="your national id (8 + RPPS)")
    talk.add_argument("--with", dest="peer", required=True, help="their national id")
    talk.add_argument("--server", default=os.environ.get("RELAIS_SERVER", "http://127.0.0.1:8000"))
    talk.add_argument("--store", type=Path, help="key store file (default: ~/.relais/<id>.store)")
    talk.add_argument(
        "--save-to",
        type=Path,
        help="folder for received photos and files (default: ~/.relais/received/<id>)",
    )
    cli_teleexpertise.add_parser(commands)
    args = parser.parse_args(argv)
    home = Path(os.environ.get("RELAIS_HOME", "~/.relais")).expanduser()
    if args.command == "teleexpertise":
        passphrase = os.environ.get("RELAIS_PASSPHRASE") or getpass.getpass(
            "key store passphrase: "
        )
        return cli_teleexpertise.main(args, home=home, passphrase=passphrase)
    store_path = args.store or home / f"{args.me}.store"
    save_to = (args.save_to or home / "received" / args.me).expanduser().resolve()
    passphrase = os.environ.get("RELAIS_PASSPHRASE") or getpass.getpass("key store passphrase: ")
    return asyncio.run(
        chat(
            server=args.server,
            me=args.me,
            peer=args.peer,
            store_path=store_path,
            passphrase=passphrase,
            save_to=save_to,
        )
    )
