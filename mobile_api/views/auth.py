"""Login and logout of a device (Pro Santé Connect login: ``views/login.py``)."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.conf import relais_settings
from chat.errors import ErrorCode, RelaisError
from chat.services.devices import do_issue_device_token
from directory.models import Practitioner
from keylog.services import do_revoke_device_keys
from mobile_api.openapi import errors
from mobile_api.requests import identity_of
from mobile_api.strict import BodySerializer
from mobile_api.throttling import LOGIN


class DevLoginIn(BodySerializer):
    national_id = serializers.CharField(max_length=32)
    device_name = serializers.CharField(max_length=64, default="device")


class DevLoginPractitionerOut(serializers.Serializer[None]):
    national_id = serializers.CharField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    profession_code = serializers.CharField()


class DevLoginOut(serializers.Serializer[None]):
    token = serializers.CharField(help_text="The device token: shown once, keep it secret.")
    device = serializers.IntegerField()
    practitioner = DevLoginPractitionerOut()


class DevLoginView(APIView):
    """Development login: a device token for a demo practitioner, without a password.

    Exists only when DEBUG is on; production answers 404 as if the URL did not exist.
    """

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = LOGIN

    @extend_schema(
        summary="Development login (DEBUG only)",
        description="A device token for an active practitioner, without a password. Only "
        "with `RELAIS_DEBUG=1`; otherwise 404, as if the URL did not exist.",
        request=DevLoginIn,
        responses={201: DevLoginOut, **errors(404)},
    )
    def post(self, request: Request) -> Response:
        if not relais_settings().dev_login:
            raise Http404
        data = DevLoginIn(data=request.data)
        data.is_valid(raise_exception=True)
        practitioner = Practitioner.objects.filter(
            national_id=data.validated_data["national_id"], is_active=True
        ).first()
        if practitioner is None:
            raise RelaisError(ErrorCode.NOT_FOUND, "No active practitioner with this national id.")
        device, token = do_issue_device_token(
            practitioner=practitioner, device_name=data.validated_data["device_name"]
        )
        return Response(
            {
                "token": token,
                "device": device.pk,
                "practitioner": {
                    "national_id": practitioner.national_id,
                    "first_name": practitioner.first_name,
                    "last_name": practitioner.last_name,
                    "profession_code": practitioner.profession_code,
                },
            },
            status=status.HTTP_201_CREATED,
        )


class LogoutView(APIView):
    """Log the calling device out: its token, its connections and its keys."""

    @extend_schema(
        summary="Log this device out",
        description="The token stops working, the device's WebSocket connections close, "
        "and a revocation of its keys (reason `logout`) enters the key-transparency log, "
        "so that no one shares keys with a logged-out phone again. A device logged in "
        "with Pro Santé Connect uses `auth/psc/logout` to end its PSC session too.",
        request=None,
        responses={204: None},
    )
    def post(self, request: Request) -> Response:
        identity = identity_of(request)
        do_revoke_device_keys(identity=identity, device_id=identity.device_id, reason="logout")
        return Response(status=status.HTTP_204_NO_CONTENT)
