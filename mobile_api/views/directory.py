"""Directory search and practitioner details (directory.services.search)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.errors import ErrorCode, RelaisError
from directory.identifiers import national_id_for_number
from directory.models import Activity, Practitioner
from directory.services.search import MAX_PAGE, SearchQuery, search_practitioners
from mobile_api.openapi import errors
from mobile_api.queries import query_data
from mobile_api.serializers import PractitionerDetailOut, PractitionerOut
from mobile_api.strict import QuerySerializer, WholeRegexField
from mobile_api.throttling import SEARCH


def practitioner_out(practitioner: Practitioner) -> dict[str, Any]:
    return {
        "national_id": practitioner.national_id,
        "civility": practitioner.civility,
        "first_name": practitioner.first_name,
        "last_name": practitioner.last_name,
        "profession_code": practitioner.profession_code,
        "profession_label": practitioner.profession_label,
        "specialty_code": practitioner.specialty_code,
        "specialty_label": practitioner.specialty_label,
        "postcode": practitioner.postcode,
        "town": practitioner.town,
        "mssante_addresses": practitioner.mssante_addresses,
    }


def activity_out(activity: Activity) -> dict[str, Any]:
    return {
        "profession_code": activity.profession_code,
        "specialty_code": activity.specialty_code,
        "mode_code": activity.mode_code,
        "mode_label": activity.mode_label,
        "sector_code": activity.sector_code,
        "sector_label": activity.sector_label,
        "structure_name": activity.structure_name,
        "street": activity.street,
        "postcode": activity.postcode,
        "town": activity.town,
        "phone": activity.phone,
    }


def practitioner_detail_out(practitioner: Practitioner) -> dict[str, Any]:
    """A practitioner with where they practise (prefetch ``activities``)."""
    body = practitioner_out(practitioner)
    body["activities"] = [
        activity_out(activity)
        for activity in sorted(practitioner.activities.all(), key=lambda a: a.pk)
    ]
    return body


class SearchQueryIn(QuerySerializer):
    q = serializers.CharField(
        required=False,
        max_length=100,
        allow_blank=True,
        help_text="Name, or its start; or an RPPS, ADELI or national id number.",
    )
    profession = WholeRegexField(
        r"^[0-9]{1,8}$", required=False, help_text="Profession code (10: médecin ...)."
    )
    specialty = WholeRegexField(r"^[A-Za-z0-9]{1,16}$", required=False)
    postcode = WholeRegexField(r"^[0-9]{1,5}$", required=False, help_text="Or its start.")
    town = serializers.CharField(required=False, max_length=100, allow_blank=True)
    mssante = serializers.CharField(
        required=False, max_length=256, help_text="An exact MSSanté address."
    )
    cursor = serializers.CharField(
        required=False, max_length=700, help_text="`next` of the previous page."
    )
    limit = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_PAGE, help_text=f"At most {MAX_PAGE}."
    )


class SearchOut(serializers.Serializer[None]):
    results = PractitionerOut(many=True)
    next = serializers.CharField(
        allow_null=True, help_text="Cursor of the next page; null on the last page."
    )


class DirectorySearchView(APIView):
    """``GET /directory/practitioners?q=&profession=&specialty=&postcode=&town=&mssante=``
    with ``limit`` (≤ 50) and the ``cursor`` of the previous page's ``next``."""

    throttle_classes = SEARCH

    @extend_schema(
        operation_id="directory_search",
        summary="Search the directory",
        description="Active practitioners by name (or its start), profession, specialty, "
        "place or MSSanté address; in name order, by pages of `limit`.",
        parameters=[SearchQueryIn],
        responses={200: SearchOut},
    )
    def get(self, request: Request) -> Response:
        query = SearchQueryIn(data=query_data(request))
        query.is_valid(raise_exception=True)
        data = query.validated_data
        page = search_practitioners(
            query=SearchQuery(
                name=data.get("q", ""),
                profession_code=data.get("profession", ""),
                specialty_code=data.get("specialty", "").upper(),
                postcode=data.get("postcode", ""),
                town=data.get("town", ""),
                mssante_address=data.get("mssante", ""),
                cursor=data.get("cursor", ""),
                limit=data.get("limit", 20),
            )
        )
        return Response(
            {
                "results": [practitioner_out(p) for p in page.results],
                "next": page.next_cursor,
            }
        )


class PractitionerDetailView(APIView):
    """``GET /directory/practitioners/{national_id}``: one active practitioner and where
    they practise. The bare RPPS (11 digits) or ADELI (9 digits) number works too."""

    @extend_schema(
        summary="One practitioner and where they practise",
        description="By national id, or by the bare RPPS or ADELI number.",
        responses={200: PractitionerDetailOut, **errors(404)},
    )
    def get(self, request: Request, national_id: str) -> Response:
        national_id = national_id_for_number(national_id) or national_id
        practitioner = (
            Practitioner.objects.filter(national_id=national_id, is_active=True)
            .prefetch_related("activities")
            .first()
        )
        if practitioner is None:
            raise RelaisError(ErrorCode.NOT_FOUND)
        return Response(practitioner_detail_out(practitioner))
