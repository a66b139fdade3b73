"""Who is calling: the device identity and practitioner ``DeviceTokenAuthentication``
attached to an authenticated request."""

from __future__ import annotations

from rest_framework.request import Request

from chat.errors import ErrorCode, RelaisError
from chat.services.devices import DeviceIdentity
from directory.models import Practitioner


def identity_of(request: Request) -> DeviceIdentity:
    """The calling device. Views behind ``IsAuthenticated`` always have one."""
    identity = request.auth
    if not isinstance(identity, DeviceIdentity):
        raise RelaisError(ErrorCode.NOT_AUTHENTICATED)
    return identity


def practitioner_of(request: Request) -> Practitioner:
    """The calling device's practitioner."""
    user = request.user
    if not isinstance(user, Practitioner):
        raise RelaisError(ErrorCode.NOT_AUTHENTICATED)
    return user
