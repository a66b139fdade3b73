"""The lifecycle of a téléexpertise: check (``check_*``, ``access_*``), then write
(``do_*``).

Every step a member takes is carried by an end-to-end encrypted envelope. The step and
its envelope arrive together (``POST /api/v1/teleexpertise/...``): the server checks the
step against the lifecycle table (``teleexpertise.workflow``) first and stores nothing
when it is refused; otherwise it stores the envelope (the same store, idempotency and
fan-out as any message) and records the step with the envelope's sequence number, all
while holding the room's step guard (``room_step_guard``), so two steps of one room never
interleave. A step retried with the same message id returns the step already recorded.

What the server learns: who is requérant and requis, the state, the deadline, when each
step happened. Never the patient, the question, the answer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction

from chat.errors import ErrorCode, RelaisError
from chat.models import Membership, Room, RoomKind
from chat.services.access import access_membership, access_reader
from chat.services.devices import DeviceIdentity
from chat.storage.base import StoredEnvelope
from directory.models import Practitioner
from teleexpertise.conf import teleexpertise_settings
from teleexpertise.models import Teleexpertise, Transition
from teleexpertise.notify import announce_on_commit
from teleexpertise.workflow import (
    REQUIS_PROFESSIONS,
    Action,
    Role,
    State,
    TransitionError,
    next_state,
    questions_after,
)

# Stores the envelope that carries a step: (client message id, base64url body).
EnvelopeSender = Callable[[str, str], StoredEnvelope]


@dataclass(frozen=True, slots=True)
class Step:
    """A step as recorded, with the téléexpertise after it; ``created`` False when the
    step had been recorded before (a retry with the same message id)."""

    teleexpertise: Teleexpertise
    transition: Transition
    created: bool = True


def refusal(error: TransitionError) -> RelaisError:
    """The API error of a refused step, with the table's own English and French."""
    code = ErrorCode.ROLE_REFUSED if error.kind == "role" else ErrorCode.TRANSITION_REFUSED
    refused = RelaisError(code)
    refused.message, refused.message_fr = error.message, error.message_fr
    return refused


def check_requis(practitioner: Practitioner) -> None:
    """REQUIS_NOT_ELIGIBLE unless the directory says médecin, sage-femme or
    chirurgien-dentiste (profession code, TRE_G15)."""
    if (
        not practitioner.is_active
        or practitioner.is_organisation
        or practitioner.profession_code not in REQUIS_PROFESSIONS
    ):
        label = practitioner.profession_label or practitioner.profession_code or "?"
        raise RelaisError(ErrorCode.REQUIS_NOT_ELIGIBLE, f"{practitioner.national_id}: {label}.")


def check_deadline(deadline: datetime, *, now: datetime) -> datetime:
    """BAD_REQUEST unless the deadline lies between the configured bounds from now."""
    settings = teleexpertise_settings()
    earliest = now + timedelta(seconds=settings.min_deadline_seconds)
    latest = now + timedelta(seconds=settings.max_deadline_seconds)
    if not earliest <= deadline <= latest:
        raise RelaisError(
            ErrorCode.BAD_REQUEST,
            f"The deadline must be between {earliest.isoformat(timespec='minutes')} and "
            f"{latest.isoformat(timespec='minutes')}.",
        )
    return deadline


def role_of(teleexpertise: Teleexpertise, practitioner_id: str) -> Role:
    if practitioner_id == teleexpertise.requerant_id:
        return Role.REQUERANT
    if practitioner_id == teleexpertise.requis_id:
        return Role.REQUIS
    raise RelaisError(ErrorCode.NOT_MEMBER)


def access_teleexpertise(*, room_id: int, practitioner_id: str) -> Teleexpertise:
    """The téléexpertise of a room, for its members and the organisation archiving it;
    NOT_MEMBER for anyone else (an unknown room looks the same), NOT_FOUND when the
    room has none."""
    access_reader(room_id=room_id, practitioner_id=practitioner_id)
    found = Teleexpertise.objects.filter(room_id=room_id).first()
    if found is None:
        raise RelaisError(ErrorCode.NOT_FOUND, "This room has no téléexpertise.")
    return found


