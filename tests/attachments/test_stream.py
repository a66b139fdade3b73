"""The streaming AEAD: round trips for every size, and every alteration refused."""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from client.attachments.errors import AttachmentError
from client.attachments.stream import (
    CHUNK_BYTES,
    CIPHER_CHUNK_BYTES,
    HEADER_BYTES,
    StreamDecryptor,
    StreamEncryptor,
    ciphertext_size,
    decrypt_bytes,
    encrypt_bytes,
    encrypt_file,
    new_file_key,
    plaintext_size,
)

KEY = bytes(range(32))
# Sizes around every boundary of the format: empty, one chunk, exact multiples, one over.
EDGE_SIZES = [
    0,
    1,
    CHUNK_BYTES - 1,
    CHUNK_BYTES,
    CHUNK_BYTES + 1,
    2 * CHUNK_BYTES,
    3 * CHUNK_BYTES + 7,
]
sizes = st.one_of(st.sampled_from(EDGE_SIZES), st.integers(min_value=0, max_value=3 * CHUNK_BYTES))


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=sizes, cuts=st.lists(st.integers(min_value=0), max_size=6), seed=st.binary(min_size=1))
def test_any_plaintext_fed_in_any_pieces_comes_back(size, cuts, seed):
    plaintext = (seed * (size // len(seed) + 1))[:size]
    encryptor = StreamEncryptor(file_key=KEY)
    blob = b"".join(encryptor.update(piece) for piece in split(plaintext, cuts))
    blob += encryptor.finalize()
    assert len(blob) == ciphertext_size(size)
    assert plaintext_size(len(blob)) == size

    decryptor = StreamDecryptor(file_key=KEY)
    out = b"".join(decryptor.update(piece) for piece in split(blob, cuts)) + decryptor.finalize()
    assert out == plaintext


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_edge_sizes_round_trip_through_files(size):
    plaintext = bytes(index % 253 for index in range(size))
    target = io.BytesIO()
    key = new_file_key()
    result = encrypt_file(io.BytesIO(plaintext), target, file_key=key, read_size=10_000)
    assert (result.plaintext_size, result.ciphertext_size) == (size, len(target.getvalue()))
    assert decrypt_bytes(target.getvalue(), file_key=key) == plaintext


def test_the_same_plaintext_never_gives_the_same_blob():
    assert encrypt_bytes(b"photo", file_key=KEY) != encrypt_bytes(b"photo", file_key=KEY)


@settings(max_examples=150, deadline=None)
@given(
    size=st.sampled_from([0, 5, CHUNK_BYTES, CHUNK_BYTES + 3]),
    position=st.integers(min_value=0),
    bit=st.integers(min_value=0, max_value=7),
)
def test_any_flipped_bit_is_refused(size, position, bit):
    blob = bytearray(encrypt_bytes(bytes(size), file_key=KEY))
    blob[position % len(blob)] ^= 1 << bit
    with pytest.raises(AttachmentError) as refused:
        decrypt_bytes(bytes(blob), file_key=KEY)
    assert refused.value.code == "decrypt_failed"


@settings(max_examples=40, deadline=None)
@given(size=st.integers(min_value=0, max_value=3 * CHUNK_BYTES), cut=st.integers(min_value=1))
def test_any_truncation_is_refused(size, cut):
    blob = encrypt_bytes(bytes(size), file_key=KEY)
    shorter = blob[: len(blob) - 1 - cut % len(blob)]
    with pytest.raises(AttachmentError):
        decrypt_bytes(shorter, file_key=KEY)


def chunks_of(blob: bytes) -> tuple[bytes, list[bytes]]:
    body = blob[HEADER_BYTES:]
    return blob[:HEADER_BYTES], [
        body[i : i + CIPHER_CHUNK_BYTES] for i in range(0, len(body), CIPHER_CHUNK_BYTES)
    ]


def test_reordered_dropped_duplicated_and_foreign_chunks_are_refused():
    blob = encrypt_bytes(bytes(range(256)) * 1000, file_key=KEY)  # 4 chunks
    header, chunks = chunks_of(blob)
    assert len(chunks) == 4
    other_header, other_chunks = chunks_of(encrypt_bytes(bytes(256_000), file_key=KEY))
    altered = {
        "swap two chunks": [chunks[1], chunks[0], chunks[2], chunks[3]],
        "drop a middle chunk": [chunks[0], chunks[2], chunks[3]],
        "drop the last chunk": chunks[:3],
        "duplicate a chunk": [chunks[0], chunks[0], chunks[1], chunks[2], chunks[3]],
        "chunk of another file": [chunks[0], other_chunks[1], chunks[2], chunks[3]],
        "append a chunk": [*chunks, chunks[3]],
    }
    for name, pieces in altered.items():
        with pytest.raises(AttachmentError) as refused:
            decrypt_bytes(header + b"".join(pieces), file_key=KEY)
        assert refused.value.code == "decrypt_failed", name
    with pytest.raises(AttachmentError):
        decrypt_bytes(other_header + b"".join(chunks), file_key=KEY)


def test_wrong_key_and_foreign_format_are_refused():
    blob = encrypt_bytes(b"wound photo", file_key=KEY)
    with pytest.raises(AttachmentError):
        decrypt_bytes(blob, file_key=new_file_key())
    with pytest.raises(AttachmentError):
        decrypt_bytes(b"\xff\xd8\xff\xe0" + blob[4:], file_key=KEY)
    with pytest.raises(AttachmentError):
        decrypt_bytes(blob[:10], file_key=KEY)


def test_a_failed_decryptor_cannot_be_used_again():
    decryptor = StreamDecryptor(file_key=KEY)
    with pytest.raises(AttachmentError):
        decryptor.update(b"RLAT\x02" + bytes(40))
    with pytest.raises(ValueError, match="finished"):
        decryptor.update(b"")


def test_sizes_no_blob_can_have_are_recognised():
    for impossible in [0, HEADER_BYTES + 15, HEADER_BYTES + CIPHER_CHUNK_BYTES + 16]:
        with pytest.raises(ValueError, match="blob"):
            plaintext_size(impossible)
