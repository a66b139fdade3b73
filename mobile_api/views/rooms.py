"""Rooms, their signed state chain, and message history. One view per operation over
chat.services.

Room creation and every membership change carry a signed room-state event
(docs/protocol.md, "Room state"): ``{"event": "<the canonical JSON, as a string>"}``.
The event travels as a string so that its exact signed bytes reach the server.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.conf import relais_settings
from chat.errors import ErrorCode, RelaisError
from chat.frames import encode_body
from chat.models import Membership, Room, RoomStateEvent
from chat.services.devices import DeviceIdentity
from chat.services.history import history_page
from chat.services.rooms import do_apply_state_event, do_create_room, rooms_of, state_events
from directory.models import Practitioner
from e2ee.state import MAX_EVENT_BYTES


def _practitioner(request: Request) -> Practitioner:
    user = request.user
    assert isinstance(user, Practitioner)  # guaranteed by DeviceTokenAuthentication
    return user


def _identity(request: Request) -> DeviceIdentity:
    identity = request.auth
    assert isinstance(identity, DeviceIdentity)  # guaranteed by DeviceTokenAuthentication
    return identity


def _room_out(room: Room, *, practitioner_id: str) -> dict[str, Any]:
    memberships: list[Membership] = list(room.memberships.all())
    role = next((m.role for m in memberships if m.practitioner_id == practitioner_id), None)
    return {
        "id": room.pk,
        "uid": room.uid,
        "kind": room.kind,
        "role": role,
        "last_seq": room.last_seq,
        "state_epoch": room.state_epoch,
        "policy": room.policy,
        "archiver": room.archiver,
        "members": [
            {"practitioner": m.practitioner_id, "role": m.role}
            for m in sorted(memberships, key=lambda m: m.practitioner_id)
        ],
    }


def _event_out(event: RoomStateEvent) -> dict[str, Any]:
    return {"epoch": event.epoch, "event": bytes(event.body).decode("utf-8")}


class SignedEventInput(serializers.Serializer[None]):
    event = serializers.CharField(max_length=MAX_EVENT_BYTES, trim_whitespace=False)


def _event_bytes(request: Request) -> bytes:
    data = SignedEventInput(data=request.data)
    data.is_valid(raise_exception=True)
    return str(data.validated_data["event"]).encode("utf-8")


class RoomListCreateView(APIView):
    """``GET``: my rooms. ``POST {"event"}``: create a room from its signed creation event."""

    def get(self, request: Request) -> Response:
        me = _practitioner(request)
        rooms = rooms_of(practitioner_id=me.national_id)
        return Response({"rooms": [_room_out(r, practitioner_id=me.national_id) for r in rooms]})

    def post(self, request: Request) -> Response:
        room = do_create_room(identity=_identity(request), event=_event_bytes(request))
        room = Room.objects.prefetch_related("memberships").get(pk=room.pk)
        return Response(
            _room_out(room, practitioner_id=_practitioner(request).national_id), status=201
        )


class RoomStateView(APIView):
    """``GET ?after=<epoch>``: the signed chain after an epoch (all of it by default).
    ``POST {"event"}``: append the next signed event (any action)."""

    class Query(serializers.Serializer[None]):
        after = serializers.IntegerField(required=False, min_value=-1, default=-1)

    def get(self, request: Request, room_id: int) -> Response:
        query = self.Query(data=request.query_params)
        query.is_valid(raise_exception=True)
        events = state_events(
            practitioner_id=_practitioner(request).national_id,
            room_id=room_id,
            after_epoch=query.validated_data["after"],
        )
        return Response({"room": room_id, "events": [_event_out(e) for e in events]})

    def post(self, request: Request, room_id: int) -> Response:
        stored = do_apply_state_event(
            identity=_identity(request), room_id=room_id, event=_event_bytes(request)
        )
        return Response(_event_out(stored), status=status.HTTP_201_CREATED)


class MemberAddView(APIView):
    """``POST {"event"}``: a signed ``add_member`` event (kept for the members URL)."""

    def post(self, request: Request, room_id: int) -> Response:
        event = _event_bytes(request)
        stored = do_apply_state_event(identity=_identity(request), room_id=room_id, event=event)
        if stored.action != "add_member":
            raise RelaisError(ErrorCode.BAD_REQUEST, "This URL takes add_member events.")
        return Response(_event_out(stored), status=status.HTTP_201_CREATED)


class MemberRemoveView(APIView):
    """``DELETE {"event"}``: a signed ``remove_member`` event naming this practitioner."""

    def delete(self, request: Request, room_id: int, practitioner_id: str) -> Response:
        event = _event_bytes(request)
        from e2ee.state import parse_event

        try:
            body, _ = parse_event(event)
        except Exception:
            raise RelaisError(ErrorCode.BAD_STATE_EVENT) from None
        if (
            body["action"] != "remove_member"
            or body["content"].get("national_id") != practitioner_id
        ):
            raise RelaisError(ErrorCode.BAD_REQUEST, "The event must remove this practitioner.")
        do_apply_state_event(identity=_identity(request), room_id=room_id, event=event)
        return Response(status=status.HTTP_204_NO_CONTENT)


class HistoryView(APIView):
    """``GET /rooms/{id}/messages?after=N`` (forward), ``?before=N`` (backward), or the
    newest page; ascending order, at most ``limit`` (≤ 200)."""

    class Query(serializers.Serializer[None]):
        after = serializers.IntegerField(required=False, min_value=0, max_value=2**62)
        before = serializers.IntegerField(required=False, min_value=1, max_value=2**62)
        limit = serializers.IntegerField(required=False, min_value=1, default=50)

    def get(self, request: Request, room_id: int) -> Response:
        query = self.Query(data=request.query_params)
        query.is_valid(raise_exception=True)
        limit = min(query.validated_data["limit"], relais_settings().history_page_max)
        envelopes = history_page(
            practitioner_id=_practitioner(request).national_id,
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
