"""Who gets a push, 404/410 pruning, backoff — the dispatcher against PostgreSQL and a
real local push service. Time is a manual clock: the tests move it, nothing sleeps."""

from __future__ import annotations

import datetime
import os

import pytest
import redis.asyncio as redis_asyncio
from channels.db import database_sync_to_async

from chat.presence import Presence, RedisPresence, presence_tracker
from chat.services.devices import do_revoke_device
from push.dispatcher import Dispatcher
from push.jobs import PushJob
from push.models import PushSubscription
from push.sender import PushSender
from push.services import do_mute_room, do_unmute_room
from tests.push.conftest import SUBJECT, aregister, identity_of
from tests.push.receiver import Scripted
from tests.wsclient import Client

pytestmark = pytest.mark.django_db(transaction=True)


def no_jitter(delay: float) -> float:
    return delay


@pytest.fixture
async def sender(push_on, clock):
    push_sender = PushSender(
        vapid=push_on.vapid,
        subject=SUBJECT,
        ttl_seconds=push_on.ttl_seconds,
        timeout_seconds=push_on.request_timeout_seconds,
        concurrency=push_on.concurrency,
        clock=clock,
    )
    await push_sender.start()
    yield push_sender
    await push_sender.close()


@pytest.fixture
async def dispatcher(sender, runtime, push_on, clock):
    return Dispatcher(
        sender=sender,
        presence=presence_tracker(clock=clock),
        clock=clock,
        settings=push_on,
        jitter=no_jitter,
    )


async def dispatch(dispatcher, *jobs: PushJob) -> None:
    """Hand jobs over, send what is due now, and wait for the answers."""
    await dispatcher.add_jobs(list(jobs))
    await dispatcher.send_due()
    await dispatcher.wait_idle()


def wall(clock) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(clock.now_ms() / 1000, tz=datetime.UTC)


async def test_only_offline_members_devices_that_may_be_woken_get_a_push(
    dispatcher, receiver, care_team, push_on, clock
):
    room, devices, _ = care_team
    browsers = {
        name: await aregister(receiver, identity_of(care_team, name), push_on) for name in devices
    }
    await database_sync_to_async(do_revoke_device)(device_id=devices["doctor_tablet"][0])
    await database_sync_to_async(do_mute_room)(
        identity=identity_of(care_team, "pharmacist_phone"),
        room_id=room.pk,
        scope="practitioner",
        until=None,
        now=wall(clock),
    )

    await dispatch(dispatcher, PushJob(room.pk, 1, devices["nurse_phone"][0]))

    # Not the sender's devices (phone and tablet), not the revoked tablet, not the muted
    # pharmacist, not the physio who is not in the room.
    assert [push.token for push in receiver.received] == [browsers["doctor_phone"].token]
    assert receiver.received[0].json() == {"room": room.pk, "seq": 1}
    assert dispatcher.stats.sent == 1


async def test_device_and_timed_mutes(dispatcher, receiver, care_team, push_on, clock):
    room, devices, _ = care_team
    phone = await aregister(receiver, identity_of(care_team, "doctor_phone"), push_on)
    tablet = await aregister(receiver, identity_of(care_team, "doctor_tablet"), push_on)
    pharmacist = await aregister(receiver, identity_of(care_team, "pharmacist_phone"), push_on)
    mute = database_sync_to_async(do_mute_room)
    await mute(
        identity=identity_of(care_team, "doctor_phone"),
        room_id=room.pk,
        scope="device",
        until=None,
        now=wall(clock),
    )
    await mute(
        identity=identity_of(care_team, "pharmacist_phone"),
        room_id=room.pk,
        scope="practitioner",
        until=wall(clock) + datetime.timedelta(hours=1),
        now=wall(clock),
    )
    sender = devices["nurse_phone"][0]

    await dispatch(dispatcher, PushJob(room.pk, 1, sender))
    assert [p.token for p in receiver.received] == [tablet.token]  # the phone alone is muted

    clock.advance(3601)  # the pharmacist's mute has ended
    await dispatch(dispatcher, PushJob(room.pk, 2, sender))
    assert sorted(p.token for p in receiver.received[1:]) == sorted(
        [tablet.token, pharmacist.token]
    )

    await database_sync_to_async(do_unmute_room)(
        identity=identity_of(care_team, "doctor_phone"), room_id=room.pk, scope="device"
    )
    await dispatch(dispatcher, PushJob(room.pk, 3, sender))
    assert {p.token for p in receiver.received[3:]} == {phone.token, tablet.token, pharmacist.token}


