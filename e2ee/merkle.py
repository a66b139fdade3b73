"""The Merkle tree of the key-transparency log, exactly as RFC 9162 §2.1 defines it.

* leaf hash ``SHA-256(0x00 || leaf)``, interior node ``SHA-256(0x01 || left || right)``,
  the empty tree ``SHA-256("")``;
* a tree of ``n`` leaves splits at ``k``, the largest power of two below ``n``;
* inclusion proofs (``PATH``) and consistency proofs (``PROOF``/``SUBPROOF``) as in
  §2.1.3.1 and §2.1.4.1, verified with the algorithms of §2.1.3.2 and §2.1.4.2.

``CompactTree`` keeps only the right edge of the tree (one hash per set bit of the
size): enough to append leaves and compute the root, which is how a client audits a
range of the log without storing it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from e2ee.errors import CryptoError, CryptoErrorCode

HASH_BYTES = 32


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


EMPTY_ROOT = hashlib.sha256(b"").digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) from the leaf hashes. Bottom-up: pairing left to right and carrying an
    odd last node up unchanged builds the same tree as the recursive definition."""
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


Range = tuple[int, int]  # leaves start <= i < end
Node = tuple[int, int]  # (level, position): the perfect subtree of leaves
# position * 2**level <= i < (position + 1) * 2**level


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The subtrees whose roots make PATH(index, D[size]), in proof order."""
    if not 0 <= index < size:
        raise ValueError("leaf index out of range")
    ranges: list[Range] = []
    _path(0, size, index, ranges)
    return ranges


def _path(start: int, end: int, index: int, ranges: list[Range]) -> None:
    n = end - start
    if n == 1:
        return
    k = _split(n)
    if index < k:
        _path(start, start + k, index, ranges)
        ranges.append((start + k, end))
    else:
        _path(start + k, end, index - k, ranges)
        ranges.append((start, start + k))


def consistency_ranges(old_size: int, new_size: int) -> list[Range]:
    """The subtrees whose roots make PROOF(old_size, D[new_size]), in proof order."""
    if not 0 <= old_size <= new_size:
        raise ValueError("old size out of range")
    if old_size in (0, new_size):
        return []
    ranges: list[Range] = []
    _subproof(0, new_size, old_size, True, ranges)
    return ranges


def _subproof(start: int, end: int, m: int, complete: bool, ranges: list[Range]) -> None:
    n = end - start
    if m == n:
        if not complete:
            ranges.append((start, end))
        return
    k = _split(n)
    if m <= k:
        _subproof(start, start + k, m, complete, ranges)
        ranges.append((start + k, end))
    else:
        _subproof(start + k, end, m - k, False, ranges)
        ranges.append((start, start + k))


def perfect_nodes(start: int, end: int) -> list[Node]:
    """The perfect subtrees that MTH of leaves ``start..end`` combines, left to right.
    Every range a proof of an RFC 9162 tree names starts at a multiple of the largest
    power of two below its size, so these are nodes of the tree a log stores."""
    n = end - start
    if n <= 0:
        raise ValueError("empty range")
    if n & (n - 1) == 0 and start % n == 0:
        level = n.bit_length() - 1
        return [(level, start >> level)]
    k = _split(n)
    return perfect_nodes(start, start + k) + perfect_nodes(start + k, end)


def range_root(start: int, end: int, nodes: dict[Node, bytes]) -> bytes:
    """MTH of leaves ``start..end`` from the stored perfect subtrees ``nodes``."""
    n = end - start
    if n & (n - 1) == 0 and start % n == 0:
        return nodes[(n.bit_length() - 1, start // n)]
    k = _split(n)
    return node_hash(range_root(start, start + k, nodes), range_root(start + k, end, nodes))


def nodes_for(ranges: Sequence[Range]) -> set[Node]:
    """Every stored node a proof made of ``ranges`` reads: O(log n) of them."""
    return {node for start, end in ranges for node in perfect_nodes(start, end)}


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]) — the audit path of leaf ``index`` in the tree of all leaves."""
    return [root(leaf_hashes[a:b]) for a, b in inclusion_ranges(index, len(leaf_hashes))]


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(old_size, D[n]): proves the first ``old_size`` leaves are a prefix."""
    return [root(leaf_hashes[a:b]) for a, b in consistency_ranges(old_size, len(leaf_hashes))]


def verify_inclusion(
    *, leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes
) -> None:
    """RFC 9162 §2.1.3.2. ``leaf`` is the leaf hash. Raises BAD_PROOF."""
    if not 0 <= index < size:
        raise CryptoError(CryptoErrorCode.BAD_PROOF, "leaf index out of range")
    fn, sn, result = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            raise CryptoError(CryptoErrorCode.BAD_PROOF, "inclusion proof too long")
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0 or result != expected_root:
        raise CryptoError(CryptoErrorCode.BAD_PROOF, "inclusion proof does not match the root")


def verify_consistency(
    *, old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2 (an empty old tree is consistent with any tree). Raises BAD_PROOF."""
    if not 0 <= old_size <= new_size:
        raise CryptoError(CryptoErrorCode.BAD_PROOF, "sizes out of order")
    if old_size == 0:
        if proof or old_root != EMPTY_ROOT:
            raise CryptoError(CryptoErrorCode.BAD_PROOF, "bad proof from the empty tree")
        return
    if old_size == new_size:
        if proof or old_root != new_root:
            raise CryptoError(CryptoErrorCode.BAD_PROOF, "same size, different trees")
        return
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is a node of the path
        path.insert(0, old_root)
    if not path:
        raise CryptoError(CryptoErrorCode.BAD_PROOF, "empty consistency proof")
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    first = second = path[0]
    for node in path[1:]:
        if sn == 0:
            raise CryptoError(CryptoErrorCode.BAD_PROOF, "consistency proof too long")
        if fn & 1 or fn == sn:
            first = node_hash(node, first)
            second = node_hash(node, second)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            second = node_hash(second, node)
        fn >>= 1
        sn >>= 1
    if sn != 0 or first != old_root or second != new_root:
        raise CryptoError(CryptoErrorCode.BAD_PROOF, "consistency proof does not match")


