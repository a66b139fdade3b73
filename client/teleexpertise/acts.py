"""The practitioner's acts, on the device: the yearly-limit check before a request or
an acceptance, recording the act once the report exists, the decrypted ledger and its
CSV export (docs/teleexpertise.md, "Billing").

The keys come from ``account_key`` (injected; ``billing.py`` says what each is for).
The check costs one HMAC and one ``GET /billing/count``; recording costs one
AES-GCM and one ``POST /teleexpertise/{room}/act``, plus a second when another device of
the practitioner took the last billable place meanwhile (the server refuses a billable
act beyond the limit under a lock, and the act is recorded as not billable).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from client.api import ApiError, RestApi
from client.teleexpertise.billing import (
    AccountKey,
    LedgerEntry,
    export_csv,
    open_entry,
    pseudonym,
    seal_entry,
)
from client.teleexpertise.errors import BillingLimitError
from client.teleexpertise.tariffs import ActCode, Tariff, TariffTable, Zone
from documents.ins import PatientIdentity
from e2ee.encoding import b64u, unb64u

LEDGER_PAGE = 500


@dataclass(frozen=True, slots=True)
class BillingCheck:
    """Where this patient stands for this act and year, before the act."""

    code: ActCode
    year: int
    pseudonym: str
    count: int  # billable acts already recorded
    tariff: Tariff

    @property
    def limit(self) -> int:
        return self.tariff.yearly_limit_per_patient

    @property
    def over_limit(self) -> bool:
        """The next act would be beyond the yearly limit: not billable."""
        return self.count >= self.limit

    def warning(self) -> BillingLimitError:
        """The flag shown before sending, in English and French."""
        number = self.count + 1
        return BillingLimitError(
            "billing_limit_reached",
            f"This would be act {self.code} number {number} this year for this patient: the "
            f"limit is {self.limit} per year and per professional, so it will not be billable.",
            f"Ce serait le {number}e acte {self.code} de l'année pour ce patient : la limite "
            f"est de {self.limit} par an et par professionnel, il ne sera pas facturable.",
            count=self.count,
            limit=self.limit,
        )


class BillingBook:
    """One practitioner's acts, through the REST API, with keys only their devices hold."""

    def __init__(
        self,
        *,
        api: RestApi,
        national_id: str,
        account_key: AccountKey,
        tariffs: TariffTable,
        zone: Zone,
    ) -> None:
        self.api = api
        self.national_id = national_id
        self.account_key = account_key
        self.tariffs = tariffs
        self.zone = zone

    async def check(self, *, patient: PatientIdentity, code: ActCode, day: date) -> BillingCheck:
        """How many billable acts of ``code`` this practitioner has for this patient in
        the year of ``day``."""
        tariff = self.tariffs.lookup(code, self.zone, day)
        name = pseudonym(self.account_key, year=day.year, patient=patient)
        answer = await self.api.call(
            "GET",
            "billing/count",
            params={"code": code.value, "year": day.year, "pseudonym": name},
        )
        return BillingCheck(
            code=code, year=day.year, pseudonym=name, count=int(answer["count"]), tariff=tariff
        )

    async def record(
        self,
        *,
        room_id: int,
        code: ActCode,
        day: date,
        patient: PatientIdentity,
        requerant: str,
        requis: str,
    ) -> LedgerEntry:
        """Record this practitioner's act for a téléexpertise whose report exists:
        billable unless the yearly limit is reached (then amount 0, reason given)."""
        check = await self.check(patient=patient, code=code, day=day)
        billable = not check.over_limit
        for _attempt in range(2):
            entry = LedgerEntry.for_act(
                tariff=check.tariff,
                day=day,
                billable=billable,
                patient=patient,
                room=room_id,
                requerant=requerant,
                requis=requis,
            )
            sealed = seal_entry(self.account_key, national_id=self.national_id, entry=entry)
            try:
                answer = await self.api.call(
                    "POST",
                    f"teleexpertise/{room_id}/act",
                    json={
                        "code": code.value,
                        "year": day.year,
                        "pseudonym": check.pseudonym,
                        "billable": billable,
                        "limit": check.limit,
                        "entry": b64u(sealed),
                    },
                )
            except ApiError as error:
                if error.code != "billing_limit_reached" or not billable:
                    raise
                billable = False  # another device took the last place meanwhile
                continue
            return self._open(answer["act"])
        raise AssertionError("unreachable: the second attempt is not billable")

    def _open(self, act: dict[str, Any]) -> LedgerEntry:
        return open_entry(
            self.account_key,
            national_id=self.national_id,
            room=int(act["room"]),
            code=str(act["code"]),
            sealed=unb64u(act["entry"], field="entry"),
        )

    async def ledger(self) -> list[LedgerEntry]:
        """Every act of this practitioner, from any of their devices, decrypted here."""
        entries: list[LedgerEntry] = []
        after = 0
        while True:
            page = await self.api.call(
                "GET", "billing/ledger", params={"after": after, "limit": LEDGER_PAGE}
            )
            acts = page["acts"]
            entries.extend(self._open(act) for act in acts)
            if len(acts) < LEDGER_PAGE:
                return entries
            after = int(acts[-1]["id"])

    async def export(self, *, start: date, end: date) -> str:
        """The acts of ``[start, end]`` as CSV (``billing.export_csv``)."""
        return export_csv(await self.ledger(), start=start, end=end)
