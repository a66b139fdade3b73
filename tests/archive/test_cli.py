"""``python -m client archive status|cut|retry``: the operator's commands on the outbox,
without the key store's passphrase (metadata only), and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from archive.cuts import Cut, CutReason, RoomProgress
from archive.outbox import NewArchive, Outbox
from archive.sealing import Sealer, new_key
from client.cli_archive import service_settings
from tests.e2e.server import ROOT

NOW = datetime(2026, 3, 14, 8, 0, tzinfo=UTC)


def archive_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "client", "archive", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )


def filled_outbox(directory: Path) -> Outbox:
    outbox = Outbox(directory, Sealer(new_key()))
    progress = RoomProgress(room_id=12, kind="care_team").received(1, NOW).received(2, NOW)
    outbox.keep_received(progress, [(1, b"secret one"), (2, b"secret two")])
    archive_id = outbox.add_archive(
        progress,
        NewArchive(Cut(12, 1, 1, CutReason.IDLE, NOW), "<a@x>", "IHE_XDM.ZIP", ("a@b.fr",), b"m"),
    )
    outbox.mark_failed(outbox.archive(archive_id), code="smtp_refused", error="550 5.1.1 unknown")
    return outbox


def test_status_cut_and_retry(tmp_path):
    filled_outbox(tmp_path).close()
    shown = archive_cli("status", "--state-dir", str(tmp_path))
    assert shown.returncode == 0, shown.stdout + shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[1].split()[:4] == ["12", "care_team", "1", "2"]
    assert "archive 1 (seq 1-1) failed smtp_refused: 550 5.1.1 unknown" in shown.stdout
    assert "secret" not in shown.stdout
    as_json = json.loads(archive_cli("status", "--state-dir", str(tmp_path), "--json").stdout)
    assert (as_json[0]["room"], as_json[0]["failed"], as_json[0]["last_error_code"]) == (
        12,
        1,
        "smtp_refused",
    )
    assert archive_cli("cut", "--room", "12", "--state-dir", str(tmp_path)).returncode == 0
    unknown = archive_cli("cut", "--room", "99", "--state-dir", str(tmp_path))
    assert unknown.returncode == 2
    assert unknown.stdout.strip() == (
        "!! le salon 99 n'est pas archivé ici / room 99 is not archived here"
    )
    assert archive_cli("retry", "--archive", "1", "--state-dir", str(tmp_path)).returncode == 0
    outbox = Outbox(tmp_path, None)
    progress = outbox.progress(12)
    assert progress is not None
    assert progress.cut_requested
    assert [a.state.value for a in outbox.archives()] == ["pending"]


def test_run_without_a_passphrase_or_mailbox_says_so_in_one_line(tmp_path):
    done = archive_cli("run", "--state-dir", str(tmp_path), "--store", str(tmp_path / "s"))
    assert done.returncode == 2
    assert done.stdout.strip().startswith("!! RELAIS_ARCHIVE_MAILBOX")
    assert "Traceback" not in done.stdout + done.stderr


def test_settings_from_the_environment():
    settings = service_settings(
        {
            "RELAIS_ARCHIVE_MAILBOX": "archiveur@cds.mssante.fr",
            "RELAIS_ARCHIVE_IDLE_MINUTES": "30",
            "RELAIS_ARCHIVE_DAILY_HOUR": "off",
        }
    )
    assert settings.recipients == ("archiveur@cds.mssante.fr",)
    assert settings.policy.idle.total_seconds() == 1800
    assert settings.policy.daily_hour is None
