"""What a device knows of each téléexpertise: the events it verified, in order.

A case is rebuilt from its events (``Case.replay``) with the same lifecycle table the
server uses (``teleexpertise.workflow``), so a device trusts an event only when the
signed room state and the table say its sender could take that step then:

* the request must come from a member of a ``teleexpertise`` room of exactly two
  members, naming itself as requérant and the other member as requis;
* every later step must be allowed for the sender's role (requérant or requis, from the
  request) in the case's state; a clarification answer must answer an open question.

An event that fails is refused with an alert and changes nothing. The clock's
``expired`` comes from the server (a ``teleexpertise`` frame, protocol §12.4): the
server then refuses any further step, which is all expiry means.

Cases live in the device's encrypted key store (``store.data["teleexpertise"]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from client.rooms import LocalRoom
from client.teleexpertise.contents import (
    ClarificationAnswer,
    ClarificationRequest,
    Report,
    Request,
    TeleexpertiseEvent,
    parse_event,
)
from client.teleexpertise.errors import TeleexpertiseError
from teleexpertise.workflow import (
    Action,
    Role,
    State,
    TransitionError,
    next_state,
)


@dataclass(frozen=True, slots=True)
class Recorded:
    """One verified event: its place in the room, its sender, its content."""

    seq: int
    sender: str
    content: dict[str, Any]
    event: TeleexpertiseEvent


@dataclass
class Case:
    room_id: int
    me: str
    events: list[Recorded] = field(default_factory=list)
    state: State | None = None
    open_questions: dict[str, str] = field(default_factory=dict)  # question id → question
    billed: bool = False
    expired_at: datetime | None = None

    @property
    def request(self) -> Request:
        first = self.events[0].event
        assert isinstance(first, Request)
        return first

    @property
    def role(self) -> Role:
        return self.role_of(self.me)

    @property
    def party(self) -> Role | None:
        """This device's role, or None when it only reads (the room's archiver)."""
        request = self.request
        if self.me == request.requerant.national_id:
            return Role.REQUERANT
        if self.me == request.requis.national_id:
            return Role.REQUIS
        return None

    def role_of(self, national_id: str) -> Role:
        request = self.request
        if national_id == request.requerant.national_id:
            return Role.REQUERANT
        if national_id == request.requis.national_id:
            return Role.REQUIS
        raise _refused("not_member", "The sender is not part of this téléexpertise.")

    @property
    def report(self) -> Report | None:
        return next((r.event for r in self.events if isinstance(r.event, Report)), None)

    @property
    def report_seq(self) -> int | None:
        return next((r.seq for r in self.events if isinstance(r.event, Report)), None)

    @property
    def clarifications(self) -> list[tuple[ClarificationRequest, ClarificationAnswer | None]]:
        answers = {
            r.event.question_id: r.event
            for r in self.events
            if isinstance(r.event, ClarificationAnswer)
        }
        return [
            (r.event, answers.get(r.event.question_id))
            for r in self.events
            if isinstance(r.event, ClarificationRequest)
        ]

    def seen(self, seq: int) -> bool:
        return any(r.seq == seq for r in self.events)

    def check(self, event: TeleexpertiseEvent, *, sender: str) -> State | None:
        """The state after ``event`` from ``sender``; TeleexpertiseError if refused."""
        role = self.role_of(sender)
        try:
            target = next_state(
                state=self.state,
                action=event.action,
                role=role,
                open_questions=len(self.open_questions),
            )
        except TransitionError as error:
            code = "role_refused" if error.kind == "role" else "transition_refused"
            raise TeleexpertiseError(code, error.message, error.message_fr) from None
        if isinstance(event, ClarificationAnswer) and event.question_id not in self.open_questions:
            raise _refused("transition_refused", "This clarification question is not open.")
        if isinstance(event, ClarificationRequest) and event.question_id in self.open_questions:
            raise _refused("transition_refused", "This question id is already used.")
        return target

    def add(self, recorded: Recorded) -> None:
        """Apply an event already checked with ``check``."""
        event = recorded.event
        target = self.check(event, sender=recorded.sender)
        if target is not None:
            self.state = target
        if isinstance(event, ClarificationRequest):
            self.open_questions[event.question_id] = event.question
        elif isinstance(event, ClarificationAnswer):
            self.open_questions.pop(event.question_id, None)
        self.events.append(recorded)

    def expire(self, at: datetime) -> bool:
        """The server's clock expired the request; True if this changed the case."""
        try:
            target = next_state(state=self.state, action=Action.EXPIRE, role=Role.CLOCK)
        except TransitionError:
            return False
        self.state, self.expired_at = target, at
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            "room_id": self.room_id,
            "me": self.me,
            "events": [
                {"seq": r.seq, "sender": r.sender, "content": r.content} for r in self.events
            ],
            "billed": self.billed,
            "expired_at": self.expired_at.isoformat() if self.expired_at else None,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Case:
        case = cls(room_id=value["room_id"], me=value["me"])
        for item in value["events"]:
            event = parse_event(item["content"])
            recorded = Recorded(
                seq=item["seq"], sender=item["sender"], content=item["content"], event=event
            )
            if not case.events:
                case.events.append(recorded)
                case.state = State.REQUESTED
            else:
                case.add(recorded)
        case.billed = value["billed"]
        if value["expired_at"]:
            case.expire(datetime.fromisoformat(value["expired_at"]))
        return case


