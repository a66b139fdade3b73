"""REST authentication with the same device token as the WebSocket."""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from chat.services.devices import DeviceIdentity, authenticate_token
from directory.models import Practitioner


class DeviceTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <device token>``; ``request.user`` is the practitioner and
    ``request.auth`` the device identity."""

    keyword = "bearer"

    def authenticate(self, request: Request) -> tuple[Practitioner, DeviceIdentity] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.encode():
            return None
        if len(header) != 2:
            raise AuthenticationFailed("Malformed Authorization header.")
        identity = authenticate_token(token=header[1].decode("latin-1"))
        if identity is None:
            raise AuthenticationFailed("Unknown or revoked device token.")
        practitioner = Practitioner.objects.get(pk=identity.practitioner_id)
        return practitioner, identity

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="relais"'
