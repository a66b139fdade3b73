"""Billing on the practitioner's devices: the patient's keyed pseudonym, the encrypted
ledger entries, and the CSV export (docs/teleexpertise.md, "Billing").

Two 32-byte keys come from a secret every device of the same practitioner holds and
the server never sees (``account_key(purpose)``, injected: this module never fetches
one):

* ``account_key("billing-pseudonym")`` keys the pseudonym. ``pseudonym(key, year,
  patient)`` = HMAC-SHA256(key, ``"relais/v1/billing-pseudonym" || 0x00 ||
  canonical({"patient": TRAITS, "year": year})``), base64url. TRAITS are the four
  traits that identify a patient in every identity status (birth family name, first
  birth given name, birth date, sex), upper-cased without accents, so an identity
  typed by hand and the same identity qualified later give the same pseudonym. The
  year is inside: the server can count one patient's acts within a year, and cannot
  link them across years or across practitioners.
* ``account_key("billing-ledger")`` encrypts each ledger entry: AES-256-GCM, a random
  96-bit nonce, associated data ``"relais/v1/billing-ledger" || 0x00 ||
  canonical({"code", "national_id", "room"})``; stored bytes = ``0x01 || nonce ||
  ciphertext``. The server keeps them so every device of the practitioner can list and
  export the acts, and can read none.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import os
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from client.teleexpertise.errors import TeleexpertiseError
from client.teleexpertise.tariffs import ActCode, Tariff, Zone
from documents.ins import PatientIdentity
from e2ee.encoding import b64u, canonical_json, parse_canonical, signing_input

AccountKey = Callable[[str], bytes]  # purpose → 32 bytes, the same on every device
PSEUDONYM_PURPOSE = "billing-pseudonym"
LEDGER_PURPOSE = "billing-ledger"
PSEUDONYM_LABEL = "relais/v1/billing-pseudonym"
LEDGER_LABEL = "relais/v1/billing-ledger"
ENTRY_VERSION = 1
NONCE_BYTES = 12
NOT_BILLABLE_OVER_LIMIT = "yearly_limit_reached"


def _key(account_key: AccountKey, purpose: str) -> bytes:
    key = account_key(purpose)
    if not isinstance(key, bytes) or len(key) != 32:
        raise TeleexpertiseError(
            "no_account_key",
            "This device has no billing key of the practitioner (32 bytes expected).",
            "Cet appareil n'a pas la clé de facturation du professionnel (32 octets attendus).",
        )
    return key


def normalised_trait(text: str) -> str:
    """Upper case, no accents, hyphens and apostrophes as spaces, single spaces."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    spaced = plain.upper().replace("-", " ").replace("'", " ").replace("\u2019", " ")
    return " ".join(spaced.split())


def billing_traits(patient: PatientIdentity) -> dict[str, str]:
    """The four traits the pseudonym is made of."""
    return {
        "birth_family_name": normalised_trait(patient.birth_family_name),
        "first_birth_given_name": normalised_trait(patient.first_birth_given_name),
        "birth_date": patient.birth_date.isoformat(),
        "sex": patient.sex.value,
    }


def pseudonym(account_key: AccountKey, *, year: int, patient: PatientIdentity) -> str:
    """The patient's pseudonym for this practitioner and this year (43 characters)."""
    message = signing_input(PSEUDONYM_LABEL, {"patient": billing_traits(patient), "year": year})
    digest = hmac.new(_key(account_key, PSEUDONYM_PURPOSE), message, hashlib.sha256).digest()
    return b64u(digest)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One act as the practitioner's devices remember it (decrypted)."""

    code: ActCode
    day: date
    amount_cents: int
    zone: Zone
    tariff_from: date
    billable: bool
    limit: int
    patient: PatientIdentity
    room: int
    requerant: str
    requis: str
    not_billable_reason: str = ""

    @classmethod
    def for_act(
        cls,
        *,
        tariff: Tariff,
        day: date,
        billable: bool,
        patient: PatientIdentity,
        room: int,
        requerant: str,
        requis: str,
    ) -> LedgerEntry:
        return cls(
            code=tariff.code,
            day=day,
            amount_cents=tariff.amount_cents if billable else 0,
            zone=tariff.zone,
            tariff_from=tariff.valid_from,
            billable=billable,
            limit=tariff.yearly_limit_per_patient,
            patient=patient,
            room=room,
            requerant=requerant,
            requis=requis,
            not_billable_reason="" if billable else NOT_BILLABLE_OVER_LIMIT,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": ENTRY_VERSION,
            "code": self.code.value,
            "day": self.day.isoformat(),
            "amount_cents": self.amount_cents,
            "zone": self.zone.value,
            "tariff_from": self.tariff_from.isoformat(),
            "billable": self.billable,
            "limit": self.limit,
            "patient": self.patient.to_dict(),
            "room": self.room,
            "requerant": self.requerant,
            "requis": self.requis,
            "not_billable_reason": self.not_billable_reason,
        }

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> LedgerEntry:
        if value.get("v") != ENTRY_VERSION:
            raise ValueError("unknown ledger entry version")
        return cls(
            code=ActCode(value["code"]),
            day=date.fromisoformat(value["day"]),
            amount_cents=int(value["amount_cents"]),
            zone=Zone(value["zone"]),
            tariff_from=date.fromisoformat(value["tariff_from"]),
            billable=bool(value["billable"]),
            limit=int(value["limit"]),
            patient=PatientIdentity.from_dict(value["patient"]),
            room=int(value["room"]),
            requerant=str(value["requerant"]),
            requis=str(value["requis"]),
            not_billable_reason=str(value["not_billable_reason"]),
        )


