"""Production settings: deploy checks clean, no development login, clear config errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from push.vapid import generate_key
from server.environment import ConfigurationError, parse_database_url

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION = {
    "RELAIS_DEBUG": "0",
    "RELAIS_SECRET_KEY": "x" * 60 + "production-like-secret-for-the-deploy-check",
    "RELAIS_ALLOWED_HOSTS": "relais.example",
    "RELAIS_DATABASE_URL": "postgres://relais@127.0.0.1:5432/relais",
    "RELAIS_KEYLOG_KEY_FILE": "/etc/relais/keylog.key",  # read on first use, not at start
    # What the deployment check also asks of a production (server/checks.py).
    "RELAIS_REDIS_URL": "redis://127.0.0.1:6379/0",
    "RELAIS_PSC_CLIENT_ID": "relais",
    "RELAIS_PSC_CLIENT_SECRET": "secret-registered-with-pro-sante-connect",
    "RELAIS_VAPID_PRIVATE_KEY": generate_key().private_key_text,
    "RELAIS_VAPID_SUBJECT": "mailto:dsi@relais.example",
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


def test_production_refuses_to_start_without_a_log_key_file():
    env = {k: v for k, v in PRODUCTION.items() if k != "RELAIS_KEYLOG_KEY_FILE"}
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert "RELAIS_KEYLOG_KEY_FILE must be set" in result.stderr
    assert "Traceback" not in result.stderr.splitlines()[-1]


def test_the_log_key_command_writes_a_private_seed_once(tmp_path):
    path = tmp_path / "keys" / "keylog.key"
    result = run_manage("keylog_generate_key", str(path), env=PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert len(path.read_bytes()) == 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert "RELAIS_LOG_PUBLIC_KEY" in result.stdout
    seed = path.read_bytes()
    again = run_manage("keylog_generate_key", str(path), env=PRODUCTION)
    assert again.returncode != 0
    assert path.read_bytes() == seed  # never overwritten


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


def test_the_development_login_url_answers_404_in_production():
    """Whatever the environment says, DEBUG off means no development login."""
    code = (
        "from django.test import Client; "
        "r = Client(HTTP_HOST='relais.example').post('/api/v1/auth/dev-login', "
        "{'national_id': '810003456786'}, content_type='application/json', secure=True); "
        "print(r.status_code)"
    )
    tries = {"RELAIS_DEV_LOGIN": "1", "RELAIS_DEVELOPMENT_LOGIN": "1", "DJANGO_DEBUG": "1"}
    result = run_manage("shell", "--no-imports", "-c", code, env={**PRODUCTION, **tries})
    assert result.stdout.split() == ["404"], result.stderr


def test_demo_data_is_refused_in_production():
    result = run_manage("seed_demo", env=PRODUCTION)
    assert result.returncode != 0
    assert "development (RELAIS_DEBUG=1) only" in result.stderr


def psc_settings_in(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = (
        "from identity.conf import psc_settings as p; s = p(); "
        "print(s.environment, s.issuer, s.authorization_endpoint, s.discovery_url)"
    )
    return run_manage("shell", "--no-imports", "-c", code, env={**PRODUCTION, **env})


def test_pro_sante_connect_defaults_to_production_and_knows_the_sandbox():
    production = psc_settings_in({}).stdout.split()
    assert production == [
        "production",
        "https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet",
        "https://wallet.esw.esante.gouv.fr/auth",
        "https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet"
        "/.well-known/wallet-openid-configuration",
    ]
    sandbox = psc_settings_in({"RELAIS_PSC_ENVIRONMENT": "sandbox"}).stdout.split()
    assert sandbox[1:3] == [
        "https://auth.bas.psc.esante.gouv.fr/auth/realms/esante-wallet",
        "https://wallet.bas.psc.esante.gouv.fr/auth",
    ]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RELAIS_PSC_ENVIRONMENT": "staging"}, "must be production or sandbox"),
        ({"RELAIS_PSC_ISSUER": "http://psc.example/realm"}, "https:// URL (http:// only on loop"),
        ({"RELAIS_PSC_UNKNOWN_PRACTITIONER": "maybe"}, "must be create or refuse"),
    ],
)
def test_bad_pro_sante_connect_settings_stop_the_start(env, message):
    result = psc_settings_in(env)
    assert result.returncode != 0
    assert message in result.stderr
