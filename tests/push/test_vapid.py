"""VAPID keys: made at set-up by a management command, read from the environment,
checked at start with errors that name the variable."""

from __future__ import annotations

import io
import stat
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from django.core.management import call_command
from django.core.management.base import CommandError

from push.backoff import parse_retry_after, retry_delay
from push.conf import push_settings
from push.vapid import generate_key, load_private_key
from server.environment import ConfigurationError
from tests.e2e.server import ROOT


def test_the_command_prints_a_key_that_loads_back():
    out, err = io.StringIO(), io.StringIO()
    call_command("generate_vapid_keys", stdout=out, stderr=err)
    line = out.getvalue().strip()
    assert line.startswith("RELAIS_VAPID_PRIVATE_KEY=")
    key = load_private_key(line.split("=", 1)[1], variable="RELAIS_VAPID_PRIVATE_KEY")
    assert key.public_key in err.getvalue()  # the public key is shown, never logged elsewhere
    assert len(key.private_key_text) == 43  # base64url of 32 bytes


def test_the_command_writes_an_env_file_once(tmp_path):
    env_file = tmp_path / "relais.env"
    env_file.write_text("RELAIS_DEBUG=0")
    call_command(
        "generate_vapid_keys",
        env_file=env_file,
        subject="mailto:dsi@chu.example",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    lines = env_file.read_text().splitlines()
    assert lines[0] == "RELAIS_DEBUG=0"
    assert lines[1].startswith("RELAIS_VAPID_PRIVATE_KEY=")
    assert lines[2] == "RELAIS_VAPID_SUBJECT=mailto:dsi@chu.example"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    with pytest.raises(CommandError, match="orphans every push subscription"):
        call_command("generate_vapid_keys", env_file=env_file, stderr=io.StringIO())
    assert env_file.read_text().splitlines() == lines  # untouched
    call_command("generate_vapid_keys", env_file=env_file, force=True, stderr=io.StringIO())
    replaced = env_file.read_text().splitlines()
    assert replaced[0] == "RELAIS_DEBUG=0"
    assert len([line for line in replaced if line.startswith("RELAIS_VAPID_PRIVATE_KEY=")]) == 1
    assert replaced[1] != lines[1]


def test_pem_keys_are_accepted_and_the_public_key_matches():
    key = generate_key()
    pem = key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    assert load_private_key(pem, variable="X").public_key == key.public_key
    assert load_private_key(key.private_key_text, variable="X").public_key == key.public_key


@pytest.mark.parametrize(
    ("changes", "variable"),
    [
        ({"VAPID_PRIVATE_KEY": "not-a-key"}, "RELAIS_VAPID_PRIVATE_KEY"),
        ({"VAPID_PRIVATE_KEY": "AAAA"}, "RELAIS_VAPID_PRIVATE_KEY"),
        ({"VAPID_SUBJECT": ""}, "RELAIS_VAPID_SUBJECT"),
        ({"VAPID_SUBJECT": "dsi@chu.example"}, "RELAIS_VAPID_SUBJECT"),
        ({"VAPID_SUBJECT": "https://chu.example/contact"}, "RELAIS_VAPID_SUBJECT"),
        ({"TTL_SECONDS": 0}, "RELAIS_PUSH_TTL"),
        ({"TTL_SECONDS": 40 * 24 * 3600}, "RELAIS_PUSH_TTL"),
        ({"MAX_ATTEMPTS": -1}, "RELAIS_PUSH_MAX_ATTEMPTS"),
    ],
)
def test_wrong_settings_name_their_variable(settings, vapid_key, changes, variable):
    settings.RELAIS_PUSH = {
        **settings.RELAIS_PUSH,
        "VAPID_PRIVATE_KEY": vapid_key.private_key_text,
        "VAPID_SUBJECT": "mailto:dsi@chu.example",
        **changes,
    }
    with pytest.raises(ConfigurationError, match=variable):
        push_settings()


def test_a_wrong_key_stops_the_process_at_start(vapid_key):
    environment = {
        "PATH": "/usr/bin:/bin",
        "RELAIS_DEBUG": "1",
        "RELAIS_DATABASE_URL": "sqlite:///var/unused.sqlite3",
        "RELAIS_VAPID_PRIVATE_KEY": "0123",
        "RELAIS_VAPID_SUBJECT": "mailto:dsi@chu.example",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "RELAIS_VAPID_PRIVATE_KEY must be a P-256 private key" in result.stderr
    assert "0123" not in result.stderr.split("RELAIS_VAPID_PRIVATE_KEY must")[1]


def test_backoff_arithmetic():
    halves = [
        retry_delay(
            failures=n, base_seconds=2, max_seconds=60, retry_after=None, jitter=lambda d: d / 2
        )
        for n in range(1, 8)
    ]
    assert halves == [1, 2, 4, 8, 16, 30, 30]
    real_jitter = [
        retry_delay(failures=3, base_seconds=2, max_seconds=60, retry_after=None)
        for _ in range(200)
    ]
    assert all(4 <= delay <= 8 for delay in real_jitter)
    assert len(set(real_jitter)) > 100  # spread, not one value
    assert retry_delay(failures=1, base_seconds=2, max_seconds=60, retry_after=120.0) == 120
    assert parse_retry_after("120", now_seconds=0) == 120
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:00 GMT", now_seconds=30) == 30
    assert parse_retry_after("soon", now_seconds=0) is None
    assert parse_retry_after(None, now_seconds=0) is None


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("²", None),  # a digit to str.isdigit, not a number of seconds
        ("١٢٠", None),  # Arabic-Indic digits
        ("9" * 5000, 86_400.0),  # longer than int() accepts: capped, not a crash
        ("31536000", 86_400.0),  # a year: waited for a day at most
        ("Fri, 31 Dec 9999 23:59:59 GMT", 86_400.0),
        ("Thu, 01 Jan 1970 00:00:00", None),  # no zone
        ("-5", None),
    ],
)
def test_unusual_retry_after_values_never_crash_nor_stall_the_worker(header, seconds):
    assert parse_retry_after(header, now_seconds=0) == seconds
