"""The téléexpertise clock: reminders before the deadline, ``expired`` after it.

``run_clock(now=...)`` does one pass; ``manage.py teleexpertise_clock`` runs it every
``RELAIS_TELEEXPERTISE_CLOCK_INTERVAL`` seconds (systemd unit in ``deploy/``), and
tests call it with the time they want, instead of waiting.

A request still open (``requested`` or ``accepted``) whose deadline has passed becomes
``expired``: a step taken by the clock, announced live to both members and pushed to
their devices that are not connected. Before the deadline, at each reminder time
(``RELAIS_TELEEXPERTISE_REMINDERS``, 24 h and 1 h by default) the requis gets one
reminder: a live frame and a push to his devices. Rows are taken with ``SKIP LOCKED``,
so two clocks running at once never remind or expire twice, and a step a member is
taking at that moment is not waited for (the next pass sees it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q

from chat.models import Room
from teleexpertise.conf import teleexpertise_settings
from teleexpertise.models import Teleexpertise, Transition
from teleexpertise.notify import announce_on_commit, push_on_commit
from teleexpertise.workflow import ACTIVE, Action, Role, State, next_state

BATCH = 200


@dataclass
class ClockPass:
    """What one pass did: the rooms whose téléexpertise expired or was reminded."""

    expired: list[int] = field(default_factory=list)
    reminded: list[int] = field(default_factory=list)


def reminders_due(*, deadline: datetime, now: datetime, offsets: tuple[int, ...]) -> int:
    """How many reminder times (``offsets`` seconds before the deadline) have come."""
    return sum(1 for offset in offsets if deadline - timedelta(seconds=offset) <= now)


def _room_seq(room_id: int) -> int:
    return int(Room.objects.filter(pk=room_id).values_list("last_seq", flat=True).get())


def _request_device(teleexpertise: Teleexpertise) -> int:
    device = (
        Transition.objects.filter(teleexpertise=teleexpertise, action=Action.REQUEST)
        .values_list("device_id", flat=True)
        .first()
    )
    return int(device or 0)


def _expire(teleexpertise: Teleexpertise, *, now: datetime) -> None:
    target = next_state(state=State(teleexpertise.state), action=Action.EXPIRE, role=Role.CLOCK)
    assert target is not None  # the table's expire always moves the state
    teleexpertise.state = target
    teleexpertise.state_changed_at = now
    teleexpertise.save(update_fields=["state", "state_changed_at"])
    transition = Transition.objects.create(
        teleexpertise=teleexpertise, action=Action.EXPIRE, state=target, at=now
    )
    announce_on_commit(teleexpertise, transition)
    # Both members are told: sender 0 excludes nobody.
    push_on_commit(
        room_id=teleexpertise.room_id, seq=_room_seq(teleexpertise.room_id), sender_device_id=0
    )


def _remind(teleexpertise: Teleexpertise, *, due: int) -> None:
    teleexpertise.reminders_sent = due
    teleexpertise.save(update_fields=["reminders_sent"])
    announce_on_commit(teleexpertise, None)
    # The push goes to the members other than the requérant: the requis.
    push_on_commit(
        room_id=teleexpertise.room_id,
        seq=_room_seq(teleexpertise.room_id),
        sender_device_id=_request_device(teleexpertise),
    )


def run_clock(*, now: datetime) -> ClockPass:
    """One pass of the clock at ``now``: every open request whose deadline is within the
    largest reminder offset, in deadline order, a page at a time."""
    offsets = teleexpertise_settings().reminders_seconds
    horizon = now + timedelta(seconds=max(offsets, default=0))
    done = ClockPass()
    after: tuple[datetime, int] | None = None
    while True:
        with transaction.atomic():
            query = Teleexpertise.objects.select_for_update(skip_locked=True).filter(
                state__in=[state.value for state in ACTIVE], deadline__lte=horizon
            )
            if after is not None:
                query = query.filter(
                    Q(deadline__gt=after[0]) | Q(deadline=after[0], room_id__gt=after[1])
                )
            batch = list(query.order_by("deadline", "room_id")[:BATCH])
            for teleexpertise in batch:
                if teleexpertise.deadline <= now:
                    _expire(teleexpertise, now=now)
                    done.expired.append(teleexpertise.room_id)
                    continue
                due = reminders_due(deadline=teleexpertise.deadline, now=now, offsets=offsets)
                if due > teleexpertise.reminders_sent:
                    _remind(teleexpertise, due=due)
                    done.reminded.append(teleexpertise.room_id)
        if len(batch) < BATCH:
            return done
        after = (batch[-1].deadline, batch[-1].room_id)
