"""Messages over REST: history pages, sending (for clients that cannot keep a WebSocket
open), marking read, unread counts. Over chat.services, like the WebSocket.

Bodies are ciphertext, base64url (docs/protocol.md §2); the server never decodes them
beyond their size.
"""

from __future__ import annotations

import math
from typing import Any, cast

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import frames
from chat.conf import relais_settings
from chat.frames import encode_body
from chat.services.history import history_page
from chat.services.receipts import do_record_receipt
from chat.services.unread import UNREAD_COUNT_LIMIT, unread_counts
from mobile_api.openapi import errors
from mobile_api.queries import query_data
from mobile_api.requests import identity_of
from mobile_api.sending import send_envelope
from mobile_api.strict import BodySerializer, QuerySerializer, WholeRegexField
from mobile_api.throttling import SEND

MAX_SEQ = 2**63 - 1
CLIENT_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
# The one base64url rule of envelope bodies (canonical, padding optional but exact).
BASE64URL_PATTERN = frames.BASE64URL_PATTERN
# The longest text of an envelope of RELAIS_MAX_BODY_BYTES (checked exactly when decoded).
MAX_BODY_TEXT = 4 * math.ceil(cast(int, settings.RELAIS["MAX_BODY_BYTES"]) / 3)


class SenderOut(serializers.Serializer[None]):
    device = serializers.IntegerField()
    practitioner = serializers.CharField(help_text="National id of the sender.")


class MessageOut(serializers.Serializer[None]):
    """One envelope as stored; the same fields as the WebSocket's ``message`` frame."""

    room = serializers.IntegerField()
    seq = serializers.IntegerField(help_text="Position in the room: 1, 2, 3 ...")
    id = serializers.CharField(help_text="The sender's client message id.")
    sender = SenderOut()
    body = serializers.CharField(help_text="Ciphertext, unpadded base64url.")
    ts = serializers.IntegerField(help_text="When the server stored it (ms since the epoch).")


class HistoryOut(serializers.Serializer[None]):
    room = serializers.IntegerField()
    messages = MessageOut(many=True)


class HistoryQuery(QuerySerializer):
    after = serializers.IntegerField(
        required=False, min_value=0, max_value=MAX_SEQ, help_text="Page forward from here."
    )
    before = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_SEQ, help_text="Page backward from here."
    )
    limit = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_SEQ, default=50, help_text="At most 200."
    )


class SendIn(BodySerializer):
    id = WholeRegexField(
        CLIENT_ID_PATTERN,
        max_length=64,
        help_text="Client-generated message id; resending the same id never stores twice.",
    )
    body = WholeRegexField(
        BASE64URL_PATTERN,
        max_length=MAX_BODY_TEXT,
        allow_blank=True,
        trim_whitespace=False,
        help_text="The encrypted envelope, base64url (at most RELAIS_MAX_BODY_BYTES decoded).",
    )


class SendOut(serializers.Serializer[None]):
    """The ``ack`` of the WebSocket protocol."""

    id = serializers.CharField()
    room = serializers.IntegerField()
    seq = serializers.IntegerField()
    ts = serializers.IntegerField()
    duplicate = serializers.BooleanField(help_text="True when this id had been stored before.")