def _refused(code: str, english: str) -> TeleexpertiseError:
    french = {
        "not_member": "L'expéditeur ne fait pas partie de cette téléexpertise.",
        "transition_refused": "Cette étape n'est pas possible dans l'état actuel.",
        "bad_request_event": "Cette demande ne correspond pas au salon.",
    }[code]
    return TeleexpertiseError(code, english, french)


@dataclass(frozen=True, slots=True)
class RoomFacts:
    """What a case needs of a room's verified state (protocol §10.5)."""

    room_id: int
    kind: str
    members: frozenset[str]


def room_facts(room: LocalRoom) -> RoomFacts:
    return RoomFacts(room.room_id, room.state.kind, frozenset(room.state.members))


def check_request(request: Request, *, room: RoomFacts, sender: str) -> None:
    """The request names its sender as requérant, and the room is a téléexpertise room
    of exactly the requérant and the requis (from the verified room state)."""
    members = set(room.members)
    if (
        room.kind != "teleexpertise"
        or request.requerant.national_id != sender
        or members != {request.requerant.national_id, request.requis.national_id}
    ):
        raise _refused(
            "bad_request_event",
            "The request does not match the room (kind, members, or sender).",
        )


class CaseBook:
    """The cases of this device, persisted in the key store's ``data`` mapping."""

    def __init__(self, data: dict[str, Any], *, me: str) -> None:
        self._data = data
        self.me = me
        self.cases: dict[int, Case] = {
            int(room): Case.from_json(value) for room, value in data.items()
        }

    def get(self, room_id: int) -> Case | None:
        return self.cases.get(room_id)

    def require(self, room_id: int) -> Case:
        case = self.cases.get(room_id)
        if case is None:
            raise TeleexpertiseError(
                "unknown_teleexpertise",
                f"Room {room_id} has no téléexpertise known to this device.",
                f"Le salon {room_id} n'a pas de téléexpertise connue de cet appareil.",
            )
        return case

    def accept(
        self, *, room: RoomFacts, seq: int, sender: str, content: dict[str, Any]
    ) -> TeleexpertiseEvent | None:
        """Verify and record an event (ours or received); None if it was seen already.
        TeleexpertiseError (``bad_event``, ``role_refused``, ``transition_refused``...)
        when refused: nothing changes then."""
        event = parse_event(content)
        recorded = Recorded(seq=seq, sender=sender, content=content, event=event)
        case = self.cases.get(room.room_id)
        if isinstance(event, Request):
            if case is not None:
                if case.seen(seq):
                    return None
                raise _refused("transition_refused", "This room already has its request.")
            check_request(event, room=room, sender=sender)
            case = Case(room_id=room.room_id, me=self.me, events=[recorded], state=State.REQUESTED)
            self.cases[room.room_id] = case
        else:
            if case is None:
                raise _refused("transition_refused", "An event came before its request.")
            if case.seen(seq):
                return None
            case.add(recorded)
        self.save(case)
        return event

    def save(self, case: Case) -> None:
        self._data[str(case.room_id)] = case.to_json()
