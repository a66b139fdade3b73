"""A login through Pro Santé Connect, from start to device token (docs/identity.md).

1. ``do_start_login``: the client (app or web page) sends its own PKCE challenge and
   where to come back; Relais answers with PSC's authorization URL (its own state,
   nonce and PKCE towards PSC) and remembers the attempt.
2. ``do_complete_login``: PSC sends the browser back with a code; Relais checks state,
   exchanges the code, verifies the ID token (signature, issuer, audience, expiry,
   nonce, acr ≥ eidas1), reads the userinfo, finds the practitioner, and hands the
   client a one-time login code. The PSC access token is dropped here.
3. ``do_redeem_login_code``: the client proves with its PKCE verifier that it started
   the login and receives a device token; the PSC session is kept (sealed refresh and
   ID tokens) to notice a PSC logout later.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction

from chat.errors import ErrorCode, RelaisError
from chat.models import Device
from chat.services.devices import do_issue_device_token
from directory.models import Practitioner
from identity.claims import identity_from_userinfo
from identity.client import PscClient
from identity.clock import now_datetime, now_seconds
from identity.conf import PscSettings
from identity.models import LoginAttempt, PscSession
from identity.sealing import seal
from identity.services.practitioners import do_practitioner_for_identity

TOKENS_PURPOSE = "psc-tokens"
_PKCE_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_PKCE_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8")).digest()


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of ``verifier`` (RFC 7636)."""
    return base64.urlsafe_b64encode(_digest(verifier)).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class StartedLogin:
    state: str
    authorization_url: str


def check_client_redirect(*, uri: str, settings: PscSettings, built_in: str) -> None:
    """Deny by default: the client must come back to a registered URI (or Relais' page)."""
    if uri != built_in and uri not in settings.client_redirect_uris:
        raise RelaisError(ErrorCode.BAD_REQUEST, "redirect_uri is not a registered client URI.")


def do_start_login(
    *,
    settings: PscSettings,
    redirect_uri: str,
    client_redirect_uri: str,
    client_code_challenge: str,
    client_state: str,
    device_name: str,
) -> StartedLogin:
    """Remember a new attempt and return where to send the browser.

    Preconditions: ``client_redirect_uri`` was checked with ``check_client_redirect``;
    ``redirect_uri`` is the callback registered at PSC.
    """
    if not _PKCE_CHALLENGE.match(client_code_challenge):
        raise RelaisError(ErrorCode.BAD_REQUEST, "code_challenge must be an S256 challenge.")
    client = PscClient(settings, now=now_seconds)
    now = now_datetime()
    LoginAttempt.objects.filter(
        created_at__lt=now - timedelta(seconds=settings.login_timeout_seconds)
    ).delete()
    state = secrets.token_urlsafe(32)
    nonce = secrets.token_hex(32)  # as ANS's connector: 32 random bytes, hex
    code_verifier = secrets.token_urlsafe(64)
    url = client.authorization_url(
        redirect_uri=redirect_uri, state=state, nonce=nonce, code_verifier=code_verifier
    )
    LoginAttempt.objects.create(
        state_hash=_digest(state),
        nonce=nonce,
        code_verifier=code_verifier,
        redirect_uri=redirect_uri,
        client_redirect_uri=client_redirect_uri,
        client_state=client_state,
        client_code_challenge=client_code_challenge,
        device_name=device_name,
        created_at=now,
    )
    return StartedLogin(state=state, authorization_url=url)


def find_attempt(*, state: str, browser_state: str | None, settings: PscSettings) -> LoginAttempt:
    """The pending attempt of ``state``; PSC_STATE_MISMATCH unless this very browser
    started it (``browser_state`` comes from the cookie set at start)."""
    if not state or browser_state is None or not hmac.compare_digest(state, browser_state):
        raise RelaisError(ErrorCode.PSC_STATE_MISMATCH)
    oldest = now_datetime() - timedelta(seconds=settings.login_timeout_seconds)
    attempt = LoginAttempt.objects.filter(
        state_hash=_digest(state), completed_at__isnull=True, created_at__gte=oldest
    ).first()
    if attempt is None:
        raise RelaisError(ErrorCode.PSC_STATE_MISMATCH)
    return attempt


