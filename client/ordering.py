"""A sender's messages in their order, and the ones that never came
(docs/protocol.md §10.6, "Order and loss").

The server numbers a room's envelopes, but it chooses that order: it could deliver
"ANNULÉ, ne pas injecter" before "Administrer 10 UI", or drop one message. So each
sender numbers its own messages in a room inside the encrypted content (``seq``: 1, 2,
3 … across all its sender keys, with its clock ``ts``). A receiver keeps, per sender
device, the highest number seen and the numbers skipped: a message arriving after a
later one of the same sender is flagged *late*; a number still missing after
``GAP_DELAY_MS`` is reported as a lost message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GAP_DELAY_MS = 60_000
MAX_TRACKED_GAPS = 1000

DeviceRef = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a message sits among its sender's: ``late`` if a later one came first;
    ``duplicate`` if that number was already seen (the sender reused it)."""

    late: bool
    duplicate: bool


class SenderOrder:
    """Per-room tracking, kept in the room's part of the key store:
    ``{"<national id>/<device>": {"last": n, "missing": {"k": first_noticed_ms}}}``."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    @staticmethod
    def _key(sender: DeviceRef) -> str:
        return f"{sender[0]}/{sender[1]}"

    def place(self, sender: DeviceRef, seq: int, now_ms: int) -> Placement:
        track = self.data.setdefault(self._key(sender), {"last": 0, "missing": {}})
        missing: dict[str, int] = track["missing"]
        if seq <= track["last"]:
            if str(seq) in missing:
                del missing[str(seq)]
                return Placement(late=True, duplicate=False)
            return Placement(late=False, duplicate=track["last"] > 0)
        if track["last"] > 0:  # the first message seen sets where this device starts
            for skipped in range(track["last"] + 1, seq):
                if len(missing) >= MAX_TRACKED_GAPS:
                    break
                missing[str(skipped)] = now_ms
        track["last"] = seq
        return Placement(late=False, duplicate=False)

    def overdue(self, now_ms: int) -> list[tuple[DeviceRef, int]]:
        """Messages still missing after the delay; each is reported once."""
        found: list[tuple[DeviceRef, int]] = []
        for key, track in self.data.items():
            national_id, device = key.rsplit("/", 1)
            for seq, noticed in list(track["missing"].items()):
                if now_ms - noticed >= GAP_DELAY_MS:
                    found.append(((national_id, int(device)), int(seq)))
                    del track["missing"][seq]
        return sorted(found)
