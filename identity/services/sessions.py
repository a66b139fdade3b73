"""The PSC session behind a device: activity choice, liveness check, logout.

PSC access tokens live about a minute; Relais keeps its own device token instead and
uses the PSC refresh token only to ask "is the PSC session still alive?". When PSC says
no (the user logged out at PSC, or the session expired), the device is revoked — its
token, its connections, and its keys in the key-transparency log, so nobody shares a
key with it again (docs/identity.md). Logging in again makes a new device, which the
app certifies with the identity key it holds.
"""

from __future__ import annotations

from datetime import timedelta

from django.core import signing
from django.db import transaction

from chat.errors import ErrorCode, RelaisError
from chat.services.devices import DeviceIdentity, do_revoke_device
from identity.client import PscClient
from identity.clock import now_datetime, now_seconds
from identity.conf import PscSettings
from identity.models import PscSession
from identity.sealing import UnsealError, seal, unseal
from identity.services.login import TOKENS_PURPOSE

LOGOUT_SALT = "relais.identity.logout"


def access_psc_session(*, device_id: int) -> PscSession:
    """The live PSC session of a device; NOT_FOUND for a device without one."""
    session = PscSession.objects.filter(device_id=device_id, ended_at__isnull=True).first()
    if session is None:
        raise RelaisError(ErrorCode.NOT_FOUND, "This device did not log in with Pro Santé Connect.")
    return session


def do_choose_activity(*, device_id: int, index: int) -> PscSession:
    """Record which of its PSC activities the device's user acts in."""
    session = access_psc_session(device_id=device_id)
    if not 0 <= index < len(session.activities):
        raise RelaisError(ErrorCode.BAD_REQUEST, "No activity with this index.")
    session.activity = session.activities[index]
    session.save(update_fields=["activity"])
    return session


def do_end_psc_session(*, session: PscSession, reason: str) -> None:
    """End the Relais side: the device token stops working, its connections close, and
    its keys are revoked in the log."""
    from keylog.services import do_revoke_device_keys

    with transaction.atomic():
        updated = PscSession.objects.filter(pk=session.pk, ended_at__isnull=True).update(
            ended_at=now_datetime(), end_reason=reason[:32], sealed_tokens=b""
        )
        if updated:
            do_revoke_device_keys(
                identity=DeviceIdentity(
                    device_id=session.device_id, practitioner_id=session.practitioner_id
                ),
                device_id=session.device_id,
                reason="logout",
            )


def do_check_psc_session(*, session: PscSession, settings: PscSettings) -> bool:
    """Refresh the PSC tokens; end the session if PSC refuses. True while it is alive.

    Provider outages raise PSC_PROVIDER_ERROR and leave the session as it is: an
    unreachable PSC is not a logout.
    """
    if session.ended_at is not None:
        return False
    try:
        tokens = unseal(bytes(session.sealed_tokens), purpose=TOKENS_PURPOSE)
    except UnsealError:
        do_end_psc_session(session=session, reason="unreadable")
        return False
    if not tokens.get("refresh_token"):
        do_end_psc_session(session=session, reason="no_refresh_token")
        return False
    refreshed = PscClient(settings, now=now_seconds).refresh(refresh_token=tokens["refresh_token"])
    if refreshed is None:
        do_end_psc_session(session=session, reason="psc_logout")
        return False
    session.sealed_tokens = seal(
        {
            "refresh_token": refreshed.refresh_token,
            "id_token": refreshed.id_token or tokens.get("id_token", ""),
        },
        purpose=TOKENS_PURPOSE,
    )
    session.checked_at = now_datetime()
    session.save(update_fields=["sealed_tokens", "checked_at"])
    return True


def sessions_due(*, settings: PscSettings, limit: int = 500) -> list[PscSession]:
    """Live sessions not checked for ``session_check_seconds``, oldest check first."""
    due = now_datetime() - timedelta(seconds=settings.session_check_seconds)
    return list(
        PscSession.objects.filter(ended_at__isnull=True, checked_at__lte=due).order_by(
            "checked_at"
        )[:limit]
    )


def do_logout(*, device_id: int, post_logout_redirect_uri: str, settings: PscSettings) -> str:
    """Log the device out of Relais and return PSC's logout URL for the browser
    (RP-initiated logout: ``id_token_hint``, ``post_logout_redirect_uri``, ``state``),
    or "" when the device has no PSC session."""
    session = PscSession.objects.filter(device_id=device_id, ended_at__isnull=True).first()
    if session is None:
        do_revoke_device(device_id=device_id)
        return ""
    try:
        id_token = unseal(bytes(session.sealed_tokens), purpose=TOKENS_PURPOSE).get("id_token", "")
    except UnsealError:
        id_token = ""
    do_end_psc_session(session=session, reason="logout")
    if not id_token or not settings.enabled:
        return ""
    state = signing.dumps({"device": device_id}, salt=LOGOUT_SALT)
    return PscClient(settings, now=now_seconds).end_session_url(
        id_token_hint=id_token, post_logout_redirect_uri=post_logout_redirect_uri, state=state
    )


def check_logout_state(state: str, *, max_age_seconds: int) -> int:
    """The device id a logout ``state`` was made for; BAD_REQUEST if forged or stale."""
    try:
        value = signing.loads(state, salt=LOGOUT_SALT, max_age=max_age_seconds)
    except signing.BadSignature as error:
        raise RelaisError(ErrorCode.BAD_REQUEST, "Unknown logout state.") from error
    return int(value["device"])