@dataclass(frozen=True)
class CompletedLogin:
    login_code: str
    practitioner: Practitioner


def do_complete_login(*, attempt: LoginAttempt, code: str, settings: PscSettings) -> CompletedLogin:
    """Finish the PSC side of ``attempt`` (see the module docstring, step 2).

    On any failure the attempt is deleted: a code or state is never tried twice.
    """
    try:
        return _complete(attempt=attempt, code=code, settings=settings)
    except RelaisError:
        LoginAttempt.objects.filter(pk=attempt.pk).delete()
        raise


def _complete(*, attempt: LoginAttempt, code: str, settings: PscSettings) -> CompletedLogin:
    client = PscClient(settings, now=now_seconds)
    tokens = client.exchange_code(
        code=code, redirect_uri=attempt.redirect_uri, code_verifier=attempt.code_verifier
    )
    claims = client.verify_id_token(tokens.id_token, nonce=attempt.nonce)
    # The access token serves this one userinfo call and is never stored.
    userinfo = client.userinfo(access_token=tokens.access_token, subject=str(claims["sub"]))
    identity = identity_from_userinfo(userinfo, sandbox=settings.sandbox)
    practitioner = do_practitioner_for_identity(
        identity=identity, unknown_policy=settings.unknown_practitioner
    )
    login_code = secrets.token_urlsafe(32)
    attempt.practitioner = practitioner
    attempt.subject = identity.subject or str(claims["sub"])
    attempt.activities = [activity.as_json() for activity in identity.activities]
    attempt.sealed_tokens = seal(
        {"refresh_token": tokens.refresh_token, "id_token": tokens.id_token},
        purpose=TOKENS_PURPOSE,
    )
    attempt.login_code_hash = _digest(login_code)
    attempt.completed_at = now_datetime()
    attempt.save()
    return CompletedLogin(login_code=login_code, practitioner=practitioner)


@dataclass(frozen=True)
class RedeemedLogin:
    device: Device
    token: str
    practitioner: Practitioner
    activities: list[dict[str, Any]]


def do_redeem_login_code(
    *, login_code: str, code_verifier: str, device_name: str | None, settings: PscSettings
) -> RedeemedLogin:
    """A device token for the client that started the login (step 3); single use."""
    if not _PKCE_VERIFIER.match(code_verifier):
        raise RelaisError(ErrorCode.BAD_REQUEST, "code_verifier is not a PKCE verifier.")
    oldest = now_datetime() - timedelta(seconds=settings.login_code_seconds)
    with transaction.atomic():
        attempt = (
            LoginAttempt.objects.select_for_update()
            .filter(login_code_hash=_digest(login_code), completed_at__isnull=False)
            .first()
        )
        if attempt is not None:
            attempt.delete()  # single use, whatever follows
    if attempt is None or attempt.completed_at is None or attempt.completed_at < oldest:
        raise RelaisError(ErrorCode.PSC_LOGIN_EXPIRED)
    if not hmac.compare_digest(s256(code_verifier), attempt.client_code_challenge):
        raise RelaisError(ErrorCode.PSC_LOGIN_EXPIRED, "The PKCE verifier does not match.")
    practitioner = Practitioner.objects.filter(pk=attempt.practitioner_id, is_active=True).first()
    if practitioner is None or attempt.sealed_tokens is None:
        raise RelaisError(ErrorCode.PSC_LOGIN_EXPIRED)
    with transaction.atomic():
        device, token = do_issue_device_token(
            practitioner=practitioner, device_name=device_name or attempt.device_name
        )
        now = now_datetime()
        PscSession.objects.create(
            device=device,
            practitioner=practitioner,
            subject=attempt.subject,
            sealed_tokens=bytes(attempt.sealed_tokens),
            activities=attempt.activities,
            activity=attempt.activities[0] if len(attempt.activities) == 1 else None,
            created_at=now,
            checked_at=now,
        )
    return RedeemedLogin(
        device=device, token=token, practitioner=practitioner, activities=attempt.activities
    )
