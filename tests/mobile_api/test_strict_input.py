"""What the API refuses, and how: regression tests for what the schema-driven run found
(tests/mobile_api/test_schemathesis.py). Each was answered before as if it were valid,
or with an HTML page instead of the error envelope."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from chat.models import Envelope, Room
from tests.mobile_api.users import User, creation, login

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def nurse(practitioners) -> User:
    return login(practitioners["nurse"].national_id)


@pytest.fixture
def room(nurse, practitioners) -> int:
    doctor = login(practitioners["doctor"].national_id)
    event = creation(nurse, "direct", [(doctor, "member")])
    created = nurse.client.post("/api/v1/rooms", {"event": event}, format="json")
    room_id: int = created.json()["id"]
    return room_id


def error_of(response) -> dict:
    assert response["Content-Type"] == "application/json", response.content[:200]
    error: dict = response.json()["error"]
    return error


def test_an_unknown_api_url_answers_the_error_envelope(nurse):
    for path in ["/api/v1/nothing-here", "/api/v1/attachments/uploads/abc/parts/null,null"]:
        response = nurse.client.put(path, b"x", content_type="application/octet-stream")
        assert response.status_code == 404
        assert error_of(response)["code"] == "not_found"
    # Outside the API, Django's own page.
    assert APIClient().get("/nothing-here")["Content-Type"].startswith("text/html")


def test_a_body_over_the_limit_answers_413_with_the_envelope(nurse, room):
    oversized = json.dumps({"event": "x" * 300_000})
    response = nurse.client.post(
        f"/api/v1/rooms/{room}/state", oversized, content_type="application/json"
    )
    assert response.status_code == 413
    assert error_of(response)["code"] == "body_too_large"


@pytest.mark.parametrize(
    "query",
    [
        "after=",  # read as "absent" by DRF's form semantics
        "after=1&after=2",  # the last one silently won
        "limit=7.0",  # read as 7
        "before=abc",
    ],
)
def test_query_parameters_are_read_strictly(nurse, room, query):
    response = nurse.client.get(f"/api/v1/rooms/{room}/messages?{query}")
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "bad_request"
    assert query.split("=")[0] in error["fields"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"id": 0, "body": ""}, "id"),  # was stored under the id "0"
        ({"id": True, "body": ""}, "id"),
        ({"id": "m-1", "body": 12}, "body"),
        ({"id": "m-1", "body": None}, "body"),
    ],
)
def test_json_fields_take_their_declared_type_only(nurse, room, payload, field):
    response = nurse.client.post(f"/api/v1/rooms/{room}/messages", payload, format="json")
    assert response.status_code == 400
    assert field in error_of(response)["fields"]
    assert not Envelope.objects.filter(room_id=room).exists()


def test_integers_in_json_are_integers(nurse, room):
    send = nurse.client.post(
        f"/api/v1/rooms/{room}/messages", {"id": "m-1", "body": "AAAA"}, format="json"
    )
    assert send.status_code == 201
    for seq in ["1", 1.0, True]:
        response = nurse.client.post(f"/api/v1/rooms/{room}/read", {"seq": seq}, format="json")
        assert response.status_code == 400, seq
        assert error_of(response)["fields"]["seq"] == ["Must be an integer."]
    assert (
        nurse.client.post(f"/api/v1/rooms/{room}/read", {"seq": 1}, format="json").status_code
        == 204
    )


def test_error_messages_are_english_and_french_whatever_the_language(nurse, room):
    """The English ``message`` was DRF's detail in the server's language (French)."""
    not_json = nurse.client.post(
        f"/api/v1/rooms/{room}/messages", "id=1", content_type="application/x-www-form-urlencoded"
    )
    assert not_json.status_code == 415
    assert error_of(not_json)["message"] == "Send the body as application/json."
    assert error_of(not_json)["message_fr"].startswith("Envoyez le corps")
    wrong_method = nurse.client.patch(f"/api/v1/rooms/{room}/messages", {}, format="json")
    assert wrong_method.status_code == 405
    assert error_of(wrong_method)["message"] == "Method PATCH is not allowed on this URL."
    assert "POST" in wrong_method["Allow"]
    broken = nurse.client.post(
        f"/api/v1/rooms/{room}/messages", "{not json", content_type="application/json"
    )
    assert error_of(broken)["message"] == "The body is not valid JSON."
    # Field messages follow Accept-Language.
    english = nurse.client.post(
        f"/api/v1/rooms/{room}/read", {}, format="json", HTTP_ACCEPT_LANGUAGE="en"
    )
    assert error_of(english)["fields"]["seq"] == ["This field is required."]
    french = nurse.client.post(f"/api/v1/rooms/{room}/read", {}, format="json")
    assert error_of(french)["fields"]["seq"] == ["Ce champ est obligatoire."]
    assert Room.objects.get(pk=room).last_seq == 0


@pytest.mark.parametrize("depth", [33, 990, 5000])
def test_a_deeply_nested_body_is_refused_with_400_not_500(nurse, room, depth):
    nested = '{"id": "n1", "body": "AA", "x": ' + "[" * depth + "]" * depth + "}"
    for client, path in (
        (nurse.client, f"/api/v1/rooms/{room}/messages"),
        (APIClient(), "/api/v1/auth/dev-login"),  # before any token
    ):
        response = client.post(path, nested, content_type="application/json")
        assert response.status_code == 400, response.content[:200]
        assert error_of(response)["code"] == "bad_request"
    assert not Envelope.objects.exists()
