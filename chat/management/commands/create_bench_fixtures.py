"""``manage.py create_bench_fixtures``: practitioners, devices, rooms and a pre-filled
catch-up room for the load generator in bench/. Writes the tokens to a JSON file.

Refuses to run on a database that already holds rooms, so it cannot pollute a real one.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from chat.clock import SYSTEM_CLOCK
from chat.models import Device, Envelope, Membership, Role, Room, RoomKind
from chat.services.devices import hash_token
from directory.identifiers import luhn_is_valid
from directory.models import Practitioner


def _rpps(index: int) -> str:
    base = f"9{index:09d}"
    check = next(d for d in "0123456789" if luhn_is_valid(base + d))
    return "8" + base + check


class Command(BaseCommand):
    help = "Create benchmark fixtures (an empty benchmark database only)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--pairs", type=int, default=100)
        parser.add_argument("--team-size", type=int, default=50)
        parser.add_argument("--catchup", type=int, default=10_000)
        parser.add_argument("--output", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        if Room.objects.exists():
            raise CommandError("The database already has rooms; use an empty benchmark database.")
        self._counter = 0
        with transaction.atomic():
            result = {
                "rooms": [self._room(RoomKind.DIRECT, 2) for _ in range(options["pairs"])],
                "team_room": self._room(RoomKind.CARE_TEAM, options["team_size"]),
                "catchup": self._catchup(options["catchup"]),
            }
        Path(options["output"]).write_text(json.dumps(result, indent=1))
        self.stdout.write(f"fixtures written to {options['output']}")

    def _member(self) -> tuple[Practitioner, dict[str, Any]]:
        self._counter += 1
        practitioner = Practitioner.objects.create(
            national_id=_rpps(self._counter),
            first_name="Bench",
            last_name=f"User{self._counter}",
            profession_code="60",
        )
        token = secrets.token_urlsafe(32)
        device = Device.objects.create(
            practitioner=practitioner, name="bench", token_hash=hash_token(token)
        )
        return practitioner, {
            "practitioner": practitioner.national_id,
            "device": device.pk,
            "token": token,
        }

    def _room(self, kind: str, size: int) -> dict[str, Any]:
        members = [self._member() for _ in range(size)]
        room = Room.objects.create(kind=kind, created_by=members[0][0])
        Membership.objects.bulk_create(
            Membership(room=room, practitioner=p, role=Role.ADMIN if i == 0 else Role.MEMBER)
            for i, (p, _) in enumerate(members)
        )
        return {"id": room.pk, "members": [info for _, info in members]}

    def _catchup(self, count: int) -> dict[str, Any]:
        room_info = self._room(RoomKind.CARE_TEAM, 2)
        writer = room_info["members"][0]
        now_ms = SYSTEM_CLOCK.now_ms()
        Envelope.objects.bulk_create(
            (
                Envelope(
                    room_id=room_info["id"],
                    seq=seq,
                    sender_device_id=writer["device"],
                    sender_practitioner_id=writer["practitioner"],
                    client_id=f"backlog-{seq}",
                    body=secrets.token_bytes(200),
                    size=200,
                    created_at_ms=now_ms,
                )
                for seq in range(1, count + 1)
            ),
            batch_size=2000,
        )
        Room.objects.filter(pk=room_info["id"]).update(last_seq=count)
        return {"room": room_info["id"], "messages": count, "reader": room_info["members"][1]}