class CompactTree:
    """The right edge of a tree: append leaf hashes, read the root (RFC 9162 hashing)."""

    def __init__(self) -> None:
        self.size = 0
        self._edge: list[tuple[int, bytes]] = []  # (height, hash) of perfect subtrees

    def append(self, leaf: bytes) -> list[tuple[Node, bytes]]:
        """Add a leaf hash; return the perfect subtrees it completes (the leaf first)."""
        self.size += 1
        height, node = 0, leaf
        completed = [((0, self.size - 1), leaf)]
        while self._edge and self._edge[-1][0] == height:
            _, left = self._edge.pop()
            node = node_hash(left, node)
            height += 1
            completed.append(((height, (self.size >> height) - 1), node))
        self._edge.append((height, node))
        return completed

    def root(self) -> bytes:
        if not self._edge:
            return EMPTY_ROOT
        result = self._edge[-1][1]
        for _, left in reversed(self._edge[:-1]):
            result = node_hash(left, result)
        return result

    def to_json(self) -> dict[str, object]:
        from e2ee.encoding import b64u

        return {"size": self.size, "edge": [[h, b64u(node)] for h, node in self._edge]}

    @classmethod
    def from_json(cls, value: dict[str, object]) -> CompactTree:
        from e2ee.encoding import unb64u

        tree = cls()
        size = value.get("size")
        edge = value.get("edge")
        if not isinstance(size, int) or not isinstance(edge, list):
            raise CryptoError(CryptoErrorCode.BAD_ENCODING, "compact tree")
        tree.size = size
        tree._edge = [(int(h), unb64u(node, length=HASH_BYTES)) for h, node in edge]
        heights = [h for h, _ in tree._edge]
        if sum(1 << h for h in heights) != size or heights != sorted(heights, reverse=True):
            raise CryptoError(CryptoErrorCode.BAD_ENCODING, "compact tree does not match size")
        return tree
