"""``manage.py import_directory``: load the Annuaire Santé extracts (docs/identity.md)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from tqdm import tqdm

from directory.conf import directory_check_digit_policy
from directory.extracts.columns import HeaderError
from directory.extracts.importer import (
    ImportRefusedError,
    ImportReport,
    import_mssante,
    import_personne_activite,
)
from directory.extracts.reader import CheckDigitPolicy


def vacuum_directory() -> None:
    """After the import's commit, on PostgreSQL: mark the new pages all-visible so that
    searches read the indexes alone (index-only scans), and refresh the statistics."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "VACUUM (ANALYZE) directory_practitioner, directory_activity, directory_mailboxaddress"
        )


# Bad rows printed one by one before the command only counts them.
MAX_PRINTED_BAD_ROWS = 200


class Command(BaseCommand):
    help = (
        "Import PS_LibreAcces_Personne_activite and/or Extraction_Correspondance_MSSante "
        "files. Re-importing the same file changes nothing; people missing from a new "
        "extract are deactivated."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--personne-activite", type=Path, help="PS_LibreAcces_Personne_activite_*.txt"
        )
        parser.add_argument("--mssante", type=Path, help="Extraction_Correspondance_MSSante_*.txt")
        parser.add_argument(
            "--check-digits",
            choices=[policy.value for policy in CheckDigitPolicy],
            help="wrong RPPS/ADELI check digit: warn (sandbox default) or refuse the row "
            "(production default)",
        )
        parser.add_argument(
            "--allow-mass-removal",
            action="store_true",
            help="accept a file that removes more than half of a large directory",
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        personne: Path | None = options["personne_activite"]
        mssante: Path | None = options["mssante"]
        if personne is None and mssante is None:
            raise CommandError("Give --personne-activite FILE and/or --mssante FILE.")
        for path in (personne, mssante):
            if path is not None and not path.is_file():
                raise CommandError(f"No such file: {path}")
        policy = (
            CheckDigitPolicy(options["check_digits"])
            if options["check_digits"]
            else directory_check_digit_policy()
        )
        self.printed = 0
        self.progress_stream = options.get("stderr") or sys.stderr
        show_progress = not options["no_progress"]
        imported: list[Path] = []
        try:
            if personne is not None:
                self._run_personne(personne, policy, show_progress, options["allow_mass_removal"])
                imported.append(personne)
            if mssante is not None:
                self._run_mssante(mssante, show_progress, options["allow_mass_removal"])
        except (HeaderError, ImportRefusedError) as error:
            # Each file is imported in its own transaction: say which one stands.
            if imported:
                vacuum_directory()
                raise CommandError(
                    f"{error} {mssante.name if mssante else 'The file'} was not imported "
                    f"(nothing of it changed); {imported[0].name} was imported."
                ) from error
            raise CommandError(f"{error} Nothing was imported.") from error
        vacuum_directory()

    def _bad_row(self, line: int, reason: str, *, kind: str = "bad row") -> None:
        self.printed += 1
        if self.printed <= MAX_PRINTED_BAD_ROWS:
            self.stderr.write(f"line {line}: {kind}: {reason}")
        elif self.printed == MAX_PRINTED_BAD_ROWS + 1:
            self.stderr.write("(more problems are counted in the summary)")

    def _bar(self, path: Path, show: bool) -> tqdm[Any]:
        return tqdm(
            total=path.stat().st_size,
            unit="B",
            unit_scale=True,
            desc=path.name[:40],
            disable=not show,
            file=self.progress_stream,
            mininterval=0.5,
        )

    def _run_personne(self, path: Path, policy: CheckDigitPolicy, show: bool, allow: bool) -> None:
        started = time.monotonic()
        with self._bar(path, show) as bar:
            report = import_personne_activite(
                path,
                policy=policy,
                on_bad_row=self._bad_row,
                on_warning=lambda line, reason: self._bad_row(line, reason, kind="warning"),
                on_progress=bar.update,
                on_phase=lambda phase: bar.set_postfix_str(phase),
                allow_mass_removal=allow,
            )
        self._summary(path, report, time.monotonic() - started, people=True)

    def _run_mssante(self, path: Path, show: bool, allow: bool) -> None:
        started = time.monotonic()
        with self._bar(path, show) as bar:
            report = import_mssante(
                path,
                on_bad_row=self._bad_row,
                on_progress=bar.update,
                on_phase=lambda phase: bar.set_postfix_str(phase),
                allow_mass_removal=allow,
            )
        self._summary(path, report, time.monotonic() - started, people=False)

    def _summary(self, path: Path, report: ImportReport, seconds: float, *, people: bool) -> None:
        lines = [
            f"{path.name}: {report.lines} lines, {report.rows} rows imported in {seconds:.1f} s"
        ]
        if people:
            lines.append(
                f"  practitioners: {report.created} created, {report.updated} updated, "
                f"{report.unchanged} unchanged, {report.deactivated} deactivated, "
                f"{report.kept_as_they_were} kept as they were (a row of theirs was refused)"
            )
            lines.append(
                f"  activities: {report.activities_added} added, "
                f"{report.activities_removed} removed"
            )
            lines.append(f"  check-digit warnings: {report.warnings}")
        else:
            lines.append(
                f"  mailboxes: {report.mailboxes_added} added, {report.mailboxes_changed} changed, "
                f"{report.mailboxes_removed} removed"
            )
        lines.append(f"  bad rows (skipped): {report.bad_rows}")
        for line in lines:
            self.stdout.write(line)
