"""What a server process does while PostgreSQL or Redis is away: say so once, keep count.

An outage used to write a traceback for every failed operation (megabytes per process
for a 30-second Redis outage). ``OutageLog`` writes one line when a dependency goes
down, a reminder while it stays down (every ``remind_seconds``, with the count so far),
and one line when it is back, with how long it was away and how many operations failed
(a user that sees no successes calls nothing: ``quiet_seconds`` without a failure then
ends the outage).

``UNAVAILABLE`` lists the exceptions that mean "the database cannot be reached" rather
than "this request is wrong": the message path answers them with ``server_busy`` (retry
with the same id) instead of ``internal``.
"""

from __future__ import annotations

import logging
import threading

import psycopg
from django.db import InterfaceError as DjangoInterfaceError
from django.db import OperationalError as DjangoOperationalError

from chat.clock import SYSTEM_CLOCK, Clock

UNAVAILABLE: tuple[type[Exception], ...] = (
    DjangoOperationalError,
    DjangoInterfaceError,
    psycopg.OperationalError,  # psycopg_pool.PoolTimeout included
    psycopg.InterfaceError,
    ConnectionError,
    TimeoutError,
)


def describe(error: BaseException) -> str:
    """One short line naming an error, never a traceback (no request data in it)."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:160]}" if text else type(error).__name__


class OutageLog:
    """The state of one dependency as this process sees it, logged on changes only."""

    def __init__(
        self,
        *,
        what: str,
        logger: logging.Logger,
        clock: Clock = SYSTEM_CLOCK,
        remind_seconds: float = 60.0,
        quiet_seconds: float = 30.0,
    ) -> None:
        self.what = what
        self._logger = logger
        self._clock = clock
        self._remind_seconds = remind_seconds
        self._quiet_seconds = quiet_seconds
        self._last_failure = 0.0
        self.down_since: float | None = None
        self.failures = 0
        self._next_reminder = 0.0
        self._lock = threading.Lock()  # REST throttles report from worker threads

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def failed(self, error: BaseException | None = None, *, count: bool = True) -> None:
        """Count a failed operation (``count=False``: a retry of our own, only noted);
        the first failure of an outage is logged, then a reminder now and then."""
        with self._lock:
            self._failed(error, count=count)

    def _failed(self, error: BaseException | None, *, count: bool) -> None:
        now = self._clock.monotonic()
        if self.down_since is not None and now - self._last_failure > self._quiet_seconds:
            # Nothing failed for a while: the last outage ended unannounced (a user of
            # this log that has no success to report), this is a new one.
            self._recovered(at=self._last_failure)
        self._last_failure = now
        if count:
            self.failures += 1
        if self.down_since is None:
            self.down_since = now
            self._next_reminder = now + self._remind_seconds
            self._logger.warning(
                "%s unavailable (%s); retrying",
                self.what,
                describe(error) if error is not None else "no answer",
            )
        elif now >= self._next_reminder:
            self._next_reminder = now + self._remind_seconds
            self._logger.warning(
                "%s still unavailable after %.0f s (%d failed operations so far)",
                self.what,
                now - self.down_since,
                self.failures,
            )

    def recovered(self) -> float | None:
        """Mark the dependency back; return how long it was away (None if it was not)."""
        if self.down_since is None:
            return None
        with self._lock:
            return self._recovered(at=self._clock.monotonic())

    def _recovered(self, *, at: float) -> float | None:
        if self.down_since is None:
            return None
        away = at - self.down_since
        self._logger.warning(
            "%s back after %.1f s (%d failed operations while away)",
            self.what,
            away,
            self.failures,
        )
        self.down_since = None
        self.failures = 0
        return away
