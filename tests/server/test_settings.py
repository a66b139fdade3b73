"""Production settings: deploy checks clean, no development login, clear config errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.environment import ConfigurationError, parse_database_url

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION = {
    "RELAIS_DEBUG": "0",
    "RELAIS_SECRET_KEY": "x" * 60 + "production-like-secret-for-the-deploy-check",
    "RELAIS_ALLOWED_HOSTS": "relais.example",
    "RELAIS_DATABASE_URL": "postgres://relais@127.0.0.1:5432/relais",
}


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_production_settings_pass_the_deploy_check():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_production_settings_have_no_development_login():
    code = (
        "from chat.conf import relais_settings; from django.conf import settings; "
        "print(relais_settings().dev_login, settings.DEBUG)"
    )
    result = run_manage(
        "shell", "--no-imports", "-c", code, env={**PRODUCTION, "RELAIS_DEV_LOGIN": "1"}
    )
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_production_refuses_to_start_without_a_secret_key():
    env = {k: v for k, v in PRODUCTION.items() if k != "RELAIS_SECRET_KEY"}
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert "RELAIS_SECRET_KEY must be set" in result.stderr


@pytest.mark.parametrize(
    ("url", "engine", "name"),
    [
        ("sqlite:///var/db.sqlite3", "sqlite", str(ROOT / "var/db.sqlite3")),
        ("sqlite:////tmp/abs.sqlite3", "sqlite", "/tmp/abs.sqlite3"),
        ("postgres://u:p%40ss@db.example:6432/relais", "postgresql", "relais"),
    ],
)
def test_database_urls(url, engine, name):
    parsed = parse_database_url(url, base_dir=ROOT)
    assert (parsed.engine, parsed.settings["NAME"]) == (engine, name)


def test_bad_database_url_is_a_clear_error():
    with pytest.raises(ConfigurationError, match="postgres:// or sqlite:///"):
        parse_database_url("mysql://x/y", base_dir=ROOT)
