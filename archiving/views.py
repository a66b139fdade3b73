"""``POST /api/v1/archiver/status``: an archiver device reports its rooms' status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from archiving.services import MAX_ROOMS, RoomReport, do_report_status
from mobile_api.openapi import errors
from mobile_api.requests import identity_of
from mobile_api.strict import BodySerializer, WholeRegexField

ERROR_CODE = r"^[a-z0-9_]{0,40}$"


class RoomReportIn(BodySerializer):
    room = serializers.IntegerField(min_value=1)
    archived_up_to = serializers.IntegerField(min_value=0, allow_null=True)
    received_up_to = serializers.IntegerField(min_value=0, allow_null=True)
    pending = serializers.IntegerField(min_value=0, max_value=10**9)
    sent = serializers.IntegerField(min_value=0, max_value=10**9)
    integrated = serializers.IntegerField(min_value=0, max_value=10**9)
    rejected = serializers.IntegerField(min_value=0, max_value=10**9)
    failed = serializers.IntegerField(min_value=0, max_value=10**9)
    recipients_accepted = serializers.IntegerField(
        min_value=0, max_value=1000, required=False, default=0
    )
    recipients_refused = serializers.IntegerField(
        min_value=0, max_value=1000, required=False, default=0
    )
    members_not_sent = serializers.IntegerField(
        min_value=0, max_value=1000, required=False, default=0
    )
    last_error_code = WholeRegexField(
        ERROR_CODE,
        max_length=40,
        allow_blank=True,
        help_text="A stable code (smtp_unreachable, 903...), never a server's text.",
    )

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping) and set(data) - set(self.fields):
            raise serializers.ValidationError({"room": ["Unknown fields."]})
        return super().to_internal_value(data)


class StatusIn(BodySerializer):
    rooms = serializers.ListField(child=RoomReportIn(), max_length=MAX_ROOMS)


class StatusOut(serializers.Serializer[None]):
    rooms = serializers.IntegerField(help_text="How many rooms were recorded.")


class ArchiverStatusView(APIView):
    @extend_schema(
        summary="Report the archive status of my rooms (archiver devices only)",
        description="Per room: archived up to which sequence number, counts per state, "
        "the last error code, and for the last archive how many recipients were accepted "
        "and refused and how many members got no copy. Metadata only (docs/archive.md, "
        "'Operator view'). "
        "`not_found` for a device that is not an archiver, `not_member` when a room "
        "does not name this archiver; all or nothing.",
        request=StatusIn,
        responses={200: StatusOut, **errors(400, 404)},
    )
    def post(self, request: Request) -> Response:
        data = StatusIn(data=request.data)
        data.is_valid(raise_exception=True)
        reports = [RoomReport(**item) for item in data.validated_data["rooms"]]
        count = do_report_status(device_id=identity_of(request).device_id, reports=reports)
        return Response({"rooms": count}, status=status.HTTP_200_OK)
