"""When to try a push again after 429, 5xx, a timeout or a network error.

Exponential backoff with jitter, so that after a push service outage the retries of
many subscriptions spread out instead of arriving together; and never sooner than the
push service's ``Retry-After``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from email.utils import parsedate_to_datetime

Jitter = Callable[[float], float]

# A push service asking for more than a day is not waited for longer than a day (the
# message's push is useless by then anyway); a longer number is not even parsed.
MAX_RETRY_AFTER = 86_400.0
MAX_DIGITS = 10


def equal_jitter(delay: float) -> float:
    """A random delay between ``delay / 2`` and ``delay`` ("equal jitter")."""
    return delay / 2 + random.uniform(0, delay / 2)  # noqa: S311  # spreading, not secrecy


def retry_delay(
    *,
    failures: int,
    base_seconds: float,
    max_seconds: float,
    retry_after: float | None,
    jitter: Jitter = equal_jitter,
) -> float:
    """Seconds to wait before the next attempt, after ``failures`` (≥ 1) failed ones.

    The exponential part is ``base · 2^(failures-1)``, capped at ``max_seconds``, then
    jittered; ``retry_after`` (already in seconds) is a floor.
    """
    exponential = min(max_seconds, base_seconds * 2 ** min(failures - 1, 62))
    delay = jitter(exponential)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def parse_retry_after(value: str | None, *, now_seconds: float) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date (RFC 9110 §10.2.3).

    None when absent or unreadable; never negative.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():  # str.isdigit alone admits "²" and other digits
        if len(text) > MAX_DIGITS:
            return MAX_RETRY_AFTER
        return min(float(int(text)), MAX_RETRY_AFTER)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        return None
    return min(MAX_RETRY_AFTER, max(0.0, moment.timestamp() - now_seconds))
