"""``manage.py seed_demo``: demo practitioners and a demo conversation for a first run.

The conversation (``directory.demo_conversation``) is made as clients make rooms: a
creation event signed by a device, envelopes encrypted by the devices' sender keys.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from chat.conf import relais_settings
from directory.demo import ensure_demo_practitioners
from directory.demo_conversation import DOCTOR, create_demo_conversation


class Command(BaseCommand):
    help = "Create demo practitioners and a demo conversation (development only)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not relais_settings().dev_login:
            raise CommandError("Demo data is for development (RELAIS_DEBUG=1) only.")
        nurse, doctor, pharmacist, physio = ensure_demo_practitioners()
        self.stdout.write("Demo practitioners (development login with these national ids):")
        for practitioner in (nurse, doctor, pharmacist, physio):
            self.stdout.write(
                f"  {practitioner.national_id}  {practitioner.display_name}"
                f" ({practitioner.profession_label})"
            )
        room = create_demo_conversation()
        self.stdout.write(
            f"Demo conversation: room {room.pk}, Dr Sophie Bernard and Hugo Lambert "
            f"({room.last_seq} end-to-end encrypted messages; {DOCTOR} shows it over "
            "the REST API)."
        )
