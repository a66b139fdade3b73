"""Benchmark of the directory: import a synthetic 1,000,000-row Annuaire Santé extract
on PostgreSQL, re-import it, and measure search latency (docs/identity.md).

    python -m bench.directory_import [--rows 1000000] [--queries 2000]

Targets on the 2-core reference machine: import < 90 s and < 300 MiB peak RSS of the
importing process; the re-import changes nothing; search p99 < 20 ms. The database
named by ``--database-url`` is dropped and re-created.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/relais_bench_directory"
TARGET_SECONDS = 90
TARGET_RSS_MIB = 300
TARGET_P99_MS = 20


def environment(database_url: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_")}
    return {**clean, "RELAIS_DEBUG": "1", "RELAIS_DATABASE_URL": database_url}


def recreate_database(database_url: str) -> None:
    import psycopg

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise SystemExit(f"refusing an unusual database name: {name!r}")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')


def run_measured(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``manage.py args``; return (seconds, peak RSS in MiB, stdout)."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, stdout=out, stderr=err
        )
        _pid, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if process.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{stderr[-3000:]}")
    return seconds, usage.ru_maxrss / 1024, stdout


def fingerprint() -> tuple[Any, ...]:
    """Everything an import could change, in a few numbers."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE is_active), max(updated_at),"
            " md5(string_agg(row_hash, '' ORDER BY national_id)) FROM directory_practitioner"
        )
        people = cursor.fetchone()
        cursor.execute("SELECT count(*), max(id), sum(id) FROM directory_activity")
        activities = cursor.fetchone()
        cursor.execute("SELECT count(*), md5(string_agg(row_hash, '' ORDER BY address))"
                       " FROM directory_mailboxaddress")  # fmt: skip
        mailboxes = cursor.fetchone()
    return (*people, *activities, *mailboxes)


def search_queries(count: int, seed: int) -> list[tuple[str, Any]]:
    """A mix of realistic searches built from rows of the imported directory."""
    from directory.models import MailboxAddress, Practitioner
    from directory.services.search import SearchQuery

    rng = random.Random(seed)
    sample = list(
        Practitioner.objects.filter(is_active=True)
        .order_by("?")
        .values("name_key", "reversed_name_key", "profession_code", "postcode", "town")[:300]
    )
    addresses = list(MailboxAddress.objects.values_list("address", flat=True)[:300])
    kinds = {
        "name prefix (3 letters)": lambda p: SearchQuery(name=p["name_key"][:3]),
        "last + first name": lambda p: SearchQuery(name=p["name_key"][:12]),
        "first name first": lambda p: SearchQuery(name=p["reversed_name_key"][:8]),
        "profession": lambda p: SearchQuery(profession_code=p["profession_code"]),
        "specialty": lambda p: SearchQuery(specialty_code=rng.choice(["SM26", "SM04", "SM53"])),
        "postcode + profession": lambda p: SearchQuery(
            postcode=p["postcode"], profession_code=p["profession_code"]
        ),
        "department prefix": lambda p: SearchQuery(postcode=p["postcode"][:2]),
        "town prefix": lambda p: SearchQuery(town=p["town"][:6]),
        "name + profession": lambda p: SearchQuery(
            name=p["name_key"][:4], profession_code=p["profession_code"]
        ),
        "mssante address": lambda p: SearchQuery(mssante_address=rng.choice(addresses)),
    }
    names = list(kinds)
    return [
        (kind, kinds[kind](rng.choice(sample)))
        for kind in (names[i % len(names)] for i in range(count))
    ]


