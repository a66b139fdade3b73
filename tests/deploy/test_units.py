"""The shipped deployment files follow their own rules: every unit is started by
``relais.target``, runs as the ``relais`` user with the environment file and the
hardening options, and runs a command that exists; every variable of the environment
file is documented; a wrong or unfilled setting stops the start with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import get_commands

from server.processes import uvicorn_command
from tests.deploy.shape import (
    DEPLOY,
    ROOT,
    UNITS,
    read_env_file,
    unit_commands,
    unit_text,
    unit_values,
)

SERVICES = sorted(path.name for path in UNITS.glob("*.service"))
# Units that run as clients of the server (at the organisation, possibly on another
# host): they need no database, so they do not require the migrations.
CLIENTS = {"relais-archiver.service"}
TIMERS = sorted(path.name for path in UNITS.glob("*.timer"))


def wanted_by_target() -> set[str]:
    """Units relais.target starts: its Wants= and every unit installed WantedBy= it."""
    wanted = {name for line in unit_values("relais.target", "Wants") for name in line.split()}
    for name in SERVICES + TIMERS:
        if "relais.target" in " ".join(unit_values(name, "WantedBy")):
            wanted.add(name)
    return wanted


def test_relais_target_starts_every_unit():
    wanted = wanted_by_target()
    for name in SERVICES + TIMERS:
        template = name.replace("@.service", "@")
        reached = name in wanted or any(w.startswith(template) for w in wanted if "@" in name)
        timer = name.removesuffix(".service") + ".timer"
        assert reached or timer in wanted, f"{name} is not started by relais.target"
    missing = {w for w in wanted if "@" not in w and not (UNITS / w).exists()}
    assert not missing, f"relais.target wants units that do not exist: {missing}"


def test_the_processes_the_issue_names_are_there():
    wanted = wanted_by_target()
    for unit in (
        "relais-migrate.service",
        "relais@8001.service",
        "relais@8002.service",
        "relais-push-worker.service",
        "relais-psc-sessions.service",
        "relais-purge-attachments.timer",
        "relais-directory-import.timer",
    ):
        assert unit in wanted, unit


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_runs_unprivileged_with_its_settings_and_hardening(name):
    text = unit_text(name)
    # A user of its own is fine (an archiver holding keys may want one); root is not.
    (user,) = unit_values(name, "User")
    assert user.startswith("relais"), f"{name} runs as {user}"
    assert unit_values(name, "Group"), f"{name} has no Group="
    assert all(path.startswith("/etc/relais/") for path in unit_values(name, "EnvironmentFile"))
    assert unit_values(name, "EnvironmentFile"), f"{name} has no EnvironmentFile="
    for line in (
        "WorkingDirectory=/srv/relais/app",
        "NoNewPrivileges=true",
        "ProtectSystem=strict",
        "ProtectHome=true",
        "PrivateTmp=true",
    ):
        assert f"\n{line}\n" in text, f"{name}: missing {line}"
    long_running = "Type=simple" in text
    if long_running:
        assert "PartOf=relais.target" in text, name
        assert "Restart=always" in text, name
    if name != "relais-migrate.service":
        assert "relais-migrate.service" in " ".join(unit_values(name, "After")), name
    if long_running and name not in CLIENTS:
        assert "relais-migrate.service" in " ".join(unit_values(name, "Requires")), name


@pytest.mark.parametrize("name", TIMERS)
def test_every_timer_belongs_to_the_target_and_has_its_service(name):
    assert (UNITS / name.replace(".timer", ".service")).exists()
    assert "PartOf=relais.target" in unit_text(name)
    assert unit_values(name, "OnCalendar")


@pytest.mark.parametrize("name", SERVICES)
def test_every_command_exists(name):
    commands = unit_commands(name, instance="8001")
    assert commands, f"{name} has no ExecStart"
    known = get_commands()
    for command in commands:
        if "manage.py" in command:
            subcommand = command[command.index("manage.py") + 1]
            assert subcommand in known, f"{name}: manage.py {subcommand} does not exist"
        elif command[1:3] == ["-m", "client"]:
            help_text = subprocess.run(
                [*command, "--help"], capture_output=True, text=True, timeout=60, check=False
            )
            assert help_text.returncode == 0, f"{name}: {help_text.stdout}{help_text.stderr}"
        else:
            assert command[1:3] == ["-m", "uvicorn"], command
            assert "server.asgi:application" in command


def test_tests_and_benchmark_run_the_deployed_server_command():
    """server.processes (the end-to-end tests, the benchmark) uses the unit's options."""
    (deployed,) = unit_commands("relais@.service", instance="8001")
    ours = uvicorn_command(host="127.0.0.1", port=8001)
    for index, word in enumerate(ours):
        if not word.startswith("--"):
            continue
        assert word in deployed, f"{word} is in server/processes.py, not in the unit"
        value = ours[index + 1] if index + 1 < len(ours) else "--"
        if not value.startswith("--") and word not in {"--host", "--port"}:
            assert deployed[deployed.index(word) + 1] == value, word


def test_every_variable_of_the_example_is_documented():
    documented = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    example = read_env_file(DEPLOY / "relais.env.example")
    commented = [
        line.lstrip("# ").split("=", 1)[0]
        for line in (DEPLOY / "relais.env.example").read_text().splitlines()
        if line.startswith("# RELAIS_")
    ]
    for name in [*example, *commented]:
        if name.startswith("RELAIS_"):
            assert f"`{name}`" in documented, f"{name} is not in docs/configuration.md"
    assert example["RELAIS_DEBUG"] == "0"


def run_manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
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


def test_the_example_as_shipped_refuses_to_start_in_one_line(tmp_path: Path):
    example = read_env_file(DEPLOY / "relais.env.example")
    done = run_manage(example, "check", "--deploy")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("Configuration error: RELAIS_")
    assert "RELAIS_SECRET_KEY" in line
    assert "CHANGE-ME" in line


def test_the_deployment_check_stops_a_production_nobody_can_log_into():
    example = read_env_file(DEPLOY / "relais.env.example")
    filled = {key: value for key, value in example.items() if "CHANGE-ME" not in value}
    filled.update(
        RELAIS_SECRET_KEY="k" * 20 + "Zq8#x" * 10,
        RELAIS_DATABASE_URL="postgres://relais@127.0.0.1:5432/relais",
        RELAIS_PSC_CLIENT_ID="",
        RELAIS_PSC_CLIENT_SECRET="",
    )
    done = run_manage(filled, "check", "--deploy", "--fail-level", "WARNING")
    assert done.returncode != 0
    assert "(relais.W001) Pro Santé Connect is not configured: nobody can log in." in done.stderr
    assert "Traceback" not in done.stderr
