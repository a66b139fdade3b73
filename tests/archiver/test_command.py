"""``manage.py create_archiver``: the organisation and its archiver device, the token
in a private file and nowhere else; an organisation is not a person (no login, no
directory listing)."""

from __future__ import annotations

import io
import json
import logging
import os
import stat
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from chat.errors import RelaisError
from chat.models import Device, DeviceKind
from chat.services.devices import authenticate_token, do_issue_device_token
from directory.models import Practitioner, Source

pytestmark = pytest.mark.django_db(transaction=True)
ORGANISATION = "org:1750000123"


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_archiver", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def permissive_umask():
    """A umask that would leave a new file readable by everyone."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_the_command_creates_the_organisation_and_a_private_token_file(
    tmp_path, caplog, permissive_umask
):
    caplog.set_level(logging.DEBUG)
    token_file = tmp_path / "archiver.json"
    out, err = run(
        "--structure-id", "1 750 000 123",
        "--name", "  Centre de santé   des Pentes ",
        "--token-file", str(token_file),
    )  # fmt: skip
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    secret = json.loads(token_file.read_text())
    assert set(secret) == {"v", "national_id", "device", "token"}
    assert (secret["v"], secret["national_id"]) == (1, ORGANISATION)

    organisation = Practitioner.objects.get(pk=ORGANISATION)
    assert (organisation.source, organisation.last_name, organisation.is_active) == (
        Source.ORGANISATION,
        "Centre de santé des Pentes",
        True,
    )
    device = Device.objects.get(pk=secret["device"])
    assert (device.practitioner_id, device.kind, device.public_keys) == (
        ORGANISATION,
        DeviceKind.ARCHIVER,
        {},
    )
    # The token is the device's, and it appears nowhere but in the file.
    identity = authenticate_token(token=secret["token"])
    assert identity is not None
    assert (identity.device_id, identity.practitioner_id) == (device.pk, ORGANISATION)
    assert f"Archiver device {device.pk} created" in out
    for text in (out, err, caplog.text):
        assert secret["token"] not in text
        assert secret["token"][:12] not in text


def test_a_second_run_adds_a_device_and_renames(tmp_path):
    run("--structure-id", "1750000123", "--name", "CDS", "--token-file", str(tmp_path / "a"))
    out, _ = run(
        "--structure-id", "1750000123",
        "--name", "Centre de santé des Pentes",
        "--token-file", str(tmp_path / "b"),
    )  # fmt: skip
    assert "found" in out
    assert Practitioner.objects.get(pk=ORGANISATION).last_name == "Centre de santé des Pentes"
    devices = Device.objects.filter(practitioner_id=ORGANISATION, kind=DeviceKind.ARCHIVER)
    assert devices.count() == 2
    tokens = {json.loads((tmp_path / name).read_text())["token"] for name in ("a", "b")}
    assert len(tokens) == 2


@pytest.mark.parametrize(
    ("structure_id", "name", "why"),
    [
        ("9750000123", "CDS", "starts with 0"),  # no such IdNat_Struct prefix
        ("175000012", "CDS", "FINESS"),  # a FINESS number has 9 characters
        ("3123", "CDS", "SIRET"),
        ("1750000123", "   ", "1 to 128"),
        ("1750000123", "x" * 129, "1 to 128"),
        ("1750000123", "CDS\x1b[31m", "control"),
    ],
)
def test_bad_input_is_refused_and_leaves_nothing(tmp_path, structure_id, name, why):
    token_file = tmp_path / "archiver.json"
    with pytest.raises(CommandError, match=why):
        run("--structure-id", structure_id, "--name", name, "--token-file", str(token_file))
    assert not token_file.exists()
    assert not Practitioner.objects.filter(source=Source.ORGANISATION).exists()
    assert not Device.objects.filter(kind=DeviceKind.ARCHIVER).exists()


def test_an_existing_file_is_never_overwritten(tmp_path):
    token_file = tmp_path / "archiver.json"
    token_file.write_text("another archiver's token\n")
    with pytest.raises(CommandError, match="exists"):
        run("--structure-id", "1750000123", "--name", "CDS", "--token-file", str(token_file))
    assert token_file.read_text() == "another archiver's token\n"
    assert not Device.objects.filter(kind=DeviceKind.ARCHIVER).exists()


def test_an_identity_that_is_not_an_organisation_gets_no_archiver(tmp_path):
    Practitioner.objects.create(
        national_id=ORGANISATION, first_name="A", last_name="B", profession_code="60"
    )
    with pytest.raises(CommandError, match="not an organisation"):
        run("--structure-id", "1750000123", "--name", "CDS", "--token-file", str(tmp_path / "t"))
    assert not (tmp_path / "t").exists()
    assert not Device.objects.filter(kind=DeviceKind.ARCHIVER).exists()


def test_an_organisation_never_logs_in_and_is_not_in_the_directory(practitioners, tmp_path):
    run(
        "--structure-id", "1750000123",
        "--name", "Centre de santé Martin",
        "--token-file", str(tmp_path / "t"),
    )  # fmt: skip
    organisation = Practitioner.objects.get(pk=ORGANISATION)
    with pytest.raises(RelaisError) as error:  # what Pro Santé Connect's login would call
        do_issue_device_token(practitioner=organisation, device_name="phone")
    assert error.value.code == "not_found"
    client = APIClient()
    login = client.post("/api/v1/auth/dev-login", {"national_id": ORGANISATION}, format="json")
    assert (login.status_code, login.json()["error"]["code"]) == (404, "not_found")
    assert Device.objects.filter(practitioner_id=ORGANISATION).count() == 1

    # The directory search lists the nurse Claire Martin, not the "Centre de santé Martin".
    nurse = APIClient()
    token = nurse.post(
        "/api/v1/auth/dev-login", {"national_id": "810003456786"}, format="json"
    ).json()["token"]
    nurse.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    for query in ({"q": "martin"}, {"q": "centre"}, {"q": "centre de sante martin"}):
        found = nurse.get("/api/v1/directory/practitioners", query).json()["results"]
        assert ORGANISATION not in [p["national_id"] for p in found]
    assert [
        p["national_id"]
        for p in nurse.get("/api/v1/directory/practitioners", {"q": "martin"}).json()["results"]
    ] == ["810003456786"]


def test_the_token_file_path_must_be_creatable(tmp_path: Path):
    with pytest.raises(CommandError, match="cannot create"):
        run(
            "--structure-id", "1750000123",
            "--name", "CDS",
            "--token-file", str(tmp_path / "missing-dir" / "t"),
        )  # fmt: skip
    assert not Practitioner.objects.filter(source=Source.ORGANISATION).exists()
