"""Web Push: the VAPID public key, the calling device's subscription, room mutes.

One view per resource over ``push.services``; rate-limited per device and per IP
(``RELAIS_RATE_PUSH_DEVICE``, ``RELAIS_RATE_PUSH_IP``), answering 429 with
``Retry-After``. See docs/push.md.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle
from rest_framework.views import APIView

from chat.errors import ErrorCode, RelaisError
from chat.services.devices import DeviceIdentity
from mobile_api.openapi import errors
from mobile_api.queries import query_data
from mobile_api.strict import BodySerializer
from push.conf import PushSettings, push_settings
from push.models import MAX_ENDPOINT_LENGTH, PushSubscription, RoomMute
from push.services import (
    MUTE_SCOPES,
    check_subscription,
    do_delete_subscription,
    do_mute_room,
    do_register_subscription,
    do_unmute_room,
    mutes_of,
    subscription_of,
)

# Far enough for any real subscription expiry, small enough for a datetime.
_MAX_EXPIRATION_MS = 253_402_300_799_000  # 9999-12-31


class PushDeviceThrottle(SimpleRateThrottle):
    scope = "push_device"

    def get_rate(self) -> str:
        return push_settings().rate_device

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        identity = request.auth
        if not isinstance(identity, DeviceIdentity):
            return None
        return self.cache_format % {"scope": self.scope, "ident": identity.device_id}


class PushIpThrottle(SimpleRateThrottle):
    scope = "push_ip"

    def get_rate(self) -> str:
        return push_settings().rate_ip

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


_THROTTLES: list[type[BaseThrottle]] = [
    *cast(list[type[BaseThrottle]], api_settings.DEFAULT_THROTTLE_CLASSES),
    PushDeviceThrottle,
    PushIpThrottle,
]


class StrictSerializer(BodySerializer):
    """Refuses unknown fields, like the WebSocket protocol: a typo is never ignored."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


def _identity(request: Request) -> DeviceIdentity:
    identity = request.auth
    assert isinstance(identity, DeviceIdentity)  # set by DeviceTokenAuthentication
    return identity


def _enabled_settings() -> PushSettings:
    settings = push_settings()
    if not settings.enabled:
        raise RelaisError(ErrorCode.PUSH_DISABLED)
    return settings


class VapidKeyOut(serializers.Serializer[None]):
    public_key = serializers.CharField(help_text="The `applicationServerKey`, base64url.")


class SubscriptionOut(serializers.Serializer[None]):
    endpoint = serializers.CharField()
    expirationTime = serializers.IntegerField(  # noqa: N815  # the browser's field name
        allow_null=True, help_text="ms since the epoch, or null."
    )
    device = serializers.IntegerField()


class MuteOut(serializers.Serializer[None]):
    room = serializers.IntegerField()
    scope = serializers.ChoiceField(choices=MUTE_SCOPES)
    until = serializers.DateTimeField(allow_null=True, help_text="null: until unmuted.")


class MuteListOut(serializers.Serializer[None]):
    mutes = MuteOut(many=True)


_DISABLED = errors(404)


class VapidKeyView(APIView):
    """``GET /push/vapid-key``: the ``applicationServerKey`` to subscribe with."""

    throttle_classes = _THROTTLES

    @extend_schema(
        summary="The VAPID public key to subscribe with",
        description="`push_disabled` (404) when Web Push is not configured.",
        responses={200: VapidKeyOut, **_DISABLED},
    )
    def get(self, request: Request) -> Response:
        settings = _enabled_settings()
        assert settings.vapid is not None  # enabled means a key is configured
        return Response({"public_key": settings.vapid.public_key})


def _subscription_out(subscription: PushSubscription) -> dict[str, Any]:
    expires = subscription.expires_at
    return {
        "endpoint": subscription.endpoint,
        "expirationTime": int(expires.timestamp() * 1000) if expires else None,
        "device": subscription.device_id,
    }


class SubscriptionKeys(StrictSerializer):
    p256dh = serializers.CharField(max_length=100, trim_whitespace=False)
    auth = serializers.CharField(max_length=32, trim_whitespace=False)


class SubscriptionInput(StrictSerializer):
    """The browser's ``PushSubscription.toJSON()``."""

    endpoint = serializers.CharField(max_length=MAX_ENDPOINT_LENGTH, trim_whitespace=False)
    expirationTime = serializers.IntegerField(  # noqa: N815  # the browser's field name
        required=False, allow_null=True, min_value=0, max_value=_MAX_EXPIRATION_MS
    )
    keys = SubscriptionKeys()


