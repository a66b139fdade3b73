"""The ``RELAIS_TELEEXPERTISE`` settings namespace, read lazily and checked once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from server.environment import ConfigurationError

_DURATION = re.compile(r"^([1-9][0-9]{0,5})([mhd])$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class TeleexpertiseSettings:
    reminders_seconds: tuple[int, ...]  # before the deadline, largest first
    min_deadline_seconds: int
    max_deadline_seconds: int
    clock_interval_seconds: int


def parse_duration(text: str, *, variable: str) -> int:
    """``"30m"``, ``"24h"``, ``"2d"`` → seconds; ConfigurationError otherwise."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ConfigurationError(f"{variable}: {text!r} is not a duration such as 30m, 24h, 2d")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@cache
def teleexpertise_settings() -> TeleexpertiseSettings:
    raw: dict[str, Any] = settings.RELAIS_TELEEXPERTISE
    reminders = sorted(
        {
            parse_duration(item, variable="RELAIS_TELEEXPERTISE_REMINDERS")
            for item in raw["REMINDERS"]
        },
        reverse=True,
    )
    minimum = parse_duration(raw["MIN_DEADLINE"], variable="RELAIS_TELEEXPERTISE_MIN_DEADLINE")
    maximum = parse_duration(raw["MAX_DEADLINE"], variable="RELAIS_TELEEXPERTISE_MAX_DEADLINE")
    if maximum <= minimum:
        raise ConfigurationError(
            "RELAIS_TELEEXPERTISE_MAX_DEADLINE must be longer than "
            "RELAIS_TELEEXPERTISE_MIN_DEADLINE"
        )
    interval = int(raw["CLOCK_INTERVAL_SECONDS"])
    if interval < 1:
        raise ConfigurationError("RELAIS_TELEEXPERTISE_CLOCK_INTERVAL must be positive")
    return TeleexpertiseSettings(
        reminders_seconds=tuple(reminders),
        min_deadline_seconds=minimum,
        max_deadline_seconds=maximum,
        clock_interval_seconds=interval,
    )


@receiver(setting_changed)
def _forget_cached_settings(*, setting: str, **_: Any) -> None:
    if setting == "RELAIS_TELEEXPERTISE":
        teleexpertise_settings.cache_clear()
