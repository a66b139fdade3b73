"""``manage.py teleexpertise_clock``: reminders before téléexpertise deadlines and
``expired`` after them (``teleexpertise.services.clock``).

Runs a pass every ``RELAIS_TELEEXPERTISE_CLOCK_INTERVAL`` seconds until SIGTERM or
SIGINT (systemd: ``deploy/systemd/relais-teleexpertise-clock.service``); ``--once``
runs one pass and exits (cron). Several clocks may run at once: rows are taken with
``SKIP LOCKED``.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections
from django.utils import timezone

from teleexpertise.conf import teleexpertise_settings
from teleexpertise.services.clock import run_clock

logger = logging.getLogger("teleexpertise.clock")


class Command(BaseCommand):
    help = "Remind the requis before téléexpertise deadlines and expire the overdue ones."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="run one pass and exit")

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()
        if not options["once"]:
            for number in (signal.SIGTERM, signal.SIGINT):
                signal.signal(number, lambda *_: stop.set())
        interval = teleexpertise_settings().clock_interval_seconds
        while True:
            close_old_connections()
            try:
                done = run_clock(now=timezone.now())
            except Exception:
                if options["once"]:
                    raise
                logger.exception("the téléexpertise clock pass failed; again in %s s", interval)
            else:
                if done.expired or done.reminded:
                    logger.info(
                        "teleexpertise clock: expired=%d reminded=%d",
                        len(done.expired),
                        len(done.reminded),
                    )
                if options["once"]:
                    self.stdout.write(f"expired {len(done.expired)}, reminded {len(done.reminded)}")
            if options["once"] or stop.wait(interval):
                return
