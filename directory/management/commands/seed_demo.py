"""``manage.py seed_demo``: demo practitioners for a first run.

Rooms are created by clients (e.g. ``python -m client chat``): a room starts with an
event signed by its creator's device, which the server cannot make.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from chat.conf import relais_settings
from directory.demo import ensure_demo_practitioners


class Command(BaseCommand):
    help = "Create demo practitioners (development only)."

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