@pytest.mark.usefixtures("fanout_mode")
async def test_a_connected_device_gets_no_push(
    sender, runtime, receiver, care_team, push_on, clock, fanout_mode
):
    room, devices, _ = care_team
    phone = await aregister(receiver, identity_of(care_team, "doctor_phone"), push_on)
    tablet = await aregister(receiver, identity_of(care_team, "doctor_tablet"), push_on)
    redis = None
    presence: Presence
    if fanout_mode == "redis":
        # What the worker process sees: the hubs' subscriptions in Redis.
        redis = redis_asyncio.Redis.from_url(os.environ["RELAIS_REDIS_URL"])
        presence = RedisPresence(redis=redis, prefix=os.environ["RELAIS_REDIS_PREFIX"], clock=clock)
    else:
        presence = presence_tracker(clock=clock)
    dispatcher = Dispatcher(sender=sender, presence=presence, clock=clock, settings=push_on)
    connected = Client(token=devices["doctor_phone"][1])
    await connected.start()
    assert await presence.connected({devices["doctor_phone"][0], devices["doctor_tablet"][0]}) == {
        devices["doctor_phone"][0]
    }

    await dispatch(dispatcher, PushJob(room.pk, 1, devices["nurse_phone"][0]))
    assert [p.token for p in receiver.received] == [tablet.token]
    assert dispatcher.stats.skipped_connected == 1
    assert receiver.pushes_for(phone) == []

    await connected.close()  # offline again: the next message wakes it
    assert await presence.connected({devices["doctor_phone"][0]}) == set()
    await dispatch(dispatcher, PushJob(room.pk, 2, devices["nurse_phone"][0]))
    assert [p.json()["seq"] for p in receiver.pushes_for(phone)] == [2]
    if redis is not None:
        await redis.aclose()


@pytest.mark.parametrize("status", [404, 410])
async def test_a_subscription_the_push_service_reports_gone_is_removed(
    dispatcher, receiver, care_team, push_on, status
):
    room, devices, _ = care_team
    phone = await aregister(receiver, identity_of(care_team, "doctor_phone"), push_on)
    tablet = await aregister(receiver, identity_of(care_team, "doctor_tablet"), push_on)
    receiver.respond(phone, Scripted(status))

    await dispatch(dispatcher, PushJob(room.pk, 1, devices["nurse_phone"][0]))

    endpoints = await database_sync_to_async(
        lambda: set(PushSubscription.objects.values_list("endpoint", flat=True))
    )()
    assert endpoints == {tablet.endpoint}
    assert dispatcher.stats.gone == 1
    assert dispatcher.pending_count == 0  # not retried
    await dispatch(dispatcher, PushJob(room.pk, 2, devices["nurse_phone"][0]))
    assert receiver.requests[phone.token] == 1  # never asked again
    assert [p.json()["seq"] for p in receiver.pushes_for(tablet)] == [1, 2]


async def test_retry_after_is_honoured_then_the_push_goes_through(
    dispatcher, receiver, care_team, push_on, clock
):
    room, devices, _ = care_team
    phone = await aregister(receiver, identity_of(care_team, "doctor_phone"), push_on)
    receiver.respond(phone, Scripted(503, {"Retry-After": "30"}))

    await dispatch(dispatcher, PushJob(room.pk, 1, devices["nurse_phone"][0]))
    assert receiver.received == []
    assert dispatcher.seconds_until_next_due() == 30  # the backoff alone would say 2

    clock.advance(29)
    assert await dispatcher.send_due() == 0
    clock.advance(1)
    assert await dispatcher.send_due() == 1
    await dispatcher.wait_idle()
    assert [p.json() for p in receiver.pushes_for(phone)] == [{"room": room.pk, "seq": 1}]
    assert receiver.requests[phone.token] == 2
    assert dispatcher.pending_count == 0


