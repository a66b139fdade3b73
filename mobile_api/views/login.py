"""Pro Santé Connect login for mobile apps and the web client (docs/identity.md).

The client opens ``GET auth/psc/start`` in a browser with its own PKCE challenge and
the URI to come back to; after PSC, the browser lands on that URI with a one-time
``code``; the client posts the code and its PKCE verifier to ``auth/psc/token`` and gets
a device token. Mobile apps come back through their registered app URI; the web client
through its page (the same flow; Relais' own ``auth/psc/finish`` page is the default).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit

from django.http import HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.errors import ErrorCode, RelaisError
from identity.clock import now_datetime
from identity.conf import PscSettings, psc_settings
from identity.services.login import (
    check_client_redirect,
    do_complete_login,
    do_redeem_login_code,
    do_start_login,
    find_attempt,
)
from identity.services.sessions import (
    access_psc_session,
    check_logout_state,
    do_check_psc_session,
    do_choose_activity,
    do_logout,
)
from keylog.services import do_revoke_device_keys
from mobile_api.errors import error_body, http_status
from mobile_api.openapi import browser_errors, errors
from mobile_api.pages import error_page, page, wants_html
from mobile_api.queries import query_data
from mobile_api.requests import identity_of
from mobile_api.serializers import PractitionerOut, PscActivityOut
from mobile_api.strict import BodySerializer, QuerySerializer
from mobile_api.throttling import LOGIN
from mobile_api.views.directory import practitioner_out

STATE_COOKIE = "relais_psc_state"
STATE_COOKIE_SALT = "relais.identity.state"
COOKIE_PATH = "/api/v1/auth/psc/"


class ClientRedirect(HttpResponseRedirect):
    """A redirect to a registered client URI, which may use an app's private scheme
    (RFC 8252, e.g. ``fr.relais.app:/login``). Only built for allow-listed URIs."""

    def __init__(self, url: str) -> None:
        self.allowed_schemes = [urlsplit(url).scheme or "https"]
        super().__init__(url)


def _enabled_settings() -> PscSettings:
    config = psc_settings()
    if not config.enabled:
        raise RelaisError(ErrorCode.PSC_NOT_CONFIGURED)
    return config


def _finish_url(request: Request) -> str:
    return request.build_absolute_uri(reverse("psc-finish"))


def _error_response(error: RelaisError) -> Response:
    return Response(
        error_body(error.code, error.message, error.message_fr), status=http_status(error.code)
    )


_HTML = OpenApiResponse(OpenApiTypes.STR, description="An HTML page for the browser.")
_REDIRECT = OpenApiResponse(description="A redirect (`Location`).")
_LOGIN_CODE = re.compile(r"[A-Za-z0-9_-]{20,64}")


class BrowserPageView(APIView):
    """An operation a browser opens: its errors are a page in French and English when
    the browser asks for HTML, and the JSON envelope for any other client."""

    # A plain HttpResponse: DRF finishes any HttpResponseBase (APIView.finalize_response).
    def handle_exception(self, exc: Exception) -> HttpResponse:  # type: ignore[override]
        response = super().handle_exception(exc)
        if not wants_html(self.request):
            return response
        body = getattr(response, "data", None)
        code = str(body.get("error", {}).get("code")) if isinstance(body, dict) else ""
        shown = ErrorCode(code) if code in ErrorCode.__members__.values() else ErrorCode.INTERNAL
        # A RelaisError's detail is Relais' own text; DRF's may quote the request.
        english = exc.message if isinstance(exc, RelaisError) else None
        html = error_page(shown, status=response.status_code, english=english)
        if response.has_header("Retry-After"):
            html["Retry-After"] = response["Retry-After"]
        return html


class PscStartQuery(QuerySerializer):
    code_challenge = serializers.CharField(
        max_length=128, help_text="The client's PKCE challenge (S256)."
    )
    code_challenge_method = serializers.ChoiceField(choices=["S256"], default="S256")
    redirect_uri = serializers.CharField(
        max_length=512,
        required=False,
        help_text="Where the browser comes back with the one-time code: a registered app "
        "or page URI (RELAIS_PSC_CLIENT_REDIRECT_URIS); Relais' own page by default.",
    )
    state = serializers.CharField(max_length=256, required=False, default="")
    device_name = serializers.CharField(max_length=64, required=False, default="device")


class PscStartView(BrowserPageView):
    """Start a login: remember it, set the browser-binding cookie, go to PSC."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = LOGIN

    @extend_schema(
        summary="Start a Pro Santé Connect login (open in a browser)",
        description="Redirects the browser to Pro Santé Connect. The client keeps its PKCE "
        "verifier; see docs/identity.md.",
        parameters=[PscStartQuery],
        responses={302: _REDIRECT, **browser_errors(400, 404, 429, 502)},
    )
    def get(self, request: Request) -> HttpResponse:
        config = _enabled_settings()
        query = PscStartQuery(data=query_data(request))
        query.is_valid(raise_exception=True)
        data = query.validated_data
        finish = _finish_url(request)
        client_redirect = data.get("redirect_uri") or finish
        check_client_redirect(uri=client_redirect, settings=config, built_in=finish)
        started = do_start_login(
            settings=config,
            redirect_uri=config.redirect_uri or request.build_absolute_uri(reverse("psc-callback")),
            client_redirect_uri=client_redirect,
            client_code_challenge=data["code_challenge"],
            client_state=data["state"],
            device_name=data["device_name"],
        )
        response = HttpResponseRedirect(started.authorization_url)
        response.set_signed_cookie(
            STATE_COOKIE,
            started.state,
            salt=STATE_COOKIE_SALT,
            max_age=config.login_timeout_seconds,
            path=COOKIE_PATH,
            secure=request.is_secure(),
            httponly=True,
            samesite="Lax",
        )
        return response


