"""``manage.py check_psc_sessions``: notice PSC logouts (docs/identity.md).

Refreshes, with PSC's refresh token, every PSC session not checked for
``RELAIS_PSC_SESSION_CHECK_SECONDS``; a session PSC no longer knows is ended and its
device token revoked. Run it every minute (``--loop``, or a timer).
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from chat.errors import RelaisError
from identity.conf import psc_settings
from identity.services.sessions import do_check_psc_session, sessions_due

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Check due Pro Santé Connect sessions with their refresh tokens."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", action="store_true", help="keep checking every minute")
        parser.add_argument("--interval", type=int, default=60, help="seconds between rounds")

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()
        if options["loop"]:
            # systemd stops the unit with SIGTERM: finish the round, then exit cleanly.
            signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
        while True:
            alive, ended, failed = self.check_round()
            self.stdout.write(f"PSC sessions: {alive} alive, {ended} ended, {failed} unchecked")
            if not options["loop"] or stop.wait(options["interval"]):
                return

    def check_round(self) -> tuple[int, int, int]:
        config = psc_settings()
        if not config.enabled:
            return 0, 0, 0
        alive = ended = failed = 0
        for session in sessions_due(settings=config):
            try:
                if do_check_psc_session(session=session, settings=config):
                    alive += 1
                else:
                    ended += 1
            except RelaisError as error:  # PSC unreachable: not a logout, try next round
                failed += 1
                logger.warning("PSC session %s not checked: %s", session.pk, error.code)
        return alive, ended, failed
