"""Safety numbers: compare keys in person (docs/protocol.md, "Safety numbers").

Each party's fingerprint is ``SHA-512("relais/v1/safety-number" || 0x00 ||
canonical({"national_id", "sign_keys": sorted base64url Ed25519 keys}))`` over the
signing keys of all their certified devices. The first 30 bytes give six 5-byte
big-endian numbers, each reduced mod 100000 to five digits: 30 digits per party,
about 99.6 bits. The safety number is the two parties' 30 digits, the lower national id
first, so both phones show the same 60 digits. The QR payload carries both
fingerprints (32 bytes each) so that a scan compares all of them, not only the digits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from e2ee import labels
from e2ee.encoding import b64u, canonical_json, signing_input

QR_PREFIX = "relais-safety:1:"


def fingerprint(national_id: str, sign_keys: list[bytes]) -> bytes:
    value = {"national_id": national_id, "sign_keys": sorted(b64u(key) for key in sign_keys)}
    return hashlib.sha512(signing_input(labels.SAFETY_NUMBER, value)).digest()


def _digits(print_: bytes) -> str:
    groups = [int.from_bytes(print_[i : i + 5], "big") % 100_000 for i in range(0, 30, 5)]
    return " ".join(f"{group:05d}" for group in groups)


@dataclass(frozen=True, slots=True)
class SafetyNumber:
    digits: str  # 12 groups of 5 digits
    qr_payload: str


def safety_number(
    first_id: str, first_keys: list[bytes], second_id: str, second_keys: list[bytes]
) -> SafetyNumber:
    parties = sorted([(first_id, first_keys), (second_id, second_keys)])
    prints = [fingerprint(national_id, keys) for national_id, keys in parties]
    digits = " ".join(_digits(p) for p in prints)
    qr = canonical_json(
        {
            "parties": [
                {"national_id": nid, "fingerprint": b64u(p[:32])}
                for (nid, _), p in zip(parties, prints, strict=True)
            ]
        }
    )
    return SafetyNumber(digits=digits, qr_payload=QR_PREFIX + b64u(qr))
