"""One error envelope with the shared stable codes; the OpenAPI schema covers every
operation; the interactive page loads nothing from elsewhere."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from chat.errors import MESSAGES, ErrorCode
from mobile_api.docs import CONTENT_SECURITY_POLICY
from mobile_api.errors import http_status
from tests.mobile_api.users import creation, login

SERVER_SIDE = {ErrorCode.INTERNAL, ErrorCode.SERVER_BUSY}
UPSTREAM = {ErrorCode.PSC_PROVIDER_ERROR, ErrorCode.PSC_TOKEN_INVALID}
# 507 Insufficient Storage: the storage allowed to this user is full (docs/attachments.md).
STORAGE = {ErrorCode.QUOTA_EXCEEDED}


def test_every_error_code_has_a_sensible_status_and_both_messages():
    for code in ErrorCode:
        status = http_status(code)
        english, french = MESSAGES[code]
        assert english, code
        assert french, code
        assert english != french, code
        if code in SERVER_SIDE:
            assert status in (500, 503), code
        elif code in UPSTREAM:
            assert status == 502, code  # Pro Santé Connect's fault, not the client's
        elif code in STORAGE:
            assert status == 507, code
        else:
            assert 400 <= status < 500, code
    assert http_status(ErrorCode.NOT_MEMBER) == http_status(ErrorCode.NOT_FOUND) == 404
    assert http_status(ErrorCode.RATE_LIMITED) == 429
    assert http_status(ErrorCode.STALE_STATE) == 409


@pytest.fixture
def schema() -> dict:
    response = APIClient().get("/api/v1/schema")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    body: dict = response.json()
    return body


def _api_routes() -> set[tuple[str, str]]:
    """(path template, method) of every REST view in the URL configuration."""
    routes: set[tuple[str, str]] = set()

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                view = getattr(pattern.callback, "view_class", None)
                path = "/" + prefix + str(pattern.pattern)
                if view is None or not path.startswith("/api/v1/"):
                    continue
                template = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", path)
                for method in ("get", "post", "put", "patch", "delete"):
                    if hasattr(view, method):
                        routes.add((template, method))

    walk(get_resolver().url_patterns, "")
    return routes


def test_the_schema_describes_every_operation(schema, db):
    documented = {
        (path, method) for path, operations in schema["paths"].items() for method in operations
    }
    served = _api_routes() - {("/api/v1/schema", "get"), ("/api/v1/docs", "get")}
    assert served - documented == set()
    assert documented - served == set()
    assert len(served) >= 45
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            assert operation.get("summary"), where
            success = [status for status in operation["responses"] if status < "400"]
            assert success, where
            errors = {s: r for s, r in operation["responses"].items() if s >= "400"}
            assert {"400", "429"} <= set(errors), where
            for response in errors.values():
                body = response["content"]["application/json"]["schema"]
                assert body == {"$ref": "#/components/schemas/ErrorEnvelope"}, where
            secured = operation.get("security", [])
            if any("deviceToken" in requirement for requirement in secured):
                assert "401" in errors, where


def test_authentication_and_errors_are_in_the_schema(schema):
    assert schema["openapi"].startswith("3.")
    assert schema["components"]["securitySchemes"]["deviceToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["deviceToken"]["description"],
    }
    codes = schema["components"]["schemas"]["ErrorCodeEnum"]["enum"]
    assert codes == [code.value for code in ErrorCode]
    send = schema["paths"]["/api/v1/rooms/{room_id}/messages"]["post"]
    assert send["security"] == [{"deviceToken": []}]
    assert {"200", "201", "404", "413", "503"} <= set(send["responses"])
    login_operation = schema["paths"]["/api/v1/auth/dev-login"]["post"]
    assert "security" not in login_operation or login_operation["security"] == [{}]
    assert "401" not in login_operation["responses"]


def test_the_docs_page_loads_only_this_servers_files(db):
    page = APIClient().get("/api/v1/docs")
    assert page.status_code == 200
    assert page["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    html = page.content.decode()
    assert "<style" not in html
    assert re.search(r"<script(?![^>]*\bsrc=)", html) is None  # no inline script
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources, html
    for source in sources:
        assert source.startswith("/"), source  # nothing from another origin
        if source.startswith("/static/"):
            assert finders.find(source.removeprefix("/static/")), source
    script = APIClient().get("/api/v1/docs?script=")
    assert script["Content-Type"].startswith("application/javascript")
    assert '"/api/v1/schema"' in script.content.decode()


def test_validation_errors_name_the_fields(practitioners, transactional_db):
    nurse = login(practitioners["nurse"].national_id)
    answer = nurse.client.post("/api/v1/rooms", {"evnt": "x"}, format="json")
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["code"], list(error["fields"])) == ("bad_request", ["event"])
    assert error["message_fr"] == "La requête est invalide."


def test_an_add_member_url_never_applies_another_action(practitioners, transactional_db):
    """Regression: the members URL applied any signed event, then answered that it was
    not an add_member one: the change was stored all the same."""
    nurse = login(practitioners["nurse"].national_id)
    doctor = login(practitioners["doctor"].national_id)
    event = creation(nurse, "care_team", [(doctor, "member")])
    room = nurse.client.post("/api/v1/rooms", {"event": event}, format="json").json()["id"]
    promote = nurse.sign(
        nurse.state(room), "set_role", {"national_id": doctor.national_id, "role": "admin"}
    )
    answer = nurse.client.post(f"/api/v1/rooms/{room}/members", {"event": promote}, format="json")
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "bad_request")
    assert nurse.state(room).epoch == 0
    members = {
        m["practitioner"]: m["role"]
        for m in nurse.client.get("/api/v1/rooms").json()["rooms"][0]["members"]
    }
    assert members[doctor.national_id] == "member"