def teleexpertises_of(
    *, practitioner_id: str, role: Role | None = None, states: list[State] | None = None
) -> list[Teleexpertise]:
    """The téléexpertises a practitioner takes part in, newest first (at most 500)."""
    query = Teleexpertise.objects.all()
    if role is Role.REQUERANT:
        query = query.filter(requerant_id=practitioner_id)
    elif role is Role.REQUIS:
        query = query.filter(requis_id=practitioner_id)
    else:
        query = query.filter(requerant_id=practitioner_id) | query.filter(requis_id=practitioner_id)
    if states:
        query = query.filter(state__in=[s.value for s in states])
    return list(query.order_by("-requested_at", "-room_id")[:500])


def _replayed(identity: DeviceIdentity, message_id: str) -> Transition | None:
    return (
        Transition.objects.select_related("teleexpertise")
        .filter(device_id=identity.device_id, message_id=message_id)
        .first()
    )


def _same_step(found: Transition, *, room_id: int, action: Action) -> Step:
    if found.teleexpertise_id != room_id or found.action != action:
        raise RelaisError(ErrorCode.CONFLICT, "This message id was used for another step.")
    return Step(teleexpertise=found.teleexpertise, transition=found, created=False)


# Steps of one room are taken one at a time, and the envelope of a step is stored while
# that holds, so a refused step never leaves an envelope behind. The message store
# takes the room's row lock and writes with its own connection: the guard must not hold
# that row, nor (on SQLite, one writer at a time) any write lock.
_ADVISORY_NAMESPACE = 0x7E1E  # pg_advisory_xact_lock(namespace, room): téléexpertise steps
_local_locks: dict[int, threading.Lock] = {}
_local_locks_guard = threading.Lock()


@contextmanager
def room_step_guard(room_id: int) -> Iterator[None]:
    """Serialise the steps of a room. PostgreSQL (several server processes): a
    transaction holding a transaction-level advisory lock on the room, which nothing else
    takes. The embedded default (SQLite, one process): a lock in this process, with no
    transaction open, so the store can write."""
    if connection.vendor == "postgresql":
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(%s, %s)", [_ADVISORY_NAMESPACE, room_id]
                )
            yield
        return
    with _local_locks_guard:
        lock = _local_locks.setdefault(room_id, threading.Lock())
    with lock:
        yield


def _current(room_id: int) -> Teleexpertise | None:
    """The room's téléexpertise, its row locked on PostgreSQL (the clock skips it)."""
    query = Teleexpertise.objects.filter(room_id=room_id)
    if connection.vendor == "postgresql":
        query = query.select_for_update()
    return query.first()


def _record(
    teleexpertise: Teleexpertise,
    action: Action,
    identity: DeviceIdentity,
    message_id: str,
    seq: int,
    now: datetime,
) -> Transition:
    """Store the step the member's device took (the téléexpertise in its new state) and
    announce it to the other devices once the transaction commits."""
    transition = Transition.objects.create(
        teleexpertise=teleexpertise,
        action=action,
        state=teleexpertise.state,
        actor_id=identity.practitioner_id,
        device_id=identity.device_id,
        message_id=message_id,
        seq=seq,
        at=now,
    )
    announce_on_commit(teleexpertise, transition, except_device=identity.device_id)
    return transition


