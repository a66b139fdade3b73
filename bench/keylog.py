"""The key-transparency log's cost at scale: append, inclusion proof, consistency proof,
lookup, and a monitor pass, with the log filled to ``--entries`` (default 10^6).

    RELAIS_DEBUG=1 RELAIS_DATABASE_URL=postgres://…/relais_bench python -m bench.keylog

Use a database of its own: the script empties the log tables, then fills them fast with
COPY (filler entries carry random labels and are not signed: only the benchmarked
practitioner's entries are real, which is all a lookup or a monitor verifies). It
prints the time of each operation with the stored subtree hashes (O(log n) rows read)
and, for comparison, the previous way (every leaf hash read, proof computed from them).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import statistics
import time
from collections.abc import Callable

import django


def _timed(label: str, action: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    median = statistics.median(samples) * 1000
    print(f"{label:<48} {median:10.2f} ms (median of {repeat})")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "server.settings")
    django.setup()

    from django.core.management import call_command
    from django.db import connection, transaction

    from chat.services.devices import DeviceIdentity, do_issue_device_token
    from directory.models import Practitioner
    from e2ee import merkle, transparency
    from e2ee.encoding import b64u
    from e2ee.keys import DeviceKeyPair
    from keylog import services, tree
    from keylog.models import LogEntry, LogHead, LogNode, SignedTreeHead
    from tests.identities import certify_with_services

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE keylog_logentry, keylog_lognode, keylog_cosignature, keylog_signedtreehead"
        )
    LogHead.objects.update_or_create(pk=1, defaults={"size": 0, "edge": {"size": 0, "edge": []}})

    print(f"filling {args.entries:,} entries with COPY …")
    start = time.perf_counter()
    compact = merkle.CompactTree()
    entries, nodes = io.StringIO(), io.StringIO()
    for index in range(args.entries):
        body = {
            "entry": {
                "v": 2,
                "type": "device",
                "label": b64u(secrets.token_bytes(32)),
                "filler": b64u(secrets.token_bytes(200)),
            },
            "sig": b64u(bytes(64)),
        }
        leaf = json.dumps(body, separators=(",", ":")).encode()
        entries.write(
            f"{index}\tdevice\t\\\\x{secrets.token_hex(32)}\t-1\tfiller\t\\N\t\t"
            f"\\\\x{leaf.hex()}\t0\n"
        )
        for (level, position), node in compact.append(merkle.leaf_hash(leaf)):
            nodes.write(f"{tree.node_key(level, position)}\t\\\\x{node.hex()}\n")
    with connection.cursor() as cursor:
        for table, columns, data in (
            (
                "keylog_logentry",
                "index, kind, label, prev, national_id, device_id, sign_key, leaf, created_at_ms",
                entries,
            ),
            ("keylog_lognode", "key, hash", nodes),
        ):
            data.seek(0)
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                copy.write(data.read())
    LogHead.objects.filter(pk=1).update(size=compact.size, edge=compact.to_json())
    SignedTreeHead.objects.create(
        size=compact.size, root=compact.root(), timestamp_ms=0, signature=bytes(64)
    )
    print(f"filled in {time.perf_counter() - start:.0f} s")

    nurse = Practitioner.objects.get_or_create(
        national_id="810003456786", defaults={"last_name": "Bench"}
    )[0]
    device, _ = do_issue_device_token(practitioner=nurse, device_name="bench")
    with transaction.atomic():
        certify_with_services(
            DeviceIdentity(device.pk, nurse.national_id), DeviceKeyPair.generate()
        )
    size = tree.current_size()
    print(f"log size {size:,}")

    def append() -> None:
        with transaction.atomic():
            services.do_revoke_device_keys(
                identity=DeviceIdentity(device.pk, nurse.national_id),
                device_id=device.pk,
                reason="lost",
            )
            LogEntry.objects.filter(kind="revocation", device_id=device.pk).update(kind="x")

    _timed("append (a revocation, with its new head)", append, args.repeat)
    size = tree.current_size()
    middle = size // 2 + 1
    _timed(
        "inclusion proof, stored subtrees",
        lambda: tree.inclusion_proof(index=middle, size=size),
        args.repeat,
    )
    _timed(
        "consistency proof, stored subtrees",
        lambda: tree.consistency(first=middle, second=size),
        args.repeat,
    )
    _timed(
        "lookup of a practitioner (VRF, entries, proofs)",
        lambda: services.lookup(nurse.national_id),
        args.repeat,
    )

    def leaf_hashes() -> list[bytes]:
        return [
            bytes(h)
            for h in LogNode.objects.filter(key__lt=size)
            .order_by("key")
            .values_list("hash", flat=True)
        ]

    _timed(
        "inclusion proof, every leaf hash read (before)",
        lambda: merkle.inclusion_proof(leaf_hashes(), middle),
        3,
    )
    _timed(
        "consistency proof, every leaf hash read (before)",
        lambda: merkle.consistency_proof(leaf_hashes(), middle),
        3,
    )

    def monitor_pass() -> None:
        label = services.label_of(nurse.national_id)[0]
        compact = merkle.CompactTree()
        own = 0
        for start in range(0, size, services.MAX_ENTRIES_PAGE):
            for entry in services.entries_page(start=start, end=min(size, start + 1000)):
                leaf = bytes(entry.leaf)
                compact.append(merkle.leaf_hash(leaf))
                own += transparency.entry_label(leaf) == label
        assert own >= 2

    _timed(f"monitor pass over {size:,} entries (server side)", monitor_pass, 1)


if __name__ == "__main__":
    main()
