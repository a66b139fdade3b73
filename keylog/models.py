"""The log's rows. Entries are append-only: nothing updates or deletes them."""

from __future__ import annotations

from django.db import models


class LogHead(models.Model):
    """One row (pk 1): the log's size and the right edge of its Merkle tree
    (``e2ee.merkle.CompactTree``), so an append costs O(log n). Appending locks this
    row, so entries get dense indexes."""

    size = models.BigIntegerField(default=0)
    edge = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"log of {self.size} entries"


class LogEntry(models.Model):
    """Leaf ``index`` of the Merkle tree: a signed certificate or revocation.

    ``leaf`` is the exact canonical JSON that is hashed; the other columns are indexes
    into it for lookups.
    """

    index = models.BigIntegerField(primary_key=True)
    kind = models.CharField(max_length=16)  # "certificate" or "revocation"
    national_id = models.CharField(max_length=32, db_index=True)
    device_id = models.BigIntegerField(db_index=True)
    sign_key = models.CharField(max_length=43)
    leaf = models.BinaryField()
    leaf_hash = models.BinaryField(max_length=32)
    created_at_ms = models.BigIntegerField()

    def __str__(self) -> str:
        return f"log entry {self.index} ({self.kind} of {self.national_id}/{self.device_id})"


class SignedTreeHead(models.Model):
    """A tree head the log signed (one per size it ever had)."""

    size = models.BigIntegerField(primary_key=True)
    root = models.BinaryField(max_length=32)
    timestamp_ms = models.BigIntegerField()
    signature = models.BinaryField(max_length=64)

    def __str__(self) -> str:
        return f"tree head of size {self.size}"
