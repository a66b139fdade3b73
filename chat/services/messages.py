"""Posting an envelope: validate, store durably, then fan out."""

from __future__ import annotations

from chat.conf import relais_settings
from chat.errors import ErrorCode, RelaisError
from chat.fanout import FanoutHub, HubEvent, room_topic
from chat.frames import LiveMessageFrame, MessageOut, Sender, decode_body, encode, encode_body
from chat.services.devices import DeviceIdentity
from chat.storage.base import AppendRequest, MessageStore, StoredEnvelope


def check_body(*, body_text: str) -> bytes:
    """Decode a base64url body and enforce the size limit."""
    body = decode_body(body_text)
    if len(body) > relais_settings().max_body_bytes:
        raise RelaisError(ErrorCode.BODY_TOO_LARGE)
    return body


async def do_send(
    *,
    store: MessageStore,
    hub: FanoutHub,
    identity: DeviceIdentity,
    room_id: int,
    client_id: str,
    body_text: str,
    deadline: float | None = None,
) -> StoredEnvelope:
    """Store the envelope (idempotently) and, once committed, publish it to the room.

    ``deadline`` (the store's monotonic clock) is when the sender must have its answer.
    Raises RelaisError: BAD_FRAME, BODY_TOO_LARGE, NOT_MEMBER, SERVER_BUSY, INTERNAL.
    """
    body = check_body(body_text=body_text)
    request = AppendRequest(
        room_id=room_id,
        device_id=identity.device_id,
        practitioner_id=identity.practitioner_id,
        client_id=client_id,
        body=body,
    )
    # Bounded by RELAIS_STORE_TIMEOUT and ``deadline`` (SERVER_BUSY).
    stored = await store.append(request, deadline=deadline)
    if not stored.duplicate:
        publish_envelope(hub=hub, envelope=stored, body_text=body_text.rstrip("="))
    return stored


def message_out(envelope: StoredEnvelope, *, body_text: str | None = None) -> MessageOut:
    return MessageOut(
        room=envelope.room_id,
        seq=envelope.seq,
        id=envelope.client_id,
        sender=Sender(device=envelope.device_id, practitioner=envelope.practitioner_id),
        body=body_text if body_text is not None else encode_body(envelope.body),
        ts=envelope.created_at_ms,
    )


def live_message_text(envelope: StoredEnvelope, *, body_text: str | None = None) -> str:
    out = message_out(envelope, body_text=body_text)
    return encode(
        LiveMessageFrame(
            room=out.room, seq=out.seq, id=out.id, sender=out.sender, body=out.body, ts=out.ts
        )
    )


def publish_envelope(
    *, hub: FanoutHub, envelope: StoredEnvelope, body_text: str | None = None
) -> None:
    """Publish a committed envelope to its room (serialised once for every recipient).
    ``body_text``: the body as received, when it is at hand (canonical, unpadded)."""
    hub.publish(
        room_topic(envelope.room_id),
        HubEvent(
            kind="message",
            room=envelope.room_id,
            seq=envelope.seq,
            text=live_message_text(envelope, body_text=body_text),
            device=envelope.device_id,
        ),
    )
