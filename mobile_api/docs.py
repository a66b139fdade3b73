"""The OpenAPI schema (``GET /api/v1/schema``) and its interactive page
(``GET /api/v1/docs``, Swagger UI).

Swagger UI's files come from drf-spectacular-sidecar through ``STATIC_URL``: the page
loads nothing from elsewhere, so it works on a network without internet and under a
strict Content-Security-Policy, which the page sets for itself (no inline script or
style: the start-up script is served apart, by the same view, at ``?script=``).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerSplitView
from rest_framework.request import Request
from rest_framework.response import Response

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)


class ApiSchemaView(SpectacularJSONAPIView):
    """The OpenAPI 3 schema, as JSON; public (it describes, it does not reveal)."""


class ApiDocsView(SpectacularSwaggerSplitView):
    """Swagger UI over the schema, with every file served by this server."""

    template_name = "mobile_api/swagger_ui.html"
    title = "Relais API"

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response["Referrer-Policy"] = "no-referrer"
        return response
