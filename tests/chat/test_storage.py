"""Both envelope stores give the same guarantees: dense per-room sequence numbers,
idempotency on (device, client id), membership checked in the transaction."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async as sync_to_async

from chat.clock import ManualClock
from chat.errors import ErrorCode, RelaisError
from chat.models import Envelope, Room
from chat.runtime import build_store
from chat.services.devices import do_issue_device_token
from chat.storage.base import AppendRequest, MessageStore
from chat.storage.orm import OrmMessageStore
from tests.signed_rooms import create_room as do_create_room
from tests.signed_rooms import remove_member as do_remove_member

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["postgres", "orm"])
async def store(request, clock: ManualClock):
    built: MessageStore = (
        build_store(clock) if request.param == "postgres" else OrmMessageStore(clock=clock)
    )
    if request.param == "postgres":
        assert type(built).__name__ == "PostgresMessageStore"
    yield built
    await built.close()


@pytest.fixture
def setup(practitioners):
    nurse, doctor = practitioners["nurse"], practitioners["doctor"]
    rooms = [
        do_create_room(creator=nurse, kind="care_team", member_ids=[doctor.national_id])
        for _ in range(2)
    ]
    nurse_device, _ = do_issue_device_token(practitioner=nurse, device_name="phone")
    doctor_device, _ = do_issue_device_token(practitioner=doctor, device_name="phone")
    return {"rooms": [r.pk for r in rooms], "nurse": nurse_device, "doctor": doctor_device}


def request_for(device, room_id: int, client_id: str, body: bytes = b"x") -> AppendRequest:
    return AppendRequest(
        room_id=room_id,
        device_id=device.pk,
        practitioner_id=device.practitioner_id,
        client_id=client_id,
        body=body,
    )


async def test_sequence_numbers_are_dense_per_room(store, setup, clock):
    room_a, room_b = setup["rooms"]
    results = [
        await store.append(request_for(setup["nurse"], room, f"c{i}", f"m{i}".encode()))
        for i, room in enumerate([room_a, room_b, room_a, room_a, room_b])
    ]
    assert [(r.room_id, r.seq) for r in results] == [
        (room_a, 1),
        (room_b, 1),
        (room_a, 2),
        (room_a, 3),
        (room_b, 2),
    ]
    assert all(r.created_at_ms == clock.now_ms() and not r.duplicate for r in results)
    fetched = await store.fetch_range(room_id=room_a, after_seq=1, up_to_seq=3, limit=10)
    assert [(e.seq, e.body) for e in fetched] == [(2, b"m2"), (3, b"m3")]
    room = await sync_to_async(Room.objects.get)(pk=room_a)
    assert room.last_seq == 3


async def test_a_retry_returns_the_original_and_stores_nothing(store, setup, clock):
    room = setup["rooms"][0]
    first = await store.append(request_for(setup["nurse"], room, "same", b"original"))
    clock.advance(5)
    again = await store.append(request_for(setup["nurse"], room, "same", b"changed"))
    assert (again.seq, again.created_at_ms, again.body, again.duplicate) == (
        first.seq,
        first.created_at_ms,
        b"original",
        True,
    )
    # The same client id from another device is another message.
    other = await store.append(request_for(setup["doctor"], room, "same"))
    assert (other.seq, other.duplicate) == (2, False)
    assert await sync_to_async(Envelope.objects.count)() == 2


async def test_a_non_member_stores_nothing(store, setup, practitioners):
    outsider_device = await sync_to_async(do_issue_device_token)(
        practitioner=practitioners["physio"], device_name="phone"
    )
    with pytest.raises(RelaisError) as refused:
        await store.append(request_for(outsider_device[0], setup["rooms"][0], "x"))
    assert refused.value.code == ErrorCode.NOT_MEMBER
    with pytest.raises(RelaisError):
        await store.append(request_for(setup["nurse"], 987654, "y"))
    assert await sync_to_async(Envelope.objects.count)() == 0


async def test_a_removed_member_can_no_longer_append(store, setup, practitioners):
    room = setup["rooms"][0]
    await store.append(request_for(setup["doctor"], room, "before"))
    await sync_to_async(do_remove_member)(
        actor=practitioners["nurse"],
        room_id=room,
        practitioner_id=practitioners["doctor"].national_id,
    )
    with pytest.raises(RelaisError):
        await store.append(request_for(setup["doctor"], room, "after"))


async def test_concurrent_appends_get_unique_dense_sequences(store, setup):
    room_a, room_b = setup["rooms"]
    requests = [
        request_for(setup["nurse" if i % 2 else "doctor"], room_a if i % 3 else room_b, f"k{i}")
        for i in range(120)
    ]
    # Each request twice, concurrently: retries racing their originals.
    results = await asyncio.gather(*(store.append(r) for r in requests + requests))
    originals = {(r.device_id, r.client_id): r.seq for r in results if not r.duplicate}
    assert len(originals) == 120
    for result in results:
        assert originals[(result.device_id, result.client_id)] == result.seq
    for room in (room_a, room_b):
        seqs = sorted(s for r in results if r.room_id == room and not r.duplicate for s in [r.seq])
        assert seqs == list(range(1, len(seqs) + 1))
    assert await sync_to_async(Envelope.objects.count)() == 120


async def test_two_postgres_writers_like_two_processes_never_collide(setup, clock):
    """Two stores (two pools, two group-commit writers) on the same rooms and keys."""
    first, second = build_store(clock), build_store(clock)
    room_a, room_b = setup["rooms"]
    requests = [
        request_for(setup["nurse"], room_a if i % 2 else room_b, f"p{i}") for i in range(200)
    ]
    try:
        results = await asyncio.gather(
            *(first.append(r) for r in requests), *(second.append(r) for r in requests)
        )
    finally:
        await first.close()
        await second.close()
    stored = await sync_to_async(list)(Envelope.objects.values_list("room_id", "seq", "client_id"))
    assert len(stored) == 200
    for room in (room_a, room_b):
        assert sorted(seq for r, seq, _ in stored if r == room) == list(range(1, 101))
    by_key = {client_id: (room, seq) for room, seq, client_id in stored}
    assert all(by_key[r.client_id] == (r.room_id, r.seq) for r in results)
    assert sum(1 for r in results if r.duplicate) == 200


async def test_a_member_removed_while_the_send_waits_for_the_room_is_refused(setup, clock):
    """Membership is read once the room's lock is held: a removal that held that lock
    (as every membership change does) is seen, without locking membership rows."""
    import psycopg

    from chat.models import Membership

    store = build_store(clock)
    room = setup["rooms"][0]
    conninfo = _raw_conninfo()
    observer = await psycopg.AsyncConnection.connect(**conninfo, autocommit=True)
    async with await psycopg.AsyncConnection.connect(**conninfo) as change:
        async with change.transaction():
            await change.execute("SELECT id FROM chat_room WHERE id = %s FOR UPDATE", (room,))
            sending = asyncio.create_task(store.append(request_for(setup["doctor"], room, "late")))
            await _until_a_backend_waits_for_a_lock(observer)
            await change.execute(
                f"DELETE FROM {Membership._meta.db_table} "  # noqa: S608
                "WHERE room_id = %s AND practitioner_id = %s",
                (room, setup["doctor"].practitioner_id),
            )
        with pytest.raises(RelaisError) as refused:
            await sending
    await observer.close()
    await store.close()
    assert refused.value.code == ErrorCode.NOT_MEMBER
    assert await sync_to_async(Envelope.objects.filter(client_id="late").count)() == 0


def _raw_conninfo() -> dict:
    """Connection parameters of the test database, for psycopg connections of our own."""
    from django.db import connection

    params = connection.get_connection_params()
    return {k: params[k] for k in ("dbname", "user", "host", "port") if params.get(k)}


async def _until_a_backend_waits_for_a_lock(observer) -> None:
    query = (
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    for _ in range(500):
        cursor = await observer.execute(query)
        if (await cursor.fetchone())[0]:
            return
        await asyncio.sleep(0.01)  # polling the server's view of locks; no event to await
    raise AssertionError("the send never waited for the room's lock")


async def test_a_send_not_committed_in_time_is_answered_server_busy_and_can_be_retried(
    setup, clock
):
    """The store's watchdog answers SERVER_BUSY past RELAIS_STORE_TIMEOUT; the envelope
    may still be committed, and a retry with the same id then gets the original."""
    import psycopg

    from chat.storage.postgres import PostgresMessageStore

    store = build_store(clock)
    assert isinstance(store, PostgresMessageStore)
    room = setup["rooms"][0]
    conninfo = _raw_conninfo()
    observer = await psycopg.AsyncConnection.connect(**conninfo, autocommit=True)
    blocking = await psycopg.AsyncConnection.connect(**conninfo)
    async with blocking, blocking.transaction():
        await blocking.execute("SELECT id FROM chat_room WHERE id = %s FOR UPDATE", (room,))
        sending = asyncio.create_task(store.append(request_for(setup["nurse"], room, "slow")))
        await _until_a_backend_waits_for_a_lock(observer)
        assert store.expire_overdue() == 0  # not late yet
        clock.advance(11)  # past the 10-second default
        assert store.expire_overdue() == 1
        with pytest.raises(RelaisError) as busy:
            await sending
        assert busy.value.code == ErrorCode.SERVER_BUSY
    retry = await store.append(request_for(setup["nurse"], room, "slow"))
    await observer.close()
    await store.close()
    assert (retry.seq, retry.duplicate) == (1, True)
