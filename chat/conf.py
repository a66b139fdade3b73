"""The ``RELAIS`` settings namespace, read lazily so tests can override it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver


@dataclass(frozen=True)
class RelaisSettings:
    dev_login: bool
    redis_url: str
    redis_prefix: str
    max_frame_bytes: int
    max_body_bytes: int
    rate_per_second: int
    rate_burst: int
    flood_errors_before_close: int
    outbound_queue_limit: int
    backlog_page: int
    history_page_max: int
    auth_timeout_seconds: int
    store_timeout_seconds: int
    write_batch_max: int
    write_concurrency: int
    db_pool_size: int
    token_idle_seconds: int
    max_connections_per_device: int
    max_connections_per_address: int
    max_unauthenticated_per_address: int


@cache
def relais_settings() -> RelaisSettings:
    raw: dict[str, Any] = settings.RELAIS
    return RelaisSettings(**{key.lower(): value for key, value in raw.items()})


@receiver(setting_changed)
def _forget_cached_settings(*, setting: str, **_: Any) -> None:
    if setting == "RELAIS":
        relais_settings.cache_clear()