def do_request(
    *,
    identity: DeviceIdentity,
    room_id: int,
    requis_id: str,
    deadline: datetime,
    message_id: str,
    body_text: str,
    send: EnvelopeSender,
    now: datetime,
) -> Step:
    """Open the téléexpertise of a room: the caller is the requérant, ``requis_id`` the
    professional asked. The room must be a ``teleexpertise`` room whose members are
    exactly the two of them (its archiver is not a member).

    Raises NOT_MEMBER, BAD_REQUEST, REQUIS_NOT_ELIGIBLE, CONFLICT (already opened), and
    the envelope's errors (BODY_TOO_LARGE, SERVER_BUSY...)."""
    replayed = _replayed(identity, message_id)
    if replayed is not None:
        return _same_step(replayed, room_id=room_id, action=Action.REQUEST)
    membership = access_membership(room_id=room_id, practitioner_id=identity.practitioner_id)
    room: Room = membership.room
    if room.kind != RoomKind.TELEEXPERTISE:
        raise RelaisError(ErrorCode.BAD_REQUEST, "This is not a téléexpertise room.")
    members = set(Membership.objects.filter(room=room).values_list("practitioner_id", flat=True))
    if requis_id == identity.practitioner_id or members != {identity.practitioner_id, requis_id}:
        raise RelaisError(
            ErrorCode.BAD_REQUEST,
            "A téléexpertise room has two members: the requérant and the requis.",
        )
    requis = Practitioner.objects.filter(pk=requis_id).first()
    if requis is None:
        raise RelaisError(ErrorCode.NOT_FOUND, f"Unknown practitioner: {requis_id}.")
    check_requis(requis)
    check_deadline(deadline, now=now)
    try:
        next_state(state=None, action=Action.REQUEST, role=Role.REQUERANT)
    except TransitionError as error:  # pragma: no cover - the table allows it
        raise refusal(error) from None
    with room_step_guard(room_id):
        if Teleexpertise.objects.filter(room=room).exists():
            raise RelaisError(ErrorCode.CONFLICT, "This room already has its téléexpertise.")
        stored = send(message_id, body_text)
        with transaction.atomic():
            teleexpertise = Teleexpertise.objects.create(
                room=room,
                requerant_id=identity.practitioner_id,
                requis=requis,
                state=State.REQUESTED,
                requested_at=now,
                state_changed_at=now,
                deadline=deadline,
            )
            transition = _record(
                teleexpertise, Action.REQUEST, identity, message_id, stored.seq, now
            )
    return Step(teleexpertise=teleexpertise, transition=transition)


def do_step(
    *,
    identity: DeviceIdentity,
    room_id: int,
    action: Action,
    message_id: str,
    body_text: str,
    send: EnvelopeSender,
    now: datetime,
    deadline: datetime | None = None,
) -> Step:
    """Take a step other than the request: accept, decline, clarification question or
    answer, report, close, cancel. ``deadline`` (accept only): the answer time the
    requis commits to.

    Raises NOT_MEMBER, NOT_FOUND (no téléexpertise), ROLE_REFUSED, TRANSITION_REFUSED,
    BAD_REQUEST, CONFLICT, and the envelope's errors; nothing is stored then."""
    if action is Action.REQUEST or action is Action.EXPIRE:
        raise RelaisError(ErrorCode.BAD_REQUEST, f"{action} is not a step a member takes here.")
    if deadline is not None and action is not Action.ACCEPT:
        raise RelaisError(ErrorCode.BAD_REQUEST, "Only accepting may set a new deadline.")
    replayed = _replayed(identity, message_id)
    if replayed is not None:
        return _same_step(replayed, room_id=room_id, action=action)
    access_membership(room_id=room_id, practitioner_id=identity.practitioner_id)
    if deadline is not None:
        check_deadline(deadline, now=now)
    with room_step_guard(room_id):
        teleexpertise = _current(room_id)
        if teleexpertise is None:
            raise RelaisError(ErrorCode.NOT_FOUND, "This room has no téléexpertise.")
        role = role_of(teleexpertise, identity.practitioner_id)
        try:
            target = next_state(
                state=State(teleexpertise.state),
                action=action,
                role=role,
                open_questions=teleexpertise.open_questions,
            )
        except TransitionError as error:
            raise refusal(error) from None
        stored = send(message_id, body_text)
        with transaction.atomic():
            if deadline is not None:
                teleexpertise.deadline = deadline
                teleexpertise.reminders_sent = 0
            if target is not None:
                teleexpertise.state = target
                teleexpertise.state_changed_at = now
            teleexpertise.open_questions = questions_after(action, teleexpertise.open_questions)
            teleexpertise.save()
            transition = _record(teleexpertise, action, identity, message_id, stored.seq, now)
    return Step(teleexpertise=teleexpertise, transition=transition)
