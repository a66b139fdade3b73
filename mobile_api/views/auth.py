"""Login and logout of a device."""

from __future__ import annotations

from django.http import Http404
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.conf import relais_settings
from chat.errors import ErrorCode, RelaisError
from chat.services.devices import DeviceIdentity, do_issue_device_token, do_revoke_device
from directory.models import Practitioner


class DevLoginView(APIView):
    """Development login: a device token for a demo practitioner, without a password.

    Exists only when DEBUG is on; production answers 404 as if the URL did not exist.
    """

    authentication_classes = []
    permission_classes = [AllowAny]

    class Input(serializers.Serializer[None]):
        national_id = serializers.CharField(max_length=32)
        device_name = serializers.CharField(max_length=64, default="device")

    def post(self, request: Request) -> Response:
        if not relais_settings().dev_login:
            raise Http404
        data = self.Input(data=request.data)
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
    """Revoke the calling device's token and close its connections."""

    def post(self, request: Request) -> Response:
        identity = request.auth
        assert isinstance(identity, DeviceIdentity)  # set by DeviceTokenAuthentication
        do_revoke_device(device_id=identity.device_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
