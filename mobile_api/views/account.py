"""The account of the caller: who am I, on which device, acting in which activity."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.errors import RelaisError
from directory.models import Practitioner
from identity.services.sessions import access_psc_session
from mobile_api.requests import identity_of
from mobile_api.serializers import PractitionerDetailOut, PscActivityOut
from mobile_api.views.devices import DeviceOut, devices_out
from mobile_api.views.directory import practitioner_detail_out


class PscAccountOut(serializers.Serializer[None]):
    activities = PscActivityOut(many=True, help_text="What Pro Santé Connect gave at login.")
    activity = PscActivityOut(
        allow_null=True, help_text="The one chosen on this device (auth/psc/activity)."
    )


class MeOut(serializers.Serializer[None]):
    practitioner = PractitionerDetailOut(help_text="My record in the directory.")
    device = DeviceOut(help_text="The device making this request.")
    devices = DeviceOut(many=True, help_text="All my devices, revoked ones included.")
    psc = PscAccountOut(allow_null=True, help_text="null when this device did not log in with PSC.")


class MeView(APIView):
    """``GET /me``: my practitioner record, this device, my devices, my activity."""

    @extend_schema(
        summary="Who am I",
        description="My directory record (with where I practise), the calling device, all "
        "my devices (to spot one I do not know), and, after a Pro Santé Connect login, the "
        "activities PSC gave and the one chosen on this device.",
        responses={200: MeOut},
    )
    def get(self, request: Request) -> Response:
        identity = identity_of(request)
        practitioner = Practitioner.objects.prefetch_related("activities").get(
            pk=identity.practitioner_id
        )
        devices = devices_out(identity)
        psc: dict[str, Any] | None
        try:
            session = access_psc_session(device_id=identity.device_id)
        except RelaisError:
            psc = None
        else:
            psc = {"activities": session.activities, "activity": session.activity}
        return Response(
            {
                "practitioner": practitioner_detail_out(practitioner),
                "device": next(d for d in devices if d["current"]),
                "devices": devices,
                "psc": psc,
            }
        )
