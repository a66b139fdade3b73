"""The ``RELAIS_PSC`` settings namespace, read lazily so tests can override it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver


@dataclass(frozen=True)
class PscSettings:
    environment: str
    issuer: str
    authorization_endpoint: str
    client_id: str
    client_secret: str
    redirect_uri: str
    post_logout_redirect_uri: str
    client_redirect_uris: tuple[str, ...]
    session_check_seconds: int
    unknown_practitioner: str
    http_timeout_seconds: int
    login_timeout_seconds: int
    login_code_seconds: int

    @property
    def enabled(self) -> bool:
        return bool(self.client_id and self.client_secret)

    @property
    def sandbox(self) -> bool:
        return self.environment == "sandbox"

    @property
    def discovery_url(self) -> str:
        # PSC's non-standard path (not /.well-known/openid-configuration).
        return f"{self.issuer}/.well-known/wallet-openid-configuration"


@cache
def psc_settings() -> PscSettings:
    raw: dict[str, Any] = dict(settings.RELAIS_PSC)
    raw["CLIENT_REDIRECT_URIS"] = tuple(raw.get("CLIENT_REDIRECT_URIS", ()))
    return PscSettings(**{key.lower(): value for key, value in raw.items()})


@receiver(setting_changed)
def _forget_cached_settings(*, setting: str, **_: Any) -> None:
    if setting == "RELAIS_PSC":
        psc_settings.cache_clear()
