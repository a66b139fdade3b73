"""Rooms, members and message history. One view per operation over chat.services."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.conf import relais_settings
from chat.frames import encode_body
from chat.models import Membership, Role, Room, RoomKind
from chat.services.history import history_page
from chat.services.rooms import do_add_member, do_create_room, do_remove_member, rooms_of
from directory.models import Practitioner


def _practitioner(request: Request) -> Practitioner:
    user = request.user
    assert isinstance(user, Practitioner)  # guaranteed by DeviceTokenAuthentication
    return user


def _room_out(room: Room, *, practitioner_id: str) -> dict[str, Any]:
    memberships: list[Membership] = list(room.memberships.all())
    role = next((m.role for m in memberships if m.practitioner_id == practitioner_id), None)
    return {
        "id": room.pk,
        "kind": room.kind,
        "role": role,
        "last_seq": room.last_seq,
        "members": [
            {"practitioner": m.practitioner_id, "role": m.role}
            for m in sorted(memberships, key=lambda m: m.practitioner_id)
        ],
    }


class RoomListCreateView(APIView):
    class Input(serializers.Serializer[None]):
        kind = serializers.ChoiceField(choices=RoomKind.choices)
        members = serializers.ListField(
            child=serializers.CharField(max_length=32), allow_empty=True, max_length=499
        )

    def get(self, request: Request) -> Response:
        me = _practitioner(request)
        rooms = rooms_of(practitioner_id=me.national_id)
        return Response({"rooms": [_room_out(r, practitioner_id=me.national_id) for r in rooms]})

    def post(self, request: Request) -> Response:
        me = _practitioner(request)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        room = do_create_room(
            creator=me, kind=data.validated_data["kind"], member_ids=data.validated_data["members"]
        )
        room = Room.objects.prefetch_related("memberships").get(pk=room.pk)
        return Response(_room_out(room, practitioner_id=me.national_id), status=201)


class MemberAddView(APIView):
    class Input(serializers.Serializer[None]):
        practitioner = serializers.CharField(max_length=32)
        role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)

    def post(self, request: Request, room_id: int) -> Response:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        membership = do_add_member(
            actor=_practitioner(request),
            room_id=room_id,
            practitioner_id=data.validated_data["practitioner"],
            role=data.validated_data["role"],
        )
        return Response(
            {"room": room_id, "practitioner": membership.practitioner_id, "role": membership.role},
            status=status.HTTP_201_CREATED,
        )


class MemberRemoveView(APIView):
    def delete(self, request: Request, room_id: int, practitioner_id: str) -> Response:
        do_remove_member(
            actor=_practitioner(request), room_id=room_id, practitioner_id=practitioner_id
        )
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
