"""A practitioner's téléexpertise acts (docs/teleexpertise.md, "Billing"): the counter
per keyed patient pseudonym, and the ledger the server stores encrypted. Over
``teleexpertise.services.billing``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.errors import ErrorCode, RelaisError
from chat.frames import encode_body
from mobile_api.openapi import errors
from mobile_api.queries import query_data
from mobile_api.requests import identity_of
from mobile_api.strict import BodySerializer, QuerySerializer
from teleexpertise.models import MAX_LEDGER_ENTRY_BYTES, ActCode, BillingAct
from teleexpertise.services.billing import (
    LEDGER_PAGE,
    MAX_LIMIT,
    PSEUDONYM,
    billable_count,
    do_record_act,
    ledger_page,
)

ACT_CODES = ActCode.values  # the schema's ActCodeEnum
_PSEUDONYM_HELP = (
    "HMAC-SHA256 of the patient's identity under a key only your devices hold, "
    "base64url (43 characters): the server counts without knowing the patient."
)


class ActIn(BodySerializer):
    code = serializers.ChoiceField(choices=ACT_CODES, help_text="RQD or TE2.")
    year = serializers.IntegerField(min_value=2000, max_value=2999)
    pseudonym = serializers.RegexField(PSEUDONYM.pattern, help_text=_PSEUDONYM_HELP)
    billable = serializers.BooleanField()
    limit = serializers.IntegerField(
        min_value=1, max_value=MAX_LIMIT, help_text="The yearly limit of your tariff table."
    )
    entry = serializers.RegexField(
        r"^[A-Za-z0-9_-]+$",
        max_length=4 * MAX_LEDGER_ENTRY_BYTES // 3 + 4,
        help_text="The ledger entry, encrypted on your device (base64url).",
    )


class ActOut(serializers.Serializer[None]):
    id = serializers.IntegerField()
    room = serializers.IntegerField()
    code = serializers.ChoiceField(choices=ACT_CODES)
    year = serializers.IntegerField()
    pseudonym = serializers.CharField()
    billable = serializers.BooleanField()
    entry = serializers.CharField(help_text="The encrypted ledger entry (base64url).")
    created_at = serializers.DateTimeField()


class RecordedOut(serializers.Serializer[None]):
    act = ActOut()
    count = serializers.IntegerField(
        help_text="Your billable acts of this code and year for this pseudonym, this one included."
    )


class LedgerQuery(QuerySerializer):
    after = serializers.IntegerField(required=False, min_value=0, max_value=2**62, default=0)
    limit = serializers.IntegerField(
        required=False, min_value=1, max_value=2**62, default=LEDGER_PAGE
    )


class LedgerOut(serializers.Serializer[None]):
    acts = ActOut(many=True)


class CountQuery(QuerySerializer):
    code = serializers.ChoiceField(choices=ACT_CODES)
    year = serializers.IntegerField(min_value=2000, max_value=2999)
    pseudonym = serializers.RegexField(PSEUDONYM.pattern, help_text=_PSEUDONYM_HELP)


class CountOut(serializers.Serializer[None]):
    count = serializers.IntegerField()


def act_out(act: BillingAct) -> dict[str, Any]:
    return {
        "id": act.pk,
        "room": act.teleexpertise_id,
        "code": act.code,
        "year": act.year,
        "pseudonym": act.pseudonym,
        "billable": act.billable,
        "entry": encode_body(bytes(act.entry)),
        "created_at": act.created_at.isoformat(),
    }


def _decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise RelaisError(ErrorCode.BAD_REQUEST, "The entry is not base64url.") from None


class RecordActView(APIView):
    """``POST /teleexpertise/{room}/act``: record my act for a téléexpertise."""

    @extend_schema(
        summary="Record my act for a téléexpertise",
        description="Once the report is sent: RQD for the requérant, TE2 for the requis "
        "(`role_refused` otherwise). A billable act beyond `limit` for this pseudonym, code "
        "and year is refused (`billing_limit_reached`, 409): record it as not billable. "
        "Recording the same act again answers the first (200).",
        request=ActIn,
        responses={
            201: RecordedOut,
            200: OpenApiResponse(RecordedOut, description="Already recorded."),
            **errors(403, 404, 409),
        },
    )
    def post(self, request: Request, room_id: int) -> Response:
        data = ActIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        recorded = do_record_act(
            identity=identity_of(request),
            room_id=room_id,
            code=values["code"],
            year=values["year"],
            pseudonym=values["pseudonym"],
            billable=values["billable"],
            limit=values["limit"],
            entry=_decode(values["entry"]),
            now=timezone.now(),
        )
        return Response(
            {"act": act_out(recorded.act), "count": recorded.count},
            status=status.HTTP_201_CREATED if recorded.created else status.HTTP_200_OK,
        )


class LedgerView(APIView):
    """``GET /billing/ledger``: my acts, encrypted, oldest first."""

    @extend_schema(
        summary="My téléexpertise acts (encrypted ledger)",
        description="Every act you recorded, from any of your devices, after `after` (an "
        f"act id), at most {LEDGER_PAGE} per page. Decrypt the entries on your device.",
        parameters=[LedgerQuery],
        responses={200: LedgerOut},
    )
    def get(self, request: Request) -> Response:
        query = LedgerQuery(data=query_data(request))
        query.is_valid(raise_exception=True)
        acts = ledger_page(
            practitioner_id=identity_of(request).practitioner_id,
            after_id=query.validated_data["after"],
            limit=query.validated_data["limit"],
        )
        return Response({"acts": [act_out(act) for act in acts]})


class CountView(APIView):
    """``GET /billing/count``: my billable acts for one pseudonym, code and year."""

    @extend_schema(
        summary="How many billable acts for this patient this year",
        description="The check before a request or an answer: compare with your tariff "
        "table's yearly limit.",
        parameters=[CountQuery],
        responses={200: CountOut},
    )
    def get(self, request: Request) -> Response:
        query = CountQuery(data=query_data(request))
        query.is_valid(raise_exception=True)
        values = query.validated_data
        count = billable_count(
            practitioner_id=identity_of(request).practitioner_id,
            code=values["code"],
            year=values["year"],
            pseudonym=values["pseudonym"],
        )
        return Response({"count": count})
