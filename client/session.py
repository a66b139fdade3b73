"""``RelaisClient``: one device of one practitioner, end to end encrypted.

What the client believes comes from its own verification, never from the server's
word: room membership from the signed chain (``e2ee.state``), device keys from the
key-transparency log (``client.directory``). Before a sender key goes to a device, the
device must be in the verified room state and certified in the log; envelopes that fail
any check are dropped and reported on ``alerts``. Decrypted messages arrive on
``messages``. All secrets live in the encrypted ``KeyStore``.

Usage::

    store = KeyStore.open(path, passphrase)
    client = RelaisClient(server="http://127.0.0.1:8000", store=store)
    await client.register_dev("810003456786")   # once per device
    await client.connect()
    room = await client.create_room(kind="direct", members=["810002765435"])
    await client.send_text(room, "Bonjour")
    await client.send_photo(room, Path("plaie.jpg"), text="Plaie J+3")  # client/files.py
    message = await client.messages.get()
    if message.attachment:                       # a photo or a file
        saved = await client.save_attachment(message.attachment, Path("received"))

Room creation and membership changes are in ``client/membership.py``, photos and files
in ``client/files.py``, sender-key sharing in ``client/sharing.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from client import files
from client.api import ApiError, RestApi
from client.attachments.errors import AttachmentError
from client.directory import KeyDirectory, KeyTransparencyError
from client.events import Message, SecurityAlert, SecurityError
from client.membership import MembershipMethods
from client.rooms import LocalRoom, own_copy
from client.sharing import share_sender_key
from client.store import KeyStore
from client.trust import Trust
from e2ee import safety, shares, state
from e2ee.encoding import JsonObject, b64u, unb64u
from e2ee.envelopes import OutboundSession, decrypt_envelope, parse_envelope
from e2ee.errors import CryptoError, CryptoErrorCode
from e2ee.keys import DeviceKeyPair

DeviceRef = tuple[str, int]
MESSAGE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
LOST = "the connection to the server was lost; connect again and send with the same id"


class RelaisClient(MembershipMethods, files.FileMethods):
    def __init__(self, *, server: str, store: KeyStore) -> None:
        self.server = server.rstrip("/")
        self.store = store
        self.api = RestApi(self.server)
        data = store.data
        self.api.token = data.get("token")
        self.directory = KeyDirectory(self.api, data.setdefault("directory", {}))
        self.trust = Trust(api=self.api, directory=self.directory, data=data, alert=self._alert)
        self.rooms: dict[int, LocalRoom] = {
            int(k): LocalRoom.from_json(v) for k, v in data.get("rooms", {}).items()
        }
        self.messages: asyncio.Queue[Message] = asyncio.Queue()
        self.alerts: asyncio.Queue[SecurityAlert] = asyncio.Queue()
        # Téléexpertise state changes (protocol §12.4), for client.teleexpertise.
        self.teleexpertise_frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._synced = asyncio.Event()
        self._room_events = asyncio.Condition()
        self._done_to_device: set[int] = set()
        self._state_lock = asyncio.Lock()

    # Identity ---------------------------------------------------------------------

    @property
    def national_id(self) -> str:
        return str(self.store.data["national_id"])

    @property
    def device_id(self) -> int:
        return int(self.store.data["device"])

    @property
    def me(self) -> DeviceRef:
        return (self.national_id, self.device_id)

    @property
    def key_pair(self) -> DeviceKeyPair:
        keys = self.store.data["keys"]
        return DeviceKeyPair.from_private_bytes(sign=unb64u(keys["sign"]), kex=unb64u(keys["kex"]))

    @property
    def registered(self) -> bool:
        return "keys" in self.store.data

    async def register_dev(self, national_id: str, *, device_name: str = "sdk") -> None:
        """Development login (DEBUG servers only), then certify this device's keys."""
        if self.registered:
            return
        login = await self.api.dev_login(national_id, device_name)
        await self.register_with_token(
            token=login["token"], device=login["device"], national_id=national_id
        )

    async def register_with_token(self, *, token: str, device: int, national_id: str) -> None:
        """Certify fresh keys for a device token obtained by any login."""
        self.api.token = token
        await self.trust.register(token=token, device=device, national_id=national_id)
        self.save()

    def save(self) -> None:
        self.store.data["rooms"] = {str(k): room.to_json() for k, room in self.rooms.items()}
        self.store.save()

    # Connection -------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the WebSocket, catch up on keys, room states and missed messages."""
        parts = urlsplit(self.server)
        scheme = "wss" if parts.scheme == "https" else "ws"
        self._ws = await connect(
            f"{scheme}://{parts.netloc}/ws/v1/",
            additional_headers={"Authorization": f"Bearer {self.api.token}"},
            origin=f"{parts.scheme}://{parts.hostname}",  # type: ignore[arg-type]
            open_timeout=15,
        )
        ready = json.loads(await self._ws.recv())
        if ready.get("type") != "ready":
            raise ApiError(401, str(ready.get("code", "auth_failed")), "connection refused")
        self._reader = asyncio.create_task(self._read_forever(), name="relais-client-reader")
        await self.refresh_rooms()
        await self.process_to_device()
        await self.sync()
        await self.check_my_devices()

    async def close(self) -> None:
        await self.disconnect()
        await self.api.close()

    async def disconnect(self) -> None:
        """Close the socket only (the client can ``connect`` again)."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        if self._ws is not None:
            await self._ws.close()
            self._ws = None
        self.save()

    async def sync(self) -> None:
        """Ask for everything missed since the last message held, and wait for it."""
        assert self._ws is not None, "connect first"
        self._synced.clear()
        rooms = {str(room_id): room.last_seq for room_id, room in self.rooms.items()}
        await self._ws.send(json.dumps({"type": "sync", "rooms": rooms}))
        await asyncio.wait_for(self._synced.wait(), timeout=30)

    # Rooms ------------------------------------------------------------------------

    async def refresh_rooms(self) -> None:
        """Learn rooms the server says we are in, verifying each chain from creation."""
        listing = await self.api.call("GET", "rooms")
        for item in listing["rooms"]:
            if item["id"] not in self.rooms:
                await self._load_room(item["id"])

    async def _load_room(self, room_id: int) -> LocalRoom | None:
        answer = await self.api.call("GET", f"rooms/{room_id}/state")
        events = [e["event"].encode("utf-8") for e in answer["events"]]
        try:
            verified = state.replay_chain(events)
        except CryptoError as error:
            await self._alert(error.code.value, room_id, f"room chain refused: {error}")
            return None
        room = LocalRoom(room_id=room_id, events=events, state=verified)
        self.rooms[room_id] = room
        async with self._room_events:
            self._room_events.notify_all()
        return room

    async def wait_for_room(self, predicate: Any) -> int:
        """Wait until a room satisfying ``predicate(LocalRoom)`` is known; its id. Wrap
        in ``asyncio.timeout`` to bound the wait."""
        async with self._room_events:
            await self._room_events.wait_for(lambda: any(predicate(r) for r in self.rooms.values()))
        return next(r.room_id for r in self.rooms.values() if predicate(r))

    async def refresh_state(self, room_id: int) -> LocalRoom:
        """Fetch and verify the room's new state events. A forged or broken event, or a
        different event for an epoch already verified (a fork), marks the room
        compromised: nothing is sent to it and an alert is raised."""
        async with self._state_lock:
            room = self.rooms.get(room_id) or await self._load_room(room_id)
            if room is None:
                raise SecurityError(f"room {room_id} has no valid chain")
            answer = await self.api.call(
                "GET", f"rooms/{room_id}/state", params={"after": room.state.epoch}
            )
            for item in answer["events"]:
                raw = item["event"].encode("utf-8")
                if item["epoch"] <= room.state.epoch:
                    if room.state.head_at(item["epoch"]) != state.event_hash(raw):
                        room.compromised = "bad_chain: the server showed two different histories"
                        await self._alert("bad_chain", room_id, room.compromised)
                        break
                    continue
                try:
                    event = room.apply(raw)
                except CryptoError as error:
                    room.compromised = f"{error.code.value}: {error.detail}"
                    await self._alert(error.code.value, room_id, f"state event refused: {error}")
                    break
                if event.action in ("remove_member", "remove_device", "set_archiver"):
                    room.outbound = None  # rotate: a new sender key for the remaining devices
            self.save()
            return room

    # Sending ----------------------------------------------------------------------

    async def send_text(self, room_id: int, text: str) -> int:
        return await self.send(room_id, {"type": "text", "text": text})

    async def room_for_sending(self, room_id: int) -> LocalRoom:
        """The room's freshly verified state; SecurityError if this device may not send
        to it (a refused chain, or this device is not in the verified state)."""
        room = await self.refresh_state(room_id)
        if room.compromised:
            raise SecurityError(f"room {room_id} refused: {room.compromised}")
        if room.state.current_device(*self.me) is None:
            raise SecurityError("this device is not in the room's verified state")
        return room

    async def send(
        self, room_id: int, content: JsonObject, *, message_id: str | None = None
    ) -> int:
        """Encrypt, sign and send; return the sequence number once the server stored it.

        ``message_id`` (default: a fresh UUID) is the client message id of protocol §2;
        an attachment's upload names it. Sending again with the same id after a failure
        (ConnectionError, TimeoutError, ``server_busy``) is idempotent: the server stores
        the message once and answers with its sequence number. A retry is encrypted
        anew, which costs one ratchet index and nothing else.
        """
        assert self._ws is not None, "connect first"
        message_id = message_id or str(uuid.uuid4())
        if not MESSAGE_ID.fullmatch(message_id):
            raise ValueError("a message id is 1-64 characters of A-Z a-z 0-9 . _ : -")
        room = await self.room_for_sending(room_id)
        envelope = await self._encrypt(room, content)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._acks[message_id] = future
        frame = {"type": "send", "room": room_id, "id": message_id, "body": b64u(envelope)}
        try:
            await self._ws.send(json.dumps(frame))
            ack = await asyncio.wait_for(future, timeout=30)
        except ConnectionClosed:
            raise ConnectionError(LOST) from None
        finally:
            if self._acks.get(message_id) is future:
                del self._acks[message_id]
        return int(ack["seq"])

    async def seal(self, room_id: int, content: JsonObject) -> bytes:
        """An envelope of ``content`` for the room, not sent: for a REST call that
        carries one (a téléexpertise step, protocol §12)."""
        return await self._encrypt(await self.room_for_sending(room_id), content)

    async def _encrypt(self, room: LocalRoom, content: JsonObject) -> bytes:
        now_ms = int(time.time() * 1000)
        if room.outbound is None or room.outbound.needs_rotation(state=room.state, now_ms=now_ms):
            room.outbound = OutboundSession.create(
                room=room.state.room, sender=self.me, epoch=room.state.epoch, now_ms=now_ms
            )
            room.add_inbound(own_copy(room.outbound))
        await share_sender_key(
            room=room,
            me=self.me,
            key_pair=self.key_pair,
            api=self.api,
            directory=self.directory,
            alert=self._alert,
        )
        envelope = room.outbound.encrypt(state=room.state, key_pair=self.key_pair, content=content)
        self.save()  # the ratchet moved: never reuse a message key, even after a crash
        return envelope

    # Receiving --------------------------------------------------------------------

    async def _read_forever(self) -> None:
        assert self._ws is not None
        try:
            async for text in self._ws:
                frame = json.loads(text)
                try:
                    await self._on_frame(frame)
                except (ApiError, KeyTransparencyError, SecurityError) as error:
                    await self._alert("key_transparency", frame.get("room"), str(error))
        finally:
            # No ack can come any more: sends waiting for one fail now (retry with the
            # same id once connected again) rather than at their timeout.
            for future in self._acks.values():
                if not future.done():
                    future.set_exception(ConnectionError(LOST))

    async def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "ack":
            future = self._acks.pop(frame["id"], None)
            if future is not None and not future.done():
                future.set_result(frame)
        elif kind == "error":
            future = self._acks.pop(frame.get("ref") or "", None)
            if future is not None and not future.done():
                future.set_exception(ApiError(400, frame["code"], frame["message"]))
        elif kind == "message":
            await self._on_envelope(frame)
            self.save()
        elif kind == "backlog":
            for item in frame["messages"]:
                await self._on_envelope(item)
            self.save()
        elif kind == "synced":
            self._synced.set()
        elif kind in ("membership", "room_state"):
            await self._on_room_change(frame)
        elif kind == "teleexpertise":
            await self.teleexpertise_frames.put(frame)
        elif kind == "to_device":
            # Process it, then everything queued up to it, and only then acknowledge:
            # acknowledging "up to" this id must not drop an older unprocessed share.
            await self._on_to_device(frame)
            await self.process_to_device()

    async def _on_room_change(self, frame: dict[str, Any]) -> None:
        room_id = frame["room"]
        if frame.get("action") == "removed" and frame.get("practitioner") == self.national_id:
            self.rooms.pop(room_id, None)  # we left: forget its keys
            self.save()
            return
        if room_id in self.rooms:
            await self.refresh_state(room_id)
        else:
            await self._load_room(room_id)
        await self._retry_pending(room_id)

    async def _on_envelope(self, item: dict[str, Any], *, retrying: bool = False) -> bool:
        """Decrypt one stored envelope; False if it must wait for a key."""
        room_id, seq = item["room"], item["seq"]
        room = self.rooms.get(room_id) or await self._load_room(room_id)
        if room is None:
            return True
        room.last_seq = max(room.last_seq, seq)
        try:
            parsed = parse_envelope(unb64u(item["body"].rstrip("="), field="body"))
            if parsed.epoch > room.state.epoch:
                room = await self.refresh_state(room_id)
            if (*parsed.sender, parsed.key_id) not in room.inbound and not retrying:
                await self.process_to_device()
            opened = decrypt_envelope(state=room.state, envelope=parsed, sessions=room.inbound)
        except CryptoError as error:
            if error.code in (CryptoErrorCode.UNKNOWN_KEY, CryptoErrorCode.FUTURE_EPOCH):
                if not retrying:
                    room.pending.append(item)
                return False
            await self._alert(error.code.value, room_id, f"message {seq} refused: {error.detail}")
            return True
        if item["sender"] != {"device": opened.sender[1], "practitioner": opened.sender[0]}:
            await self._alert("bad_sender", room_id, f"message {seq}: server and envelope disagree")
            return True
        try:
            attachment = files.attachment_in(opened.content)
        except AttachmentError as error:
            attachment = None
            await self._alert(error.code, room_id, f"message {seq}: {error.message}")
        await self.messages.put(
            Message(
                room=room_id,
                seq=seq,
                sender=opened.sender,
                content=opened.content,
                own=opened.sender == self.me,
                attachment=attachment,
            )
        )
        return True

    async def _retry_pending(self, room_id: int) -> None:
        room = self.rooms.get(room_id)
        if room is None or not room.pending:
            return
        waiting, room.pending = room.pending, []
        for item in sorted(waiting, key=lambda m: m["seq"]):
            if not await self._on_envelope(item, retrying=True):
                room.pending.append(item)
        self.save()

    async def process_to_device(self) -> None:
        """Fetch and process every queued to-device message, then acknowledge them."""
        after = 0
        while True:
            answer = await self.api.call("GET", "devices/messages", params={"after": after})
            items = answer["messages"]
            if not items:
                return
            for item in items:
                await self._on_to_device(item)
            after = items[-1]["id"]
            await self.api.call("POST", "devices/messages/ack", json={"up_to": after})

    async def _on_to_device(self, item: dict[str, Any]) -> None:
        if item["id"] in self._done_to_device:
            return
        self._done_to_device.add(item["id"])
        body = unb64u(item["body"].rstrip("="), field="body")
        if item["kind"] == "notice":
            await self.check_my_devices()
            return
        try:
            opened = shares.open_share(message=body, key_pair=self.key_pair, me=self.me)
            room = next((r for r in self.rooms.values() if r.state.room == opened.room), None)
            if room is None:
                await self.refresh_rooms()
                room = next((r for r in self.rooms.values() if r.state.room == opened.room), None)
            if room is None:
                raise CryptoError(CryptoErrorCode.BAD_CHAIN, "share for a room we are not in")
            if opened.epoch > room.state.epoch:
                room = await self.refresh_state(room.room_id)
            room.add_inbound(shares.accept_share(opened, state=room.state))
        except CryptoError as error:
            await self._alert(error.code.value, None, f"key share refused: {error}")
            return
        self.save()
        await self._retry_pending(room.room_id)

    # Verification -----------------------------------------------------------------

    async def check_my_devices(self) -> list[int]:
        """Audit the log; devices certified for my national id that I do not know."""
        unknown = await self.trust.check_my_devices(self.national_id)
        self.save()
        return unknown

    def approve_device(self, device: int) -> None:
        """The user confirmed a new device of theirs."""
        self.trust.approve_device(device)
        self.save()

    async def safety_number(self, national_id: str) -> safety.SafetyNumber:
        return await self.trust.safety_number(self.national_id, national_id)

    async def mark_verified(self, national_id: str) -> None:
        """Remember the contact's keys as checked in person (safety number compared)."""
        await self.trust.mark_verified(national_id)
        self.save()

    async def check_verified_contact(self, national_id: str) -> bool:
        """True if a verified contact still has the keys checked; a clear alert if not."""
        return await self.trust.check_verified_contact(national_id)

    async def _alert(self, kind: str, room: int | None, detail: str) -> None:
        await self.alerts.put(SecurityAlert(kind=kind, room=room, detail=detail))
