"""Push subscriptions and room mutes: validate (``check_*``) and write (``do_*``).

REST views in ``mobile_api/views/push.py`` call these; the rules live here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from django.db import IntegrityError, transaction
from django.db.models import Q

from chat.errors import ErrorCode, RelaisError
from chat.services.access import access_membership
from chat.services.devices import DeviceIdentity
from push.conf import PushSettings
from push.models import MAX_ENDPOINT_LENGTH, PushSubscription, RoomMute
from push.vapid import b64url_decode, b64url_encode

MUTE_SCOPES = ("practitioner", "device")


@dataclass(frozen=True, slots=True)
class CheckedSubscription:
    """A subscription that passed ``check_subscription``; keys normalised (no padding)."""

    endpoint: str
    p256dh: str
    auth: str
    expires_at: datetime | None


def _refuse(detail: str) -> RelaisError:
    return RelaisError(ErrorCode.BAD_PUSH_SUBSCRIPTION, detail)


def host_allowed(host: str, patterns: tuple[str, ...]) -> bool:
    """``*`` allows any host, ``*.example.com`` its subdomains, others match exactly."""
    host = host.lower().rstrip(".")
    for pattern in patterns:
        if pattern == "*" or host == pattern:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


def check_endpoint(endpoint: str, *, settings: PushSettings) -> str:
    if len(endpoint) > MAX_ENDPOINT_LENGTH:
        raise _refuse(f"The endpoint is longer than {MAX_ENDPOINT_LENGTH} characters.")
    if not endpoint.isascii() or not endpoint.isprintable() or " " in endpoint:
        raise _refuse("The endpoint must be a URL of printable ASCII characters.")
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        raise _refuse("The endpoint is not a URL.") from None
    allowed_schemes = ("https", "http") if settings.allow_http_endpoints else ("https",)
    if parts.scheme not in allowed_schemes:
        raise _refuse("The endpoint must be an https URL.")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise _refuse("The endpoint must name a host, without user or password.")
    if port == 0:
        raise _refuse("The endpoint's port is invalid.")
    if not host_allowed(parts.hostname, settings.endpoint_hosts):
        raise _refuse("This server does not send to that push service.")
    return endpoint


def check_subscription(
    *,
    endpoint: str,
    p256dh: str,
    auth: str,
    expires_at: datetime | None,
    settings: PushSettings,
) -> CheckedSubscription:
    """Validate a browser ``PushSubscription``; BAD_PUSH_SUBSCRIPTION with the reason."""
    checked_endpoint = check_endpoint(endpoint, settings=settings)
    try:
        public_key = b64url_decode(p256dh)
    except ValueError:
        raise _refuse("keys.p256dh is not base64url.") from None
    if len(public_key) != 65 or public_key[0] != 4:
        raise _refuse("keys.p256dh must be an uncompressed P-256 point (65 bytes).")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key)
    except ValueError:
        raise _refuse("keys.p256dh is not a point of the P-256 curve.") from None
    try:
        secret = b64url_decode(auth)
    except ValueError:
        raise _refuse("keys.auth is not base64url.") from None
    if len(secret) != 16:
        raise _refuse("keys.auth must be 16 bytes.")
    return CheckedSubscription(
        endpoint=checked_endpoint,
        p256dh=b64url_encode(public_key),
        auth=b64url_encode(secret),
        expires_at=expires_at,
    )


def do_register_subscription(
    *, identity: DeviceIdentity, subscription: CheckedSubscription
) -> tuple[PushSubscription, bool]:
    """Register or replace the device's subscription; returns it and whether it is new.

    An endpoint registered by another device moves to this one: it is the same browser,
    now logged in as this device, and the other device must no longer wake it.
    """
    try:
        with transaction.atomic():
            PushSubscription.objects.filter(endpoint=subscription.endpoint).exclude(
                device_id=identity.device_id
            ).delete()
            return PushSubscription.objects.update_or_create(
                device_id=identity.device_id,
                defaults={
                    "endpoint": subscription.endpoint,
                    "p256dh": subscription.p256dh,
                    "auth": subscription.auth,
                    "expires_at": subscription.expires_at,
                },
            )
    except IntegrityError:
        raise RelaisError(ErrorCode.CONFLICT, "The subscription changed meanwhile.") from None


def subscription_of(*, identity: DeviceIdentity) -> PushSubscription | None:
    return PushSubscription.objects.filter(device_id=identity.device_id).first()


def do_delete_subscription(*, identity: DeviceIdentity) -> bool:
    """Delete the device's subscription; False when it had none."""
    deleted, _ = PushSubscription.objects.filter(device_id=identity.device_id).delete()
    return deleted > 0


def _scope_filter(*, identity: DeviceIdentity, scope: str) -> Q:
    if scope == "device":
        return Q(device_id=identity.device_id)
    if scope == "practitioner":
        return Q(practitioner_id=identity.practitioner_id)
    raise RelaisError(ErrorCode.BAD_REQUEST, f"Unknown mute scope {scope!r}.")


def do_mute_room(
    *, identity: DeviceIdentity, room_id: int, scope: str, until: datetime | None, now: datetime
) -> RoomMute:
    """Mute a room for the caller's practitioner (every device) or for this device only.

    Raises NOT_MEMBER (also for a missing room), BAD_REQUEST for an ``until`` in the past.
    """
    scope_filter = _scope_filter(identity=identity, scope=scope)
    if until is not None and until <= now:
        raise RelaisError(ErrorCode.BAD_REQUEST, "'until' must be in the future.")
    access_membership(room_id=room_id, practitioner_id=identity.practitioner_id)
    owner = (
        {"device_id": identity.device_id}
        if scope == "device"
        else {"practitioner_id": identity.practitioner_id}
    )
    try:
        with transaction.atomic():
            mute = RoomMute.objects.filter(scope_filter, room_id=room_id).first()
            if mute is None:
                return RoomMute.objects.create(room_id=room_id, until=until, **owner)
            mute.until = until
            mute.save(update_fields=["until"])
            return mute
    except IntegrityError:
        raise RelaisError(ErrorCode.CONFLICT, "The mute changed meanwhile.") from None


def do_unmute_room(*, identity: DeviceIdentity, room_id: int, scope: str) -> bool:
    """Remove the caller's mute of a room at that scope; False when there was none.

    Raises NOT_MEMBER (also for a missing room), as muting does.
    """
    scope_filter = _scope_filter(identity=identity, scope=scope)
    access_membership(room_id=room_id, practitioner_id=identity.practitioner_id)
    deleted, _ = RoomMute.objects.filter(scope_filter, room_id=room_id).delete()
    return deleted > 0


def mutes_of(*, identity: DeviceIdentity, now: datetime) -> list[RoomMute]:
    """The caller's mutes still in force: its practitioner's and this device's."""
    return list(
        RoomMute.objects.filter(
            Q(practitioner_id=identity.practitioner_id) | Q(device_id=identity.device_id)
        )
        .filter(Q(until__isnull=True) | Q(until__gt=now))
        .order_by("room_id", "pk")
    )
