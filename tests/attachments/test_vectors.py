"""The published test vectors are reproducible and the implementation matches them."""

from __future__ import annotations

import hashlib
import json

import pytest

from client.attachments.descriptor import descriptor_from_json
from client.attachments.errors import AttachmentError
from client.attachments.stream import StreamEncryptor, decrypt_bytes, encrypt_bytes
from tests.attachments.make_vectors import OUTPUT, plaintext_of, render

VECTORS = json.loads(OUTPUT.read_text(encoding="utf-8"))


def test_the_vector_file_is_exactly_what_the_generator_writes():
    assert OUTPUT.read_text(encoding="utf-8") == render()


@pytest.mark.parametrize("vector", VECTORS["streams"], ids=lambda v: str(v["plaintext_size"]))
def test_each_stream_vector_decrypts_and_reencrypts(vector):
    key, salt = bytes.fromhex(vector["file_key"]), bytes.fromhex(vector["salt"])
    plaintext = plaintext_of(vector["plaintext_size"])
    blob = encrypt_bytes(plaintext, file_key=key, salt=salt)
    assert hashlib.sha256(blob).hexdigest() == vector["ciphertext_sha256"]
    assert len(blob) == vector["ciphertext_size"]
    assert blob[:21].hex() == vector["header"]
    if "ciphertext" in vector:
        assert blob.hex() == vector["ciphertext"]
    else:
        assert blob[:64].hex() == vector["ciphertext_first_64"]
        assert blob[-64:].hex() == vector["ciphertext_last_64"]
    assert decrypt_bytes(blob, file_key=key) == plaintext


@pytest.mark.parametrize("case", VECTORS["tampered"], ids=lambda c: c["name"])
def test_each_tampered_vector_is_refused(case):
    vector = VECTORS["streams"][case["vector"]]
    key, salt = bytes.fromhex(vector["file_key"]), bytes.fromhex(vector["salt"])
    blob = bytearray(encrypt_bytes(plaintext_of(vector["plaintext_size"]), file_key=key, salt=salt))
    if "flip_bit_at_byte" in case:
        blob[case["flip_bit_at_byte"]] ^= 1
    if "truncate_to" in case:
        del blob[case["truncate_to"] :]
    if "append_hex" in case:
        blob += bytes.fromhex(case["append_hex"])
    if case.get("append_empty_final_chunk"):
        # Re-encrypt so the last full chunk is not final, then add an empty final chunk:
        # the encoding the format forbids (every plaintext has exactly one blob).
        encryptor = StreamEncryptor(file_key=key, salt=salt)
        plain = plaintext_of(vector["plaintext_size"])
        body = encryptor.update(plain + b"\x00")[: len(blob)]
        blob = bytearray(body)
        tail = StreamEncryptor(file_key=key, salt=salt)
        tail._index = vector["chunks"]  # the chunk number after the last full one
        blob += tail.finalize()[21:]
    with pytest.raises(AttachmentError) as refused:
        decrypt_bytes(bytes(blob), file_key=key)
    assert refused.value.code == "decrypt_failed"


@pytest.mark.parametrize("name", ["photo", "document"])
def test_descriptor_vectors_are_canonical(name):
    case = VECTORS["descriptors"][name]
    descriptor = descriptor_from_json(case["canonical_json"])
    assert descriptor.to_json().decode() == case["canonical_json"]
    assert descriptor.to_dict() == case["value"]
    # keys sorted, no spaces, absent optional fields omitted
    assert case["canonical_json"] == json.dumps(
        case["value"], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
