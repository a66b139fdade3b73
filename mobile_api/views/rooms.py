"""Rooms and their signed state chain. One view per operation over
chat.services (messages: ``views/messages.py``).

Room creation and every membership change carry a signed room-state event
(docs/protocol.md, "Room state"): ``{"event": "<the canonical JSON, as a string>"}``.
The event travels as a string so that its exact signed bytes reach the server.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.errors import ErrorCode, RelaisError
from chat.models import Membership, Room, RoomStateEvent
from chat.services.rooms import do_apply_state_event, do_create_room, rooms_of, state_events
from e2ee.errors import CryptoError
from e2ee.state import MAX_EVENT_BYTES, parse_event
from mobile_api.openapi import errors
from mobile_api.queries import query_data
from mobile_api.requests import identity_of
from mobile_api.strict import BodySerializer, QuerySerializer


class MemberOut(serializers.Serializer[None]):
    practitioner = serializers.CharField(help_text="National id.")
    role = serializers.ChoiceField(choices=["admin", "member"])


class RoomOut(serializers.Serializer[None]):
    id = serializers.IntegerField()
    uid = serializers.CharField(allow_null=True, help_text="The room id the members signed.")
    kind = serializers.ChoiceField(choices=["direct", "care_team", "teleexpertise"])
    role = serializers.ChoiceField(choices=["admin", "member"], allow_null=True)
    last_seq = serializers.IntegerField()
    state_epoch = serializers.IntegerField()
    policy = serializers.DictField(help_text="The room policy of the verified state.")
    archiver = serializers.DictField(allow_null=True)
    members = MemberOut(many=True)


class RoomListOut(serializers.Serializer[None]):
    rooms = RoomOut(many=True)


class EventOut(serializers.Serializer[None]):
    epoch = serializers.IntegerField()
    event = serializers.CharField(help_text="The signed event, canonical JSON as a string.")


class StateOut(serializers.Serializer[None]):
    room = serializers.IntegerField()
    events = EventOut(many=True)


class SignedEventIn(BodySerializer):
    event = serializers.CharField(
        max_length=MAX_EVENT_BYTES,
        trim_whitespace=False,
        help_text="A signed room-state event (docs/protocol.md §10.5), as a string, so "
        "that its exact signed bytes reach the server.",
    )


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


def _event_bytes(request: Request) -> bytes:
    data = SignedEventIn(data=request.data)
    data.is_valid(raise_exception=True)
    return str(data.validated_data["event"]).encode("utf-8")


_STATE_ERRORS = errors(403, 404, 409)


class RoomListCreateView(APIView):
    """``GET``: my rooms. ``POST {"event"}``: create a room from its signed creation event."""

    @extend_schema(summary="My rooms", responses={200: RoomListOut})
    def get(self, request: Request) -> Response:
        me = identity_of(request).practitioner_id
        rooms = rooms_of(practitioner_id=me)
        return Response({"rooms": [_room_out(r, practitioner_id=me) for r in rooms]})

    @extend_schema(
        summary="Create a room from its signed creation event",
        description="The signer's device becomes the first admin. Every device the event "
        "names must be certified in the key-transparency log (`key_not_certified`).",
        request=SignedEventIn,
        responses={201: RoomOut, **errors(404, 409)},
    )
    def post(self, request: Request) -> Response:
        room = do_create_room(identity=identity_of(request), event=_event_bytes(request))
        room = Room.objects.prefetch_related("memberships").get(pk=room.pk)
        return Response(
            _room_out(room, practitioner_id=identity_of(request).practitioner_id), status=201
        )


class StateQuery(QuerySerializer):
    after = serializers.IntegerField(
        required=False, min_value=-1, max_value=2**62, default=-1, help_text="An epoch."
    )


class RoomStateView(APIView):
    """``GET ?after=<epoch>``: the signed chain after an epoch (all of it by default).
    ``POST {"event"}``: append the next signed event (any action)."""

    @extend_schema(
        summary="The room's signed state chain",
        description="Events after epoch `after` (all from creation by default), to verify "
        "and replay client-side.",
        parameters=[StateQuery],
        responses={200: StateOut, **errors(404)},
    )
    def get(self, request: Request, room_id: int) -> Response:
        query = StateQuery(data=query_data(request))
        query.is_valid(raise_exception=True)
        events = state_events(
            practitioner_id=identity_of(request).practitioner_id,
            room_id=room_id,
            after_epoch=query.validated_data["after"],
        )
        return Response({"room": room_id, "events": [_event_out(e) for e in events]})

    @extend_schema(
        summary="Append the next signed state event",
        description="`stale_state` (409) when another event came first: fetch the new "
        "events, sign again.",
        request=SignedEventIn,
        responses={201: EventOut, **_STATE_ERRORS},
    )
    def post(self, request: Request, room_id: int) -> Response:
        stored = do_apply_state_event(
            identity=identity_of(request), room_id=room_id, event=_event_bytes(request)
        )
        return Response(_event_out(stored), status=status.HTTP_201_CREATED)


class MemberAddView(APIView):
    """``POST {"event"}``: a signed ``add_member`` event (kept for the members URL)."""

    @extend_schema(
        summary="Add a member (a signed add_member event)",
        request=SignedEventIn,
        responses={201: EventOut, **_STATE_ERRORS},
    )
    def post(self, request: Request, room_id: int) -> Response:
        event = _event_bytes(request)
        body = _parsed(event)
        if body["action"] != "add_member":
            raise RelaisError(ErrorCode.BAD_REQUEST, "This URL takes add_member events.")
        stored = do_apply_state_event(identity=identity_of(request), room_id=room_id, event=event)
        return Response(_event_out(stored), status=status.HTTP_201_CREATED)


class MemberRemoveView(APIView):
    """``DELETE {"event"}``: a signed ``remove_member`` event naming this practitioner."""

    @extend_schema(
        summary="Remove a member (a signed remove_member event)",
        description="A member may remove themselves (leave); an admin anyone.",
        request=SignedEventIn,
        responses={204: None, **_STATE_ERRORS},
    )
    def delete(self, request: Request, room_id: int, practitioner_id: str) -> Response:
        event = _event_bytes(request)
        body = _parsed(event)
        content = body["content"]
        if (
            body["action"] != "remove_member"
            or not isinstance(content, dict)
            or content.get("national_id") != practitioner_id
        ):
            raise RelaisError(ErrorCode.BAD_REQUEST, "The event must remove this practitioner.")
        do_apply_state_event(identity=identity_of(request), room_id=room_id, event=event)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _parsed(event: bytes) -> dict[str, object]:
    try:
        body, _signature = parse_event(event)
    except CryptoError as error:
        raise RelaisError(ErrorCode.BAD_STATE_EVENT, error.detail) from None
    return body
