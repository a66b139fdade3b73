"""Import the Annuaire Santé extracts into the directory tables.

How (docs/identity.md, "Directory import"):

1. Stream the file line by line into a temporary staging table (``COPY`` on
   PostgreSQL, batched inserts on SQLite). Memory stays bounded; bad lines are reported
   with their number and skipped.
2. Merge the staging table with a few set-based SQL statements: insert new people,
   update only rows whose content digest changed, deactivate the directory's people
   who are no longer in the file, replace changed activities. A practitioner with a
   refused row (its national id still readable) is left exactly as they were: not
   updated from their other rows, not deactivated, their activities untouched.

Everything happens in one transaction: an import that fails leaves the directory as it
was. Importing the same file twice changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from directory.extracts.reader import (
    CheckDigitPolicy,
    MailboxRow,
    PersonRow,
    read_mailbox_rows,
    read_person_rows,
)

BATCH = 5000
MAX_EXAMPLES = 20
# An extract that would remove more than this share of a large directory is more likely
# truncated than real; the import stops unless told otherwise.
MASS_REMOVAL_RATIO = 0.5
MASS_REMOVAL_MIN_ROWS = 1000


class ImportRefusedError(RuntimeError):
    """The import would do something dangerous; nothing was written."""


@dataclass
class ImportReport:
    """What an import did; ``bad_examples`` keeps the first few bad rows."""

    lines: int = 0
    rows: int = 0
    bad_rows: int = 0
    warnings: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deactivated: int = 0
    kept_as_they_were: int = 0
    activities_added: int = 0
    activities_removed: int = 0
    mailboxes_added: int = 0
    mailboxes_changed: int = 0
    mailboxes_removed: int = 0
    bad_examples: list[tuple[int, str]] = field(default_factory=list)

    def note_bad_row(self, line: int, reason: str) -> None:
        self.bad_rows += 1
        if len(self.bad_examples) < MAX_EXAMPLES:
            self.bad_examples.append((line, reason))


ProgressHandler = Callable[[int], object]
LineHandler = Callable[[int, str], None]

_PERSON_COLUMNS: tuple[str, ...] = PersonRow._fields
_MAILBOX_COLUMNS: tuple[str, ...] = MailboxRow._fields


def _staging_ddl(table: str, columns: Sequence[str]) -> str:
    types = {"line": "integer", "check_digit_valid": "boolean"}
    body = ", ".join(f"{name} {types.get(name, 'text')}" for name in columns)
    suffix = " ON COMMIT DROP" if connection.vendor == "postgresql" else ""
    return f"CREATE TEMPORARY TABLE {table} ({body}){suffix}"


def _tune_session(cursor: Any) -> None:
    """Room for a million-row staging table in memory (this transaction only; server
    side). ``temp_buffers`` only takes effect before a session's first temporary table."""
    if connection.vendor == "postgresql":
        cursor.execute("SET LOCAL temp_buffers = '512MB'")
        cursor.execute("SET LOCAL work_mem = '128MB'")
        cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")


def _drop(cursor: Any, *tables: str) -> None:
    for table in tables:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")


def _analyze(cursor: Any, *tables: str) -> None:
    # Autovacuum never analyses temporary tables, and lags behind a large import: the
    # merge plans and the first searches need fresh statistics.
    if connection.vendor == "postgresql":
        for table in tables:
            cursor.execute(f"ANALYZE {table}")


