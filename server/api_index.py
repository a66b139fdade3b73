"""``GET /api/`` and ``/api/v1/``: where things are, for someone exploring with curl."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def api_index(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "service": "Relais",
            "versions": {"v1": "/api/v1/"},
            "schema": "/api/v1/schema",
            "docs": "/api/v1/docs",
            "websocket": "/ws/v1/",
            "health": "/healthz",
            "authentication": (
                "Authorization: Bearer <device token>, from the Pro Santé Connect login "
                "(/api/v1/auth/psc/start) or, in development, POST /api/v1/auth/dev-login"
            ),
        }
    )
