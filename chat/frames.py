"""Typed WebSocket frames (docs/protocol.md §2 and §3) and their JSON encoding.

Inbound frames are msgspec structs decoded straight from the frame text: types, ranges
and unknown fields are checked by the decoder in one pass, without a dict in between.

Envelope bodies follow one base64url rule, wherever they enter (WebSocket or REST):
the RFC 4648 §5 alphabet, padding optional but exact when present, and canonical
trailing bits, so that a body has one spelling and is relayed live exactly as a later
catch-up re-encodes it (docs/protocol.md §2).
"""

from __future__ import annotations

import base64
import re
from typing import Annotated, Any, Literal

import msgspec

from chat.errors import MESSAGES, ErrorCode, RelaisError
from observability.metrics import count_error

RoomId = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
# Patterns are searched with Python's re, where "$" also matches before a final newline:
# the frames anchor with \A and \Z instead.
ClientMessageId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"\A[A-Za-z0-9._:-]+\Z")
]
# Canonical base64url: whole quanta, then an optional tail of 2 characters (the second
# one carrying 4 zero bits: A, Q, g or w) or 3 characters (the third carrying 2 zero
# bits), with its exact padding or none. The REST API's schema uses the same pattern.
_BASE64URL = (
    r"(?:[A-Za-z0-9_-]{4})*"
    r"(?:[A-Za-z0-9_-][AQgw](?:==)?|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048]=?)?"
)
BASE64URL_PATTERN = f"^{_BASE64URL}$"
Base64Url = Annotated[str, msgspec.Meta(pattern=rf"\A{_BASE64URL}\Z")]


class _Inbound(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, frozen=True):
    pass


class AuthFrame(_Inbound, tag="auth", frozen=True):
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class SendFrame(_Inbound, tag="send", frozen=True):
    room: RoomId
    id: ClientMessageId
    body: Base64Url


class SyncFrame(_Inbound, tag="sync", frozen=True):
    # Positions are range-checked room by room (a negative one refuses that room with
    # bad_sequence, docs/protocol.md §5), keys by the connection (ASCII digits).
    rooms: dict[str, Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]] = {}


class ReceiptFrame(_Inbound, tag="receipt", frozen=True):
    room: RoomId
    seq: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
    kind: Literal["delivered", "read"]


class TypingFrame(_Inbound, tag="typing", frozen=True):
    room: RoomId
    active: bool


class PingFrame(_Inbound, tag="ping", frozen=True):
    nonce: Annotated[str, msgspec.Meta(max_length=64)] | None = None


InboundFrame = AuthFrame | SendFrame | SyncFrame | ReceiptFrame | TypingFrame | PingFrame
INBOUND_TYPES = frozenset({"auth", "send", "sync", "receipt", "typing", "ping"})

_decoder = msgspec.json.Decoder(InboundFrame)
_encoder = msgspec.json.Encoder()


_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")  # used with fullmatch
_TOO_DEEP = "The frame is nested too deeply."


class FrameError(RelaisError):
    """A refused frame; ``ref`` is the ``id`` of a ``send`` when the frame had a valid one."""

    def __init__(self, code: ErrorCode, detail: str | None = None, *, ref: str | None) -> None:
        super().__init__(code, detail)
        self.ref = ref


def parse_frame(text: str) -> InboundFrame:
    """Decode one client frame; raise FrameError with the protocol's error code.

    A refused frame is classified in the order docs/protocol.md §6 gives: not an object
    (``bad_json``); nested more than ``MAX_FRAME_DEPTH`` levels (``bad_frame``, checked
    before anything walks it: valid JSON or not, it is not read further); not valid JSON,
    or holding a number beyond a 64-bit float (``bad_json``); an unknown ``type``
    (``unknown_type``); anything else wrong with the fields (``bad_frame``).
    """
    try:
        frame: InboundFrame = _decoder.decode(text)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as error:
        code, ref = _classify(text)
        detail = _TOO_DEEP if code is ErrorCode.BAD_FRAME and ref is None else None
        if isinstance(error, msgspec.ValidationError) and code is not ErrorCode.BAD_JSON:
            detail = str(error)[:200]
        raise FrameError(code, detail, ref=ref) from None
    return frame


