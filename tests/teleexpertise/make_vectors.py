"""Write tests/vectors/teleexpertise.json: the billing pseudonym and a sealed ledger
entry, from fixed inputs, for a second implementation (the browser client) to reproduce
byte for byte (docs/protocol.md §12.7).

Run ``python -m tests.teleexpertise.make_vectors`` from the repository root.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Any

from client.teleexpertise.billing import (
    LEDGER_LABEL,
    LEDGER_PURPOSE,
    PSEUDONYM_LABEL,
    PSEUDONYM_PURPOSE,
    LedgerEntry,
    billing_traits,
    pseudonym,
    seal_entry,
)
from client.teleexpertise.tariffs import ActCode, TariffTable, Zone
from documents.ins import PatientIdentity
from e2ee.encoding import b64u, canonical_json, signing_input
from tests.teleexpertise.samples import patient, unqualified

OUTPUT = Path(__file__).resolve().parents[1] / "vectors" / "teleexpertise.json"


def key(purpose: str) -> bytes:
    """32 bytes: SHA-256("relais test vector account/" || purpose)."""
    return hashlib.sha256(b"relais test vector account/" + purpose.encode()).digest()


def _pseudonym_case(identity: PatientIdentity, year: int) -> dict[str, Any]:
    traits = billing_traits(identity)
    return {
        "patient": identity.to_dict(),
        "year": year,
        "traits": traits,
        "hmac_input": b64u(signing_input(PSEUDONYM_LABEL, {"patient": traits, "year": year})),
        "pseudonym": pseudonym(key, year=year, patient=identity),
    }


def vectors() -> dict[str, Any]:
    by_hand = unqualified(birth_family_name="Pat-Trois", birth_given_names=("Dominique",))
    entry = LedgerEntry.for_act(
        tariff=TariffTable.load().lookup(ActCode.TE2, Zone.DROM, date(2026, 3, 16)),
        day=date(2026, 3, 16),
        billable=True,
        patient=patient(),
        room=41,
        requerant="810003456786",
        requis="810001987659",
    )
    nonce = bytes(range(12))
    sealed = seal_entry(key, national_id="810001987659", entry=entry, nonce=nonce)
    aad = signing_input(LEDGER_LABEL, {"code": "TE2", "national_id": "810001987659", "room": 41})
    return {
        "description": "Téléexpertise billing: the keyed patient pseudonym and a sealed ledger "
        "entry (docs/protocol.md §12.7). Keys are SHA-256('relais test vector account/' || "
        "purpose).",
        "pseudonym": {
            "key": b64u(key(PSEUDONYM_PURPOSE)),
            "label": PSEUDONYM_LABEL,
            "cases": [
                _pseudonym_case(patient(), 2026),
                _pseudonym_case(by_hand, 2026),  # same traits once normalised: same pseudonym
                _pseudonym_case(patient(), 2027),
            ],
        },
        "ledger_entry": {
            "key": b64u(key(LEDGER_PURPOSE)),
            "national_id": "810001987659",
            "room": 41,
            "code": "TE2",
            "nonce": b64u(nonce),
            "plaintext": canonical_json(entry.to_dict()).decode("utf-8"),
            "aad": b64u(aad),
            "sealed": b64u(sealed),
        },
    }


def main() -> None:
    OUTPUT.write_text(json.dumps(vectors(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
