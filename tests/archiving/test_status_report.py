"""``POST /api/v1/archiver/status``: only an archiver device, only for rooms naming it,
metadata only; the operator reads it in the Django admin and ``manage.py archive_status``."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import User as DjangoUser
from django.core.management import call_command
from django.test import Client

from archiving.models import ArchiveRoomStatus
from tests.archiver.helpers import archiver, creation, login

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/api/v1/archiver/status"


def report(room: int, **extra: object) -> dict:
    return {
        "rooms": [
            {
                "room": room,
                "archived_up_to": 40,
                "received_up_to": 42,
                "pending": 1,
                "sent": 2,
                "integrated": 3,
                "rejected": 1,
                "failed": 0,
                "last_error_code": "903",
                **extra,
            }
        ]
    }


def create_room(creator, event):
    return creator.client.post("/api/v1/rooms", {"event": event}, format="json")


@pytest.fixture
def archived_room(practitioners):
    nurse, doctor = login("810003456786"), login("810001987659")
    device = archiver()
    answer = create_room(nurse, creation(nurse, [doctor], archiver=device.room_device))
    assert answer.status_code == 201, answer.json()
    private = create_room(nurse, creation(nurse, [doctor], archiver=None))
    return device, nurse, answer.json()["id"], private.json()["id"]


def test_the_archiver_reports_its_room_and_the_operator_sees_it(archived_room):
    device, _, room, _ = archived_room
    answer = device.client.post(URL, report(room), format="json")
    assert (answer.status_code, answer.json()) == (200, {"rooms": 1})
    again = device.client.post(URL, report(room, pending=0, last_error_code=""), format="json")
    assert again.status_code == 200
    [row] = ArchiveRoomStatus.objects.all()
    assert (row.room_id, row.archived_up_to, row.pending, row.last_error_code) == (room, 40, 0, "")
    out = io.StringIO()
    call_command("archive_status", stdout=out)
    line = out.getvalue().splitlines()[1].split()
    assert line[:8] == [str(room), str(device.device), "40", "42", "0", "2", "3", "1"]
    admin = DjangoUser.objects.create_superuser("ops", "ops@example.org", "pw-for-tests-only")
    browser = Client()
    browser.force_login(admin)
    page = browser.get("/admin/archiving/archiveroomstatus/")
    assert page.status_code == 200
    assert str(room) in page.content.decode()
    assert browser.get(f"/admin/archiving/archiveroomstatus/{row.pk}/delete/").status_code == 403


def test_deny_by_default(archived_room):
    device, nurse, room, private = archived_room
    # A practitioner's device may not report, even about a room it is in.
    refused = nurse.client.post(URL, report(room), format="json")
    assert (refused.status_code, refused.json()["error"]["code"]) == (404, "not_found")
    # The archiver, about a room that does not name it: nothing stored (all or nothing).
    both = report(room)
    both["rooms"] += report(private)["rooms"]
    refused = device.client.post(URL, both, format="json")
    assert (refused.status_code, refused.json()["error"]["code"]) == (404, "not_member")
    # No text may ride along: a code is a code.
    refused = device.client.post(URL, report(room, last_error_code="Plaie du talon"), format="json")
    assert refused.status_code == 400
    refused = device.client.post(URL, report(room, note="x"), format="json")
    assert refused.status_code == 400
    assert not ArchiveRoomStatus.objects.exists()
    assert Client().post(URL, report(room), content_type="application/json").status_code == 401


def test_the_last_archives_recipients_are_numbers(archived_room):
    device, _, room, _ = archived_room
    counts = {"recipients_accepted": 2, "recipients_refused": 1, "members_not_sent": 1}
    answer = device.client.post(URL, report(room, **counts), format="json")
    assert answer.status_code == 200
    [row] = ArchiveRoomStatus.objects.all()
    assert (row.recipients_accepted, row.recipients_refused, row.members_not_sent) == (2, 1, 1)
    out = io.StringIO()
    call_command("archive_status", stdout=out)
    assert "2/1/1" in out.getvalue().splitlines()[1].split()
    # An address is not a number: refused, nothing changed.
    refused = device.client.post(
        URL, report(room, recipients_refused="dr.martin@medecin.mssante.fr"), format="json"
    )
    assert refused.status_code == 400
    # An archiver that does not know these fields reports as before (zeros).
    assert device.client.post(URL, report(room), format="json").status_code == 200
    row.refresh_from_db()
    assert (row.recipients_accepted, row.recipients_refused, row.members_not_sent) == (0, 0, 0)