def _classify(text: str) -> tuple[ErrorCode, str | None]:
    """The error code of a refused frame and the ``id`` of a refused ``send`` (only on
    the error path)."""
    if not text.lstrip(" \t\r\n").startswith("{"):
        return ErrorCode.BAD_JSON, None
    if json_depth_exceeds(text, MAX_FRAME_DEPTH):
        return ErrorCode.BAD_FRAME, None
    try:
        raw = msgspec.json.decode(text)
    except (msgspec.DecodeError, msgspec.ValidationError):
        # Not JSON, or a number no 64-bit float holds (1e400): either way, unreadable.
        return ErrorCode.BAD_JSON, None
    if not isinstance(raw, dict):
        return ErrorCode.BAD_JSON, None
    frame_type = raw.get("type")
    if isinstance(frame_type, str) and frame_type not in INBOUND_TYPES:
        return ErrorCode.UNKNOWN_TYPE, None
    client_id = raw.get("id")
    ref = (
        client_id
        if frame_type == "send" and isinstance(client_id, str) and _CLIENT_ID.fullmatch(client_id)
        else None
    )
    return ErrorCode.BAD_FRAME, ref


MAX_FRAME_DEPTH = 8
"""Nesting a client frame may have before it is refused unread (the protocol uses 3)."""

# A string runs from a quote to the next unescaped quote, or to the end of the text (the
# possessive loop never backtracks, so any text is scanned in linear time), else a
# bracket.
_NESTING = re.compile(r'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)|[\[\]{}]', re.DOTALL)


def json_depth_exceeds(text: str, limit: int) -> bool:
    """Whether the JSON ``text`` nests arrays and objects deeper than ``limit``, found
    without decoding it: brackets outside strings, where a string runs to the next
    unescaped quote or, unterminated, to the end of the text. Malformed text is measured
    this way too (the decoder refuses it afterwards anyway)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for match in _NESTING.finditer(text):
        found = match.group()
        if found in ("[", "{"):
            depth += 1
            if depth > limit:
                return True
        elif found in ("]", "}"):
            depth -= 1
    return False


_BODY = re.compile(_BASE64URL)


def decode_body(body: str) -> bytes:
    """Decode a base64url envelope body: canonical, padding optional (the one rule)."""
    if not _BODY.fullmatch(body):
        raise RelaisError(ErrorCode.BAD_FRAME, "body is not canonical base64url")
    unpadded = body.rstrip("=")
    return base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))


def encode_body(body: bytes) -> str:
    """Encode bytes as unpadded base64url, the form the server always sends."""
    return base64.urlsafe_b64encode(body).rstrip(b"=").decode("ascii")


# Outbound frames -----------------------------------------------------------------


class Sender(msgspec.Struct, frozen=True):
    device: int
    practitioner: str


class MessageOut(msgspec.Struct, frozen=True):
    """One envelope as delivered; ``type`` is added for live frames, not in backlogs."""

    room: int
    seq: int
    id: str
    sender: Sender
    body: str
    ts: int


class LiveMessageFrame(MessageOut, tag="message", tag_field="type", frozen=True):
    pass


class BacklogFrame(msgspec.Struct, tag="backlog", tag_field="type"):
    room: int
    messages: list[MessageOut]
    more: bool


class AckFrame(msgspec.Struct, tag="ack", tag_field="type"):
    id: str
    room: int
    seq: int
    ts: int
    duplicate: bool


def encode(frame: Any) -> str:
    """Encode an outbound frame (a struct or a dict) as JSON text."""
    return _encoder.encode(frame).decode("utf-8")


def error_frame(error: RelaisError, *, ref: str | None = None) -> str:
    count_error("ws", error.code.value)
    return encode(
        {
            "type": "error",
            "code": error.code.value,
            "message": error.message,
            "message_fr": error.message_fr,
            "ref": ref,
        }
    )


def simple_error_frame(code: ErrorCode, *, ref: str | None = None) -> str:
    english, french = MESSAGES[code]
    count_error("ws", code.value)
    return encode(
        {"type": "error", "code": code.value, "message": english, "message_fr": french, "ref": ref}
    )
