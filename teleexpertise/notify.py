"""Telling devices that a téléexpertise moved: a live frame to the room and, for the
clock's reminders and expiries, a content-free Web Push.

The frame (docs/protocol.md §12.4) says what the server already knows and nothing more:
the room, the step, the new state, the deadline, the sequence number of the envelope
that carries the step. The push is the ordinary ``{"room", "seq"}`` wake-up
(docs/push.md); the device that wakes reads the state itself.

Everything here happens after the database transaction commits.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction

from chat.conf import relais_settings
from chat.fanout import HubEvent, publish_on_commit, room_topic
from chat.frames import encode
from push.conf import push_settings
from push.jobs import PushJob, stream_key
from teleexpertise.models import Teleexpertise, Transition

logger = logging.getLogger(__name__)

FRAME_TYPE = "teleexpertise"


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def state_frame(teleexpertise: Teleexpertise, transition: Transition | None) -> dict[str, object]:
    """The ``teleexpertise`` frame of a step (``transition`` None: a reminder)."""
    return {
        "type": FRAME_TYPE,
        "room": teleexpertise.room_id,
        "action": transition.action if transition is not None else "remind",
        "state": teleexpertise.state,
        "deadline": _ms(teleexpertise.deadline),
        "seq": transition.seq if transition is not None else None,
        "at": _ms(transition.at if transition is not None else teleexpertise.state_changed_at),
    }


def announce_on_commit(
    teleexpertise: Teleexpertise, transition: Transition | None, *, except_device: int = 0
) -> None:
    """Send the step's frame to every connected device of the room's members, except
    the device that took it (it has the REST answer). Caller is in a transaction."""
    text = encode(state_frame(teleexpertise, transition))
    publish_on_commit(
        room_topic(teleexpertise.room_id),
        HubEvent(kind="frame", room=teleexpertise.room_id, text=text, device=except_device),
    )


def push_on_commit(*, room_id: int, seq: int, sender_device_id: int) -> None:
    """Queue a Web Push job for the room's members who are not the sender's
    practitioner (``sender_device_id`` 0: every member), once the transaction commits.

    Jobs go to the Redis stream the push workers read (docs/push.md). Without Redis
    (the embedded default) the push worker lives inside the server process and this
    process cannot reach it: the live frame is all there is.
    """
    job = PushJob(room_id=room_id, seq=seq, sender_device_id=sender_device_id)
    transaction.on_commit(lambda: _queue_push(job))


def _queue_push(job: PushJob) -> None:
    settings = relais_settings()
    if not push_settings().enabled or not settings.redis_url:
        return
    import redis

    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5)
    try:
        client.xadd(
            stream_key(settings.redis_prefix),
            job.to_fields(),  # type: ignore[arg-type]
            maxlen=push_settings().stream_maxlen,
            approximate=True,
        )
    except Exception:
        logger.exception("queuing a push for room %s failed", job.room_id)
    finally:
        client.close()