def _associated_data(*, national_id: str, room: int, code: str) -> bytes:
    return signing_input(LEDGER_LABEL, {"code": code, "national_id": national_id, "room": room})


def seal_entry(
    account_key: AccountKey, *, national_id: str, entry: LedgerEntry, nonce: bytes | None = None
) -> bytes:
    """The encrypted entry the server stores. ``nonce``: random unless given (test
    vectors only: a nonce must never be used twice with one key)."""
    nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
    if len(nonce) != NONCE_BYTES:
        raise ValueError("a 12-byte nonce")
    sealed = AESGCM(_key(account_key, LEDGER_PURPOSE)).encrypt(
        nonce,
        canonical_json(entry.to_dict()),
        _associated_data(national_id=national_id, room=entry.room, code=entry.code.value),
    )
    return bytes([ENTRY_VERSION]) + nonce + sealed


def open_entry(
    account_key: AccountKey, *, national_id: str, room: int, code: str, sealed: bytes
) -> LedgerEntry:
    """Decrypt a stored entry, checking it belongs to this practitioner, room and act
    (``bad_ledger_entry`` otherwise: altered, moved, or not ours)."""
    refused = TeleexpertiseError(
        "bad_ledger_entry",
        f"A ledger entry (room {room}) cannot be read: altered, or not yours.",
        f"Une entrée du registre (salon {room}) est illisible : modifiée, ou pas la vôtre.",
    )
    if len(sealed) < 1 + NONCE_BYTES + 16 or sealed[0] != ENTRY_VERSION:
        raise refused
    nonce, ciphertext = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
    try:
        plain = AESGCM(_key(account_key, LEDGER_PURPOSE)).decrypt(
            nonce, ciphertext, _associated_data(national_id=national_id, room=room, code=code)
        )
        entry = LedgerEntry.from_dict(parse_canonical(plain))
    except (InvalidTag, ValueError, KeyError, TypeError):
        raise refused from None
    if entry.room != room or entry.code.value != code:
        raise refused
    return entry


CSV_COLUMNS = (
    "date",
    "acte",
    "montant_eur",
    "zone",
    "facturable",
    "motif_non_facturable",
    "patient_nom_naissance",
    "patient_premier_prenom",
    "patient_date_naissance",
    "patient_sexe",
    "matricule_ins",
    "oid_ins",
    "statut_identite",
    "requerant_idnat",
    "requis_idnat",
    "teleexpertise",
)


def export_csv(entries: Iterable[LedgerEntry], *, start: date, end: date) -> str:
    """The acts of ``[start, end]`` as CSV for billing software: ``;``-separated,
    UTF-8, a header line, dates ``YYYY-MM-DD``, amounts ``23.00``, oldest first. The
    matricule INS appears only for a qualified identity (it is only carried then)."""
    output = io.StringIO()
    writer = csv.writer(output, delimiter=";", lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    chosen = sorted(
        (e for e in entries if start <= e.day <= end), key=lambda e: (e.day, e.room, e.code)
    )
    for entry in chosen:
        patient = entry.patient
        writer.writerow(
            (
                entry.day.isoformat(),
                entry.code.value,
                f"{entry.amount_cents // 100}.{entry.amount_cents % 100:02d}",
                entry.zone.value,
                "oui" if entry.billable else "non",
                entry.not_billable_reason,
                patient.birth_family_name,
                patient.first_birth_given_name,
                patient.birth_date.isoformat(),
                patient.sex.value,
                patient.matricule or "",
                patient.oid.value if patient.oid else "",
                patient.status.value,
                entry.requerant,
                entry.requis,
                entry.room,
            )
        )
    return output.getvalue()