async def test_backoff_doubles_and_gives_up_after_max_attempts(
    dispatcher, receiver, care_team, push_on, clock
):
    room, devices, _ = care_team
    phone = await aregister(receiver, identity_of(care_team, "doctor_phone"), push_on)
    receiver.respond(phone, *[Scripted(429)] * push_on.max_attempts)

    await dispatch(dispatcher, PushJob(room.pk, 1, devices["nurse_phone"][0]))
    delays = []
    while (delay := dispatcher.seconds_until_next_due()) is not None:
        delays.append(delay)
        clock.advance(delay)
        await dispatcher.send_due()
        await dispatcher.wait_idle()

    assert delays == [2, 4, 8]  # base 2 s, doubling (jitter off in this test)
    assert receiver.requests[phone.token] == push_on.max_attempts == 4
    assert dispatcher.stats.gave_up == 1
    assert receiver.received == []
    assert await database_sync_to_async(PushSubscription.objects.count)() == 1  # kept


async def test_a_timeout_is_retried_and_a_newer_message_merges_into_the_waiting_push(
    sender, runtime, receiver, care_team, push_on, clock, settings
):
    room, devices, _ = care_team
    phone = await aregister(receiver, identity_of(care_team, "doctor_phone"), push_on)
    quick = type(push_on)(**{**push_on.__dict__, "request_timeout_seconds": 0.3})
    hasty_sender = PushSender(
        vapid=push_on.vapid,
        subject=SUBJECT,
        ttl_seconds=push_on.ttl_seconds,
        timeout_seconds=0.3,
        concurrency=2,
        clock=clock,
    )
    await hasty_sender.start()
    dispatcher = Dispatcher(
        sender=hasty_sender,
        presence=presence_tracker(clock=clock),
        clock=clock,
        settings=quick,
        jitter=no_jitter,
    )
    receiver.respond(phone, Scripted(201, hang=True))
    sender_device = devices["nurse_phone"][0]

    await dispatch(dispatcher, PushJob(room.pk, 1, sender_device))
    assert dispatcher.stats.retried == 1
    await dispatcher.add_jobs([PushJob(room.pk, 2, sender_device)])  # while waiting
    await dispatcher.add_jobs([PushJob(room.pk, 3, sender_device)])
    assert [(d.seq, d.failures) for d in dispatcher.pending()] == [(3, 1)]

    clock.advance(2)
    await dispatcher.send_due()
    await dispatcher.wait_idle()
    await hasty_sender.close()
    assert [p.json()["seq"] for p in receiver.pushes_for(phone)] == [3]  # one push, the newest


async def test_jobs_older_than_the_push_ttl_are_dropped(
    dispatcher, receiver, care_team, push_on, clock
):
    room, devices, _ = care_team
    await aregister(receiver, identity_of(care_team, "doctor_phone"), push_on)
    stale = clock.now_ms() - (push_on.ttl_seconds + 1) * 1000
    await dispatch(dispatcher, PushJob(room.pk, 1, devices["nurse_phone"][0], created_ms=stale))
    assert receiver.received == []
    assert dispatcher.stats.expired == 1


async def test_a_device_revoked_while_its_push_waits_for_a_retry_is_not_pushed(
    dispatcher, receiver, care_team, push_on, clock
):
    room, devices, _ = care_team
    phone = await aregister(receiver, identity_of(care_team, "doctor_phone"), push_on)
    tablet = await aregister(receiver, identity_of(care_team, "doctor_tablet"), push_on)
    receiver.respond(phone, Scripted(503))
    receiver.respond(tablet, Scripted(503))
    await dispatch(dispatcher, PushJob(room.pk, 1, devices["nurse_phone"][0]))
    assert dispatcher.pending_count == 2

    await database_sync_to_async(do_revoke_device)(device_id=devices["doctor_phone"][0])
    clock.advance(2)
    assert await dispatcher.send_due() == 1
    await dispatcher.wait_idle()
    assert [p.token for p in receiver.received] == [tablet.token]
    assert receiver.requests[phone.token] == 1  # the first attempt only
