"""What docs/protocol.md says the server answers to a frame, written from the document
alone (not from ``chat/frames.py``), for the fuzz test (``test_fuzz.py``).

``Oracle.expect(text)`` returns the answer an authenticated connection must get: the
error codes (with their ``ref``), or the ack, the pong, the end of a sync; and it keeps
the state the answers depend on (each room's last sequence number, the ids stored).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any

MAX_FRAME_BYTES = 80 * 1024
MAX_BODY_BYTES = 48 * 1024
MAX_DEPTH = 8
I64 = 2**63
TYPES = {"auth", "send", "sync", "receipt", "typing", "ping"}
FIELDS = {
    "auth": ({"token"}, set()),
    "send": ({"room", "id", "body"}, set()),
    "sync": (set(), {"rooms"}),
    "receipt": ({"room", "seq", "kind"}, set()),
    "typing": ({"room", "active"}, set()),
    "ping": (set(), {"nonce"}),
}
CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
ALPHABET = re.compile(r"[A-Za-z0-9_-]*")


@dataclass
class Expected:
    errors: list[tuple[str, str | None]] = field(default_factory=list)
    ack: dict[str, Any] | None = None
    pong: str | bool | None = False  # False: no pong; otherwise the nonce echoed
    synced: dict[str, int] | None = None


class RefusedError(Exception):
    def __init__(self, code: str, ref: str | None = None) -> None:
        self.code = code
        self.ref = ref


def depth_exceeds(text: str, limit: int) -> bool:
    """Brackets outside strings, deeper than ``limit`` (the text need not be JSON); a
    string runs to the next unescaped quote, or, unterminated, to the end of the text."""
    depth = 0
    index = 0
    while index < len(text):
        char = text[index]
        if char == '"':
            index = _string_end(text, index) + 1
            continue
        if char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
        index += 1
    return False


def _string_end(text: str, start: int) -> int:
    index = start + 1
    while index < len(text):
        if text[index] == "\\":
            index += 2
            continue
        if text[index] == '"':
            return index
        index += 1
    return len(text)  # unterminated: the string runs to the end


class _OverflowError(Exception):
    pass


def _float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _OverflowError
    return value


def _no_lone_surrogates(value: Any) -> bool:
    if isinstance(value, str):
        return not any(0xD800 <= ord(char) <= 0xDFFF for char in value)
    if isinstance(value, list):
        return all(_no_lone_surrogates(item) for item in value)
    if isinstance(value, dict):
        return all(_no_lone_surrogates(k) and _no_lone_surrogates(v) for k, v in value.items())
    return True


def _is_int(value: Any) -> bool:
    return type(value) is int


def canonical_base64url(body: str) -> bool:
    """RFC 4648 §5, padding optional but exact, trailing bits zero (§2)."""
    unpadded = body[: len(body) - 2] if body.endswith("==") else body.rstrip("=")
    padding = len(body) - len(unpadded)
    if not ALPHABET.fullmatch(unpadded) or "=" in unpadded:
        return False
    remainder = len(unpadded) % 4
    if remainder == 1 or (padding and remainder + padding != 4):
        return False
    if padding and remainder == 0:
        return False
    decoded = base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    return base64.urlsafe_b64encode(decoded).decode().rstrip("=") == unpadded


def _room_ok(value: Any) -> bool:
    return _is_int(value) and 1 <= value < I64


class Oracle:
    def __init__(self, *, rooms: dict[int, int]) -> None:
        self.last_seq = dict(rooms)  # the member rooms and their last seq
        self.stored: dict[str, tuple[int, int]] = {}  # client id → (room, seq)

    def expect(self, text: str) -> Expected:
        try:
            frame = self._frame(text)
        except RefusedError as refused:
            return Expected(errors=[(refused.code, refused.ref)])
        return self._answer(frame)

    # §6: the order in which a refused frame is classified.
    def _frame(self, text: str) -> dict[str, Any]:
        if not text.lstrip(" \t\r\n").startswith("{"):
            raise RefusedError("bad_json")
        if depth_exceeds(text, MAX_DEPTH):
            raise RefusedError("bad_frame")
        try:
            frame = json.loads(text, parse_float=_float, parse_constant=_constant)
        except (_OverflowError, ValueError):  # not JSON, or a number beyond a float
            raise RefusedError("bad_json") from None
        if not isinstance(frame, dict) or not _no_lone_surrogates(frame):
            raise RefusedError("bad_json")
        kind = frame.get("type")
        if isinstance(kind, str) and kind not in TYPES:
            raise RefusedError("unknown_type")
        ref = None
        if kind == "send" and isinstance(frame.get("id"), str) and CLIENT_ID.fullmatch(frame["id"]):
            ref = frame["id"]
        if not isinstance(kind, str):
            raise RefusedError("bad_frame")
        required, optional = FIELDS[kind]
        keys = set(frame) - {"type"}
        if not required <= keys or keys - required - optional:
            raise RefusedError("bad_frame", ref)
        if not _fields_ok(kind, frame):
            raise RefusedError("bad_frame", ref)
        return frame

    def _answer(self, frame: dict[str, Any]) -> Expected:
        kind = frame["type"]
        if kind == "auth":
            return Expected(errors=[("already_authenticated", None)])
        if kind == "ping":
            return Expected(pong=frame.get("nonce"))
        if kind == "typing":
            return Expected() if frame["room"] in self.last_seq else _error("not_member")
        if kind == "receipt":
            room, seq = frame["room"], frame["seq"]
            if room not in self.last_seq:
                return _error("not_member")
            return Expected() if seq <= self.last_seq[room] else _error("bad_sequence")
        if kind == "send":
            return self._send(frame)
        return self._sync(frame.get("rooms", {}))

    def _send(self, frame: dict[str, Any]) -> Expected:
        client_id, room = frame["id"], frame["room"]
        body = frame["body"].rstrip("=")
        if len(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))) > MAX_BODY_BYTES:
            return _error("body_too_large", client_id)
        if client_id in self.stored:  # §4: the same id gets the original ack
            stored_room, seq = self.stored[client_id]
            return Expected(
                ack={"id": client_id, "room": stored_room, "seq": seq, "duplicate": True}
            )
        if room not in self.last_seq:
            return _error("not_member", client_id)
        self.last_seq[room] += 1
        self.stored[client_id] = (room, self.last_seq[room])
        return Expected(
            ack={"id": client_id, "room": room, "seq": self.last_seq[room], "duplicate": False}
        )

    def _sync(self, rooms: dict[str, int]) -> Expected:
        requested: dict[int, int] = {}
        for key, seq in rooms.items():
            if not re.fullmatch(r"[0-9]{1,19}", key):
                return _error("bad_frame")
            requested[int(key)] = seq
        errors: list[tuple[str, str | None]] = []
        for room, seq in requested.items():
            if room not in self.last_seq:
                errors.append(("not_member", str(room)))
            elif seq < 0 or seq > self.last_seq[room]:
                errors.append(("bad_sequence", str(room)))
        refused = {int(ref) for _code, ref in errors if ref is not None}
        synced = {str(room): last for room, last in self.last_seq.items() if room not in refused}
        return Expected(errors=errors, synced=synced)


def _constant(name: str) -> Any:
    raise ValueError(name)  # NaN, Infinity: not JSON


def _error(code: str, ref: str | None = None) -> Expected:
    return Expected(errors=[(code, ref)])


def _fields_ok(kind: str, frame: dict[str, Any]) -> bool:
    if kind == "auth":
        token = frame["token"]
        return isinstance(token, str) and 1 <= len(token) <= 128
    if kind == "send":
        return (
            _room_ok(frame["room"])
            and isinstance(frame["id"], str)
            and CLIENT_ID.fullmatch(frame["id"]) is not None
            and isinstance(frame["body"], str)
            and canonical_base64url(frame["body"])
        )
    if kind == "sync":
        rooms = frame.get("rooms", {})
        return isinstance(rooms, dict) and all(
            _is_int(seq) and -I64 <= seq < I64 for seq in rooms.values()
        )
    if kind == "receipt":
        return (
            _room_ok(frame["room"])
            and _is_int(frame["seq"])
            and 1 <= frame["seq"] < I64
            and frame["kind"] in ("delivered", "read")
        )
    if kind == "typing":
        return _room_ok(frame["room"]) and isinstance(frame["active"], bool)
    nonce = frame.get("nonce")
    return nonce is None or (isinstance(nonce, str) and len(nonce) <= 64)