class PscCallbackView(BrowserPageView):
    """PSC sends the browser back here; the client's page or app gets a one-time code."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = LOGIN

    @extend_schema(
        summary="Pro Santé Connect's return (browser only)",
        description="Redirects the browser to the client's URI with a one-time `code` (or "
        "an `error`). Called by PSC, never by a client.",
        responses={302: _REDIRECT, **browser_errors(400, 404, 429)},
    )
    def get(self, request: Request) -> HttpResponse:
        config = _enabled_settings()
        params = request.query_params
        browser_state = request.get_signed_cookie(
            STATE_COOKIE, default=None, salt=STATE_COOKIE_SALT
        )
        try:
            attempt = find_attempt(
                state=params.get("state", ""), browser_state=browser_state, settings=config
            )
        except RelaisError:
            raise  # nobody to send the answer to: said here (handle_exception)
        back: dict[str, str] = {}
        try:
            if params.get("error") or not params.get("code"):
                attempt.delete()
                raise RelaisError(ErrorCode.PSC_PROVIDER_ERROR, params.get("error", "")[:64])
            completed = do_complete_login(attempt=attempt, code=params["code"], settings=config)
            back["code"] = completed.login_code
        except RelaisError as error:
            back.update(error=error.code.value, message=error.message, message_fr=error.message_fr)
        if attempt.client_state:
            back["state"] = attempt.client_state
        separator = "&" if "?" in attempt.client_redirect_uri else "?"
        response = ClientRedirect(f"{attempt.client_redirect_uri}{separator}{urlencode(back)}")
        response.delete_cookie(STATE_COOKIE, path=COOKIE_PATH)
        return response


class PscFinishView(APIView):
    """Relais' own landing page (the default client URI): shows the one-time code."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Relais' login landing page (browser only)",
        description="Shows the one-time code (or the error) to copy into the client.",
        responses={(200, "text/html"): _HTML},
    )
    def get(self, request: Request) -> HttpResponse:
        code = request.query_params.get("code", "")
        if _LOGIN_CODE.fullmatch(code):
            return page(
                format_html(
                    "<p>Connexion Pro Santé Connect réussie. Code à usage unique "
                    "(Pro Santé Connect login succeeded; one-time code):</p><pre>{}</pre>",
                    code,
                )
            )
        # Only Relais' own words: the error's stable code picks them, the URL's text never.
        error = request.query_params.get("error", "")
        known = error in ErrorCode.__members__.values() and error not in _NOT_LOGIN_ERRORS
        return error_page(ErrorCode(error) if known else ErrorCode.PSC_PROVIDER_ERROR, status=200)


_NOT_LOGIN_ERRORS = {ErrorCode.INTERNAL.value}


class PscTokenIn(BodySerializer):
    code = serializers.CharField(max_length=128, help_text="The one-time code.")
    code_verifier = serializers.CharField(max_length=128, help_text="The PKCE verifier.")
    device_name = serializers.CharField(max_length=64, required=False)


class PscTokenOut(serializers.Serializer[None]):
    token = serializers.CharField(help_text="The device token: shown once, keep it secret.")
    device = serializers.IntegerField()
    practitioner = PractitionerOut()
    activities = PscActivityOut(many=True)
    activity = PscActivityOut(
        allow_null=True, help_text="Chosen already when there is only one; else null."
    )


