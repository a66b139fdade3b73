"""A token bucket: ``rate`` tokens per second, holding at most ``burst``."""

from __future__ import annotations

from chat.clock import Clock


class TokenBucket:
    def __init__(self, *, rate: float, burst: float, clock: Clock) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._tokens = burst
        self._updated = clock.monotonic()

    def take(self) -> bool:
        """Spend one token; False when the bucket is empty."""
        now = self._clock.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False
