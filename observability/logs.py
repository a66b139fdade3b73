"""Structured logs: one JSON object per line, with the request or connection id.

Relais never logs envelope bodies, tokens or health data on purpose. As a second line of
defence, every log line passes through ``redact``: a bearer token, a ``token=``-like
pair, and any run of 32 or more base64url characters (device tokens, envelope bodies,
keys, one-time codes) are replaced by ``[redacted]`` before the line is written.
Identifiers Relais does log (room and device numbers, RPPS numbers, error codes) are
far shorter. ``tests/server/test_logs.py`` and the production-shape test keep this
promise.
"""

from __future__ import annotations

import json
import logging
import re
import time
from contextvars import ContextVar
from typing import Any

# ("request_id" or "connection_id", the id) for the HTTP request or WebSocket connection
# being served; set by ``observability.asgi`` for everything that runs on its behalf.
REQUEST_CONTEXT: ContextVar[tuple[str, str] | None] = ContextVar("relais_request", default=None)

_SECRETS = re.compile(
    r"(?i)(bearer\s+)\S+"  # Authorization values
    r"|((?:token|secret|password|code_verifier|refresh_token|access_token|id_token)"
    r"[\"']?\s*[=:]\s*[\"']?)[^\s\"'&,;}]+"  # key=value and "key": "value" pairs
    r"|[A-Za-z0-9_\-]{32,}=*"  # long base64url runs: tokens, envelope bodies, keys
)
REDACTED = "[redacted]"


def _replace(match: re.Match[str]) -> str:
    prefix = match.group(1) or match.group(2)
    return f"{prefix}{REDACTED}" if prefix else REDACTED


def redact(text: str) -> str:
    """``text`` with tokens, secrets and long opaque strings replaced by ``[redacted]``."""
    return _SECRETS.sub(_replace, text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, request or
    connection id, process id, and the traceback of a logged exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "pid": record.process,
        }
        context = REQUEST_CONTEXT.get()
        if context is not None:
            entry[context[0]] = context[1]
        fields = getattr(record, "relais", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                entry.setdefault(key, redact(value) if isinstance(value, str) else value)
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class PlainFormatter(logging.Formatter):
    """Human-readable lines for development, redacted the same way."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = REQUEST_CONTEXT.get()
        if context is not None:
            line = f"{line} [{context[0]}={context[1]}]"
        return redact(line)


class WebSocketHandshakeFilter(logging.Filter):
    """Drops uvicorn's line for each WebSocket handshake (``"WebSocket /ws/v1/"
    [accepted]``): an access log line with its query string, one per connection and
    reconnection; the application logs each connection when it closes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith('%s - "WebSocket %s"'))


def logging_config(*, level: str, json_lines: bool) -> dict[str, Any]:
    """Django's LOGGING: everything (Django, uvicorn, Daphne, Relais) to stderr, in JSON
    lines or plain text, never request bodies."""
    formatter = "json" if json_lines else "plain"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": "observability.logs.JsonFormatter"},
            "plain": {"()": "observability.logs.PlainFormatter"},
        },
        "filters": {"no_handshakes": {"()": "observability.logs.WebSocketHandshakeFilter"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": formatter}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Never log request bodies: they may be envelopes or health metadata.
            "django.request": {"level": "ERROR"},
            # The ASGI servers' own lines, in the same format (their access logs are off:
            # nginx keeps the access log, and the application logs each request below).
            "uvicorn": {"handlers": ["console"], "level": level, "propagate": False},
            # Named here, or configuring "uvicorn" would turn it back on: its lines carry
            # query strings (one-time codes), and relais.requests logs each request.
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "uvicorn.error": {"level": level, "filters": ["no_handshakes"]},
            # The WebSocket library under uvicorn says "connection open" for each
            # connection and reconnection (a reconnect storm after an outage would be a
            # flood); its warnings and errors stay.
            "websockets.server": {"level": "WARNING"},
            "daphne": {"handlers": ["console"], "level": level, "propagate": False},
            # The message store logs a database outage once, when it starts and when it
            # ends (chat.outages); the pool would log each of its reconnection attempts.
            "psycopg.pool": {"level": "ERROR"},
        },
    }
