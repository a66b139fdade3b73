"""Reading settings from environment variables (12-factor).

Every variable Relais reads is named ``RELAIS_*`` and documented in ``docs/configuration.md``.
Invalid values stop the start-up with a message naming the variable, instead of running
with a silently wrong configuration.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit


class ConfigurationError(RuntimeError):
    """A RELAIS_* environment variable has an invalid value."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigurationError(f"{name} must be 0 or 1, not {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as error:
        raise ConfigurationError(f"{name} must be an integer, not {raw!r}") from error


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


@dataclass(frozen=True)
class DatabaseUrl:
    """A parsed ``RELAIS_DATABASE_URL`` (``postgres://`` or ``sqlite:///``)."""

    engine: str
    settings: dict[str, Any]


def parse_database_url(url: str, *, base_dir: Path) -> DatabaseUrl:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:///relative/to/project.sqlite3 or sqlite:////absolute/path.sqlite3
        raw_path = unquote(parts.path[1:])
        if not raw_path:
            raise ConfigurationError("RELAIS_DATABASE_URL: sqlite:/// needs a file path")
        path = Path(raw_path) if Path(raw_path).is_absolute() else base_dir / raw_path
        return DatabaseUrl(
            engine="sqlite",
            settings={
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(path),
                "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
            },
        )
    if parts.scheme in {"postgres", "postgresql"}:
        return DatabaseUrl(
            engine="postgresql",
            settings={
                "ENGINE": "django.db.backends.postgresql",
                "NAME": unquote(parts.path.lstrip("/")) or "relais",
                "USER": unquote(parts.username or ""),
                "PASSWORD": unquote(parts.password or ""),
                "HOST": parts.hostname or "",
                "PORT": str(parts.port or ""),
                "CONN_MAX_AGE": 60,
                "CONN_HEALTH_CHECKS": True,
            },
        )
    raise ConfigurationError(
        f"RELAIS_DATABASE_URL must start with postgres:// or sqlite:///, not {parts.scheme!r}"
    )
