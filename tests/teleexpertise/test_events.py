"""The encrypted events: what they carry, how a receiver checks them (the lifecycle
table, the room, the sender), and the room profile content."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from client.teleexpertise.cases import CaseBook, RoomFacts
from client.teleexpertise.consent import Consent, ConsentDecision, ConsentGivenBy, ConsentMethod
from client.teleexpertise.contents import (
    Accept,
    ClarificationAnswer,
    ClarificationRequest,
    Decline,
    Report,
    parse_event,
)
from client.teleexpertise.errors import TeleexpertiseError
from client.teleexpertise.profile import RoomProfileContent
from documents.errors import DocumentError
from teleexpertise.workflow import State
from tests.teleexpertise.samples import DOCTOR, NURSE, consent, patient, request, unqualified

NOW = datetime(2026, 3, 14, 10, 0, tzinfo=UTC)


def room(kind: str = "teleexpertise", members=(NURSE.national_id, DOCTOR.national_id)):
    """A room as its verified state describes it."""
    return RoomFacts(room_id=7, kind=kind, members=frozenset(members))


def test_events_round_trip_through_their_content():
    events = [
        request(),
        Accept(note="Je regarde ce soir."),
        Accept(deadline=NOW),
        Decline(reason="Hors de mon champ : adresser en dermatologie."),
        ClarificationRequest(question_id="q1", question="Depuis quand ?", asked_at=NOW),
        ClarificationAnswer(question_id="q1", answer="Dix jours.", answered_at=NOW),
        Report(answer="Poursuivre les soins.", reported_at=NOW),
    ]
    for event in events:
        content = event.to_content()
        assert content["type"] == f"teleexpertise.{event.action.value}"
        assert parse_event(content) == event


def test_the_matricule_travels_only_for_a_qualified_identity():
    assert request().to_content()["patient"]["matricule"] == "279035121518989"
    assert "matricule" not in request(patient=unqualified()).to_content()["patient"]
    forged = request().to_content()
    forged["patient"]["status"] = "VALI"  # a matricule with traits nobody qualified
    with pytest.raises(TeleexpertiseError) as refused:
        parse_event(forged)
    assert refused.value.code == "bad_event"


def test_a_wrong_ins_key_is_refused_when_the_identity_is_made():
    with pytest.raises(DocumentError) as refused:
        patient(matricule="279035121518988")
    assert refused.value.code == "bad_matricule_key"


def test_malformed_events_are_refused():
    content = request().to_content()
    for broken in (
        {**content, "extra": 1},
        {key: value for key, value in content.items() if key != "question"},
        {**content, "v": 2},
        {**content, "question": ""},
        {**content, "urgency": "tomorrow"},
        {**content, "deadline": "2026-03-16T09:30:00"},  # no offset
        {**content, "attachments": [{"v": 1}]},
        {**Decline(reason="x").to_content(), "reason": ""},
    ):
        with pytest.raises(TeleexpertiseError) as refused:
            parse_event(broken)
        assert refused.value.code == "bad_event"


def test_consent_is_required_and_described():
    with pytest.raises(TeleexpertiseError) as refused:
        request(consent=consent(decision=ConsentDecision.REFUSED))
    assert refused.value.code == "bad_field"
    with pytest.raises(TeleexpertiseError):
        Consent(
            decision=ConsentDecision.GIVEN,
            obtained_on=date(2026, 3, 14),
            method=ConsentMethod.WRITTEN,
            given_by=ConsentGivenBy.LEGAL_REPRESENTATIVE,
        )  # who represented the patient?
    guardian = consent(given_by=ConsentGivenBy.LEGAL_REPRESENTATIVE, representative="M. PAT")
    assert guardian.describe()[1] == (
        "Consentement donné oralement par représentant légal M. PAT le 14/03/2026"
    )
    assert Consent.from_dict(guardian.to_dict()) == guardian


def accept_all(book: CaseBook, local: RoomFacts, steps):
    for seq, (sender, event) in enumerate(steps, start=1):
        book.accept(room=local, seq=seq, sender=sender, content=event.to_content())


def test_a_receiver_follows_the_table():
    book = CaseBook({}, me=NURSE.national_id)
    local = room()
    question = ClarificationRequest(question_id="q1", question="Depuis quand ?", asked_at=NOW)
    accept_all(
        book,
        local,
        [
            (NURSE.national_id, request()),
            (DOCTOR.national_id, question),
            (NURSE.national_id, ClarificationAnswer("q1", "Dix jours.", NOW)),
            (DOCTOR.national_id, Accept()),
            (DOCTOR.national_id, Report(answer="Poursuivre.", reported_at=NOW)),
        ],
    )
    case = book.require(7)
    assert case.state is State.ANSWERED
    assert case.clarifications == [(question, ClarificationAnswer("q1", "Dix jours.", NOW))]
    assert (
        book.accept(room=local, seq=5, sender=DOCTOR.national_id, content=Accept().to_content())
        is None
    )
    # Read back from the key store's data: the same case.
    again = CaseBook(book._data, me=NURSE.national_id).require(7)
    assert (again.state, len(again.events)) == (State.ANSWERED, 5)


@pytest.mark.parametrize(
    ("steps", "code"),
    [
        ([(NURSE.national_id, Accept())], "transition_refused"),  # before the request
        ([(NURSE.national_id, request()), (NURSE.national_id, Accept())], "role_refused"),
        (
            [(NURSE.national_id, request()), (NURSE.national_id, Report("x", NOW))],
            "role_refused",
        ),
        (
            [(NURSE.national_id, request()), (DOCTOR.national_id, Report("x", NOW))],
            "transition_refused",
        ),
        (
            [
                (NURSE.national_id, request()),
                (NURSE.national_id, ClarificationAnswer("q9", "?", NOW)),
            ],
            "transition_refused",
        ),
        ([(DOCTOR.national_id, request())], "bad_request_event"),  # not its requérant
        ([(NURSE.national_id, request()), ("810002765435", Accept())], "not_member"),
    ],
)
def test_a_receiver_refuses_what_the_table_forbids(steps, code):
    book = CaseBook({}, me=NURSE.national_id)
    with pytest.raises(TeleexpertiseError) as refused:
        accept_all(book, room(), steps)
    assert refused.value.code == code
    case = book.get(7)
    assert case is None or case.state is State.REQUESTED


def test_a_request_needs_a_teleexpertise_room_of_its_two_professionals():
    for local in (
        room(kind="care_team"),
        room(members=(NURSE.national_id, DOCTOR.national_id, "810002765435")),
    ):
        with pytest.raises(TeleexpertiseError) as refused:
            CaseBook({}, me=NURSE.national_id).accept(
                room=local, seq=1, sender=NURSE.national_id, content=request().to_content()
            )
        assert refused.value.code == "bad_request_event"


def test_room_profile_content():
    profile = RoomProfileContent(title="Mme PAT-TROIS — plaie talon", patient=patient(), notes="")
    value = profile.to_dict()
    assert set(value) == {"v", "type", "title", "patient"}
    assert RoomProfileContent.from_dict(value) == profile
    assert (
        RoomProfileContent.from_dict({"v": 1, "type": "room_profile", "title": "Équipe"}).patient
        is None
    )
    for broken in (
        {**value, "title": ""},
        {**value, "unknown": 1},
        {**value, "patient": {**value["patient"], "matricule": "279035121518988"}},
        {**value, "type": "other"},
        "not an object",
    ):
        with pytest.raises(TeleexpertiseError) as refused:
            RoomProfileContent.from_dict(broken)
        assert refused.value.code == "bad_profile"
