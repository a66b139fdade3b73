"""Deployment checks (``manage.py check --deploy``), run by ``relais-migrate.service``
before any server process starts: a production that nobody could log into, or that
still carries the example's placeholders, does not start (docs/deployment.md)."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Info, Tags, Warning, register

PLACEHOLDER = "CHANGE-ME"


@register(Tags.security, deploy=True)
def check_production_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for name in sorted(os.environ):
        if name.startswith(("RELAIS_", "AWS_")) and PLACEHOLDER in os.environ[name]:
            messages.append(
                Error(
                    f"{name} still has the example's value ({PLACEHOLDER}).",
                    hint="Replace it in /etc/relais/relais.env (docs/configuration.md).",
                    id="relais.E001",
                )
            )
    psc = getattr(settings, "RELAIS_PSC", {})
    if not settings.RELAIS["DEV_LOGIN"] and not (psc.get("CLIENT_ID") and psc.get("CLIENT_SECRET")):
        messages.append(
            Warning(
                "Pro Santé Connect is not configured: nobody can log in.",
                hint="Set RELAIS_PSC_CLIENT_ID and RELAIS_PSC_CLIENT_SECRET (docs/identity.md).",
                id="relais.W001",
            )
        )
    if not settings.REDIS_URL:
        messages.append(
            Warning(
                "RELAIS_REDIS_URL is empty: server processes do not see each other's "
                "messages, and no push worker gets jobs.",
                hint="Point RELAIS_REDIS_URL at the Redis every process shares.",
                id="relais.W002",
            )
        )
    if not settings.RELAIS_PUSH.get("VAPID_PRIVATE_KEY"):
        messages.append(
            Info(
                "Web Push is off (no RELAIS_VAPID_PRIVATE_KEY): offline devices are not woken.",
                id="relais.I001",
            )
        )
    return messages
