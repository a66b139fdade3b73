"""``RelaisClient``: one device of one practitioner, end to end encrypted.

What the client believes comes from its own verification, never from the server's
word: room membership from the signed chain (``e2ee.state``), identity and device keys
from the key-transparency log (``client.directory``), a contact's identity from what it
saw before (``client.trust``). A frame from the server is a *hint* to go and fetch
something verifiable, never a fact. Envelopes that fail a check are dropped and
reported on ``alerts``; decrypted messages arrive on ``messages``. All secrets live in
the encrypted, locked ``KeyStore``.

Usage::

    store = KeyStore.open(path, passphrase)
    client = RelaisClient(server="http://127.0.0.1:8000", store=store)
    code = await client.register_dev("810003456786")   # first device: keep the code
    await client.connect()
    room = await client.create_room(kind="direct", members=["810002765435"])
    await client.send_text(room, "Bonjour")
    message = await client.messages.get()

Other devices of the same practitioner are linked from this one (``client.linking``
via ``client.registration``); a lost set of devices is recovered with the code. Room
creation and membership changes are in ``client/membership.py``, photos and files in
``client/files.py``, sender-key sharing in ``client/sharing.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from client import files, registration
from client.account import Account
from client.api import ApiError, RestApi
from client.devicekeys import DeviceKeys, publish_kex
from client.directory import KeyDirectory, KeyTransparencyError, RoomArchiver
from client.events import Message, RoomProfile, SecurityAlert, SecurityError
from client.history import History, HistoryKey
from client.logview import ForkDetectedError, LogConfig
from client.membership import MembershipMethods
from client.receiving import ReceivingMethods
from client.rooms import LocalRoom
from client.sharing import share_sender_key
from client.store import KeyStore
from client.to_device import ToDeviceMethods
from client.trust import Trust
from e2ee import recovery, safety, state
from e2ee.encoding import JsonObject, b64u, unb64u
from e2ee.envelopes import OutboundSession
from e2ee.errors import CryptoError
from e2ee.identity import IdentityKeyPair
from e2ee.keys import DeviceKeyPair
from e2ee.profile import decrypt_profile

DeviceRef = tuple[str, int]
MESSAGE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
LOST = "the connection to the server was lost; connect again and send with the same id"


def _now_ms() -> int:
    return int(time.time() * 1000)


class RelaisClient(MembershipMethods, ReceivingMethods, ToDeviceMethods, files.FileMethods):
    def __init__(
        self,
        *,
        server: str,
        store: KeyStore,
        log_config: LogConfig | None = None,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self.server = server.rstrip("/")
        self.store = store
        self.api = RestApi(self.server)
        self.now_ms = clock
        data = store.data
        self.api.token = data.get("token")
        self.directory = KeyDirectory(self.api, data.setdefault("directory", {}), log_config)
        self.trust = Trust(
            directory=self.directory, data=data.setdefault("trust", {}), alert=self._alert
        )
        self.history = History(data.setdefault("history", {}))
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
    def device_keys(self) -> DeviceKeys:
        return DeviceKeys(self.store.data["keys"])

    @property
    def key_pair(self) -> DeviceKeyPair:
        return self.device_keys.pair

    @property
    def account(self) -> Account:
        return Account(self.store.data["account"])

    @property
    def identity(self) -> IdentityKeyPair:
        return self.account.identity

    def account_key(self, purpose: str) -> bytes:
        """A 32-byte key for ``purpose`` that every device of this practitioner derives
        alike and the server never sees (e.g. ``billing-pseudonym``)."""
        return self.account.account_key(purpose)

    @property
    def registered(self) -> bool:
        return "account" in self.store.data and "keys" in self.store.data

    def own_room_device(self) -> state.RoomDevice:
        sign_key = self.key_pair.public.sign_key
        return state.RoomDevice(
            national_id=self.national_id,
            device=self.device_id,
            sign_key=sign_key,
            cross_sig=self.identity.certify(
                national_id=self.national_id,
                device=self.device_id,
                kind=self.device_kind,
                sign_key=sign_key,
            ),
            identity_key=self.identity.public,
        )

    @property
    def device_kind(self) -> Any:
        return "device"

    def log_gossip(self) -> JsonObject | None:
        head = self.directory.log.gossip()
        return state.log_gossip(*head) if head is not None else None

    async def register_dev(
        self, national_id: str, *, device_name: str = "sdk"
    ) -> recovery.RecoveryCode | None:
        """Development login (DEBUG servers only), then ``register_with_token``."""
        login = await self.api.dev_login(national_id, device_name)
        return await self.register_with_token(
            token=login["token"], device=login["device"], national_id=national_id
        )

    async def register_with_token(
        self, *, token: str, device: int, national_id: str
    ) -> recovery.RecoveryCode | None:
        """Certify this device with a token from any login. On the practitioner's first
        device, make their identity: the recovery code to show once. With a store that
        already holds the identity (its device was revoked, its token expired), certify
        the new device number with it instead (None). IdentityExistsError when the
        practitioner uses Relais on another device: link this one, or recover."""
        if "account" in self.store.data:
            if self.store.data.get("national_id", national_id) != national_id:
                raise SecurityError(f"this key store belongs to {self.national_id}")
            await registration.continue_as_new_device(
                self, token=token, device=device, national_id=national_id, kind=self.device_kind
            )
            self.save()
            return None
        code = await registration.register_first_device(
            self, token=token, device=device, national_id=national_id, kind=self.device_kind
        )
        self.save()
        return code

    def save(self) -> None:
        self.store.data["rooms"] = {str(k): room.to_json() for k, room in self.rooms.items()}
        self.store.save()

    # Connection -------------------------------------------------------------------

    async def start_log(self) -> None:
        """Pin the log's keys and take its newest head. A head this device may not
        accept yet (not cosigned by the witnesses, too old) is an alert, not a failure:
        messaging goes on, and lookups wait for an acceptable head; a fork is a failure."""
        try:
            await self.directory.pin_log_key()
        except ForkDetectedError:
            raise
        except KeyTransparencyError as error:
            await self._alert("log_head_refused", None, f"the log's newest head: {error}")

    async def connect(self) -> None:
        """Open the WebSocket, then catch up: log, own devices, keys, room states and
        missed messages."""
        await self.start_log()
        await self.rotate_keys_if_due()
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
        await self.upload_backup()
        self.save()

    @property
    def connected(self) -> bool:
        return self._reader is not None and not self._reader.done()

    async def wait_disconnected(self) -> None:
        """Return when the connection to the server is lost (or at once if there is none)."""
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.shield(self._reader)

    async def close(self) -> None:
        await self.disconnect()
        await self.api.close()
        self.store.close()

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
        rooms = {str(i): room.last_seq for i, room in self.rooms.items() if not room.left}
        await self._ws.send(json.dumps({"type": "sync", "rooms": rooms}))
        await asyncio.wait_for(self._synced.wait(), timeout=30)

    async def upload_backup(self) -> int:
        """Back up, sealed to the recovery key, the history keys and the rooms' current
        profile keys not backed up yet (protocol §10.9); how many records were sent."""
        return await self.history.upload(
            self.api, self.account.recovery_key, self.held_profile_keys()
        )

    async def back_up_quietly(self) -> None:
        """``upload_backup`` as soon as a key comes (a share, history keys, a room's new
        profile), so that a device lost before its next connection leaves it in the
        backup; a failure is left for the next connection, which backs up again."""
        with contextlib.suppress(ApiError):
            await self.upload_backup()

    async def rotate_keys_if_due(self) -> bool:
        """Make and publish a new key-agreement key when the current one is old enough
        (``e2ee.kex.ROTATE_AFTER_MS``), and start new sender keys, so that a copy of this
        key store taken before opens nothing sent after. True if it rotated."""
        keys = self.device_keys
        now = self.now_ms()
        keys.forget_old(now)
        if not keys.due(now):
            self.save()
            return False
        keys.rotate(now)
        await publish_kex(self.api, keys, national_id=self.national_id, device=self.device_id)
        for room in self.rooms.values():
            room.outbound = None
        self.save()
        return True

    async def settle_devices(self) -> None:
        """After this store got a new device: join its practitioner's rooms, and remove
        from them the device it replaces (and any device of ours revoked in the log)."""
        await self.join_my_rooms()
        replaced = set(self.store.data.get("replaced_devices", []))
        for room_id, room in sorted(self.rooms.items()):
            member = room.state.members.get(self.national_id)
            if room.left or member is None or self.device_id not in member.devices:
                continue
            for number in sorted(replaced & set(member.devices)):
                await self.remove_device(room_id, self.national_id, number)
        self.store.data["replaced_devices"] = []
        await self.upload_backup()
        self.save()

    # Rooms ------------------------------------------------------------------------

    async def refresh_rooms(self) -> None:
        """Learn rooms the server says we are in, verifying each chain from creation."""
        listing = await self.api.call("GET", "rooms")
        for item in listing["rooms"]:
            if item["id"] in self.rooms:
                await self.refresh_state(item["id"])
            else:
                await self._load_room(item["id"])

    async def _load_room(self, room_id: int) -> LocalRoom | None:
        answer = await self.api.call("GET", f"rooms/{room_id}/state")
        events = [e["event"].encode("utf-8") for e in answer["events"]]
        try:
            verified = state.replay_chain(events)
        except CryptoError as error:
            await self._alert(error.code.value, room_id, f"room chain refused: {error}")
            return None
        if room_id in self.rooms:
            # Learnt meanwhile (this device created it while the server's frame about it
            # was on its way): never replace a room and the keys it already holds.
            return self.rooms[room_id]
        room = LocalRoom(room_id=room_id, events=events, state=verified)
        if self.national_id not in verified.members and not self._is_archiver_of(verified):
            room.left = True
        self.rooms[room_id] = room
        for raw in events:
            await self._observe_event_gossip(raw)
        async with self._room_events:
            self._room_events.notify_all()
        return room

    def _is_archiver_of(self, verified: state.RoomState) -> bool:
        return verified.archiver is not None and verified.archiver.ref == self.me

    async def wait_for_room(self, predicate: Any) -> int:
        """Wait until a room satisfying ``predicate(LocalRoom)`` is known; its id. Wrap
        in ``asyncio.timeout`` to bound the wait."""
        async with self._room_events:
            await self._room_events.wait_for(lambda: any(predicate(r) for r in self.rooms.values()))
        return next(r.room_id for r in self.rooms.values() if predicate(r))

    async def refresh_state(self, room_id: int) -> LocalRoom:
        """Fetch and verify the room's new state events.

        The chain held is never given up: a forged or broken event, a different event
        for an epoch already verified (a fork), or a server that shows fewer events than
        another member proved exist (a withheld event) marks the room and raises an
        alert. A verified removal of this practitioner makes the room a tombstone (keys
        dropped, chain kept)."""
        async with self._state_lock:
            room = self.rooms.get(room_id) or await self._load_room(room_id)
            if room is None:
                raise SecurityError(f"room {room_id} has no valid chain")
            profile_before = room.profile_key()
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
                await self._on_state_event(room, event)
            if 0 <= room.behind <= room.state.epoch:
                room.behind = -1
            self.save()
        if room.profile_key() not in (None, profile_before):
            await self.back_up_quietly()  # the key came with a share before its profile
        return room

    async def _on_state_event(self, room: LocalRoom, event: state.StateEvent) -> None:
        if event.action in ("remove_member", "remove_device", "set_archiver", "set_identity"):
            room.outbound = None  # rotate: a new sender key for the remaining devices
        if event.action == "remove_member" and event.content.get("national_id") == self.national_id:
            room.left = True
            room.forget_keys()
            await self._alert("removed", room.room_id, "you were removed from this room")
        archiver = self.device_kind == "archiver"
        if event.action == "set_archiver" and archiver and not self._is_archiver_of(room.state):
            room.left = True
            room.forget_keys()
        if event.log is not None:
            await self._observe_gossip(event.log, room.room_id)

    async def _observe_event_gossip(self, raw: bytes) -> None:
        body, _ = state.parse_event(raw)
        if body["log"] is not None:
            await self._observe_gossip(body["log"], None)

    async def _observe_gossip(self, log: JsonObject, room_id: int | None) -> None:
        """Compare a log head another member or device saw with ours (a fork alerts)."""
        try:
            await self.directory.observe_gossip(int(log["size"]), unb64u(log["root"]))
        except KeyTransparencyError as error:
            await self._alert("log_fork", room_id, f"the key-transparency log forked: {error}")

    def room_profile(self, room_id: int) -> RoomProfile | None:
        """The room's decrypted profile (title, patient, notes) with its version, or None
        when it has none or this device has not received its key (yet)."""
        room = self.rooms.get(room_id)
        if room is None or room.state.profile is None:
            return None
        key = room.profile_key()
        if key is None:
            return None
        profile = room.state.profile
        try:
            content = decrypt_profile(
                room=room.state.room,
                version=profile.version,
                key=key,
                ciphertext=profile.ciphertext,
            )
        except CryptoError:
            return None
        return RoomProfile(version=profile.version, content=content)

    async def archiver_device(self, organisation: str) -> state.RoomDevice:
        return await self.directory.archiver_device(organisation)

    async def archiver_of(self, room_id: int) -> RoomArchiver | None:
        archiver = self.rooms[room_id].archiver
        return await self.directory.archiver_of(archiver) if archiver else None

    # Sending ----------------------------------------------------------------------

    async def send_text(self, room_id: int, text: str) -> int:
        return await self.send(room_id, {"type": "text", "text": text})

    async def room_for_sending(self, room_id: int) -> LocalRoom:
        """The room's freshly verified state; SecurityError if this device may not send
        to it (a refused chain, removed, a state withheld from us, or this device is
        not in the verified state)."""
        room = await self.refresh_state(room_id)
        if room.compromised:
            raise SecurityError(f"room {room_id} refused: {room.compromised}")
        if room.left:
            raise SecurityError(f"you are no longer a member of room {room_id}")
        if room.behind > room.state.epoch:
            raise SecurityError(
                f"room {room_id}: the server withholds a change of the room that other "
                "members made; nothing is sent until it shows it"
            )
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
        if self._ws is None:
            raise ConnectionError(LOST)
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

    async def share_now(self, room_id: int) -> None:
        """Make sure this device's sender key (and the room's profile key) reached every
        device of the room — e.g. right after adding someone, so they can read the
        profile before anyone writes."""
        room = await self.room_for_sending(room_id)
        await self._ensure_sender_key(room)
        self.save()

    async def _ensure_sender_key(self, room: LocalRoom) -> None:
        now_ms = self.now_ms()
        if room.outbound is None or room.outbound.needs_rotation(state=room.state, now_ms=now_ms):
            room.outbound = OutboundSession.create(
                room=room.state.room, sender=self.me, epoch=room.state.epoch, now_ms=now_ms
            )
            self.history.record(
                HistoryKey(
                    room=room.state.room,
                    sender=self.me,
                    key_id=room.outbound.key_id,
                    index=0,
                    chain_key=room.outbound.chain_key,
                    epoch=room.outbound.epoch,
                )
            )
        result = await share_sender_key(
            room=room,
            me=self.me,
            key_pair=self.key_pair,
            api=self.api,
            directory=self.directory,
            alert=self._alert,
            kex_seen=self.store.data.setdefault("kex_seen", {}),
            now_ms=now_ms,
        )
        for device in result.revoked:
            await self._remove_revoked(room, device.national_id, device.device)

    async def _encrypt(self, room: LocalRoom, content: JsonObject) -> bytes:
        await self._ensure_sender_key(room)
        assert room.outbound is not None
        room.sent_seq += 1
        envelope = room.outbound.encrypt(
            state=room.state,
            key_pair=self.key_pair,
            content=content,
            seq=room.sent_seq,
            ts=self.now_ms(),
            log=self.log_gossip(),
        )
        self.save()  # the ratchet moved: never reuse a message key, even after a crash
        return envelope

    async def _remove_revoked(self, room: LocalRoom, national_id: str, device: int) -> None:
        """A device revoked in the log counts as removed: this device signs it out of the
        room if it may (a device of the same practitioner, or an admin)."""
        if room.left or room.state.current_device(national_id, device) is None:
            return
        allowed = national_id == self.national_id or room.state.is_admin_device(*self.me)
        if not allowed:
            return
        with contextlib.suppress(ApiError, SecurityError):
            await self.remove_device(room.room_id, national_id, device)

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
        """A hint that a room changed: fetch and verify; never believe the frame."""
        room_id = frame["room"]
        if room_id in self.rooms:
            await self.refresh_state(room_id)
        else:
            await self._load_room(room_id)
        await self._retry_pending(room_id)

    # Verification -----------------------------------------------------------------

    async def check_my_devices(self) -> list[int]:
        """Audit the log; devices certified for my national id that I do not know. A log
        head this device cannot accept yet makes it an alert (``log_head_refused``)."""
        try:
            _, unknown = await self.trust.check_my_devices(
                national_id=self.national_id, identity_key=self.identity.public
            )
        except ForkDetectedError:
            raise
        except KeyTransparencyError as error:
            await self._alert("log_head_refused", None, f"the log could not be audited: {error}")
            return []
        self.save()
        return unknown

    def approve_device(self, device: int, sign_key: bytes) -> None:
        """The user confirmed a new device of theirs."""
        self.trust.know_device(device, sign_key)
        self.save()

    async def safety_number(self, national_id: str) -> safety.SafetyNumber:
        return await self.trust.safety_number(
            me=self.national_id, my_identity_key=self.identity.public, peer=national_id
        )

    async def mark_verified(self, national_id: str) -> None:
        """Remember the contact's identity key as checked in person (safety number)."""
        await self.trust.mark_verified(national_id)
        self.save()

    async def check_verified_contact(self, national_id: str) -> bool:
        """True if a verified contact still has the identity key checked; an alert if not."""
        return await self.trust.check_verified_contact(national_id)

    async def _alert(self, kind: str, room: int | None, detail: str) -> None:
        await self.alerts.put(SecurityAlert(kind=kind, room=room, detail=detail))
