"""``manage.py seed_demo``: demo practitioners and a care-team room, for a first run."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from chat.conf import relais_settings
from chat.models import Room, RoomKind
from chat.services.rooms import do_create_room
from directory.demo import ensure_demo_practitioners


class Command(BaseCommand):
    help = "Create demo practitioners and a demo care-team room (development only)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not relais_settings().dev_login:
            raise CommandError("Demo data is for development (RELAIS_DEBUG=1) only.")
        nurse, doctor, pharmacist, physio = ensure_demo_practitioners()
        if not Room.objects.filter(created_by=nurse, kind=RoomKind.CARE_TEAM).exists():
            do_create_room(
                creator=nurse,
                kind=RoomKind.CARE_TEAM,
                member_ids=[doctor.national_id, pharmacist.national_id, physio.national_id],
            )
        self.stdout.write("Demo practitioners (development login with these national ids):")
        for practitioner in (nurse, doctor, pharmacist, physio):
            self.stdout.write(
                f"  {practitioner.national_id}  {practitioner.display_name}"
                f" ({practitioner.profession_label})"
            )