class RoomMessagesView(APIView):
    """``/rooms/{id}/messages``: history pages (``GET``) and sending (``POST``)."""

    def get_throttles(self) -> list[Any]:
        if self.request.method == "POST":
            return [throttle() for throttle in SEND]
        return super().get_throttles()

    @extend_schema(
        summary="A page of a room's history",
        description="`?after=N` pages forward, `?before=N` backward (the newest `limit` "
        "before N), neither the newest page; always in ascending order. Only what was "
        "sent after you joined is visible.",
        parameters=[HistoryQuery],
        responses={200: HistoryOut, **errors(404)},
    )
    def get(self, request: Request, room_id: int) -> Response:
        query = HistoryQuery(data=query_data(request))
        query.is_valid(raise_exception=True)
        limit = min(query.validated_data["limit"], relais_settings().history_page_max)
        envelopes = history_page(
            practitioner_id=identity_of(request).practitioner_id,
            room_id=room_id,
            after_seq=query.validated_data.get("after"),
            before_seq=query.validated_data.get("before"),
            limit=limit,
        )
        return Response(
            {
                "room": room_id,
                "messages": [
                    {
                        "room": room_id,
                        "seq": envelope.seq,
                        "id": envelope.client_id,
                        "sender": {
                            "device": envelope.sender_device_id,
                            "practitioner": envelope.sender_practitioner_id,
                        },
                        "body": encode_body(bytes(envelope.body)),
                        "ts": envelope.created_at_ms,
                    }
                    for envelope in envelopes
                ],
            }
        )

    @extend_schema(
        summary="Send an envelope",
        description="The WebSocket `send` over REST, for clients that cannot keep a "
        "WebSocket open: stored durably with the room's next sequence number and "
        "delivered to the room's connected devices (and Web Push). Idempotent on the "
        "message `id`: a retry answers the original's sequence number with "
        "`duplicate: true` (200).",
        request=SendIn,
        responses={
            201: SendOut,
            200: OpenApiResponse(SendOut, description="Already stored: the original's ack."),
            **errors(404, 413, 503),
        },
    )
    def post(self, request: Request, room_id: int) -> Response:
        data = SendIn(data=request.data)
        data.is_valid(raise_exception=True)
        stored = send_envelope(
            request=request._request,
            identity=identity_of(request),
            room_id=room_id,
            client_id=data.validated_data["id"],
            body_text=data.validated_data["body"],
        )
        return Response(
            {
                "id": stored.client_id,
                "room": stored.room_id,
                "seq": stored.seq,
                "ts": stored.created_at_ms,
                "duplicate": stored.duplicate,
            },
            status=status.HTTP_200_OK if stored.duplicate else status.HTTP_201_CREATED,
        )


class ReadIn(BodySerializer):
    seq = serializers.IntegerField(
        min_value=1, max_value=MAX_SEQ, help_text="The newest sequence number read."
    )


class ReadMarkerView(APIView):
    """``POST /rooms/{id}/read``: this device has read the room up to ``seq``."""

    @extend_schema(
        summary="Mark a room read up to a sequence number",
        description="Moves this device's read (and delivered) cursor forward, never back, "
        "and tells the room's connected devices, as the WebSocket `receipt` of kind "
        "`read` does. `bad_sequence` beyond the room's last message or before you joined.",
        request=ReadIn,
        responses={204: None, **errors(404)},
    )
    def post(self, request: Request, room_id: int) -> Response:
        data = ReadIn(data=request.data)
        data.is_valid(raise_exception=True)
        do_record_receipt(
            identity=identity_of(request),
            room_id=room_id,
            seq=data.validated_data["seq"],
            kind="read",
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class RoomUnreadOut(serializers.Serializer[None]):
    room = serializers.IntegerField()
    last_seq = serializers.IntegerField()
    read_seq = serializers.IntegerField(
        help_text="The furthest any of your devices has read (0: nothing)."
    )
    unread = serializers.IntegerField(
        help_text="Messages from others after `read_seq`, visible to you."
    )
    unread_capped = serializers.BooleanField(
        help_text=f"Only the newest {UNREAD_COUNT_LIMIT} messages were counted: there "
        "may be more (show 999+)."
    )


class UnreadOut(serializers.Serializer[None]):
    rooms = RoomUnreadOut(many=True)


class UnreadView(APIView):
    """``GET /rooms/unread``: unread counts of every room of mine."""

    @extend_schema(
        summary="Unread counts of my rooms",
        description="What was read on any of your devices counts as read; your own "
        "messages never count; only what you may see (sent after you joined) counts.",
        responses={200: UnreadOut},
    )
    def get(self, request: Request) -> Response:
        counts = unread_counts(practitioner_id=identity_of(request).practitioner_id)
        return Response(
            {
                "rooms": [
                    {
                        "room": count.room_id,
                        "last_seq": count.last_seq,
                        "read_seq": count.read_seq,
                        "unread": count.unread,
                        "unread_capped": count.capped,
                    }
                    for count in counts
                ]
            }
        )
