"""The clock: reminders to the requis before the deadline, ``expired`` after it, each
announced live to the members' connected devices and pushed (a job on the push stream)
to the others; a second clock at the same time does nothing twice."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
import redis
from channels.db import database_sync_to_async as sync_to_async
from django.utils import timezone

from chat.services.devices import do_issue_device_token
from push.jobs import stream_key
from teleexpertise.models import Teleexpertise, Transition
from teleexpertise.services.clock import reminders_due, run_clock
from tests.push.conftest import push_on, vapid_key  # noqa: F401 - fixtures
from tests.teleexpertise.conftest import request_body, step
from tests.wsclient import Client

pytestmark = pytest.mark.django_db(transaction=True)


def test_reminder_times():
    now = timezone.now()
    offsets = (86400, 3600)
    assert reminders_due(deadline=now + timedelta(hours=30), now=now, offsets=offsets) == 0
    assert reminders_due(deadline=now + timedelta(hours=20), now=now, offsets=offsets) == 1
    assert reminders_due(deadline=now + timedelta(minutes=30), now=now, offsets=offsets) == 2


def push_jobs() -> list[dict]:
    store = redis.Redis.from_url(os.environ["RELAIS_REDIS_URL"])
    prefix = os.environ["RELAIS_REDIS_PREFIX"]
    entries = store.xrange(stream_key(prefix))
    assert entries is not None
    return [dict(fields or {}) for _id, fields in entries]


@pytest.fixture
def redis_stream(settings):
    settings.RELAIS = {**settings.RELAIS, "REDIS_URL": os.environ["RELAIS_REDIS_URL"]}
    store = redis.Redis.from_url(os.environ["RELAIS_REDIS_URL"])
    store.delete(stream_key(os.environ["RELAIS_REDIS_PREFIX"]))
    yield
    store.delete(stream_key(os.environ["RELAIS_REDIS_PREFIX"]))


@pytest.mark.usefixtures("redis_stream", "push_on")
async def test_reminders_then_expiry_live_and_pushed(runtime, member, te_room, practitioners):
    nurse, doctor = await sync_to_async(member)("nurse"), await sync_to_async(member)("doctor")
    room = await sync_to_async(te_room)(nurse, doctor)
    opened = await sync_to_async(nurse.client.post)(
        "/api/v1/teleexpertise", request_body(room, doctor, hours=2), format="json"
    )
    assert opened.status_code == 201
    _device, token = await sync_to_async(do_issue_device_token)(
        practitioner=practitioners["nurse"], device_name="tablet"
    )
    tablet = Client(token=token)  # another device of the requérant, connected
    await tablet.start()
    start = timezone.now()

    first = await sync_to_async(run_clock)(now=start)
    assert (first.reminded, first.expired) == ([room.pk], [])  # the 24 h reminder is due
    assert (await sync_to_async(run_clock)(now=start)).reminded == []  # once only
    frame = await tablet.receive()
    assert frame == {
        "type": "teleexpertise",
        "room": room.pk,
        "action": "remind",
        "state": "requested",
        "deadline": frame["deadline"],
        "seq": None,
        "at": frame["at"],
    }
    second = await sync_to_async(run_clock)(now=start + timedelta(minutes=61))
    assert second.reminded == [room.pk]  # the 1 h reminder
    assert (await tablet.receive())["action"] == "remind"

    done = await sync_to_async(run_clock)(now=start + timedelta(hours=3))
    assert (done.expired, done.reminded) == ([room.pk], [])
    expired = await tablet.receive()
    assert (expired["action"], expired["state"]) == ("expire", "expired")
    te = await sync_to_async(Teleexpertise.objects.get)(pk=room.pk)
    assert (te.state, te.reminders_sent) == ("expired", 2)
    last = await sync_to_async(Transition.objects.filter(teleexpertise=te).last)()
    assert (last.action, last.actor_id, last.device_id) == ("expire", None, None)
    # Pushes (content-free: room, seq, sender device): the request's envelope wakes the
    # requis; so do the two reminders (the requérant's request device is the "sender",
    # so the requérant is not woken); the expiry wakes both (sender 0).
    request_device = str(opened.json()["step"]["device"]).encode()
    jobs = sorted(tuple(sorted(job.items())) for job in push_jobs())
    for_requis = ((b"d", request_device), (b"r", str(room.pk).encode()), (b"s", b"1"))
    for_both = ((b"d", b"0"), (b"r", str(room.pk).encode()), (b"s", b"1"))
    assert jobs == sorted([for_requis, for_requis, for_requis, for_both])
    assert (await sync_to_async(run_clock)(now=start + timedelta(hours=4))).expired == []
    # An expired request takes no more steps.
    late = await sync_to_async(step)(doctor, room, "accept", "late")
    assert late.json()["error"]["code"] == "transition_refused"
    await tablet.close()


def test_answered_and_cancelled_requests_never_expire(member, te_room):
    nurse, doctor = member("nurse"), member("doctor")
    answered, cancelled = te_room(nurse, doctor), te_room(nurse, doctor)
    for room in (answered, cancelled):
        nurse.client.post(
            "/api/v1/teleexpertise",
            request_body(room, doctor, message_id=f"r{room.pk}", hours=1),
            format="json",
        )
    step(doctor, answered, "accept", "a")
    step(doctor, answered, "report", "b")
    step(nurse, cancelled, "cancel", "c")
    done = run_clock(now=timezone.now() + timedelta(days=2))
    assert (done.expired, done.reminded) == ([], [])
    assert set(Teleexpertise.objects.values_list("state", flat=True)) == {"answered", "cancelled"}
