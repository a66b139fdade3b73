"""How a REST send reaches the message store and the fan-out.

A REST send must be a WebSocket send without the socket: the same idempotency on
(device, client id), the same membership check in the storing transaction, the same
durability (answered after commit) and the same fan-out to the room (and Web Push).

DRF views are synchronous. Under the ASGI server (uvicorn or Daphne: production,
``make run``, the end-to-end tests), Django runs them in a worker thread on behalf of
the server's event loop, and ``async_to_sync`` from that thread runs a coroutine back
in that loop. So the view hands ``chat.services.messages.do_send`` to the loop, with
the loop's own runtime: the group-commit store (a REST send joins the same batches as
the WebSocket sends) and the process's hub (local connections, Redis, the push feed).

Without a server loop (Django's synchronous test client, a WSGI server) there is no
runtime to join: the envelope is stored by a store opened for this one send (the same
store class, hence the same statement and guarantees) and published after its commit
with ``chat.fanout.publish_from_sync``, which reaches this process's hub if it has one,
and the other processes through Redis.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest

from chat.clock import SYSTEM_CLOCK
from chat.fanout import HubEvent, publish_from_sync, room_topic
from chat.runtime import build_store, get_runtime
from chat.services.devices import DeviceIdentity
from chat.services.messages import check_body, do_send, live_message_text
from chat.storage.base import AppendRequest, StoredEnvelope


def send_envelope(
    *,
    request: HttpRequest,
    identity: DeviceIdentity,
    room_id: int,
    client_id: str,
    body_text: str,
) -> StoredEnvelope:
    """Store an envelope and publish it to the room, as a WebSocket ``send`` does.

    Raises RelaisError: BAD_FRAME, BODY_TOO_LARGE, NOT_MEMBER, SERVER_BUSY, INTERNAL.
    Must be called from a synchronous view (never from the event loop itself).
    """
    if isinstance(request, ASGIRequest):
        stored: StoredEnvelope = async_to_sync(_send_in_server_loop)(
            identity=identity, room_id=room_id, client_id=client_id, body_text=body_text
        )
        return stored
    return _send_without_server_loop(
        identity=identity, room_id=room_id, client_id=client_id, body_text=body_text
    )


async def _send_in_server_loop(
    *, identity: DeviceIdentity, room_id: int, client_id: str, body_text: str
) -> StoredEnvelope:
    runtime = await get_runtime()
    return await do_send(
        store=runtime.store,
        hub=runtime.hub,
        identity=identity,
        room_id=room_id,
        client_id=client_id,
        body_text=body_text,
    )


def _send_without_server_loop(
    *, identity: DeviceIdentity, room_id: int, client_id: str, body_text: str
) -> StoredEnvelope:
    request = AppendRequest(
        room_id=room_id,
        device_id=identity.device_id,
        practitioner_id=identity.practitioner_id,
        client_id=client_id,
        body=check_body(body_text=body_text),
    )
    stored: StoredEnvelope = async_to_sync(_append_once)(request)
    if not stored.duplicate:
        publish_from_sync(
            room_topic(stored.room_id),
            HubEvent(
                kind="message",
                room=stored.room_id,
                seq=stored.seq,
                text=live_message_text(stored, body_text=body_text.rstrip("=")),
                device=stored.device_id,
            ),
        )
    return stored


async def _append_once(request: AppendRequest) -> StoredEnvelope:
    store = build_store(SYSTEM_CLOCK)
    try:
        return await store.append(request)
    finally:
        await store.close()
