"""Encrypted attachments over REST: chunked, resumable upload; streamed download.

One view per operation over ``attachments.services``. Bodies are ciphertext: the server
never decodes them. The API is specified in docs/protocol.md, "Attachments".
"""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.http import StreamingHttpResponse
from django.utils import timezone
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from attachments.models import Attachment
from attachments.services import (
    access_download,
    access_upload,
    do_abort_upload,
    do_complete_upload,
    do_start_upload,
    do_store_part,
    quota_usage,
    received_parts,
)
from attachments.storage import READ_BYTES, attachment_storage
from chat.errors import ErrorCode, RelaisError
from chat.services.devices import DeviceIdentity
from mobile_api.errors import error_body
from mobile_api.strict import BodySerializer

_RANGE = re.compile(r"^bytes=(\d{1,15})-(\d{0,15})$")


def _identity(request: Request) -> DeviceIdentity:
    identity = request.auth
    assert isinstance(identity, DeviceIdentity)  # guaranteed by DeviceTokenAuthentication
    return identity


def _upload_out(attachment: Attachment) -> dict[str, Any]:
    return {
        "attachment": attachment.pk,
        "room": attachment.room_id,
        "message_id": attachment.message_id,
        "size": attachment.size,
        "part_size": attachment.part_size,
        "parts": attachment.part_count,
        "state": attachment.state,
    }


class UploadStartView(APIView):
    """``POST /attachments/uploads``: reserve quota for a blob of ``size`` bytes."""

    class Input(BodySerializer):
        room = serializers.IntegerField(min_value=1, max_value=2**62)
        message_id = serializers.CharField(max_length=64)
        size = serializers.IntegerField(min_value=1, max_value=2**62)

    def post(self, request: Request) -> Response:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        identity = _identity(request)
        attachment = do_start_upload(
            practitioner_id=identity.practitioner_id,
            device_id=identity.device_id,
            room_id=data.validated_data["room"],
            message_id=data.validated_data["message_id"],
            size=data.validated_data["size"],
            now=timezone.now(),
        )
        usage = quota_usage(practitioner_id=identity.practitioner_id)
        return Response(
            {
                **_upload_out(attachment),
                "received": [],
                "quota": {"used": usage.used_bytes, "limit": usage.quota_bytes},
            },
            status=status.HTTP_201_CREATED,
        )


class UploadView(APIView):
    """``GET`` the state of an upload (which parts arrived, to resume); ``DELETE`` to
    abandon it."""

    def get(self, request: Request, attachment_id: str) -> Response:
        identity = _identity(request)
        attachment = access_upload(
            attachment_id=attachment_id,
            device_id=identity.device_id,
            practitioner_id=identity.practitioner_id,
        )
        return Response(
            {**_upload_out(attachment), "received": received_parts(attachment=attachment)}
        )

    def delete(self, request: Request, attachment_id: str) -> Response:
        identity = _identity(request)
        do_abort_upload(
            attachment_id=attachment_id,
            device_id=identity.device_id,
            practitioner_id=identity.practitioner_id,
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class UploadPartView(APIView):
    """``PUT /attachments/uploads/{id}/parts/{index}`` with the raw part as the body
    (``application/octet-stream``, ``Content-Length`` required)."""

    def put(self, request: Request, attachment_id: str, index: int) -> Response:
        identity = _identity(request)
        raw_length = request.META.get("CONTENT_LENGTH") or ""
        if not (raw_length.isascii() and raw_length.isdigit()):
            raise RelaisError(ErrorCode.UPLOAD_PART_INVALID, "Content-Length is required.")
        length = int(raw_length)
        body = request.stream  # the raw body, never parsed; None when it is empty
        do_store_part(
            attachment_id=attachment_id,
            device_id=identity.device_id,
            practitioner_id=identity.practitioner_id,
            index=index,
            content=body if body is not None else io.BytesIO(),
            length=length,
            now=timezone.now(),
        )
        return Response({"attachment": attachment_id, "index": index, "size": length})


class UploadCompleteView(APIView):
    """``POST /attachments/uploads/{id}/complete`` with the blob's SHA-256."""

    class Input(BodySerializer):
        sha256 = serializers.CharField(min_length=64, max_length=64)

    def post(self, request: Request, attachment_id: str) -> Response:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        identity = _identity(request)
        attachment = do_complete_upload(
            attachment_id=attachment_id,
            device_id=identity.device_id,
            practitioner_id=identity.practitioner_id,
            sha256=data.validated_data["sha256"],
            now=timezone.now(),
        )
        return Response(
            {
                "attachment": attachment.pk,
                "size": attachment.size,
                "sha256": attachment.sha256,
                "state": attachment.state,
            },
            status=status.HTTP_201_CREATED,
        )


async def _read_range(name: str, start: int, end: int) -> AsyncIterator[bytes]:
    """Bytes ``start`` to ``end`` (exclusive) of a stored blob, read in a worker thread so
    a slow disk or object store never holds up the process's other requests."""
    storage = attachment_storage()
    handle = await sync_to_async(storage.open, thread_sensitive=False)(name, "rb")
    try:
        if start:
            await sync_to_async(handle.seek, thread_sensitive=False)(start)
        remaining = end - start
        while remaining > 0:
            data: bytes = await sync_to_async(handle.read, thread_sensitive=False)(
                min(READ_BYTES, remaining)
            )
            if not data:
                break
            remaining -= len(data)
            yield data
    finally:
        await sync_to_async(handle.close, thread_sensitive=False)()


class DownloadView(APIView):
    """``GET /attachments/{id}``: the blob, to members of a room whose message carries
    it. ``Range: bytes=N-`` resumes an interrupted download."""

    def get(self, request: Request, attachment_id: str) -> StreamingHttpResponse | Response:
        identity = _identity(request)
        attachment = access_download(
            attachment_id=attachment_id,
            device_id=identity.device_id,
            practitioner_id=identity.practitioner_id,
        )
        size = attachment.size
        start, end = 0, size
        status_code: int = status.HTTP_200_OK
        match = _RANGE.match(request.META.get("HTTP_RANGE", ""))
        if match:
            start = int(match.group(1))
            end = min(size, int(match.group(2)) + 1) if match.group(2) else size
            if start >= size or end <= start:
                english = "The requested range is outside the attachment."
                french = "La plage demandée est en dehors de la pièce jointe."
                response = Response(
                    error_body(ErrorCode.BAD_REQUEST, english, french),
                    status=status.HTTP_416_REQUESTED_RANGE_NOT_SATISFIABLE,
                )
                response["Content-Range"] = f"bytes */{size}"
                return response
            status_code = status.HTTP_206_PARTIAL_CONTENT
        response_stream = StreamingHttpResponse(
            _read_range(attachment.storage_name, start, end),
            status=status_code,
            content_type="application/octet-stream",
        )
        response_stream["Content-Length"] = str(end - start)
        response_stream["Accept-Ranges"] = "bytes"
        response_stream["ETag"] = f'"{attachment.sha256}"'
        response_stream["Cache-Control"] = "private, no-store"
        response_stream["Content-Disposition"] = "attachment"
        response_stream["X-Content-Type-Options"] = "nosniff"
        if status_code == status.HTTP_206_PARTIAL_CONTENT:
            response_stream["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        return response_stream
