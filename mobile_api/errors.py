"""One error envelope for every REST error, with the WebSocket protocol's codes:

``{"error": {"code": "...", "message": "...", "message_fr": "...", "fields": {...}}}``
"""

from __future__ import annotations

import logging
import math
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from chat.errors import MESSAGES, ErrorCode, RelaisError
from chat.outages import UNAVAILABLE, OutageLog
from observability.metrics import count_error

_database_outage = OutageLog(
    what="PostgreSQL (REST requests answered server_busy)", logger=logging.getLogger(__name__)
)

# Every code has its status here (tests/mobile_api/test_errors.py checks that none is
# missing). Codes only the WebSocket protocol sends still get one, for clients that
# share their handling.
_STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_JSON: status.HTTP_400_BAD_REQUEST,
    ErrorCode.BAD_FRAME: status.HTTP_400_BAD_REQUEST,
    ErrorCode.UNKNOWN_TYPE: status.HTTP_400_BAD_REQUEST,
    ErrorCode.FRAME_TOO_LARGE: status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    ErrorCode.BODY_TOO_LARGE: status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    ErrorCode.NOT_AUTHENTICATED: status.HTTP_401_UNAUTHORIZED,
    ErrorCode.ALREADY_AUTHENTICATED: status.HTTP_409_CONFLICT,
    ErrorCode.AUTH_FAILED: status.HTTP_401_UNAUTHORIZED,
    # Not a member looks like a missing room: the answer does not reveal that it exists.
    ErrorCode.NOT_MEMBER: status.HTTP_404_NOT_FOUND,
    ErrorCode.NOT_ADMIN: status.HTTP_403_FORBIDDEN,
    ErrorCode.NOT_FOUND: status.HTTP_404_NOT_FOUND,
    ErrorCode.BAD_SEQUENCE: status.HTTP_400_BAD_REQUEST,
    ErrorCode.BAD_REQUEST: status.HTTP_400_BAD_REQUEST,
    ErrorCode.CONFLICT: status.HTTP_409_CONFLICT,
    ErrorCode.RATE_LIMITED: status.HTTP_429_TOO_MANY_REQUESTS,
    ErrorCode.TOO_MANY_CONNECTIONS: status.HTTP_429_TOO_MANY_REQUESTS,
    ErrorCode.SERVER_BUSY: status.HTTP_503_SERVICE_UNAVAILABLE,
    ErrorCode.INTERNAL: status.HTTP_500_INTERNAL_SERVER_ERROR,
    ErrorCode.ATTACHMENT_TOO_LARGE: status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    ErrorCode.QUOTA_EXCEEDED: status.HTTP_507_INSUFFICIENT_STORAGE,
    ErrorCode.ATTACHMENT_NOT_FOUND: status.HTTP_404_NOT_FOUND,
    ErrorCode.UPLOAD_PART_INVALID: status.HTTP_400_BAD_REQUEST,
    ErrorCode.UPLOAD_INCOMPLETE: status.HTTP_409_CONFLICT,
    ErrorCode.ATTACHMENT_HASH_MISMATCH: status.HTTP_422_UNPROCESSABLE_ENTITY,
    ErrorCode.BAD_STATE_EVENT: status.HTTP_400_BAD_REQUEST,
    ErrorCode.STALE_STATE: status.HTTP_409_CONFLICT,
    # The event names a key the log does not certify (yet, or any more): certify first.
    ErrorCode.KEY_NOT_CERTIFIED: status.HTTP_409_CONFLICT,
    ErrorCode.BAD_KEYS: status.HTTP_400_BAD_REQUEST,
    # A feature this server does not offer answers as if the URL did not exist.
    ErrorCode.PUSH_DISABLED: status.HTTP_404_NOT_FOUND,
    ErrorCode.BAD_PUSH_SUBSCRIPTION: status.HTTP_400_BAD_REQUEST,
    ErrorCode.PSC_NOT_CONFIGURED: status.HTTP_404_NOT_FOUND,
    ErrorCode.PSC_STATE_MISMATCH: status.HTTP_400_BAD_REQUEST,
    ErrorCode.PSC_NONCE_MISMATCH: status.HTTP_400_BAD_REQUEST,
    ErrorCode.PSC_ACR_INSUFFICIENT: status.HTTP_403_FORBIDDEN,
    # Pro Santé Connect, upstream, answered something unusable or nothing at all.
    ErrorCode.PSC_TOKEN_INVALID: status.HTTP_502_BAD_GATEWAY,
    ErrorCode.PSC_TOKEN_EXPIRED: status.HTTP_401_UNAUTHORIZED,
    ErrorCode.PSC_PROVIDER_ERROR: status.HTTP_502_BAD_GATEWAY,
    ErrorCode.PSC_LOGIN_EXPIRED: status.HTTP_400_BAD_REQUEST,
    ErrorCode.PSC_IDENTITY_REFUSED: status.HTTP_403_FORBIDDEN,
    ErrorCode.PSC_SESSION_ENDED: status.HTTP_401_UNAUTHORIZED,
    ErrorCode.NOT_IN_DIRECTORY: status.HTTP_403_FORBIDDEN,
    # Téléexpertise: a step out of order conflicts with the state; a role or a
    # profession that may never take it is forbidden.
    ErrorCode.TRANSITION_REFUSED: status.HTTP_409_CONFLICT,
    ErrorCode.ROLE_REFUSED: status.HTTP_403_FORBIDDEN,
    ErrorCode.REQUIS_NOT_ELIGIBLE: status.HTTP_403_FORBIDDEN,
    ErrorCode.BILLING_LIMIT_REACHED: status.HTTP_409_CONFLICT,
}


