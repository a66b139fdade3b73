"""The log's rows. Entries, nodes and heads are append-only: nothing updates or deletes
them (``LogHead`` is the one row that moves)."""

from __future__ import annotations

from django.db import models

NODE_LEVEL_SHIFT = 48  # LogNode.key = level << 48 | position: up to 2**48 entries


class LogHead(models.Model):
    """One row (pk 1): the log's size and the right edge of its Merkle tree
    (``e2ee.merkle.CompactTree``), so an append costs O(log n). Appending locks this
    row, so entries get dense indexes."""

    size = models.BigIntegerField(default=0)
    edge = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"log of {self.size} entries"


class LogEntry(models.Model):
    """Leaf ``index`` of the Merkle tree: a signed identity, device or revocation entry.

    ``leaf`` is the exact canonical JSON that is hashed. ``label`` (the VRF label the
    entry is published under) and ``prev`` are in it; ``national_id``, ``device_id`` and
    ``sign_key`` are the server's own indexes for lookups and are never served with
    entries: the public log shows labels only."""

    index = models.BigIntegerField(primary_key=True)
    kind = models.CharField(max_length=16)  # "identity", "device" or "revocation"
    label = models.BinaryField(max_length=32, db_index=True)
    prev = models.BigIntegerField()
    national_id = models.CharField(max_length=32, db_index=True)
    device_id = models.BigIntegerField(null=True, db_index=True)
    sign_key = models.CharField(max_length=43, blank=True)
    leaf = models.BinaryField()
    created_at_ms = models.BigIntegerField()

    def __str__(self) -> str:
        return f"log entry {self.index} ({self.kind})"


class LogNode(models.Model):
    """The hash of one perfect subtree (``level``, ``position``), written when the append
    that completes it happens: level 0 holds leaf hashes. A proof reads O(log n) of
    these instead of every leaf hash."""

    key = models.BigIntegerField(primary_key=True)  # level << 48 | position
    hash = models.BinaryField(max_length=32)

    def __str__(self) -> str:
        return f"node {self.key >> NODE_LEVEL_SHIFT}/{self.key & ((1 << NODE_LEVEL_SHIFT) - 1)}"


class SignedTreeHead(models.Model):
    """A tree head the log signed: one per append, and fresh ones for the same size
    when nothing was appended for a while (``KEYLOG_HEAD_INTERVAL``)."""

    size = models.BigIntegerField(db_index=True)
    root = models.BinaryField(max_length=32)
    timestamp_ms = models.BigIntegerField()
    signature = models.BinaryField(max_length=64)

    def __str__(self) -> str:
        return f"tree head of size {self.size} at {self.timestamp_ms}"


class Cosignature(models.Model):
    """A configured witness's verified cosignature of a head."""

    head = models.ForeignKey(SignedTreeHead, on_delete=models.CASCADE, related_name="cosignatures")
    witness = models.CharField(max_length=43)  # witness id: b64u(SHA-256(witness key))
    signature = models.BinaryField(max_length=64)
    received_at_ms = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["head", "witness"], name="one_cosignature_per_witness")
        ]

    def __str__(self) -> str:
        return f"cosignature of head {self.head_id} by {self.witness}"
