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

from client.attachments.descriptor import AttachmentDescriptor, ThumbnailDescriptor
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


def _descriptor() -> dict[str, Any]:
    descriptor = AttachmentDescriptor(
        v=1,
        scheme=SCHEME,
        blob="0123456789abcdef0123456789abcdef",
        key="AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
        sha256="e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ciphertext_size=37,
        size=0,
        mime="image/jpeg",
        name="plaie-jambe-gauche.jpg",
        width=2048,
        height=1536,
        thumbnail=ThumbnailDescriptor(
            blob="fedcba9876543210fedcba9876543210",
            key="Hx4dHBsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA",
            sha256="5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456",
            ciphertext_size=12_000,
            size=11_968,
            mime="image/jpeg",
            width=320,
            height=240,
        ),
    )
    document = AttachmentDescriptor(
        v=1,
        scheme=SCHEME,
        blob="00000000000000000000000000000001",
        key="AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
        sha256="0" * 64,
        ciphertext_size=1061,
        size=1024,
        mime="application/pdf",
        name="ordonnance.pdf",
    )
    return {
        "photo": {"value": descriptor.to_dict(), "canonical_json": descriptor.to_json().decode()},
        "document": {"value": document.to_dict(), "canonical_json": document.to_json().decode()},
    }


def build() -> dict[str, Any]:
    return {
        "description": (
            "Relais attachment format, version 1 (docs/protocol.md, Attachments). "
            "Plaintext byte i is i mod 251. The HKDF is HKDF-SHA256(ikm=file_key, "
            "salt=salt, info=payload_info); chunk i uses nonce = i as 11 bytes big-endian "
            "|| last flag (0x01 on the last chunk, else 0x00), associated data = header."
        ),
        "scheme": SCHEME,
        "chunk_size": CHUNK_BYTES,
        "payload_info": PAYLOAD_INFO.decode(),
        "streams": [_stream_vector(number, size) for number, size in enumerate(SIZES)],
        "tampered": _tampered(),
        "descriptors": _descriptor(),
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUTPUT.name}")
