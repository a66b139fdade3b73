"""The log's Merkle tree in the database: appends, O(log n) proofs from stored subtree
hashes, signed heads (fresh ones too) and witness cosignatures.

Every append stores the hashes of the perfect subtrees it completes (``LogNode``), so
an inclusion or consistency proof reads O(log n) rows (``e2ee.merkle.nodes_for``)
instead of every leaf hash. Heads: one signed per append; when the newest is older
than ``KEYLOG_HEAD_INTERVAL`` a fresh head of the same size is signed on request, so
heads carry recent times even when nothing is appended. Clients are served the newest
head every configured witness cosigned (``served_head``); witnesses are served the
newest head (``latest_head``).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count

from chat.clock import SYSTEM_CLOCK, Clock
from chat.errors import ErrorCode, RelaisError
from e2ee import merkle
from e2ee.encoding import JsonObject, b64u, unb64u
from e2ee.errors import CryptoError
from e2ee.tree_heads import TreeHead, sign_tree_head, verify_cosignature, witness_id
from keylog.keys import log_public, log_signing_key
from keylog.models import NODE_LEVEL_SHIFT, Cosignature, LogHead, LogNode, SignedTreeHead

CLOCK: Clock = SYSTEM_CLOCK


@dataclass(frozen=True, slots=True)
class ServedHead:
    head: TreeHead
    cosignatures: list[JsonObject]

    def to_json(self) -> JsonObject:
        return {
            "tree_head": self.head.to_json(log_public=log_public()),
            "cosignatures": self.cosignatures,
        }


def node_key(level: int, position: int) -> int:
    return level << NODE_LEVEL_SHIFT | position


def locked_head() -> LogHead:
    """The log head row, locked. Created on first use (a flushed test database has none)."""
    head = LogHead.objects.select_for_update().filter(pk=1).first()
    if head is None:
        try:
            with transaction.atomic():
                LogHead.objects.create(pk=1, size=0, edge={"size": 0, "edge": []})
        except IntegrityError:
            pass  # created concurrently
        head = LogHead.objects.select_for_update().get(pk=1)
    return head


def current_size() -> int:
    size = LogHead.objects.filter(pk=1).values_list("size", flat=True).first()
    return size or 0


def append_leaf(head: LogHead, leaf: bytes) -> tuple[int, TreeHead]:
    """Store the nodes leaf ``head.size`` completes and sign the new head. The caller
    holds ``head`` locked (``locked_head``) in a transaction and stores the entry."""
    tree = merkle.CompactTree.from_json(head.edge)
    index = tree.size
    completed = tree.append(merkle.leaf_hash(leaf))
    LogNode.objects.bulk_create(
        LogNode(key=node_key(level, position), hash=node) for (level, position), node in completed
    )
    signed = _sign_head(tree.size, tree.root())
    head.size = tree.size
    head.edge = tree.to_json()
    head.save(update_fields=["size", "edge"])
    return index, signed


def _sign_head(size: int, root: bytes) -> TreeHead:
    signed = sign_tree_head(
        log_key=log_signing_key(), size=size, root=root, timestamp=CLOCK.now_ms()
    )
    SignedTreeHead.objects.create(
        size=size, root=root, timestamp_ms=signed.timestamp, signature=signed.signature
    )
    return signed


def _nodes(ranges: list[merkle.Range]) -> dict[merkle.Node, bytes]:
    wanted = merkle.nodes_for(ranges)
    rows = LogNode.objects.filter(key__in=[node_key(*n) for n in wanted]).values_list("key", "hash")
    mask = (1 << NODE_LEVEL_SHIFT) - 1
    return {(key >> NODE_LEVEL_SHIFT, key & mask): bytes(node) for key, node in rows}


def inclusion_proof(*, index: int, size: int) -> list[str]:
    ranges = merkle.inclusion_ranges(index, size)
    nodes = _nodes(ranges)
    return [b64u(merkle.range_root(a, b, nodes)) for a, b in ranges]


def inclusion_proofs(*, indexes: list[int], size: int) -> dict[int, list[str]]:
    ranges = {i: merkle.inclusion_ranges(i, size) for i in indexes}
    nodes = _nodes([r for rs in ranges.values() for r in rs])
    return {i: [b64u(merkle.range_root(a, b, nodes)) for a, b in rs] for i, rs in ranges.items()}


def consistency(*, first: int, second: int) -> list[str]:
    if not 0 <= first <= second:
        raise RelaisError(ErrorCode.BAD_REQUEST, "Need 0 <= first <= second.")
    if second > current_size():
        raise RelaisError(ErrorCode.NOT_FOUND, "The log is not that large yet.")
    ranges = merkle.consistency_ranges(first, second)
    nodes = _nodes(ranges)
    return [b64u(merkle.range_root(a, b, nodes)) for a, b in ranges]


# Heads ----------------------------------------------------------------------------


def _row_head(row: SignedTreeHead) -> TreeHead:
    return TreeHead(
        size=row.size,
        root=bytes(row.root),
        timestamp=row.timestamp_ms,
        signature=bytes(row.signature),
    )


def _served(row: SignedTreeHead) -> ServedHead:
    cosignatures: list[JsonObject] = [
        {"witness": witness, "sig": b64u(bytes(signature))}
        for witness, signature in row.cosignatures.order_by("witness").values_list(
            "witness", "signature"
        )
    ]
    return ServedHead(head=_row_head(row), cosignatures=cosignatures)


def _empty_head() -> ServedHead:
    return ServedHead(
        head=sign_tree_head(log_key=log_signing_key(), size=0, root=merkle.EMPTY_ROOT, timestamp=0),
        cosignatures=[],
    )


def refresh_head() -> SignedTreeHead | None:
    """The newest signed head; a fresh one for the same size first if the newest is
    older than ``KEYLOG_HEAD_INTERVAL``. None while the log is empty."""
    newest = SignedTreeHead.objects.order_by("-id").first()
    if newest is None:
        return None
    interval_ms = int(settings.KEYLOG_HEAD_INTERVAL) * 1000
    if CLOCK.now_ms() - newest.timestamp_ms < interval_ms:
        return newest
    with transaction.atomic():
        head = locked_head()  # one signer at a time
        newest = SignedTreeHead.objects.order_by("-id").first()
        assert newest is not None  # heads are never deleted
        if CLOCK.now_ms() - newest.timestamp_ms >= interval_ms and newest.size == head.size:
            _sign_head(newest.size, bytes(newest.root))
    return SignedTreeHead.objects.order_by("-id").first()


def configured_witnesses() -> dict[str, bytes]:
    """The witnesses the log accepts cosignatures from, by witness id."""
    keys = [unb64u(key, length=32, field="witness key") for key in settings.KEYLOG_WITNESSES]
    return {witness_id(key): key for key in keys}


def latest_head() -> ServedHead:
    """The newest signed head (what witnesses cosign), with its cosignatures."""
    row = refresh_head()
    return _empty_head() if row is None else _served(row)


def served_head() -> ServedHead:
    """The head clients are given: the newest every configured witness cosigned (the
    newest head when no witness is configured, or none has cosigned yet)."""
    newest = refresh_head()
    if newest is None:
        return _empty_head()
    required = len(configured_witnesses())
    if required:
        row = (
            SignedTreeHead.objects.filter(cosignatures__witness__in=configured_witnesses())
            .annotate(count=Count("cosignatures", distinct=True))
            .filter(count__gte=required)
            .order_by("-id")
            .first()
        )
        if row is not None:
            return _served(row)
    return _served(newest)


def head_of_size(size: int) -> ServedHead:
    """The newest head the log signed at ``size`` (the best cosigned if several)."""
    if size == 0:
        return _empty_head()
    row = SignedTreeHead.objects.filter(size=size).order_by("-id").first()
    if row is None:
        raise RelaisError(ErrorCode.NOT_FOUND, "The log never had this size.")
    return _served(row)


def do_add_cosignature(*, size: int, timestamp: int, witness: str, signature: str) -> None:
    """Store a configured witness's cosignature of the head (size, timestamp) after
    checking it. Unknown witness or head, or a bad signature: refused."""
    key = configured_witnesses().get(witness)
    if key is None:
        raise RelaisError(ErrorCode.BAD_REQUEST, "This witness is not configured.")
    row = SignedTreeHead.objects.filter(size=size, timestamp_ms=timestamp).order_by("-id").first()
    if row is None:
        raise RelaisError(ErrorCode.NOT_FOUND, "The log signed no such head.")
    try:
        verify_cosignature(
            {"witness": witness, "sig": signature},
            log_public=log_public(),
            witness_public=key,
            head=_row_head(row),
        )
    except CryptoError:
        raise RelaisError(ErrorCode.BAD_REQUEST, "The cosignature does not verify.") from None
    Cosignature.objects.get_or_create(
        head=row,
        witness=witness,
        defaults={"signature": unb64u(signature, length=64), "received_at_ms": CLOCK.now_ms()},
    )
