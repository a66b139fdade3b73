"""Padding before encryption: the Padmé rule with its floor, the zero bytes the sender
appends, and the receiver's checks on them."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.attachments.errors import AttachmentError
from client.attachments.padding import MIN_PADDED_BYTES, Unpadder, ZeroPadded, padded_size, padme

sizes = st.integers(min_value=0, max_value=2**40)


def unpad(size: int, plaintext: bytes) -> bytes:
    """What a receiver keeps of a whole decrypted blob announced as ``size`` bytes."""
    unpadder = Unpadder(size)
    file = unpadder.update(plaintext)
    unpadder.finish()
    return file


def test_padme_is_the_published_algorithm():
    # Algorithm 1 of the PURBs paper, written with floating-point logarithms as there.
    import math

    def reference(length: int) -> int:
        exponent = math.floor(math.log2(length))
        kept = math.floor(math.log2(exponent)) + 1
        mask = (1 << (exponent - kept)) - 1
        return (length + mask) & ~mask

    for length in [*range(2, 5000), 65_535, 65_537, 366_516, 20_000_000, 104_857_599]:
        assert padme(length) == reference(length), length


@settings(max_examples=300, deadline=None)
@given(size=sizes)
def test_padding_only_grows_a_file_and_by_little_past_the_floor(size):
    padded = padded_size(size)
    assert padded >= max(size, MIN_PADDED_BYTES)
    # Less than 2^-S of the size, S = bitlen(E) >= 4 past the floor (E >= 9).
    if size >= MIN_PADDED_BYTES:
        assert padded - size < size / 16
    if size >= 65_536:
        assert padded - size < size / 32
    assert padded_size(padded) == padded  # a padded size is its own bucket


@settings(max_examples=200, deadline=None)
@given(a=sizes, b=sizes)
def test_padding_keeps_the_order_of_sizes(a, b):
    if a <= b:
        assert padded_size(a) <= padded_size(b)


def test_sizes_between_1_and_2_mib_fall_into_32_buckets():
    # E = 20, S = bitlen(20) = 5: steps of 2^15 bytes, 32 of them per power of two (plus
    # 2 MiB itself for sizes just under it). The server learns the order of magnitude
    # and 5 bits more, where it learnt all 20 before.
    buckets = {padded_size(size) for size in range(1_048_576, 2_097_152, 997)}
    assert len(buckets) == 33
    assert {b % 32_768 for b in buckets} == {0}


@pytest.mark.parametrize("size", [0, 1, 511, 512, 1000, 65_536, 70_000])
def test_the_sender_appends_exactly_the_zero_bytes_of_the_rule(size):
    data = bytes([7]) * size
    reader = ZeroPadded(io.BytesIO(data))
    out = b"".join(iter(lambda: reader.read(4096), b""))
    assert out == data + bytes(padded_size(size) - size)
    assert reader.size == size


@pytest.mark.parametrize("pieces", [1, 3, 64])
def test_the_receiver_gets_the_file_back_from_any_pieces(pieces):
    file = bytes(range(251)) * 4  # 1,004 bytes, padded to 1,024
    padded = file + bytes(padded_size(len(file)) - len(file))
    unpadder = Unpadder(len(file))
    step = -(-len(padded) // pieces)
    out = b"".join(unpadder.update(padded[i : i + step]) for i in range(0, len(padded), step))
    unpadder.finish()
    assert out == file


@pytest.mark.parametrize(
    ("name", "plaintext", "declared"),
    [
        ("a non-zero byte in the padding", bytes(1000) + b"\x00" * 23 + b"\x01", 1000),
        ("a file longer than announced", b"\x01" * 1000 + bytes(24), 995),
        ("padding longer than the rule", b"\x01" * 1000 + bytes(25), 1000),
        ("padding shorter than the rule", b"\x01" * 1000 + bytes(23), 1000),
        ("no padding at all", b"\x01" * 1000, 1000),
    ],
)
def test_the_receiver_refuses_a_padding_that_breaks_the_rule(name, plaintext, declared):
    with pytest.raises(AttachmentError) as refused:
        unpad(declared, plaintext)
    assert refused.value.code == "size_mismatch", name
    assert refused.value.message_fr, name
