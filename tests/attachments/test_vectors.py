"""The published test vectors are reproducible and the implementation matches them."""

from __future__ import annotations

import hashlib
import json

import pytest

from client.attachments.descriptor import DESCRIPTOR_BYTES, descriptor_from_json
from client.attachments.errors import AttachmentError
from client.attachments.padding import padded_size
from client.attachments.stream import StreamEncryptor, decrypt_bytes, encrypt_bytes
from tests.attachments.make_vectors import OUTPUT, key_of, plaintext_of, render, salt_of
from tests.attachments.test_padding import unpad

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
    assert len(case["canonical_json"].encode()) == VECTORS["descriptor_bytes"] == DESCRIPTOR_BYTES
    assert set(case["value"]["pad"]) == {"0"}


def test_the_padding_table_follows_the_rule():
    table = VECTORS["padding"]["sizes"]
    assert [(row["size"], padded_size(row["size"])) for row in table] == [
        (row["size"], row["padded_size"]) for row in table
    ]
    # The published table spells out the rule's shape: a floor, then Padmé.
    padded = {row["size"]: row["padded_size"] for row in table}
    assert padded[0] == padded[1] == padded[511] == padded[512] == 512
    assert (padded[513], padded[1000], padded[1025], padded[65537]) == (544, 1024, 1088, 67584)


@pytest.mark.parametrize("vector", VECTORS["padded_blobs"], ids=lambda v: str(v["size"]))
def test_each_padded_blob_is_the_file_then_zeros_encrypted(vector):
    key, salt = bytes.fromhex(vector["file_key"]), bytes.fromhex(vector["salt"])
    file = plaintext_of(vector["size"])
    padded = file + bytes(vector["padded_size"] - vector["size"])
    assert len(padded) == padded_size(vector["size"])
    blob = encrypt_bytes(padded, file_key=key, salt=salt)
    assert (len(blob), hashlib.sha256(blob).hexdigest()) == (
        vector["ciphertext_size"],
        vector["ciphertext_sha256"],
    )
    if "ciphertext" in vector:
        assert blob.hex() == vector["ciphertext"]
    else:
        assert blob[:64].hex() == vector["ciphertext_first_64"]
        assert blob[-64:].hex() == vector["ciphertext_last_64"]
    assert unpad(vector["size"], decrypt_bytes(blob, file_key=key)) == file


@pytest.mark.parametrize("case", VECTORS["bad_padding"], ids=lambda c: c["name"])
def test_each_bad_padding_vector_is_refused(case):
    number = case["number"]
    plaintext = plaintext_of(case["plaintext_size"]) + bytes(case["zeros"])
    plaintext += bytes.fromhex(case["extra_hex"])
    blob = encrypt_bytes(plaintext, file_key=key_of(number), salt=salt_of(number))
    plaintext = decrypt_bytes(blob, file_key=key_of(number))
    with pytest.raises(AttachmentError) as refused:
        unpad(case["size"], plaintext)
    assert refused.value.code == "size_mismatch"
    assert "zero" in refused.value.message


@pytest.mark.parametrize("case", VECTORS["bad_descriptors"], ids=lambda c: c["name"])
def test_each_bad_descriptor_vector_is_refused(case):
    value = json.loads(VECTORS["descriptors"][case.get("base", "document")]["canonical_json"])
    value.update(case.get("set", {}))
    if "shorten_pad_by" in case:
        value["pad"] = value["pad"][: -case["shorten_pad_by"]]
    if "set_pad_char" in case:
        value["pad"] = case["set_pad_char"] * len(value["pad"])
    if "set_thumbnail" in case:
        value["thumbnail"].update(case["set_thumbnail"])
    with pytest.raises(AttachmentError) as refused:
        descriptor_from_json(json.dumps(value, sort_keys=True, separators=(",", ":")))
    assert refused.value.code == "bad_descriptor"
