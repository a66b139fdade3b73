"""One error envelope for every REST error, with the WebSocket protocol's codes:

``{"error": {"code": "...", "message": "...", "message_fr": "...", "fields": {...}}}``
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from chat.errors import MESSAGES, ErrorCode, RelaisError

_STATUS = {
    ErrorCode.NOT_MEMBER: status.HTTP_404_NOT_FOUND,
    ErrorCode.NOT_FOUND: status.HTTP_404_NOT_FOUND,
    ErrorCode.NOT_ADMIN: status.HTTP_403_FORBIDDEN,
    ErrorCode.CONFLICT: status.HTTP_409_CONFLICT,
    ErrorCode.RATE_LIMITED: status.HTTP_429_TOO_MANY_REQUESTS,
    ErrorCode.AUTH_FAILED: status.HTTP_401_UNAUTHORIZED,
    ErrorCode.NOT_AUTHENTICATED: status.HTTP_401_UNAUTHORIZED,
    ErrorCode.SERVER_BUSY: status.HTTP_503_SERVICE_UNAVAILABLE,
    ErrorCode.INTERNAL: status.HTTP_500_INTERNAL_SERVER_ERROR,
    ErrorCode.ATTACHMENT_TOO_LARGE: status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    ErrorCode.QUOTA_EXCEEDED: status.HTTP_507_INSUFFICIENT_STORAGE,
    ErrorCode.ATTACHMENT_NOT_FOUND: status.HTTP_404_NOT_FOUND,
    ErrorCode.UPLOAD_INCOMPLETE: status.HTTP_409_CONFLICT,
    ErrorCode.ATTACHMENT_HASH_MISMATCH: status.HTTP_422_UNPROCESSABLE_ENTITY,
    ErrorCode.STALE_STATE: status.HTTP_409_CONFLICT,
    ErrorCode.PUSH_DISABLED: status.HTTP_404_NOT_FOUND,
}

_DRF_CODES: list[tuple[type[exceptions.APIException], ErrorCode]] = [
    (exceptions.NotAuthenticated, ErrorCode.NOT_AUTHENTICATED),
    (exceptions.AuthenticationFailed, ErrorCode.AUTH_FAILED),
    (exceptions.PermissionDenied, ErrorCode.NOT_ADMIN),
    (exceptions.NotFound, ErrorCode.NOT_FOUND),
    (exceptions.Throttled, ErrorCode.RATE_LIMITED),
    (exceptions.ValidationError, ErrorCode.BAD_REQUEST),
    (exceptions.ParseError, ErrorCode.BAD_REQUEST),
    (exceptions.UnsupportedMediaType, ErrorCode.BAD_REQUEST),
    (exceptions.MethodNotAllowed, ErrorCode.BAD_REQUEST),
]


def error_body(code: ErrorCode, message: str, message_fr: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code.value, "message": message, "message_fr": message_fr, **extra}}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, RelaisError):
        return Response(
            error_body(exc.code, exc.message, exc.message_fr),
            status=_STATUS.get(exc.code, status.HTTP_400_BAD_REQUEST),
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = next(
        (mapped for kind, mapped in _DRF_CODES if isinstance(exc, kind)), ErrorCode.BAD_REQUEST
    )
    english, french = MESSAGES[code]
    extra: dict[str, Any] = {}
    if isinstance(exc, exceptions.ValidationError):
        extra["fields"] = exc.detail
    elif isinstance(exc, exceptions.APIException):
        english = str(exc.detail)
    response.data = error_body(code, english, french, **extra)
    return response
