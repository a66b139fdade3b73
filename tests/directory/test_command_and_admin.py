"""The import command (summary, progress, line numbers), SQLite, and the admin."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client

from directory.models import Practitioner
from tests.directory.conftest import read_lines

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)


def run_import(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_directory", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_command_prints_a_summary_and_bad_rows_with_line_numbers(sample, tmp_path):
    personne, mssante = sample
    lines = read_lines(personne)
    path = tmp_path / "with-bad-row.txt"
    path.write_text("".join([*lines[:2], "bad|row|\n", *lines[2:]]), encoding="utf-8")
    out, err = run_import("--personne-activite", str(path), "--mssante", str(mssante))
    assert "line 3: bad row: expected 56 fields, found 2" in err
    assert "practitioners: 60 created, 0 updated, 0 unchanged, 0 deactivated" in out
    assert "bad rows (skipped): 1" in out
    assert "mailboxes:" in out
    assert "B/s" in err or "%" in err  # the progress bar went to stderr
    again, _ = run_import("--personne-activite", str(path), "--no-progress")
    assert "practitioners: 0 created, 0 updated, 60 unchanged, 0 deactivated" in again


def test_the_command_refuses_unusable_input(tmp_path):
    with pytest.raises(CommandError, match="Give --personne-activite"):
        run_import()
    with pytest.raises(CommandError, match="No such file"):
        run_import("--personne-activite", str(tmp_path / "missing.txt"))
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(CommandError, match="Nothing was imported"):
        run_import("--personne-activite", str(empty))


def test_the_admin_finds_practitioners_by_name_prefix(sample):
    run_import("--personne-activite", str(sample[0]), "--no-progress")
    someone = Practitioner.objects.order_by("national_id")[0]
    User.objects.create_superuser("admin", "admin@example.org", "a-long-password-1")
    client = Client()
    client.force_login(User.objects.get(username="admin"))
    prefix = someone.name_key[:4]
    page = client.get("/admin/directory/practitioner/", {"q": prefix.upper()})
    assert page.status_code == 200
    assert someone.national_id in page.content.decode()
    exact = client.get("/admin/directory/practitioner/", {"q": someone.national_id})
    assert someone.national_id in exact.content.decode()
    detail = client.get(f"/admin/directory/practitioner/{someone.national_id}/change/")
    assert detail.status_code == 200


def test_import_and_search_work_on_sqlite(tmp_path, sample):
    """The embedded default: the same command and search on SQLite, in a fresh process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_")}
    env.update(RELAIS_DEBUG="1", RELAIS_DATABASE_URL=f"sqlite:///{tmp_path}/embedded.sqlite3")

    def manage(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    manage("migrate", "--noinput")
    personne, mssante = sample
    first = manage(
        "import_directory",
        "--personne-activite",
        str(personne),
        "--mssante",
        str(mssante),
        "--no-progress",
    )
    assert "practitioners: 60 created" in first
    second = manage("import_directory", "--personne-activite", str(personne), "--no-progress")
    assert "0 created, 0 updated, 60 unchanged, 0 deactivated" in second
    code = (
        "from directory.services.search import SearchQuery, search_practitioners as s;"
        "from directory.models import MailboxAddress as M;"
        "page = s(query=SearchQuery(profession_code='10', limit=50));"
        "print(len(page.results), all(p.profession_code == '10' for p in page.results));"
        "m = M.objects.filter(kind='PER').first();"
        "print([p.national_id for p in s(query=SearchQuery(mssante_address=m.address)).results]"
        " == [m.national_id])"
    )
    lines = manage("shell", "--no-imports", "-c", code).split("\n")
    count, same_profession = lines[0].split()
    assert int(count) > 5
    assert same_profession == "True"
    assert lines[1] == "True"


def test_a_refused_mssante_file_after_the_people_file_says_what_was_imported(sample, tmp_path):
    personne, _ = sample
    broken = tmp_path / "Extraction_Correspondance_MSSante_bad.txt"
    broken.write_text("Adresse BAL|\nx@y|\n", encoding="utf-8")  # columns missing
    with pytest.raises(CommandError) as refused:
        run_import("--personne-activite", str(personne), "--mssante", str(broken), "--no-progress")
    message = str(refused.value)
    assert "Nothing was imported" not in message
    assert f"{personne.name} was imported" in message
    assert f"{broken.name} was not imported" in message
    assert Practitioner.objects.filter(is_active=True).count() == 60