class SubscriptionView(APIView):
    """``/push/subscription``: the calling device's subscription.

    ``PUT`` takes the browser's ``PushSubscription.toJSON()`` as is and registers or
    replaces it (201 when new, 200 when replaced); ``GET`` returns it; ``DELETE``
    removes it (204, also when there was none).
    """

    throttle_classes = _THROTTLES

    @extend_schema(
        summary="This device's push subscription",
        responses={200: SubscriptionOut, **_DISABLED},
    )
    def get(self, request: Request) -> Response:
        _enabled_settings()
        subscription = subscription_of(identity=_identity(request))
        if subscription is None:
            raise RelaisError(ErrorCode.NOT_FOUND, "This device has no push subscription.")
        return Response(_subscription_out(subscription))

    @extend_schema(
        summary="Register or replace this device's push subscription",
        description="The browser's `PushSubscription.toJSON()`, as is.",
        request=SubscriptionInput,
        responses={
            201: SubscriptionOut,
            200: OpenApiResponse(SubscriptionOut, description="Replaced."),
            **_DISABLED,
        },
    )
    def put(self, request: Request) -> Response:
        settings = _enabled_settings()
        data = SubscriptionInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        expiration = values.get("expirationTime")
        checked = check_subscription(
            endpoint=values["endpoint"],
            p256dh=values["keys"]["p256dh"],
            auth=values["keys"]["auth"],
            expires_at=datetime.fromtimestamp(expiration / 1000, tz=UTC) if expiration else None,
            settings=settings,
        )
        subscription, created = do_register_subscription(
            identity=_identity(request), subscription=checked
        )
        return Response(
            _subscription_out(subscription),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        summary="Remove this device's push subscription", request=None, responses={204: None}
    )
    def delete(self, request: Request) -> Response:
        do_delete_subscription(identity=_identity(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _mute_out(mute: RoomMute) -> dict[str, Any]:
    return {
        "room": mute.room_id,
        "scope": "device" if mute.device_id else "practitioner",
        "until": mute.until.isoformat() if mute.until else None,
    }


class MuteListView(APIView):
    """``GET /push/mutes``: the rooms muted for this device or its practitioner."""

    throttle_classes = _THROTTLES

    @extend_schema(summary="My muted rooms", responses={200: MuteListOut})
    def get(self, request: Request) -> Response:
        mutes = mutes_of(identity=_identity(request), now=timezone.now())
        return Response({"mutes": [_mute_out(mute) for mute in mutes]})


class RoomMuteView(APIView):
    """``/rooms/{id}/mute``: ``PUT {"scope", "until"}`` mutes the room's pushes, for
    every device of the practitioner (scope ``practitioner``, the default) or for this
    device; ``DELETE ?scope=…`` unmutes (204, also when it was not muted)."""

    throttle_classes = _THROTTLES

    class MuteIn(StrictSerializer):
        scope = serializers.ChoiceField(choices=MUTE_SCOPES, default="practitioner")
        until = serializers.DateTimeField(required=False, allow_null=True, default=None)

    class UnmuteQuery(StrictSerializer):
        scope = serializers.ChoiceField(choices=MUTE_SCOPES, default="practitioner")

    @extend_schema(
        summary="Mute a room's pushes",
        description="For every device of yours (`practitioner`, the default) or this one.",
        request=MuteIn,
        responses={200: MuteOut, **errors(404)},
    )
    def put(self, request: Request, room_id: int) -> Response:
        data = self.MuteIn(data=request.data)
        data.is_valid(raise_exception=True)
        mute = do_mute_room(
            identity=_identity(request),
            room_id=room_id,
            scope=data.validated_data["scope"],
            until=data.validated_data["until"],
            now=timezone.now(),
        )
        return Response(_mute_out(mute))

    @extend_schema(
        summary="Unmute a room's pushes",
        parameters=[UnmuteQuery],
        request=None,
        responses={204: None, **errors(404)},
    )
    def delete(self, request: Request, room_id: int) -> Response:
        query = self.UnmuteQuery(data=query_data(request))
        query.is_valid(raise_exception=True)
        do_unmute_room(
            identity=_identity(request), room_id=room_id, scope=query.validated_data["scope"]
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
