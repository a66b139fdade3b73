"""The ``RELAIS_PUSH`` settings namespace, read lazily and checked once.

Web Push is enabled when ``RELAIS_VAPID_PRIVATE_KEY`` is set. A wrong value stops the
start with a message naming the variable (``PushConfig.ready`` reads these settings).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from push.vapid import VapidKey, check_subject, load_private_key
from server.environment import ConfigurationError


@dataclass(frozen=True)
class PushSettings:
    vapid: VapidKey | None
    vapid_subject: str
    endpoint_hosts: tuple[str, ...]
    allow_http_endpoints: bool
    ttl_seconds: int
    request_timeout_seconds: float
    max_attempts: int
    backoff_base_seconds: float
    backoff_max_seconds: float
    concurrency: int
    stream_maxlen: int
    worker_name: str
    rate_device: str
    rate_ip: str

    @property
    def enabled(self) -> bool:
        return self.vapid is not None


def _positive(raw: dict[str, Any], key: str, variable: str) -> Any:
    value = raw[key]
    if value <= 0:
        raise ConfigurationError(f"{variable} must be positive, not {value!r}")
    return value


@cache
def push_settings() -> PushSettings:
    raw: dict[str, Any] = settings.RELAIS_PUSH
    private_key = str(raw["VAPID_PRIVATE_KEY"]).strip()
    subject = str(raw["VAPID_SUBJECT"]).strip()
    vapid = None
    if private_key:
        vapid = load_private_key(private_key, variable="RELAIS_VAPID_PRIVATE_KEY")
        if not subject:
            raise ConfigurationError(
                "RELAIS_VAPID_SUBJECT must be set with RELAIS_VAPID_PRIVATE_KEY "
                "(a mailto: address or an https:// origin where push services can reach you)"
            )
        check_subject(subject, variable="RELAIS_VAPID_SUBJECT")
    ttl = _positive(raw, "TTL_SECONDS", "RELAIS_PUSH_TTL")
    if ttl > 28 * 24 * 3600:
        raise ConfigurationError("RELAIS_PUSH_TTL must be at most 28 days (2419200 seconds)")
    return PushSettings(
        vapid=vapid,
        vapid_subject=subject,
        endpoint_hosts=tuple(host.lower() for host in raw["ENDPOINT_HOSTS"]),
        allow_http_endpoints=bool(raw["ALLOW_HTTP_ENDPOINTS"]),
        ttl_seconds=ttl,
        request_timeout_seconds=_positive(raw, "REQUEST_TIMEOUT_SECONDS", "RELAIS_PUSH_TIMEOUT"),
        max_attempts=_positive(raw, "MAX_ATTEMPTS", "RELAIS_PUSH_MAX_ATTEMPTS"),
        backoff_base_seconds=_positive(raw, "BACKOFF_BASE_SECONDS", "RELAIS_PUSH_BACKOFF_BASE"),
        backoff_max_seconds=_positive(raw, "BACKOFF_MAX_SECONDS", "RELAIS_PUSH_BACKOFF_MAX"),
        concurrency=_positive(raw, "CONCURRENCY", "RELAIS_PUSH_CONCURRENCY"),
        stream_maxlen=_positive(raw, "STREAM_MAXLEN", "RELAIS_PUSH_STREAM_MAXLEN"),
        worker_name=str(raw["WORKER_NAME"]),
        rate_device=str(raw["RATE_DEVICE"]),
        rate_ip=str(raw["RATE_IP"]),
    )


@receiver(setting_changed)
def _forget_cached_settings(*, setting: str, **_: Any) -> None:
    if setting == "RELAIS_PUSH":
        push_settings.cache_clear()
