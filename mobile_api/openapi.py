"""The OpenAPI 3 schema of the REST API (drf-spectacular): authentication, the error
envelope, and the error responses every operation can give.

Views declare what they return and the errors particular to them (``errors(404, 409)``
in ``extend_schema(responses=...)``); ``add_error_responses`` adds those every operation
shares, so the schema lists every status a client can meet (docs/api.md).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from chat.errors import ErrorCode

ERROR_COMPONENT = "ErrorEnvelope"
ERROR_CODES = [code.value for code in ErrorCode]  # the schema's ErrorCodeEnum
SECURITY_SCHEME = "deviceToken"

# Why each status is returned, for the schema's descriptions.
_STATUS_REASONS = {
    400: "Invalid request (`bad_request`, or the operation's own code); `fields` names the "
    "fields at fault.",
    401: "Missing, unknown or revoked device token (`not_authenticated`, `auth_failed`).",
    403: "Not allowed (`not_admin`, ...).",
    404: "Not found, or not visible to you (`not_found`, `not_member`, ...).",
    409: "Conflicts with the current state (`conflict`, `stale_state`, ...).",
    413: "Too large (`body_too_large`: a JSON body over 256 KiB, an envelope over "
    "RELAIS_MAX_BODY_BYTES; `attachment_too_large`).",
    415: "The body must be `application/json`.",
    416: "The requested range is outside the attachment.",
    422: "The content does not match its announced hash.",
    429: "Rate limited (`rate_limited`); wait `Retry-After` seconds.",
    502: "Pro Santé Connect refused or could not be reached (`psc_provider_error`).",
    503: "The server is busy (`server_busy`): retry with the same message id.",
    507: "Your attachment storage quota is full (`quota_exceeded`).",
}


class ErrorDetailSerializer(serializers.Serializer[None]):
    code = serializers.ChoiceField(
        choices=ERROR_CODES,
        help_text="Stable code to branch on; shared with the WebSocket protocol.",
    )
    message = serializers.CharField(help_text="For people, in English.")
    message_fr = serializers.CharField(help_text="For people, in French.")
    # DRF's metaclass moves declared fields out of the class, so this does not shadow
    # Serializer.fields; the stubs cannot know.
    fields = serializers.JSONField(  # type: ignore[assignment]
        required=False, help_text="Validation errors by field name (with `bad_request`)."
    )
    retry_after = serializers.IntegerField(
        required=False, help_text="Seconds to wait (with `rate_limited`); as `Retry-After`."
    )


class ErrorEnvelopeSerializer(serializers.Serializer[None]):
    error = ErrorDetailSerializer()


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """Error responses of an operation, for ``extend_schema(responses={...})``."""
    return {
        status: OpenApiResponse(ErrorEnvelopeSerializer, description=_STATUS_REASONS[status])
        for status in statuses
    }


def browser_errors(*statuses: int) -> dict[tuple[int, str], OpenApiResponse]:
    """Error responses of an operation a browser opens: an HTML page in French and
    English for a browser (``Accept: text/html``), the JSON envelope otherwise."""
    answers: dict[tuple[int, str], OpenApiResponse] = {}
    for status in statuses:
        answers[(status, "application/json")] = OpenApiResponse(
            ErrorEnvelopeSerializer, description=_STATUS_REASONS[status]
        )
        answers[(status, "text/html")] = OpenApiResponse(
            OpenApiTypes.STR, description=_STATUS_REASONS[status] + " A page, for a browser."
        )
    return answers


class DeviceTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "mobile_api.authentication.DeviceTokenAuthentication"
    name = SECURITY_SCHEME

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A device token from `auth/psc/token` (Pro Santé Connect) or, "
            "in development, `auth/dev-login`. One per device; revoked at logout.",
        }


def _error_ref() -> dict[str, Any]:
    return {
        "description": "",
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}}
        },
    }


def add_error_responses(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """Postprocessing hook: the error responses every operation shares.

    400 and 429 everywhere (validation, rate limits); 401 where a device token is
    required; 413 and 415 where a JSON body is read (larger than the server reads, or
    not JSON). An operation's own errors come from its
    ``extend_schema``.
    """
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            shared = [400, 429]
            if any(SECURITY_SCHEME in requirement for requirement in operation.get("security", [])):
                shared.append(401)
            body = operation.get("requestBody", {}).get("content", {})
            if "application/json" in body:
                shared += [413, 415]
            responses = operation["responses"]
            for status in shared:
                if str(status) not in responses:
                    response = _error_ref()
                    response["description"] = _STATUS_REASONS[status]
                    responses[str(status)] = response
    return result
