"""The OpenAPI description of the attachment operations (``views/attachments.py``).

Kept beside the views rather than in them: it only describes what they already do
(docs/protocol.md §11.4), and is applied when ``mobile_api.urls`` is loaded.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
    extend_schema_view,
)
from rest_framework import serializers

from mobile_api.openapi import errors
from mobile_api.views.attachments import (
    DownloadView,
    UploadCompleteView,
    UploadPartView,
    UploadStartView,
    UploadView,
)

extend_schema_serializer(component_name="UploadStart")(UploadStartView.Input)
extend_schema_serializer(component_name="UploadComplete")(UploadCompleteView.Input)


UPLOAD_STATES = ["uploading", "complete"]  # the schema's UploadStateEnum


class QuotaOut(serializers.Serializer[None]):
    used = serializers.IntegerField(help_text="Bytes stored or reserved by your uploads.")
    limit = serializers.IntegerField()


class UploadOut(serializers.Serializer[None]):
    attachment = serializers.CharField(help_text="The attachment id (32 hex digits).")
    room = serializers.IntegerField()
    message_id = serializers.CharField(help_text="The client id of the carrying message.")
    size = serializers.IntegerField(help_text="Ciphertext bytes.")
    part_size = serializers.IntegerField()
    parts = serializers.IntegerField(help_text="How many parts make the blob.")
    state = serializers.ChoiceField(choices=UPLOAD_STATES)
    received = serializers.ListField(
        child=serializers.IntegerField(), help_text="Indexes of the parts stored so far."
    )


class UploadStartedOut(UploadOut):
    quota = QuotaOut()


class PartOut(serializers.Serializer[None]):
    attachment = serializers.CharField()
    index = serializers.IntegerField()
    size = serializers.IntegerField()


class CompletedOut(serializers.Serializer[None]):
    attachment = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()
    state = serializers.ChoiceField(choices=UPLOAD_STATES)


_BLOB = OpenApiResponse(OpenApiTypes.BINARY, description="The encrypted blob.")

extend_schema_view(
    post=extend_schema(
        summary="Start an upload",
        description="Reserves quota for a blob of `size` bytes of ciphertext, for the "
        "message `message_id` that this device will send in `room`.",
        request=UploadStartView.Input,
        responses={201: UploadStartedOut, **errors(404, 409, 413, 507)},
    )
)(UploadStartView)

extend_schema_view(
    get=extend_schema(
        summary="An upload's state (to resume it)",
        responses={200: UploadOut, **errors(404)},
    ),
    delete=extend_schema(
        summary="Abandon an upload", request=None, responses={204: None, **errors(404, 409)}
    ),
)(UploadView)

extend_schema_view(
    put=extend_schema(
        summary="Store one part of an upload",
        description="The raw part as the body (`Content-Length` required); every part is "
        "`part_size` bytes but the last.",
        request={"application/octet-stream": OpenApiTypes.BINARY},
        responses={200: PartOut, **errors(404, 409, 413)},
    )
)(UploadPartView)

extend_schema_view(
    post=extend_schema(
        summary="Complete an upload",
        description="The server hashes the assembled blob; a mismatch discards it (422).",
        request=UploadCompleteView.Input,
        responses={201: CompletedOut, **errors(404, 409, 422)},
    )
)(UploadCompleteView)

extend_schema_view(
    get=extend_schema(
        summary="Download an attachment",
        description="To members of a room whose message carries it. `Range: bytes=N-` "
        "resumes an interrupted download (206).",
        parameters=[
            OpenApiParameter(
                "Range", OpenApiTypes.STR, OpenApiParameter.HEADER, description="bytes=N-"
            )
        ],
        responses={
            (200, "application/octet-stream"): _BLOB,
            (206, "application/octet-stream"): _BLOB,
            **errors(404, 416),
        },
    )
)(DownloadView)
