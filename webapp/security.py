"""The headers every response of the web app carries (docs/web.md, "Content-Security-Policy").

The app's code comes only from this server (no inline script, no CDN, no ``eval``), and
it talks only to this server: its REST API and its WebSocket on the same host.
"""

from __future__ import annotations

from typing import TypeVar

from django.http import HttpRequest, HttpResponseBase

R = TypeVar("R", bound=HttpResponseBase)


def content_security_policy(request: HttpRequest) -> str:
    host = request.get_host()  # already checked against ALLOWED_HOSTS
    websocket = f"wss://{host}" if request.is_secure() else f"ws://{host}"
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            # Photos and QR codes are drawn from decrypted bytes held by the page.
            "img-src 'self' blob: data:",
            "media-src 'self' blob:",
            f"connect-src 'self' {websocket}",
            "manifest-src 'self'",
            "worker-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ]
    )


def secure(response: R, request: HttpRequest) -> R:
    response["Content-Security-Policy"] = content_security_policy(request)
    response["Referrer-Policy"] = "no-referrer"
    response["X-Content-Type-Options"] = "nosniff"
    response["Cross-Origin-Opener-Policy"] = "same-origin"
    response["Permissions-Policy"] = "camera=(self), microphone=(), geolocation=()"
    return response
