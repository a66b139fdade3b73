"""Schema-driven robustness: schemathesis against a real server process.

The server runs as in production (uvicorn, DEBUG off, PostgreSQL, Redis, Web Push on)
behind what nginx would add. Schemathesis reads the served schema, then generates
valid and invalid requests for every operation, authenticated with a real device token
of a member of a real room: no answer may be a server error, and every answer must
conform to the schema (status, content type, headers, body), invalid input must be
refused, and authenticated operations must refuse requests without the token.

Bounded in time (docs/api.md, "Schema-driven tests"): a fixed number of examples per
operation, a fixed seed, and a deadline for the whole run.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from chat.services.devices import do_issue_device_token
from push.vapid import generate_key
from tests.mobile_api.conftest import BEHIND_NGINX
from tests.signed_rooms import certified_device
from tests.signed_rooms import create_room as do_create_room

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

EXAMPLES_PER_OPERATION = 30
# The run takes about 2.5 minutes for the 65 operations on an idle 2-core machine (about
# 2 s an operation); the deadline leaves room for a loaded one.
RUN_DEADLINE_SECONDS = 420
GENEROUS = "1000000/minute"  # rate limits have their own tests; here they would only refuse

# Operations that end the session they are called with: run, they would leave every
# later request unauthenticated. Their own tests cover them (test_account_api.py).
ENDS_THE_SESSION = ["/api/v1/auth/logout", "/api/v1/auth/psc/logout"]


@pytest.fixture
def world(practitioners):
    """A room with messages, the token of one of its members, a spare device of hers to
    revoke, and a finished attachment: real values for the path parameters."""
    nurse, doctor = practitioners["nurse"], practitioners["doctor"]
    for practitioner in (nurse, doctor):
        certified_device(practitioner)
    room = do_create_room(creator=nurse, kind="care_team", member_ids=[doctor.national_id])
    _device, token = do_issue_device_token(practitioner=nurse, device_name="fuzz")
    spare, _ = do_issue_device_token(practitioner=nurse, device_name="spare")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    for number in range(3):
        body = base64.urlsafe_b64encode(f"envelope {number}".encode()).decode()
        sent = client.post(
            f"/api/v1/rooms/{room.pk}/messages",
            {"id": f"seed-{number}", "body": body},
            format="json",
        )
        assert sent.status_code == 201, sent.content
    upload = client.post(
        "/api/v1/attachments/uploads",
        {"room": room.pk, "message_id": "seed-0", "size": 64},
        format="json",
    ).json()
    return {
        "token": token,
        "room_id": room.pk,
        "device_id": spare.pk,
        "national_id": doctor.national_id,
        "practitioner_id": doctor.national_id,
        "attachment_id": upload["attachment"],
    }


@pytest.mark.timeout(RUN_DEADLINE_SECONDS + 60)
def test_the_live_api_answers_as_its_schema_says(start_api_server, world, tmp_path: Path):
    vapid = generate_key()
    server = start_api_server(
        RELAIS_VAPID_PRIVATE_KEY=vapid.private_key_text,
        RELAIS_VAPID_SUBJECT="mailto:exploitation@relais.example",
        RELAIS_ATTACHMENT_ROOT=str(tmp_path / "blobs"),
        **{
            f"RELAIS_RATE_{scope}": GENEROUS
            for scope in [
                "ANON",
                "USER",
                "LOGIN_IP",
                "SEND_DEVICE",
                "SEND_IP",
                "UPLOAD_DEVICE",
                "UPLOAD_IP",
                "SEARCH_DEVICE",
                "SEARCH_IP",
                "PUSH_DEVICE",
                "PUSH_IP",
            ]
        },
    )
    parameters = "\n".join(
        f"{name} = {json.dumps(world[name])}"
        for name in ["room_id", "device_id", "national_id", "practitioner_id", "attachment_id"]
    )
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        # Nothing kept between runs: each run is the same, and leaves no files behind.
        "[cache]\nenabled = false\n"
        # 413 (a body over the size limit) is a refusal too.
        "[checks.negative_data_rejection]\n"
        "expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]\n"
        f"[parameters]\n{parameters}\n"
    )
    report = tmp_path / "report.json"
    headers = {**BEHIND_NGINX, "Authorization": f"Bearer {world['token']}"}
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(config),
        "run",
        f"{server.http_url}/api/v1/schema",
        *[arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")],
        "--checks",
        "all",
        "--exclude-checks",
        # Valid-looking requests are refused for reasons a schema cannot carry (a
        # signature, a membership, a quota): that is expected, not a failure.
        "positive_data_acceptance",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--seed",
        "20260105",
        # One worker: two threads generating at once trip a race in Python 3.11's
        # parser inside Hypothesis (SystemError: AST constructor recursion depth).
        "--workers",
        "1",
        "--request-timeout",
        "10",
        *[arg for path in ENDS_THE_SESSION for arg in ("--exclude-path", path)],
        "--report",
        "json",
        "--report-json-path",
        str(report),
        "--no-color",
    ]
    started = time.monotonic()
    result = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=RUN_DEADLINE_SECONDS,
        check=False,
    )
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    print(output[-3000:])  # shown with -s, and on failure
    print(f"schemathesis run: {elapsed:.0f} s")
    assert result.returncode == 0, output[-20000:]
    summary = json.loads(report.read_text())
    assert summary["failures"] == []
    assert summary["errors"] == []
    assert summary["operations"]["tested"] == summary["operations"]["selected"] >= 45
    assert summary["test_cases"]["generated"] >= 1000
    # The token stayed valid all along: the run exercised the operations, not a 401.
    me = APIClient()
    me.credentials(HTTP_AUTHORIZATION=f"Bearer {world['token']}")
    assert me.get("/api/v1/me").status_code == 200
