"""REST rate limits, shared by every server process (docs/api.md, "Rate limits").

Each limit is a sliding-window counter in Django's cache (Redis when configured, so a
budget is the same whichever process answers): the count of the current fixed window
plus the previous window's count weighted by how much of it still overlaps the last
``period`` seconds. Two keys per client and scope; the increment is atomic in Redis,
so concurrent requests in several processes cannot all slip through on one reading.

DRF's own ``SimpleRateThrottle`` keeps a list of timestamps that it reads, changes and
writes back: two processes interleaving lose each other's requests.

A request a limit refuses is not counted in that limit. If the cache cannot be reached,
the request is let through (and logged): an unavailable Redis must not lock every user
out of the API.

The WebSocket does not come here: its frames are limited per connection, in memory
(``chat.ratelimit``), with no cache round trip per frame.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, ClassVar

from django.core.cache import cache
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from chat.clock import SYSTEM_CLOCK, Clock
from chat.outages import OutageLog
from chat.services.devices import DeviceIdentity

if TYPE_CHECKING:  # rest_framework.views imports this module (its default throttles)
    from rest_framework.request import Request
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# One line when the cache goes away and one when it is back, not one per request.
_cache_outage = OutageLog(what="Redis (REST rate limits, not checked meanwhile)", logger=logger)


def parse_rate(rate: str) -> tuple[int, int]:
    """``"30/minute"`` → (30, 60). ValueError for anything else."""
    count, _, period = rate.partition("/")
    seconds = _PERIODS.get(period[:1])
    if not count.isdigit() or seconds is None or int(count) < 1:
        raise ValueError(f"not a rate: {rate!r} (expected e.g. 30/minute)")
    return int(count), seconds


class SharedRateThrottle(BaseThrottle):
    """``limit`` requests per ``period`` for one client (``identify``) in one ``scope``.

    The rate is ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope]``, read at each
    request so a settings change applies at once.
    """

    scope: ClassVar[str]
    clock: ClassVar[Clock] = SYSTEM_CLOCK  # wall time: shared by every process

    def __init__(self) -> None:
        self._wait: float | None = None

    def identify(self, request: Request) -> str | None:
        """Who is counted, or None when this limit does not apply to the request."""
        raise NotImplementedError

    def allow_request(self, request: Request, view: APIView) -> bool:
        client = self.identify(request)
        if client is None:
            return True
        limit, period = parse_rate(str(api_settings.DEFAULT_THROTTLE_RATES[self.scope]))
        now = self.clock.now_ms() / 1000
        window = int(now // period)
        current = f"rate:{self.scope}:{client}:{window}"
        previous = f"rate:{self.scope}:{client}:{window - 1}"
        elapsed = now - window * period
        try:
            cache.add(current, 0, timeout=2 * period + 1)
            count = cache.incr(current)
            before = int(cache.get(previous, 0))
        except Exception as error:
            _cache_outage.failed(error)
            return True
        _cache_outage.recovered()
        overlap = 1 - elapsed / period
        if before * overlap + count <= limit:
            return True
        try:
            cache.decr(current)  # a refused request does not count
        except Exception as error:
            _cache_outage.failed(error)
        self._wait = _wait_seconds(
            limit=limit, period=period, elapsed=elapsed, before=before, count=count - 1
        )
        return False

    def wait(self) -> float | None:
        return self._wait

    def client_ip(self, request: Request) -> str:
        # REMOTE_ADDR as the ASGI server set it (NUM_PROXIES = 0: see settings).
        return self.get_ident(request)


def _wait_seconds(*, limit: int, period: int, elapsed: float, before: int, count: int) -> int:
    """Whole seconds until one more request fits under ``limit``.

    ``count`` requests were counted in the current window, which began ``elapsed``
    seconds ago; ``before`` in the previous one.
    """
    if count + 1 > limit:
        # Only in a later window: there the current count weighs ``overlap``.
        needed_overlap = (limit - 1) / count if count else 1.0
        wait = (period - elapsed) + period * max(0.0, 1 - needed_overlap)
    else:
        # The previous window's weight must shrink until ``before * overlap`` fits.
        needed_overlap = (limit - 1 - count) / before if before else 1.0
        wait = period * (1 - needed_overlap) - elapsed
    return max(1, math.ceil(wait))


class IpThrottle(SharedRateThrottle):
    """Counts every request by client address."""

    def identify(self, request: Request) -> str | None:
        return self.client_ip(request)


class DeviceScopedThrottle(SharedRateThrottle):
    """Counts authenticated requests by device; anonymous ones are not counted here."""

    def identify(self, request: Request) -> str | None:
        identity = request.auth
        if not isinstance(identity, DeviceIdentity):
            return None
        return str(identity.device_id)


class AnonymousIpThrottle(SharedRateThrottle):
    """Every request without a device token, by client address (``RELAIS_RATE_ANON``)."""

    scope = "anon"

    def identify(self, request: Request) -> str | None:
        if isinstance(request.auth, DeviceIdentity):
            return None
        return self.client_ip(request)


class DeviceThrottle(DeviceScopedThrottle):
    """Every authenticated request, by device (``RELAIS_RATE_USER``)."""

    scope = "user"


class LoginIpThrottle(IpThrottle):
    scope = "login_ip"


class SendDeviceThrottle(DeviceScopedThrottle):
    scope = "send_device"


class SendIpThrottle(IpThrottle):
    scope = "send_ip"


class UploadDeviceThrottle(DeviceScopedThrottle):
    scope = "upload_device"


class UploadIpThrottle(IpThrottle):
    scope = "upload_ip"


class SearchDeviceThrottle(DeviceScopedThrottle):
    scope = "search_device"


class SearchIpThrottle(IpThrottle):
    scope = "search_ip"


# ``throttle_classes`` of the operations with their own limits, on top of the defaults
# (REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"]).
DEFAULTS: list[type[BaseThrottle]] = [AnonymousIpThrottle, DeviceThrottle]
LOGIN: list[type[BaseThrottle]] = [*DEFAULTS, LoginIpThrottle]
SEND: list[type[BaseThrottle]] = [*DEFAULTS, SendDeviceThrottle, SendIpThrottle]
UPLOAD: list[type[BaseThrottle]] = [*DEFAULTS, UploadDeviceThrottle, UploadIpThrottle]
SEARCH: list[type[BaseThrottle]] = [*DEFAULTS, SearchDeviceThrottle, SearchIpThrottle]
