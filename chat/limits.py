"""How many WebSockets one device, and one client address, may hold on a server process.

Without a ceiling, one stolen token could open a thousand sockets, and one address could
park hundreds of sockets that never authenticate. Each server process counts its own
connections (docs/protocol.md §7): per client address (all of them, and those not
authenticated yet) and per device. The address is the one the ASGI server gives
(uvicorn resolves the trusted proxy's ``X-Forwarded-For``); nginx adds its own
per-address ceiling in front (docs/deployment.md).
"""

from __future__ import annotations

import asyncio
import weakref
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from chat.conf import relais_settings


@dataclass
class ConnectionCounts:
    """This process's open WebSockets, by address and by device."""

    by_address: Counter[str] = field(default_factory=Counter)
    unauthenticated: Counter[str] = field(default_factory=Counter)
    by_device: Counter[int] = field(default_factory=Counter)

    def open(self, address: str) -> bool:
        """Count a new socket; False (and nothing counted) when the address is at its
        ceiling of sockets or of sockets not authenticated yet."""
        settings = relais_settings()
        if (
            self.by_address[address] >= settings.max_connections_per_address
            or self.unauthenticated[address] >= settings.max_unauthenticated_per_address
        ):
            return False
        self.by_address[address] += 1
        self.unauthenticated[address] += 1
        return True

    def authenticate(self, address: str, device_id: int) -> bool:
        """Move a counted socket to its device; False (nothing moved) when the device
        already holds its ceiling of sockets on this process."""
        if self.by_device[device_id] >= relais_settings().max_connections_per_device:
            return False
        _decrement(self.unauthenticated, address)
        self.by_device[device_id] += 1
        return True

    def close(self, address: str, device_id: int | None) -> None:
        """Forget a counted socket (``device_id``: the device it was moved to, if any)."""
        _decrement(self.by_address, address)
        if device_id is None:
            _decrement(self.unauthenticated, address)
        else:
            _decrement(self.by_device, device_id)


def _decrement(counter: Counter[Any], key: object) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


_counts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ConnectionCounts] = (
    weakref.WeakKeyDictionary()
)


def connection_counts() -> ConnectionCounts:
    """The running loop's counts (one per server process)."""
    loop = asyncio.get_running_loop()
    counts = _counts.get(loop)
    if counts is None:
        counts = _counts[loop] = ConnectionCounts()
    return counts