class PscTokenView(APIView):
    """Redeem the one-time code with the client's PKCE verifier: a device token."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = LOGIN

    @extend_schema(
        summary="Redeem the one-time code: a device token",
        request=PscTokenIn,
        responses={201: PscTokenOut, **errors(403, 404)},
    )
    def post(self, request: Request) -> Response:
        config = _enabled_settings()
        data = PscTokenIn(data=request.data)
        data.is_valid(raise_exception=True)
        redeemed = do_redeem_login_code(
            login_code=data.validated_data["code"],
            code_verifier=data.validated_data["code_verifier"],
            device_name=data.validated_data.get("device_name"),
            settings=config,
        )
        return Response(
            {
                "token": redeemed.token,
                "device": redeemed.device.pk,
                "practitioner": practitioner_out(redeemed.practitioner),
                "activities": redeemed.activities,
                "activity": redeemed.activities[0] if len(redeemed.activities) == 1 else None,
            },
            status=status.HTTP_201_CREATED,
        )


class PscSessionOut(serializers.Serializer[None]):
    practitioner = serializers.CharField()
    activities = PscActivityOut(many=True)
    activity = PscActivityOut(allow_null=True)
    checked_at = serializers.DateTimeField(help_text="When PSC last said it was alive.")


class PscSessionQuery(QuerySerializer):
    check = serializers.ChoiceField(choices=["0", "1"], required=False, help_text="1: ask PSC now.")


class PscSessionView(APIView):
    """The device's PSC session; checks it with PSC when a check is due."""

    @extend_schema(
        summary="This device's Pro Santé Connect session",
        description="Asks PSC whether the session is alive when a check is due (or with "
        "`check=1`); `psc_session_ended` (401) when PSC says it ended.",
        parameters=[PscSessionQuery],
        responses={200: PscSessionOut, **errors(404, 502)},
    )
    def get(self, request: Request) -> Response:
        config = _enabled_settings()
        query = PscSessionQuery(data=query_data(request))
        query.is_valid(raise_exception=True)
        session = access_psc_session(device_id=identity_of(request).device_id)
        asked = query.validated_data.get("check") == "1"
        due = asked or session.checked_at <= _due(config)
        if due and not do_check_psc_session(session=session, settings=config):
            return _error_response(RelaisError(ErrorCode.PSC_SESSION_ENDED))
        return Response(
            {
                "practitioner": session.practitioner_id,
                "activities": session.activities,
                "activity": session.activity,
                "checked_at": session.checked_at.isoformat(),
            }
        )


def _due(config: PscSettings) -> datetime:
    return now_datetime() - timedelta(seconds=config.session_check_seconds)


class PscActivityIn(BodySerializer):
    index = serializers.IntegerField(
        min_value=0, max_value=100, help_text="Index in the session's `activities`."
    )


class PscActivityChoiceOut(serializers.Serializer[None]):
    activity = PscActivityOut()


class PscActivityView(APIView):
    """Choose the activity (situation d'exercice) the user acts in on this device."""

    @extend_schema(
        summary="Choose the activity I act in on this device",
        request=PscActivityIn,
        responses={200: PscActivityChoiceOut, **errors(404)},
    )
    def post(self, request: Request) -> Response:
        data = PscActivityIn(data=request.data)
        data.is_valid(raise_exception=True)
        session = do_choose_activity(
            device_id=identity_of(request).device_id, index=data.validated_data["index"]
        )
        return Response({"activity": session.activity})


class PscLogoutOut(serializers.Serializer[None]):
    end_session_url = serializers.CharField(allow_blank=True)


class PscLogoutView(APIView):
    """Log this device out; the answer's ``end_session_url`` logs the browser out of PSC."""

    @extend_schema(
        summary="Log this device out, and out of Pro Santé Connect",
        description="As `auth/logout` (token, connections, keys revoked), and the PSC "
        "session ends; open `end_session_url` in the browser to log out of PSC itself "
        "(empty when the device has no PSC session).",
        request=None,
        responses={200: PscLogoutOut},
    )
    def post(self, request: Request) -> Response:
        config = psc_settings()
        identity = identity_of(request)
        do_revoke_device_keys(identity=identity, device_id=identity.device_id, reason="logout")
        url = do_logout(
            device_id=identity.device_id,
            post_logout_redirect_uri=config.post_logout_redirect_uri
            or request.build_absolute_uri(reverse("psc-logged-out")),
            settings=config,
        )
        return Response({"end_session_url": url})


class PscLoggedOutView(BrowserPageView):
    """Where PSC sends the browser after its logout."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Pro Santé Connect's return after logout (browser only)",
        responses={(200, "text/html"): _HTML, **browser_errors(400, 404)},
    )
    def get(self, request: Request) -> HttpResponse:
        config = _enabled_settings()
        check_logout_state(
            request.query_params.get("state", ""),
            max_age_seconds=config.login_timeout_seconds,
        )
        return page(
            format_html(
                "<p>{}</p>",
                "Vous êtes déconnecté de Relais et de Pro Santé Connect. "
                "(You are logged out of Relais and Pro Santé Connect.)",
            )
        )
