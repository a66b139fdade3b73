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
    message = await client.messages.get()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect

from client.api import ApiError, RestApi
from client.directory import KeyDirectory, KeyTransparencyError, certified_role
from client.events import Message, SecurityAlert, SecurityError
from client.rooms import LocalRoom, own_copy
from client.store import KeyStore
from client.trust import Trust
from e2ee import safety, shares, state
from e2ee.encoding import JsonObject, b64u, unb64u
from e2ee.envelopes import OutboundSession, decrypt_envelope, parse_envelope
from e2ee.errors import CryptoError, CryptoErrorCode
from e2ee.keys import DeviceKeyPair
from e2ee.transparency import DeviceKind

DeviceRef = tuple[str, int]


class RelaisClient:
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
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        if self._ws is not None:
            await self._ws.close()
            self._ws = None
        self.save()
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

    async def _devices_for(self, national_id: str) -> list[state.RoomDevice]:
        found = await self.directory.devices_of(national_id)
        if not found:
            raise SecurityError(f"{national_id} has no certified device yet")
        return [
            state.RoomDevice(national_id=national_id, device=d.device, keys=d.keys)
            for d in found.values()
        ]

    async def create_room(
        self,
        *,
        kind: str,
        members: list[str],
        policy: state.Policy | None = None,
        archiver: str | None = None,
    ) -> int:
        """Create a room with ``members`` (national ids), each with every device the log
        certifies for them; this device signs as the first admin. ``archiver``: the
        identity (``org:<IdNat_Struct>``) of the organisation whose archiver the room
        includes, as its policy asks for care-team and téléexpertise rooms."""
        me = state.RoomDevice(
            national_id=self.national_id, device=self.device_id, keys=self.key_pair.public
        )
        content_members = [state.member_content(self.national_id, "admin", [me])]
        for national_id in sorted(set(members) - {self.national_id}):
            content_members.append(
                state.member_content(national_id, "member", await self._devices_for(national_id))
            )
        raw = state.sign_event(
            state=None,
            room=state.new_room_id(),
            author=self.me,
            key_pair=self.key_pair,
            action="create",
            content=state.create_content(
                kind=kind,
                members=content_members,
                policy=policy or state.default_policy(kind),
                archiver=await self.directory.archiver_device(archiver) if archiver else None,
            ),
            timestamp=int(time.time() * 1000),
        )
        verified, _ = state.apply_event(None, raw)
        answer = await self.api.call("POST", "rooms", json={"event": raw.decode("utf-8")})
        self.rooms[answer["id"]] = LocalRoom(room_id=answer["id"], events=[raw], state=verified)
        self.save()
        return int(answer["id"])

    async def add_member(self, room_id: int, national_id: str, *, role: str = "member") -> None:
        devices = await self._devices_for(national_id)
        await self._change(room_id, "add_member", state.member_content(national_id, role, devices))

    async def remove_member(self, room_id: int, national_id: str) -> None:
        await self._change(room_id, "remove_member", {"national_id": national_id})

    async def _change(self, room_id: int, action: str, content: JsonObject) -> None:
        for _attempt in range(3):
            room = await self.refresh_state(room_id)
            raw = state.sign_event(
                state=room.state,
                room=room.state.room,
                author=self.me,
                key_pair=self.key_pair,
                action=action,
                content=content,
                timestamp=int(time.time() * 1000),
            )
            try:
                await self.api.call("POST", f"rooms/{room_id}/state", json={"event": raw.decode()})
            except ApiError as error:
                if error.code == "stale_state":
                    continue
                raise
            await self.refresh_state(room_id)
            return
        raise ApiError(409, "stale_state", "the room kept changing")

    # Sending ----------------------------------------------------------------------

    async def send_text(self, room_id: int, text: str) -> int:
        return await self.send(room_id, {"type": "text", "text": text})

    async def send(self, room_id: int, content: JsonObject) -> int:
        """Encrypt, sign and send; return the sequence number once the server stored it."""
        assert self._ws is not None, "connect first"
        room = await self.refresh_state(room_id)
        if room.compromised:
            raise SecurityError(f"room {room_id} refused: {room.compromised}")
        if room.state.current_device(*self.me) is None:
            raise SecurityError("this device is not in the room's verified state")
        now_ms = int(time.time() * 1000)
        if room.outbound is None or room.outbound.needs_rotation(state=room.state, now_ms=now_ms):
            room.outbound = OutboundSession.create(
                room=room.state.room, sender=self.me, epoch=room.state.epoch, now_ms=now_ms
            )
            room.add_inbound(own_copy(room.outbound))
        await self._share(room)
        envelope = room.outbound.encrypt(state=room.state, key_pair=self.key_pair, content=content)
        self.save()  # the ratchet moved: never reuse a message key, even after a crash
        client_id = str(uuid.uuid4())
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._acks[client_id] = future
        await self._ws.send(
            json.dumps({"type": "send", "room": room_id, "id": client_id, "body": b64u(envelope)})
        )
        ack = await asyncio.wait_for(future, timeout=30)
        return int(ack["seq"])

    async def _share(self, room: LocalRoom) -> None:
        """Send the current sender key to every room device that lacks it, each checked
        against the transparency log first."""
        outbound = room.outbound
        assert outbound is not None
        missing = [
            d
            for d in room.state.devices()
            if d.ref != self.me and d.ref not in outbound.shared_with
        ]
        if not missing:
            return
        certified: dict[tuple[str, str], dict[int, Any]] = {}
        messages = []
        for device in missing:
            # The archiver must be certified as an organisation's archiver, and every
            # member's device as a practitioner's device.
            kind: DeviceKind = "archiver" if device == room.state.archiver else "device"
            if (device.national_id, kind) not in certified:
                certified[device.national_id, kind] = await self.directory.devices_of(
                    device.national_id, kind=kind
                )
            found = certified[device.national_id, kind].get(device.device)
            if found is None or found.keys != device.keys:
                refused = (
                    f"device {device.device} of {device.national_id} is not certified"
                    f" as {certified_role(kind)}"
                )
                await self._alert("key_transparency", room.room_id, refused)
                raise SecurityError(refused)
            sealed = shares.seal_share(
                session=outbound, epoch=room.state.epoch, key_pair=self.key_pair, recipient=device
            )
            messages.append({"device": device.device, "body": b64u(sealed)})
        await self.api.call("POST", "devices/messages", json={"messages": messages})
        outbound.shared_with.update(d.ref for d in missing)

    # Receiving --------------------------------------------------------------------

    async def _read_forever(self) -> None:
        assert self._ws is not None
        async for text in self._ws:
            frame = json.loads(text)
            try:
                await self._on_frame(frame)
            except (ApiError, KeyTransparencyError, SecurityError) as error:
                await self._alert("key_transparency", frame.get("room"), str(error))

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
        await self.messages.put(
            Message(
                room=room_id,
                seq=seq,
                sender=opened.sender,
                content=opened.content,
                own=opened.sender == self.me,
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
