"""Log lines: JSON with the request or connection id, and redacted."""

from __future__ import annotations

import json
import logging
import secrets

from observability.logs import REDACTED, REQUEST_CONTEXT, JsonFormatter, PlainFormatter, redact


def record(message: str, *args: object, exc_info: bool = False) -> logging.LogRecord:
    info = None
    if exc_info:
        try:
            raise ValueError("refused token=" + "t" * 40)
        except ValueError:
            import sys

            info = sys.exc_info()
    return logging.LogRecord("relais.test", logging.WARNING, __file__, 1, message, args, info)


def test_tokens_bodies_and_secrets_are_redacted():
    token = secrets.token_urlsafe(32)
    body = "gAEC" + secrets.token_urlsafe(120)
    text = (
        f"Authorization: Bearer {token} body {body} "
        f'password=hunter2 {{"refresh_token": "abc"}} code_verifier=xyz room 12 device 7'
    )
    redacted = redact(text)
    for secret in (token, body, "hunter2", '"abc"', "xyz"):
        assert secret not in redacted
    assert redacted.count(REDACTED) == 5
    # Short identifiers stay readable: that is what the logs are for.
    assert "room 12 device 7" in redacted
    assert redact("not_member for 810003456786") == "not_member for 810003456786"


def test_json_line_carries_the_request_id_and_no_secret():
    token = secrets.token_urlsafe(32)
    reset = REQUEST_CONTEXT.set(("request_id", "0123456789abcdef"))
    try:
        line = JsonFormatter().format(record("login for device %s with %s", 7, token))
    finally:
        REQUEST_CONTEXT.reset(reset)
    entry = json.loads(line)
    assert entry["request_id"] == "0123456789abcdef"
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "relais.test"
    assert entry["message"] == f"login for device 7 with {REDACTED}"
    assert token not in line


def test_json_line_redacts_the_traceback_and_extra_fields():
    item = record("failed", exc_info=True)
    item.relais = {"path": "/api/v1/rooms", "note": "Bearer " + "x" * 10}
    entry = json.loads(JsonFormatter().format(item))
    assert "ValueError" in entry["exception"]
    assert "t" * 40 not in entry["exception"]
    assert entry["path"] == "/api/v1/rooms"
    assert entry["note"] == f"Bearer {REDACTED}"
    assert "request_id" not in entry
    assert "connection_id" not in entry


def test_plain_lines_are_redacted_too():
    token = secrets.token_urlsafe(32)
    reset = REQUEST_CONTEXT.set(("connection_id", "abcdef0123456789"))
    try:
        line = PlainFormatter().format(record("auth %s", token))
    finally:
        REQUEST_CONTEXT.reset(reset)
    assert token not in line
    assert line.endswith(f"auth {REDACTED} [connection_id=abcdef0123456789]")


def test_websocket_handshake_and_connection_open_lines_are_dropped_and_other_lines_kept():
    import io
    import logging.config

    from django.conf import settings

    from observability.logs import logging_config

    config = logging_config(level="INFO", json_lines=True)
    stream = io.StringIO()
    config["handlers"]["console"]["stream"] = stream
    logging.config.dictConfig(config)
    try:
        uvicorn = logging.getLogger("uvicorn.error")
        uvicorn.info('%s - "WebSocket %s" [accepted]', "127.0.0.1:40000", "/ws/v1/?x=1")
        uvicorn.info('%s - "WebSocket %s" %d', "127.0.0.1:40001", "/ws/v1/", 403)
        uvicorn.info("Uvicorn running on %s", "http://127.0.0.1:8001")
        websockets = logging.getLogger("websockets.server")
        websockets.info("connection open")
        websockets.warning("a warning of the WebSocket library")
    finally:
        logging.config.dictConfig(settings.LOGGING)  # as the test run had it
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == [
        "Uvicorn running on http://127.0.0.1:8001",
        "a warning of the WebSocket library",
    ]
