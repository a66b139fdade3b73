"""Typed WebSocket frames (docs/protocol.md §2 and §3) and their JSON encoding.

Inbound frames are msgspec structs decoded straight from the frame text: types, ranges
and unknown fields are checked by the decoder in one pass, without a dict in between.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

import msgspec

from chat.errors import MESSAGES, ErrorCode, RelaisError
from observability.metrics import count_error

RoomId = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
Sequence = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
ClientMessageId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
]
Base64Url = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]*={0,2}$")]


class _Inbound(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, frozen=True):
    pass


class AuthFrame(_Inbound, tag="auth", frozen=True):
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class SendFrame(_Inbound, tag="send", frozen=True):
    room: RoomId
    id: ClientMessageId
    body: Base64Url


class SyncFrame(_Inbound, tag="sync", frozen=True):
    rooms: dict[str, Sequence] = {}


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


def parse_frame(text: str) -> InboundFrame:
    """Decode one client frame; raise RelaisError with the protocol's error code."""
    try:
        frame: InboundFrame = _decoder.decode(text)
    except msgspec.ValidationError as error:
        raise RelaisError(_classify(text), str(error)) from None
    except msgspec.DecodeError:
        raise RelaisError(ErrorCode.BAD_JSON) from None
    return frame


def _classify(text: str) -> ErrorCode:
    """Tell an unknown ``type`` from a malformed frame (only on the error path)."""
    try:
        raw = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return ErrorCode.BAD_JSON
    if not isinstance(raw, dict):
        return ErrorCode.BAD_JSON
    frame_type = raw.get("type")
    if isinstance(frame_type, str) and frame_type not in INBOUND_TYPES:
        return ErrorCode.UNKNOWN_TYPE
    return ErrorCode.BAD_FRAME


def decode_body(body: str) -> bytes:
    """Decode a base64url envelope body (padding optional), refusing non-canonical text."""
    unpadded = body.rstrip("=")
    if len(unpadded) % 4 == 1:
        raise RelaisError(ErrorCode.BAD_FRAME, "body is not valid base64url")
    padded = unpadded + "=" * (-len(unpadded) % 4)
    try:
        return base64.urlsafe_b64decode(padded)
    except binascii.Error:
        raise RelaisError(ErrorCode.BAD_FRAME, "body is not valid base64url") from None


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