def measure_search(count: int) -> dict[str, list[float]]:
    from directory.services.search import SearchQuery, search_practitioners

    timings: dict[str, list[float]] = {}
    queries = search_queries(count, seed=2)
    for _kind, query in queries[:100]:  # warm the caches
        search_practitioners(query=query)
    for kind, query in queries:
        started = time.perf_counter()
        page = search_practitioners(query=query)
        if page.next_cursor and kind == "profession":  # and the next page, as a client would
            timings.setdefault("next page (cursor)", [])
            second = time.perf_counter()
            search_practitioners(
                query=SearchQuery(profession_code=query.profession_code, cursor=page.next_cursor)
            )
            timings["next page (cursor)"].append((time.perf_counter() - second) * 1000)
        timings.setdefault(kind, []).append((time.perf_counter() - started) * 1000)
    return timings


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def show_plans() -> None:
    from django.db import connection

    from directory.services.search import SearchQuery, _after, _branches, _filtered

    for label, query in (
        ("name prefix", SearchQuery(name="mar")),
        ("profession + specialty", SearchQuery(profession_code="10", specialty_code="SM26")),
    ):
        key, branch = _branches(query, _filtered(query))[-1]
        queryset = _after(branch, key, None).order_by(key, "national_id")[:21]
        sql, params = queryset.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + sql, params)
            plan = " / ".join(row[0].strip() for row in cursor.fetchall()[:4])
        print(f"  plan, {label}: {plan[:230]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE)
    args = parser.parse_args()
    env = environment(args.database_url)
    os.environ.update({"RELAIS_DEBUG": "1", "RELAIS_DATABASE_URL": args.database_url})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "server.settings")
    import django

    django.setup()
    from directory.extracts.synthetic import write_sample_extracts

    recreate_database(args.database_url)
    run_measured(["migrate", "--noinput", "-v", "0"], env)
    with tempfile.TemporaryDirectory(prefix="relais-bench-directory-") as folder:
        started = time.monotonic()
        personne, mssante = write_sample_extracts(Path(folder), rows=args.rows, seed=1)
        size_mib = personne.stat().st_size / 2**20
        print(f"extract: {args.rows} rows, {size_mib:.0f} MiB, written in "
              f"{time.monotonic() - started:.1f} s")  # fmt: skip
        command = [
            "import_directory", "--personne-activite", str(personne), "--mssante", str(mssante),
            "--no-progress",
        ]  # fmt: skip
        seconds, rss, first = run_measured(command, env)
        print(f"import:    {seconds:6.1f} s, peak RSS {rss:5.0f} MiB "
              f"(targets < {TARGET_SECONDS} s, < {TARGET_RSS_MIB} MiB)")  # fmt: skip
        print("  " + "\n  ".join(first.strip().splitlines()))
        before = fingerprint()
        seconds_again, rss_again, again = run_measured(command, env)
        after = fingerprint()
        unchanged = before == after and " 0 created, 0 updated," in again
        unchanged = unchanged and "activities: 0 added, 0 removed" in again
        print(f"re-import: {seconds_again:6.1f} s, peak RSS {rss_again:5.0f} MiB, "
              f"directory unchanged: {'yes' if unchanged else 'NO'}")  # fmt: skip
        print("  " + "\n  ".join(again.strip().splitlines()))
    timings = measure_search(args.queries)
    every = [value for values in timings.values() for value in values]
    print(f"search: {len(every)} queries on {before[1]} active practitioners")
    for kind, values in timings.items():
        print(f"  {kind:26} p50 {statistics.median(values):6.2f} ms   "
              f"p99 {percentile(values, 0.99):6.2f} ms")  # fmt: skip
    p99 = percentile(every, 0.99)
    print(f"  {'all':26} p50 {statistics.median(every):6.2f} ms   p99 {p99:6.2f} ms "
          f"(target < {TARGET_P99_MS} ms)")  # fmt: skip
    show_plans()
    met = seconds < TARGET_SECONDS and rss < TARGET_RSS_MIB and p99 < TARGET_P99_MS
    print(f"targets met: {'yes' if met and unchanged else 'no'}")
    if not unchanged:
        raise SystemExit("the re-import changed the directory")


if __name__ == "__main__":
    main()
