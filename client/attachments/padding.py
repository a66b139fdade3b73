"""Padding a file before encryption, so that its blob's size says little about it.

The server sees every blob's size. Unpadded, that size is the plaintext's size plus a
constant, and tells a 2-page prescription from a 40-page report, or one photo from
another. Before encryption the plaintext is therefore followed by zero bytes up to
``padded_size(size)``; the descriptor (inside the end-to-end encrypted message) keeps
the real ``size``, and the receiver checks that every padding byte is zero and cuts them
off. docs/protocol.md, "Attachments", gives the rule; docs/attachments.md says why.

The rule is Padmé (Nikitin, Barman, Lueks, Underwood, Hubaux, Ford, "Reducing Metadata
Leakage from Encrypted Files and Communication with PURBs", PETS 2019, Algorithm 1):
a length keeps only its top ``S = bitlen(E)`` significant bits, ``E`` being its binary
exponent, so less than 2^-S of it is added (under 6.25 % past the floor, under 3.125 %
from 64 KiB) and a padded size leaks O(log log n) bits. Below ``MIN_PADDED_BYTES`` Padmé
would round almost nothing, so every smaller file is padded to that floor.
"""

from __future__ import annotations

from typing import Final

from client.attachments.errors import AttachmentError, ClientCode
from client.attachments.stream import Readable

MIN_PADDED_BYTES: Final = 512
ZERO_BLOCK = bytes(64 * 1024)


def padme(length: int) -> int:
    """Padmé's padded length of ``length`` ≥ 2: with ``E = floor(log2(length))`` and
    ``S = floor(log2(E)) + 1``, round up to a multiple of ``2^(E - S)``."""
    if length < 2:
        raise ValueError("Padmé is defined for lengths of at least 2")
    exponent = length.bit_length() - 1  # E = floor(log2(L))
    kept_bits = exponent.bit_length()  # S = floor(log2(E)) + 1
    step = 1 << (exponent - kept_bits)  # 2^z, z = E - S low bits set to zero
    return -(-length // step) * step


def padded_size(size: int) -> int:
    """The plaintext length a file of ``size`` bytes is padded to before encryption."""
    if size < 0:
        raise ValueError("size must be >= 0")
    return padme(max(size, MIN_PADDED_BYTES))


class ZeroPadded:
    """A reader giving ``source``'s bytes, then the zero bytes that bring the total to
    ``padded_size(bytes read)``. ``size`` is the number of bytes ``source`` gave."""

    def __init__(self, source: Readable) -> None:
        self._source = source
        self._padding_left: int | None = None  # known once the source is exhausted
        self.size = 0

    def read(self, limit: int) -> bytes:
        if self._padding_left is None:
            data = self._source.read(limit)
            if data:
                self.size += len(data)
                return data
            self._padding_left = padded_size(self.size) - self.size
        take = min(limit, self._padding_left, len(ZERO_BLOCK))
        self._padding_left -= take
        return ZERO_BLOCK[:take]


class Unpadder:
    """Receives a decrypted blob's plaintext in pieces; gives back only the file's
    ``size`` bytes, and refuses a padding that is not all zero bytes or not exactly as
    long as the rule says (AttachmentError size_mismatch)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.expected_total = padded_size(size)
        self.total = 0

    def update(self, plain: bytes) -> bytes:
        start = self.total
        self.total += len(plain)
        if self.total > self.expected_total:
            raise self._refusal()
        if self.total <= self.size:
            return plain
        keep = max(0, self.size - start)
        if plain.count(0, keep) != len(plain) - keep:
            raise AttachmentError(
                ClientCode.SIZE_MISMATCH,
                f"The padding after the file's {self.size} bytes is not all zero bytes.",
                f"Le bourrage après les {self.size} octets du fichier n'est pas nul.",
            )
        return plain[:keep]

    def finish(self) -> None:
        """Call at the end of the plaintext: it must be exactly ``padded_size(size)``."""
        if self.total != self.expected_total:
            raise self._refusal()

    def _refusal(self) -> AttachmentError:
        return AttachmentError(
            ClientCode.SIZE_MISMATCH,
            f"A file of {self.size} bytes is padded to {self.expected_total} bytes, "
            f"the blob holds {self.total}.",
            f"Un fichier de {self.size} octets est complété à {self.expected_total} octets, "
            f"la pièce jointe en contient {self.total}.",
        )
