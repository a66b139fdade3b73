"""Téléexpertise over REST (docs/protocol.md §12): open a request, take the steps,
read the lifecycle. Over ``teleexpertise.services``.

Each step carries the end-to-end encrypted event that says what it is (the request
with the patient and the question, the decline's reason, the report...) as an envelope
for the room, stored and delivered like any message once the step is allowed. The
server sees the step's name and never the event.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.storage.base import StoredEnvelope
from mobile_api.openapi import errors
from mobile_api.queries import query_data
from mobile_api.requests import identity_of
from mobile_api.sending import send_envelope
from mobile_api.strict import BodySerializer, QuerySerializer
from mobile_api.throttling import SEND
from mobile_api.views.messages import BASE64URL_PATTERN, CLIENT_ID_PATTERN, MAX_BODY_TEXT
from teleexpertise.models import Teleexpertise, Transition
from teleexpertise.services.lifecycle import (
    EnvelopeSender,
    Step,
    access_teleexpertise,
    do_request,
    do_step,
    teleexpertises_of,
)
from teleexpertise.workflow import MEMBER_ACTIONS, Action, Role, State

STEP_ACTIONS = sorted(a.value for a in MEMBER_ACTIONS - {Action.REQUEST})
STATES = [s.value for s in State]  # the schema's TeleexpertiseStateEnum


class TransitionOut(serializers.Serializer[None]):
    action = serializers.ChoiceField(choices=[a.value for a in Action])
    state = serializers.ChoiceField(choices=STATES, help_text="The state after this step.")
    practitioner = serializers.CharField(
        allow_null=True, help_text="Who took it (national id); null: the server's clock."
    )
    device = serializers.IntegerField(allow_null=True)
    message_id = serializers.CharField(
        allow_blank=True, help_text="The client message id of the envelope carrying the event."
    )
    seq = serializers.IntegerField(
        allow_null=True, help_text="That envelope's sequence number in the room."
    )
    at = serializers.DateTimeField()


class TeleexpertiseOut(serializers.Serializer[None]):
    room = serializers.IntegerField()
    requerant = serializers.CharField(help_text="National id of the professional who asks.")
    requis = serializers.CharField(help_text="National id of the professional asked.")
    state = serializers.ChoiceField(choices=STATES)
    requested_at = serializers.DateTimeField()
    state_changed_at = serializers.DateTimeField()
    deadline = serializers.DateTimeField()
    reminders_sent = serializers.IntegerField()
    open_questions = serializers.IntegerField(
        help_text="Clarification questions of the requis not answered yet."
    )
    transitions = TransitionOut(many=True)


class StepOut(serializers.Serializer[None]):
    teleexpertise = TeleexpertiseOut()
    step = TransitionOut()


class TeleexpertiseListOut(serializers.Serializer[None]):
    teleexpertises = TeleexpertiseOut(many=True)


class _EnvelopeIn(BodySerializer):
    id = serializers.RegexField(
        CLIENT_ID_PATTERN,
        max_length=64,
        help_text="Client message id of the envelope; a retry with the same id is "
        "answered with the step already recorded.",
    )
    body = serializers.RegexField(
        BASE64URL_PATTERN,
        max_length=MAX_BODY_TEXT,
        trim_whitespace=False,
        help_text="The end-to-end encrypted event, an envelope for the room (base64url).",
    )


class RequestIn(_EnvelopeIn):
    room = serializers.IntegerField(min_value=1, help_text="The téléexpertise room.")
    requis = serializers.RegexField(
        r"^[0-9A-Za-z]{1,32}$", help_text="National id of the professional asked."
    )
    deadline = serializers.DateTimeField(
        help_text="When the answer is wished (ISO 8601 with a time zone)."
    )


class StepIn(_EnvelopeIn):
    action = serializers.ChoiceField(choices=STEP_ACTIONS)
    deadline = serializers.DateTimeField(
        required=False, help_text="With `accept` only: the answer time the requis commits to."
    )


class ListQuery(QuerySerializer):
    role = serializers.ChoiceField(
        choices=[Role.REQUERANT.value, Role.REQUIS.value], required=False
    )
    state = serializers.ChoiceField(choices=STATES, required=False)


def transition_out(transition: Transition) -> dict[str, Any]:
    return {
        "action": transition.action,
        "state": transition.state,
        "practitioner": transition.actor_id,
        "device": transition.device_id,
        "message_id": transition.message_id,
        "seq": transition.seq,
        "at": transition.at.isoformat(),
    }


def teleexpertise_out(teleexpertise: Teleexpertise) -> dict[str, Any]:
    return {
        "room": teleexpertise.room_id,
        "requerant": teleexpertise.requerant_id,
        "requis": teleexpertise.requis_id,
        "state": teleexpertise.state,
        "requested_at": teleexpertise.requested_at.isoformat(),
        "state_changed_at": teleexpertise.state_changed_at.isoformat(),
        "deadline": teleexpertise.deadline.isoformat(),
        "reminders_sent": teleexpertise.reminders_sent,
        "open_questions": teleexpertise.open_questions,
        "transitions": [transition_out(t) for t in teleexpertise.transitions.all()],
    }


def _step_response(step: Step) -> Response:
    return Response(
        {
            "teleexpertise": teleexpertise_out(step.teleexpertise),
            "step": transition_out(step.transition),
        },
        status=status.HTTP_201_CREATED if step.created else status.HTTP_200_OK,
    )


def _sender(request: Request, room_id: int) -> EnvelopeSender:
    identity = identity_of(request)

    def send(message_id: str, body_text: str) -> StoredEnvelope:
        return send_envelope(
            request=request._request,
            identity=identity,
            room_id=room_id,
            client_id=message_id,
            body_text=body_text,
        )

    return send


_STEP_ERRORS = errors(403, 404, 409, 413, 503)


class TeleexpertiseListCreateView(APIView):
    """``GET``: my téléexpertises. ``POST``: open one (the request)."""

    def get_throttles(self) -> list[Any]:
        if self.request.method == "POST":
            return [throttle() for throttle in SEND]
        return super().get_throttles()

    @extend_schema(
        operation_id="teleexpertise_list",
        summary="My téléexpertises",
        description="Those where you are requérant or requis, newest first (500 at most); "
        "`role` and `state` narrow the list.",
        parameters=[ListQuery],
        responses={200: TeleexpertiseListOut},
    )
    def get(self, request: Request) -> Response:
        query = ListQuery(data=query_data(request))
        query.is_valid(raise_exception=True)
        role = query.validated_data.get("role")
        state = query.validated_data.get("state")
        found = teleexpertises_of(
            practitioner_id=identity_of(request).practitioner_id,
            role=Role(role) if role else None,
            states=[State(state)] if state else None,
        )
        return Response({"teleexpertises": [teleexpertise_out(t) for t in found]})

    @extend_schema(
        summary="Send a téléexpertise request",
        description="Opens the téléexpertise of a `teleexpertise` room whose two members "
        "are you (the requérant) and `requis`, a médecin, sage-femme or chirurgien-dentiste "
        "in the directory (`requis_not_eligible` otherwise). `body` is the end-to-end "
        "encrypted request event, stored in the room like any message and pushed to the "
        "requis. Nothing is stored when the request is refused.",
        request=RequestIn,
        responses={
            201: StepOut,
            200: OpenApiResponse(StepOut, description="A retry: the request already recorded."),
            **_STEP_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        data = RequestIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        identity = identity_of(request)
        step = do_request(
            identity=identity,
            room_id=values["room"],
            requis_id=values["requis"],
            deadline=values["deadline"],
            message_id=values["id"],
            body_text=values["body"],
            send=_sender(request, values["room"]),
            now=timezone.now(),
        )
        return _step_response(step)


class TeleexpertiseView(APIView):
    """``GET /teleexpertise/{room}``: one téléexpertise and its steps."""

    @extend_schema(
        summary="A téléexpertise and its steps",
        description="For its two members and the organisation archiving the room.",
        responses={200: TeleexpertiseOut, **errors(404)},
    )
    def get(self, request: Request, room_id: int) -> Response:
        found = access_teleexpertise(
            room_id=room_id, practitioner_id=identity_of(request).practitioner_id
        )
        return Response(teleexpertise_out(found))


class TeleexpertiseStepView(APIView):
    """``POST /teleexpertise/{room}/steps``: take a step, with the event that carries it."""

    throttle_classes = SEND

    @extend_schema(
        summary="Take a step of a téléexpertise",
        description="`accept`, `decline`, `report`, `clarification_request` (the requis); "
        "`clarification_answer`, `cancel` (the requérant); `close` (either, once "
        "answered). A step your role may never take is `role_refused` (403); one out of "
        "order is `transition_refused` (409); nothing is stored then. `body` is the end-"
        "to-end encrypted event of the step.",
        request=StepIn,
        responses={
            201: StepOut,
            200: OpenApiResponse(StepOut, description="A retry: the step already recorded."),
            **_STEP_ERRORS,
        },
    )
    def post(self, request: Request, room_id: int) -> Response:
        data = StepIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        step = do_step(
            identity=identity_of(request),
            room_id=room_id,
            action=Action(values["action"]),
            message_id=values["id"],
            body_text=values["body"],
            send=_sender(request, room_id),
            now=timezone.now(),
            deadline=values.get("deadline"),
        )
        return _step_response(step)
