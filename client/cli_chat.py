"""``python -m client chat``: end-to-end encrypted chat between two terminals.

Terminal 1: ``python -m client chat --as 810003456786 --with 810002765435``
Terminal 2: ``python -m client chat --as 810002765435 --with 810003456786``

Direct rooms (docs/protocol.md §10.5): two people have one direct room. The one whose
national id sorts first creates it once the other has a certified device; the other
waits for it. A new device of either joins it by adding itself; a change of devices
never makes a new room.

Type lines; ``/help`` lists the commands. If the connection drops (the server
restarts), the terminal says so, reconnects and resends what was not acknowledged,
with the same message id (stored once).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
import uuid
from pathlib import Path

from websockets.exceptions import InvalidStatus

from client.api import ApiError
from client.archiver import archiver_notice
from client.cli_errors import CliError, explain
from client.cli_files import FILE_COMMANDS, describe, printable, save_received, send_command
from client.cli_session import Names, Options, check_practitioner, connected, new_client
from client.events import Message, SecurityError
from client.rooms import LocalRoom
from client.session import RelaisClient

HELP = [
    "commandes / commands:",
    "  /photo CHEMIN [légende]   une photo (sans métadonnées) / a photo (metadata removed)",
    "  /file CHEMIN [légende]    un fichier tel quel / any file as it is",
    "  /safety                   le numéro de sécurité / the safety number",
    "  /verify                   après comparaison en personne / after comparing in person",
    "  /help                     cette aide / this help",
    "  /quit                     quitter / leave",
]
COMMANDS = ("/photo", "/file", "/safety", "/verify", "/help", "/quit")
RECONNECT_MAX_SECONDS = 10.0
GAP_CHECK_SECONDS = 15.0


def is_direct_with(room: LocalRoom, me: str, peer: str) -> bool:
    return (
        not room.compromised
        and not room.left
        and room.state.kind == "direct"
        and set(room.state.members) == {me, peer}
    )


async def open_direct_room(client: RelaisClient, peer: str, options: Options) -> int:
    """The one direct room of the two people (created by the lower national id)."""

    def existing() -> list[int]:
        return sorted(
            r.room_id for r in client.rooms.values() if is_direct_with(r, client.national_id, peer)
        )

    if not existing() and client.national_id < peer:
        announced = False
        while not (await client.directory.identity_of(peer)).devices:
            if not announced:
                options.out(f"… en attente de {peer} / waiting for {peer} to start the chat")
                announced = True
            await asyncio.sleep(1)  # polling the public key directory, nothing to wait on
        return await client.create_room(kind="direct", members=[peer])
    if not existing():
        options.out(f"… en attente de {peer} / waiting for {peer} to open the conversation")
        return await client.wait_for_room(lambda r: is_direct_with(r, client.national_id, peer))
    room_id = existing()[0]
    if client.rooms[room_id].state.current_device(*client.me) is None:
        await client.join_my_rooms()
    return room_id


def _flags(message: Message) -> str:
    notes = []
    if message.late:
        notes.append("arrivé en retard, envoyé avant le précédent / arrived late, sent earlier")
    if message.stale_state:
        notes.append("envoyé depuis un état périmé du salon / sent from an outdated room state")
    return f"  (!! {'; '.join(notes)})" if notes else ""


async def _print_incoming(
    client: RelaisClient, room_id: int, save_to: Path, names: Names, options: Options
) -> None:
    while True:
        message = await client.messages.get()
        if message.room != room_id or message.own:
            continue
        stamp = time.strftime("%H:%M", time.localtime(message.sent_at / 1000 or None))
        who = await names.of(message.sender[0])
        if message.attachment is None:
            options.out(f"[{stamp}] {who}: {printable(message.text)}{_flags(message)}")
            continue
        options.out(
            f"[{stamp}] {who}: {describe(message.attachment, message.text)}{_flags(message)}"
        )
        await save_received(client, message.attachment, save_to, out=options.out)


async def _print_alerts(client: RelaisClient, options: Options) -> None:
    while True:
        alert = await client.alerts.get()
        options.out(f"!! sécurité / security: {alert.kind}: {alert.detail}")


async def _check_gaps(client: RelaisClient) -> None:
    while True:
        await asyncio.sleep(GAP_CHECK_SECONDS)  # a periodic check: lost messages appear late
        with contextlib.suppress(ApiError, OSError):
            await client.check_gaps()


def _status(error: BaseException) -> int | None:
    if isinstance(error, ApiError):
        return error.status
    if isinstance(error, InvalidStatus):
        return error.response.status_code
    return None


class Connection:
    """Keeps the device connected: notices a drop, reconnects with growing pauses."""

    def __init__(self, client: RelaisClient, options: Options) -> None:
        self.client = client
        self.options = options
        self.lock = asyncio.Lock()

    async def reconnect(self) -> None:
        async with self.lock:
            if self.client.connected:
                return
            self.options.out("!! connexion perdue, reconnexion… / connection lost, reconnecting…")
            await self.client.disconnect()
            pause = 0.5
            while True:
                try:
                    await self.client.connect()
                    break
                except (OSError, ApiError, TimeoutError, InvalidStatus) as error:
                    if _status(error) in (401, 403):
                        raise
                    await self.client.disconnect()
                    await asyncio.sleep(pause)  # the server is down: wait before retrying
                    pause = min(pause * 2, RECONNECT_MAX_SECONDS)
            self.options.out("!! reconnecté / reconnected")

    async def watch(self) -> None:
        while True:
            await self.client.wait_disconnected()
            await self.reconnect()

    async def send(self, room_id: int, text: str) -> int:
        message_id = str(uuid.uuid4())
        while True:
            try:
                return await self.client.send(
                    room_id, {"type": "text", "text": text}, message_id=message_id
                )
            except (ConnectionError, TimeoutError, OSError):
                await self.reconnect()
                self.options.out("!! renvoi du message / sending the message again")
            except ApiError as error:
                if error.code not in ("server_busy", "internal"):
                    raise
                await asyncio.sleep(1)  # the server asked to retry shortly


async def _command(
    text: str, client: RelaisClient, room_id: int, peer: str, options: Options
) -> bool:
    """Run a /command; False for /quit."""
    name = text.split(" ", 1)[0]
    if name == "/quit":
        return False
    if name == "/help":
        for line in HELP:
            options.out(line)
    elif name == "/safety":
        options.out((await client.safety_number(peer)).digits)
    elif name == "/verify":
        await client.mark_verified(peer)
        options.out(
            f"{peer} vérifié : toute nouvelle clé d'identité sera bloquée / {peer} verified: "
            "any new identity key will be blocked"
        )
    elif name in FILE_COMMANDS:
        await send_command(client, room_id, text, out=options.out)
    else:
        options.out(
            f"commande inconnue {name} (rien n'a été envoyé) — /help liste les commandes / "
            f"unknown command {name} (nothing was sent) — /help lists the commands"
        )
    return True


async def chat(options: Options, args: argparse.Namespace) -> int:
    peer: str = args.peer
    save_to = (args.save_to or options.home / "received" / options.me).expanduser().resolve()
    client = new_client(options)
    try:
        try:
            await client.api.call("GET", "keys/log")  # the server answers at all
        except OSError as error:
            raise explain(error, server=options.server) from None
        await connected(client, options)
        await check_practitioner(client, peer)
        names = Names(client)
        room_id = await open_direct_room(client, peer, options)
        number = await client.safety_number(peer)
        options.out(
            f"salon {room_id} avec {await names.of(peer)}, chiffré de bout en bout / "
            f"room {room_id} with {await names.of(peer)}, end-to-end encrypted."
        )
        if (notice := await archiver_notice(client, room_id)) is not None:
            options.out(notice)
        options.out(f"numéro de sécurité / safety number (compare in person): {number.digits}")
        options.out("écrivez un message et Entrée ; /help liste les commandes")
        options.out("type a message and press Enter; /help lists the commands")
        options.out(f"received photos and files are saved in / fichiers reçus dans : {save_to}")
        connection = Connection(client, options)
        tasks = [
            asyncio.create_task(_print_incoming(client, room_id, save_to, names, options)),
            asyncio.create_task(_print_alerts(client, options)),
            asyncio.create_task(_check_gaps(client)),
            asyncio.create_task(connection.watch()),
        ]
        loop = asyncio.get_running_loop()
        try:
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line:
                    break
                text = line.rstrip("\n")
                if not text.strip():
                    continue
                if text.startswith("/"):
                    try:
                        if not await _command(text, client, room_id, peer, options):
                            break
                    except (SecurityError, ApiError, CliError) as error:
                        options.out(f"!! {explain(error, server=options.server)}")
                    continue
                try:
                    seq = await connection.send(room_id, text)
                except (SecurityError, ApiError) as error:
                    options.out(
                        f"!! non envoyé / not sent: {explain(error, server=options.server)}"
                    )
                    continue
                options.out(f"  (sent / envoyé, #{seq})")
        finally:
            for task in tasks:
                task.cancel()
    finally:
        await client.close()
    return 0
