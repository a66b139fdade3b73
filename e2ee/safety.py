"""Safety numbers: compare identity keys in person (docs/protocol.md §10.8).

Each party's fingerprint is ``SHA-512("relais/v2/safety-number" || 0x00 ||
canonical({"national_id", "identity_key"}))`` over their identity key alone — not
their device list, which changes whenever they link a phone — and each device computes
both halves from what it holds itself: its own identity key from its key store, the
contact's from the key-transparency log (checked by the monitor of that contact's own
devices). The first 30 bytes give six 5-byte big-endian numbers, each reduced mod 100000
to five digits: 30 digits per party, about 99.6 bits. The safety number is the two
parties' 30 digits, the lower national id first, so both phones show the same 60 digits.
The QR payload carries both fingerprints (32 bytes each) so that a scan compares all of
them, not only the digits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from e2ee import labels
from e2ee.encoding import b64u, canonical_json, parse_canonical, signing_input, unb64u
from e2ee.errors import CryptoError, CryptoErrorCode

QR_PREFIX = "relais-safety:2:"


def fingerprint(national_id: str, identity_key: bytes) -> bytes:
    value = {"national_id": national_id, "identity_key": b64u(identity_key)}
    return hashlib.sha512(signing_input(labels.SAFETY_NUMBER, value)).digest()


def _digits(print_: bytes) -> str:
    groups = [int.from_bytes(print_[i : i + 5], "big") % 100_000 for i in range(0, 30, 5)]
    return " ".join(f"{group:05d}" for group in groups)


@dataclass(frozen=True, slots=True)
class SafetyNumber:
    digits: str  # 12 groups of 5 digits
    qr_payload: str


def safety_number(
    first_id: str, first_key: bytes, second_id: str, second_key: bytes
) -> SafetyNumber:
    parties = sorted([(first_id, first_key), (second_id, second_key)])
    prints = [fingerprint(national_id, key) for national_id, key in parties]
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


def qr_matches(scanned: str, expected: SafetyNumber) -> bool:
    """Whether a QR code scanned from the other phone shows the same two fingerprints
    as ours. Raises CryptoError for a payload that is not a safety-number QR code."""
    if not scanned.startswith(QR_PREFIX):
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "not a Relais safety-number code")
    parse_canonical(unb64u(scanned.removeprefix(QR_PREFIX), field="qr"))
    return scanned == expected.qr_payload
