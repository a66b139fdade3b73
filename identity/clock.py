"""The time the identity code sees, so that tests can move it instead of sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

_now: list[Callable[[], float]] = [time.time]


def now_seconds() -> float:
    """Seconds since the Unix epoch."""
    return _now[-1]()


def now_datetime() -> datetime:
    return datetime.fromtimestamp(now_seconds(), tz=UTC)


@contextmanager
def use_clock(clock: Callable[[], float]) -> Iterator[None]:
    """Within the block, ``now_seconds()`` is ``clock()`` (tests only)."""
    _now.append(clock)
    try:
        yield
    finally:
        _now.remove(clock)
