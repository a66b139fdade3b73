"""Writes tests/vectors/attachments.json: the attachment format's test vectors.

    python -m tests.attachments.make_vectors

Everything is derived from fixed inputs, so the file is reproducible byte for byte;
tests/attachments/test_vectors.py checks that it is, and that the implementation both
produces and accepts every vector. Another implementation (the browser client) must
reproduce the same bytes from the same inputs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from client.attachments.descriptor import (
    DESCRIPTOR_BYTES,
    MAX_THUMBNAIL_BYTES,
    VERSION,
    build_descriptor,
    thumbnail_of,
)
from client.attachments.padding import MIN_PADDED_BYTES, padded_size
from client.attachments.stream import (
    CHUNK_BYTES,
    CIPHER_CHUNK_BYTES,
    HEADER_BYTES,
    KEY_BYTES,
    PAYLOAD_INFO,
    SCHEME,
    encrypt_bytes,
)

OUTPUT = Path(__file__).resolve().parents[1] / "vectors" / "attachments.json"
SIZES = [0, 1, 47, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1, 2 * CHUNK_BYTES, 150_000]
INLINE_LIMIT = 256  # ciphertexts up to this size are given whole; longer ones by parts
# File sizes and the plaintext sizes they are padded to: the floor, each side of powers
# of two and of Padmé's rounding steps, a typical photo, the bench's 20 MB file, a file
# just under 100 MiB, and one past 32 bits (JavaScript's bitwise operators are 32-bit:
# the rule must be computed with arithmetic).
PADDING_SIZES = [
    0, 1, 2, 511, 512, 513, 544, 545, 1000, 1023, 1024, 1025, 4095, 4097,
    CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1, 100_000, 366_516, 1_000_000,
    20_000_000, 100 * 1024 * 1024 - 1, 2**32 + 1,
]  # fmt: skip
# Files given whole as padded blobs (number, size): under the floor, and past it.
PADDED_FILES = [(20, 1), (21, 1000), (22, 70_000)]
# A 16 x 12 JPEG (red corner on blue) for the photo descriptor's thumbnail: fixed bytes,
# so the vector does not depend on the JPEG encoder's version.
THUMBNAIL_JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300100b0c0e0c0a100e0d0e1211101318281a"
    "181616183123251d283a333d3c3933383740485c4e404457453738506d51575f626768673e4d71797064"
    "785c656763ffdb0043011112121815182f1a1a2f63423842636363636363636363636363636363636363"
    "6363636363636363636363636363636363636363636363636363636363636363ffc0001108000c001003"
    "012200021101031101ffc4001f0000010501010101010100000000000000000102030405060708090a0b"
    "ffc400b5100002010303020403050504040000017d010203000411051221314106135161072271143281"
    "91a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a434445464748"
    "494a535455565758595a636465666768696a737475767778797a838485868788898a9293949596979899"
    "9aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5"
    "e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffc4001f0100030101010101010101010000000000000102030405"
    "060708090a0bffc400b51100020102040403040705040400010277000102031104052131061241510761"
    "711322328108144291a1b1c109233352f0156272d10a162434e125f11718191a262728292a3536373839"
    "3a434445464748494a535455565758595a636465666768696a737475767778797a82838485868788898a"
    "92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7"
    "d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9faffda000c03010002110311003f00e4a69da6c6e006"
    "3d2a2a28afb8a54a14a2a105648c2a54954939cddd9fffd9"
)


def plaintext_of(size: int) -> bytes:
    """The vector plaintexts: byte i is i mod 251."""
    return bytes(index % 251 for index in range(size))


def key_of(number: int) -> bytes:
    return hashlib.sha256(f"relais attachment vector key {number}".encode()).digest()


def salt_of(number: int) -> bytes:
    return hashlib.sha256(f"relais attachment vector salt {number}".encode()).digest()[:16]


def _stream_vector(number: int, size: int) -> dict[str, Any]:
    key, salt = key_of(number), salt_of(number)
    blob = encrypt_bytes(plaintext_of(size), file_key=key, salt=salt)
    payload_key = HKDF(
        algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=PAYLOAD_INFO
    ).derive(key)
    vector: dict[str, Any] = {
        "plaintext_size": size,
        "file_key": key.hex(),
        "salt": salt.hex(),
        "payload_key": payload_key.hex(),
        "header": blob[:HEADER_BYTES].hex(),
        "chunks": max(1, -(-size // CHUNK_BYTES)),
        "ciphertext_size": len(blob),
        "ciphertext_sha256": hashlib.sha256(blob).hexdigest(),
    }
    if len(blob) <= INLINE_LIMIT:
        vector["ciphertext"] = blob.hex()
    else:
        vector["ciphertext_first_64"] = blob[:64].hex()
        vector["ciphertext_last_64"] = blob[-64:].hex()
    return vector


def _tampered() -> list[dict[str, Any]]:
    """Changes to the 2-chunk vector (size 65,537, number 5) that must all be refused."""
    last = HEADER_BYTES + CIPHER_CHUNK_BYTES
    return [
        {"name": "flip a bit in the header", "vector": 5, "flip_bit_at_byte": 10},
        {"name": "flip a bit in the first chunk", "vector": 5, "flip_bit_at_byte": 100},
        {"name": "flip a bit in the last tag", "vector": 5, "flip_bit_at_byte": last + 16},
        {"name": "drop the last chunk", "vector": 5, "truncate_to": last},
        {"name": "cut inside the last chunk", "vector": 5, "truncate_to": last + 10},
        {"name": "append a byte", "vector": 5, "append_hex": "00"},
        {
            "name": "a full chunk not marked last, then an empty last chunk",
            "vector": 4,
            "append_empty_final_chunk": True,
        },
    ]


def _padding() -> dict[str, Any]:
    return {
        "min_padded_size": MIN_PADDED_BYTES,
        "sizes": [{"size": size, "padded_size": padded_size(size)} for size in PADDING_SIZES],
    }


def _padded_blob(number: int, size: int) -> dict[str, Any]:
    """A file of ``size`` bytes (byte i = i mod 251) padded and encrypted."""
    key, salt = key_of(number), salt_of(number)
    padded = plaintext_of(size) + bytes(padded_size(size) - size)
    blob = encrypt_bytes(padded, file_key=key, salt=salt)
    vector: dict[str, Any] = {
        "size": size,
        "padded_size": len(padded),
        "file_key": key.hex(),
        "salt": salt.hex(),
        "ciphertext_size": len(blob),
        "ciphertext_sha256": hashlib.sha256(blob).hexdigest(),
    }
    if len(blob) <= 4 * INLINE_LIMIT:
        vector["ciphertext"] = blob.hex()
    else:
        vector["ciphertext_first_64"] = blob[:64].hex()
        vector["ciphertext_last_64"] = blob[-64:].hex()
    return vector


def _bad_padding() -> list[dict[str, Any]]:
    """Blobs that decrypt but must be refused (size_mismatch): the plaintext is the file
    of ``plaintext_size`` bytes (byte i = i mod 251) followed by ``zeros`` zero bytes and
    then ``extra_hex``, encrypted with vector ``number``'s key and salt, while the
    descriptor says ``size``."""
    return [
        {
            "name": "1,000 bytes announced as 995 (both pad to 1,024): padding not zero",
            "number": 21,
            "size": 995,
            "plaintext_size": 1000,
            "zeros": 24,
            "extra_hex": "",
        },
        {
            "name": "a non-zero last padding byte",
            "number": 21,
            "size": 1000,
            "plaintext_size": 1000,
            "zeros": 23,
            "extra_hex": "01",
        },
    ]


def _descriptors() -> dict[str, Any]:
    photo = build_descriptor(
        blob="0123456789abcdef0123456789abcdef",
        key=bytes(range(32)),
        sha256="e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        size=366_516,
        mime="image/jpeg",
        name="plaie-jambe-gauche.jpg",
        width=2048,
        height=1536,
        thumbnail=thumbnail_of(THUMBNAIL_JPEG, mime="image/jpeg", width=16, height=12),
    )
    document = build_descriptor(
        blob="00000000000000000000000000000001",
        key=bytes(range(32)),
        sha256="0" * 64,
        size=1000,
        mime="application/pdf",
        name="ordonnance.pdf",
    )
    return {
        name: {"value": descriptor.to_dict(), "canonical_json": descriptor.to_json().decode()}
        for name, descriptor in (("photo", photo), ("document", document))
    }


def _bad_descriptors() -> list[dict[str, Any]]:
    """Changes to the document descriptor that a receiver must refuse (bad_descriptor)."""
    return [
        {"name": "version 1", "set": {"v": 1}},
        {"name": "ciphertext_size of the unpadded file", "set": {"ciphertext_size": 1037}},
        {"name": "size of another padding bucket", "set": {"size": 1025}},
        {"name": "one pad character fewer", "shorten_pad_by": 1},
        {"name": "a pad that is not zeros", "set_pad_char": "1"},
        {
            "name": "a thumbnail declaring another size than its image",
            "base": "photo",
            "set_thumbnail": {"width": 12, "height": 16},
        },
    ]


def build() -> dict[str, Any]:
    return {
        "description": (
            "Relais attachments (docs/protocol.md, Attachments): blob format version 1, "
            f"descriptor version {VERSION}. Plaintext byte i is i mod 251. The HKDF is "
            "HKDF-SHA256(ikm=file_key, salt=salt, info=payload_info); chunk i uses nonce = "
            "i as 11 bytes big-endian || last flag (0x01 on the last chunk, else 0x00), "
            "associated data = header. A file is padded with zero bytes to padded_size "
            "before encryption (padding); every descriptor's canonical JSON is "
            f"{DESCRIPTOR_BYTES} bytes; a thumbnail is at most {MAX_THUMBNAIL_BYTES} bytes."
        ),
        "scheme": SCHEME,
        "chunk_size": CHUNK_BYTES,
        "payload_info": PAYLOAD_INFO.decode(),
        "streams": [_stream_vector(number, size) for number, size in enumerate(SIZES)],
        "tampered": _tampered(),
        "padding": _padding(),
        "padded_blobs": [_padded_blob(number, size) for number, size in PADDED_FILES],
        "bad_padding": _bad_padding(),
        "descriptor_bytes": DESCRIPTOR_BYTES,
        "descriptors": _descriptors(),
        "bad_descriptors": _bad_descriptors(),
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUTPUT.name}")