def http_status(code: ErrorCode) -> int:
    """The HTTP status of a REST answer with this code."""
    return _STATUS[code]


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
    count_error("rest", code.value)
    return {"error": {"code": code.value, "message": message, "message_fr": message_fr, **extra}}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, UNAVAILABLE):
        # The database is away: retry later (503), not a bug (500); said once in the log.
        _database_outage.failed(exc)
        exc = RelaisError(ErrorCode.SERVER_BUSY)
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        exc = _anonymous_budget(exc, context)
    if isinstance(exc, RelaisError):
        return Response(error_body(exc.code, exc.message, exc.message_fr), status=_STATUS[exc.code])
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = next(
        (mapped for kind, mapped in _DRF_CODES if isinstance(exc, kind)), ErrorCode.BAD_REQUEST
    )
    english, french = _messages(exc, code, context)
    extra: dict[str, Any] = {}
    if isinstance(exc, exceptions.ValidationError):
        # In the request's language (Accept-Language; French by default).
        extra["fields"] = exc.detail
    elif isinstance(exc, exceptions.Throttled):
        extra["retry_after"] = math.ceil(getattr(exc, "wait", None) or 1)
    response.data = error_body(code, english, french, **extra)
    return response


def _anonymous_budget(exc: exceptions.APIException, context: dict[str, Any]) -> Exception:
    """A request refused for want of a valid token counts against its address's
    anonymous budget (``RELAIS_RATE_ANON``), like every request without a token: DRF
    checks throttles only after authentication and permissions, so without this,
    guessing tokens or hammering an operation unauthenticated would cost nothing."""
    from mobile_api.throttling import AnonymousIpThrottle

    request, view = context.get("request"), context.get("view")
    if request is None or view is None:
        return exc
    throttle = AnonymousIpThrottle()
    if throttle.allow_request(request, view):
        return exc
    return exceptions.Throttled(wait=throttle.wait())


def _messages(exc: Exception, code: ErrorCode, context: dict[str, Any]) -> tuple[str, str]:
    """English and French, whatever language DRF rendered its own detail in."""
    if isinstance(exc, exceptions.MethodNotAllowed):
        request = context.get("request")
        method = str(getattr(request, "method", "")).upper()[:16]
        return (
            f"Method {method} is not allowed on this URL.",
            f"La méthode {method} n'est pas permise sur cette URL.",
        )
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return (
            "Send the body as application/json.",
            "Envoyez le corps de la requête en application/json.",
        )
    if isinstance(exc, exceptions.ParseError):
        return ("The body is not valid JSON.", "Le corps de la requête n'est pas du JSON valide.")
    if isinstance(exc, exceptions.NotAcceptable):
        return (
            "This API answers in application/json only.",
            "Cette API ne répond qu'en application/json.",
        )
    return MESSAGES[code]


# Django's own error pages, for requests that fail before a REST view answers (an
# unknown URL, a body over DATA_UPLOAD_MAX_MEMORY_SIZE): the same envelope under /api/,
# Django's pages elsewhere (the admin). Installed in server/urls.py.


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def _json_error(code: ErrorCode, status_code: int) -> JsonResponse:
    english, french = MESSAGES[code]
    return JsonResponse(error_body(code, english, french), status=status_code)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not _is_api(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return _json_error(ErrorCode.BODY_TOO_LARGE, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    return _json_error(ErrorCode.BAD_REQUEST, status.HTTP_400_BAD_REQUEST)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if not _is_api(request):
        return defaults.page_not_found(request, exception)
    return _json_error(ErrorCode.NOT_FOUND, status.HTTP_404_NOT_FOUND)


def server_error(request: HttpRequest) -> HttpResponse:
    if not _is_api(request):
        return defaults.server_error(request)
    return _json_error(ErrorCode.INTERNAL, status.HTTP_500_INTERNAL_SERVER_ERROR)