def _stage(cursor: Any, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> int:
    """Write ``rows`` into the staging ``table``; return how many were written."""
    count = 0
    if connection.vendor == "postgresql":
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        with raw.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
        return count
    placeholders = ", ".join(["%s"] * len(columns))
    # Table and column names are this module's constants, never input.
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"  # noqa: S608
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            cursor.executemany(sql, batch)
            count += len(batch)
            batch.clear()
    if batch:
        cursor.executemany(sql, batch)
        count += len(batch)
    return count


def _scalar_row(cursor: Any, sql: str, params: Sequence[Any] = ()) -> tuple[int, ...]:
    cursor.execute(sql, params)
    row = cursor.fetchone()
    return tuple(int(value or 0) for value in row)


def _check_mass_removal(*, removing: int, total: int, what: str, allow: bool) -> None:
    if allow or total < MASS_REMOVAL_MIN_ROWS or removing <= total * MASS_REMOVAL_RATIO:
        return
    raise ImportRefusedError(
        f"the file would remove {removing} of {total} {what}; it looks truncated. "
        "Nothing was changed (use --allow-mass-removal if this is really the new extract)."
    )


def import_personne_activite(
    path: Path,
    *,
    policy: CheckDigitPolicy,
    on_bad_row: LineHandler = lambda _line, _reason: None,
    on_warning: LineHandler = lambda _line, _reason: None,
    on_progress: ProgressHandler = lambda _bytes: None,
    on_phase: Callable[[str], None] = lambda _phase: None,
    allow_mass_removal: bool = False,
) -> ImportReport:
    """Import a PS_LibreAcces_Personne_activite file; see the module docstring.

    Raises HeaderError (unusable header) or ImportRefusedError before changing anything.
    """
    report = ImportReport()
    rejected: set[str] = set()

    def bad_row(line: int, reason: str) -> None:
        report.note_bad_row(line, reason)
        on_bad_row(line, reason)

    def warning(line: int, reason: str) -> None:
        report.warnings += 1
        on_warning(line, reason)

    def progress(size: int) -> None:
        report.lines += 1
        on_progress(size)

    with ExitStack() as stack:
        stream = stack.enter_context(path.open("rb"))
        stack.enter_context(transaction.atomic())
        cursor = stack.enter_context(connection.cursor())
        _tune_session(cursor)
        _drop(cursor, "import_rows", "import_people", "import_activities", "import_rejected")
        cursor.execute(_staging_ddl("import_rows", _PERSON_COLUMNS))
        cursor.execute(_staging_ddl("import_rejected", ("national_id",)))

        rows: Iterable[PersonRow] = read_person_rows(
            stream,
            policy=policy,
            on_bad_row=bad_row,
            on_warning=warning,
            on_progress=progress,
            on_rejected_id=rejected.add,
        )
        report.rows = _stage(cursor, "import_rows", _PERSON_COLUMNS, rows)
        report.lines = max(report.lines - 1, 0)  # the header is not a data line
        _stage(cursor, "import_rejected", ("national_id",), ((i,) for i in sorted(rejected)))
        on_phase("merging practitioners")
        _merge_people(cursor, report, allow_mass_removal=allow_mass_removal)
        on_phase("merging activities")
        _merge_activities(cursor, report)
        _drop(cursor, "import_rows", "import_people", "import_activities", "import_rejected")
        _analyze(cursor, "directory_practitioner", "directory_activity")
    return report


def _merge_people(cursor: Any, report: ImportReport, *, allow_mass_removal: bool) -> None:
    now = timezone.now()
    # People with a refused row keep what the directory knows of them (not half of it).
    cursor.execute(
        "DELETE FROM import_rows WHERE national_id IN (SELECT national_id FROM import_rejected)"
    )
    report.kept_as_they_were = _scalar_row(
        cursor, "SELECT COUNT(DISTINCT national_id) FROM import_rejected"
    )[0]
    cursor.execute(
        "CREATE TEMPORARY TABLE import_people AS SELECT * FROM import_rows "
        "WHERE line IN (SELECT MIN(line) FROM import_rows GROUP BY national_id)"
    )
    cursor.execute("CREATE UNIQUE INDEX import_people_id ON import_people (national_id)")
    _analyze(cursor, "import_rows", "import_people")
    report.created, report.updated, people = _scalar_row(
        cursor,
        "SELECT SUM(CASE WHEN d.national_id IS NULL THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN d.national_id IS NOT NULL AND (d.row_hash <> p.person_hash"
        "  OR NOT d.is_active OR d.source <> 'annuaire') THEN 1 ELSE 0 END),"
        " COUNT(*)"
        " FROM import_people p"
        " LEFT JOIN directory_practitioner d ON d.national_id = p.national_id",
    )
    report.unchanged = people - report.created - report.updated
    (removing, total) = _scalar_row(
        cursor,
        "SELECT SUM(CASE WHEN NOT EXISTS (SELECT 1 FROM import_people p"
        "  WHERE p.national_id = d.national_id) THEN 1 ELSE 0 END), COUNT(*)"
        " FROM directory_practitioner d WHERE d.is_active AND d.source = 'annuaire'",
    )
    _check_mass_removal(
        removing=removing, total=total, what="practitioners", allow=allow_mass_removal
    )
    empty_json = "'[]'::jsonb" if connection.vendor == "postgresql" else "'[]'"
    cursor.execute(
        "INSERT INTO directory_practitioner (national_id, civility, first_name, last_name,"  # noqa: S608 (no input in the SQL)
        " profession_code, profession_label, specialty_code, specialty_label, postcode, town,"
        " mssante_addresses, is_active, updated_at, name_key, reversed_name_key, source,"
        " row_hash, check_digit_valid)"
        " SELECT national_id, substr(civility, 1, 8), substr(first_name, 1, 128),"
        " substr(last_name, 1, 128), substr(profession_code, 1, 8),"
        " substr(profession_label, 1, 128), substr(specialty_code, 1, 16),"
        " substr(specialty_label, 1, 256), substr(postcode, 1, 10), substr(town, 1, 128),"
        f" {empty_json}, TRUE, %s, substr(name_key, 1, 260),"
        " substr(reversed_name_key, 1, 260), 'annuaire', person_hash, check_digit_valid"
        " FROM import_people WHERE TRUE"
        " ORDER BY national_id"  # index pages are then filled in order: much faster
        " ON CONFLICT (national_id) DO UPDATE SET civility = excluded.civility,"
        " first_name = excluded.first_name, last_name = excluded.last_name,"
        " profession_code = excluded.profession_code,"
        " profession_label = excluded.profession_label,"
        " specialty_code = excluded.specialty_code, specialty_label = excluded.specialty_label,"
        " postcode = excluded.postcode, town = excluded.town, is_active = TRUE,"
        " updated_at = excluded.updated_at, name_key = excluded.name_key,"
        " reversed_name_key = excluded.reversed_name_key, source = 'annuaire',"
        " row_hash = excluded.row_hash, check_digit_valid = excluded.check_digit_valid"
        " WHERE directory_practitioner.row_hash <> excluded.row_hash"
        " OR NOT directory_practitioner.is_active"
        " OR directory_practitioner.source <> 'annuaire'",
        [now],
    )
    cursor.execute(
        "UPDATE directory_practitioner SET is_active = FALSE, updated_at = %s"
        " WHERE is_active AND source = 'annuaire'"
        " AND NOT EXISTS (SELECT 1 FROM import_people p"
        "  WHERE p.national_id = directory_practitioner.national_id)"
        " AND NOT EXISTS (SELECT 1 FROM import_rejected r"
        "  WHERE r.national_id = directory_practitioner.national_id)",
        [now],
    )
    report.deactivated = cursor.rowcount


def _merge_activities(cursor: Any, report: ImportReport) -> None:
    cursor.execute(
        "CREATE TEMPORARY TABLE import_activities AS SELECT * FROM import_rows"
        " WHERE line IN (SELECT MIN(line) FROM import_rows GROUP BY national_id, activity_hash)"
    )
    cursor.execute(
        "CREATE INDEX import_activities_key ON import_activities (national_id, activity_hash)"
    )
    _analyze(cursor, "import_activities")
    cursor.execute(
        "DELETE FROM directory_activity"
        " WHERE practitioner_id IN (SELECT national_id FROM import_people)"
        " AND NOT EXISTS (SELECT 1 FROM import_activities a"
        "  WHERE a.national_id = directory_activity.practitioner_id"
        "  AND a.activity_hash = directory_activity.activity_hash)"
    )
    report.activities_removed = cursor.rowcount
    cursor.execute(
        "INSERT INTO directory_activity (practitioner_id, activity_hash, profession_code,"
        " specialty_code, mode_code, mode_label, sector_code, sector_label, structure_id,"
        " structure_name, siret, finess, street, postcode, town, town_key, department_code,"
        " phone, name_key)"
        " SELECT national_id, activity_hash, substr(profession_code, 1, 8),"
        " substr(specialty_code, 1, 16), substr(mode_code, 1, 8), substr(mode_label, 1, 64),"
        " substr(sector_code, 1, 16), substr(sector_label, 1, 128),"
        " substr(structure_id, 1, 64), substr(structure_name, 1, 256), substr(siret, 1, 20),"
        " substr(finess, 1, 20), substr(street, 1, 256), substr(postcode, 1, 10),"
        " substr(town, 1, 128), substr(town_key, 1, 130), substr(department_code, 1, 8),"
        " substr(phone, 1, 32), substr(name_key, 1, 260)"
        " FROM import_activities a"
        " WHERE NOT EXISTS (SELECT 1 FROM directory_activity x"
        "  WHERE x.practitioner_id = a.national_id AND x.activity_hash = a.activity_hash)"
        " ORDER BY national_id, activity_hash"
    )
    report.activities_added = cursor.rowcount
    # A renamed practitioner's unchanged activities take the new name key.
    cursor.execute(
        "UPDATE directory_activity SET name_key = p.name_key"
        " FROM directory_practitioner p"
        " WHERE directory_activity.practitioner_id = p.national_id"
        " AND directory_activity.practitioner_id IN (SELECT national_id FROM import_people)"
        " AND directory_activity.name_key <> p.name_key"
    )


def import_mssante(
    path: Path,
    *,
    on_bad_row: LineHandler = lambda _line, _reason: None,
    on_progress: ProgressHandler = lambda _bytes: None,
    on_phase: Callable[[str], None] = lambda _phase: None,
    allow_mass_removal: bool = False,
) -> ImportReport:
    """Import an Extraction_Correspondance_MSSante file (the whole list of mailboxes).

    Mailboxes missing from the file are removed; each practitioner's
    ``mssante_addresses`` lists their personal (PER) mailboxes, sorted.
    """
    report = ImportReport()

    def bad_row(line: int, reason: str) -> None:
        report.note_bad_row(line, reason)
        on_bad_row(line, reason)

    def progress(size: int) -> None:
        report.lines += 1
        on_progress(size)

    with ExitStack() as stack:
        stream = stack.enter_context(path.open("rb"))
        stack.enter_context(transaction.atomic())
        cursor = stack.enter_context(connection.cursor())
        _drop(cursor, "import_mailbox_rows", "import_mailboxes", "import_mailbox_people")
        cursor.execute(_staging_ddl("import_mailbox_rows", _MAILBOX_COLUMNS))
        rows: Iterable[MailboxRow] = read_mailbox_rows(
            stream, on_bad_row=bad_row, on_progress=progress
        )
        report.rows = _stage(cursor, "import_mailbox_rows", _MAILBOX_COLUMNS, rows)
        report.lines = max(report.lines - 1, 0)
        on_phase("merging mailboxes")
        _merge_mailboxes(cursor, report, allow_mass_removal=allow_mass_removal)
        _drop(cursor, "import_mailbox_rows", "import_mailboxes", "import_mailbox_people")
        _analyze(cursor, "directory_mailboxaddress")
    return report


def _merge_mailboxes(cursor: Any, report: ImportReport, *, allow_mass_removal: bool) -> None:
    cursor.execute(
        "CREATE TEMPORARY TABLE import_mailboxes AS SELECT * FROM import_mailbox_rows"
        " WHERE line IN (SELECT MIN(line) FROM import_mailbox_rows GROUP BY address)"
    )
    cursor.execute("CREATE UNIQUE INDEX import_mailboxes_address ON import_mailboxes (address)")
    _analyze(cursor, "import_mailboxes")
    report.mailboxes_added, report.mailboxes_changed = _scalar_row(
        cursor,
        "SELECT SUM(CASE WHEN t.address IS NULL THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN t.address IS NOT NULL AND t.row_hash <> n.row_hash THEN 1 ELSE 0 END)"
        " FROM import_mailboxes n"
        " LEFT JOIN directory_mailboxaddress t ON t.address = n.address",
    )
    (report.mailboxes_removed, total) = _scalar_row(
        cursor,
        "SELECT SUM(CASE WHEN NOT EXISTS (SELECT 1 FROM import_mailboxes n"
        "  WHERE n.address = t.address) THEN 1 ELSE 0 END), COUNT(*)"
        " FROM directory_mailboxaddress t",
    )
    _check_mass_removal(
        removing=report.mailboxes_removed, total=total, what="mailboxes", allow=allow_mass_removal
    )
    # People whose list of addresses changes, computed before the tables change.
    cursor.execute(
        "CREATE TEMPORARY TABLE import_mailbox_people AS"
        " SELECT national_id FROM import_mailboxes n WHERE national_id <> ''"
        " AND NOT EXISTS (SELECT 1 FROM directory_mailboxaddress t"
        "  WHERE t.address = n.address AND t.row_hash = n.row_hash)"
        " UNION SELECT national_id FROM directory_mailboxaddress t WHERE national_id <> ''"
        " AND NOT EXISTS (SELECT 1 FROM import_mailboxes n"
        "  WHERE n.address = t.address AND n.row_hash = t.row_hash)"
    )
    cursor.execute(
        "DELETE FROM directory_mailboxaddress WHERE NOT EXISTS"
        " (SELECT 1 FROM import_mailboxes n WHERE n.address = directory_mailboxaddress.address)"
    )
    cursor.execute(
        "INSERT INTO directory_mailboxaddress (address, kind, national_id, organisation,"
        " row_hash)"
        " SELECT address, kind, substr(national_id, 1, 32), organisation, row_hash"
        " FROM import_mailboxes WHERE TRUE"
        " ON CONFLICT (address) DO UPDATE SET kind = excluded.kind,"
        " national_id = excluded.national_id, organisation = excluded.organisation,"
        " row_hash = excluded.row_hash"
        " WHERE directory_mailboxaddress.row_hash <> excluded.row_hash"
    )
    _refresh_practitioner_addresses(cursor)


def _refresh_practitioner_addresses(cursor: Any) -> None:
    if connection.vendor == "postgresql":
        cursor.execute(
            "UPDATE directory_practitioner SET mssante_addresses = COALESCE("
            " (SELECT jsonb_agg(m.address ORDER BY m.address) FROM directory_mailboxaddress m"
            "  WHERE m.national_id = directory_practitioner.national_id AND m.kind = 'PER'),"
            " '[]'::jsonb)"
            " WHERE national_id IN (SELECT national_id FROM import_mailbox_people)"
        )
        return
    # SQLite (the embedded default, small directories): one person at a time.
    from directory.models import MailboxAddress, MailboxKind, Practitioner

    cursor.execute("SELECT national_id FROM import_mailbox_people")
    for (national_id,) in cursor.fetchall():
        addresses = sorted(
            MailboxAddress.objects.filter(
                national_id=national_id, kind=MailboxKind.PERSONAL
            ).values_list("address", flat=True)
        )
        Practitioner.objects.filter(national_id=national_id).update(mssante_addresses=addresses)
