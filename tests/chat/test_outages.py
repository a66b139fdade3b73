"""One log line per change of state of a dependency, with counts, never a flood."""

from __future__ import annotations

import logging

from chat.clock import ManualClock
from chat.outages import OutageLog


def test_an_outage_is_logged_when_it_starts_now_and_then_and_when_it_ends(caplog):
    clock = ManualClock()
    log = OutageLog(what="Redis (test)", logger=logging.getLogger("t"), clock=clock)
    with caplog.at_level(logging.WARNING, logger="t"):
        for _ in range(1000):  # a thousand failed operations in the first second
            log.failed(ConnectionError("refused\nsecond line"))
        for _ in range(6):  # still failing, every ten seconds
            clock.advance(10)
            log.failed(ConnectionError("refused"))
        clock.advance(2)
        log.failed(ConnectionError("refused"))
        assert log.recovered() == 62.0
        assert log.recovered() is None
    assert [r.getMessage() for r in caplog.records] == [
        "Redis (test) unavailable (ConnectionError: refused); retrying",
        "Redis (test) still unavailable after 60 s (1006 failed operations so far)",
        "Redis (test) back after 62.0 s (1007 failed operations while away)",
    ]


def test_a_new_outage_after_a_quiet_while_is_announced_again(caplog):
    clock = ManualClock()
    log = OutageLog(what="db", logger=logging.getLogger("t"), clock=clock, quiet_seconds=30)
    with caplog.at_level(logging.WARNING, logger="t"):
        log.failed(TimeoutError())
        clock.advance(3600)
        log.failed(TimeoutError())
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "db unavailable (TimeoutError); retrying",
        "db back after 0.0 s (1 failed operations while away)",
        "db unavailable (TimeoutError); retrying",
    ]
