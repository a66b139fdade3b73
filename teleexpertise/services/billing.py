"""Each practitioner's billing counter and encrypted ledger (docs/teleexpertise.md,
"Billing without telling the server the patient").

A practitioner's device records an act once the report exists: RQD for the requérant,
TE2 for the requis. It sends the act's code and year, a keyed pseudonym of the patient
(an HMAC under a key only that practitioner's devices hold), whether it is billable, the
yearly limit it applies (from its dated tariff table), and the ledger entry encrypted
under another key of the practitioner. The server counts billable acts per
(practitioner, code, year, pseudonym) and refuses a billable act beyond the limit
(``billing_limit_reached``) under a lock on the practitioner, so the limit holds across
all the practitioner's devices; the device then records it as not billable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from chat.errors import ErrorCode, RelaisError
from chat.services.devices import DeviceIdentity
from directory.models import Practitioner
from teleexpertise.models import MAX_LEDGER_ENTRY_BYTES, ActCode, BillingAct, Teleexpertise
from teleexpertise.services.lifecycle import role_of
from teleexpertise.workflow import Role, State

PSEUDONYM = re.compile(r"^[A-Za-z0-9_-]{43}$")  # base64url of 32 bytes, no padding
MAX_LIMIT = 100
LEDGER_PAGE = 500
_CODE_OF_ROLE = {Role.REQUERANT: ActCode.RQD, Role.REQUIS: ActCode.TE2}
_REPORTED = (State.ANSWERED, State.CLOSED)


@dataclass(frozen=True, slots=True)
class RecordedAct:
    act: BillingAct
    count: int  # billable acts of this (practitioner, code, year, pseudonym), this one included
    created: bool


def check_pseudonym(pseudonym: str) -> str:
    if not PSEUDONYM.match(pseudonym):
        raise RelaisError(ErrorCode.BAD_REQUEST, "The pseudonym must be 43 base64url characters.")
    return pseudonym


def billable_count(*, practitioner_id: str, code: str, year: int, pseudonym: str) -> int:
    """Billable acts recorded for this patient pseudonym, code and year."""
    return BillingAct.objects.filter(
        practitioner_id=practitioner_id,
        code=code,
        year=year,
        pseudonym=check_pseudonym(pseudonym),
        billable=True,
    ).count()


def do_record_act(
    *,
    identity: DeviceIdentity,
    room_id: int,
    code: str,
    year: int,
    pseudonym: str,
    billable: bool,
    limit: int,
    entry: bytes,
    now: datetime,
) -> RecordedAct:
    """Record the caller's act for a téléexpertise whose report was sent.

    Raises NOT_MEMBER / NOT_FOUND, ROLE_REFUSED (RQD is the requérant's, TE2 the
    requis'), TRANSITION_REFUSED (no report yet), BAD_REQUEST, BILLING_LIMIT_REACHED
    (billable beyond ``limit``), CONFLICT (another act was recorded for this
    téléexpertise). Recording the same act again answers the first one."""
    check_pseudonym(pseudonym)
    if not 1 <= limit <= MAX_LIMIT:
        raise RelaisError(ErrorCode.BAD_REQUEST, f"The limit must be between 1 and {MAX_LIMIT}.")
    if not 0 < len(entry) <= MAX_LEDGER_ENTRY_BYTES:
        raise RelaisError(
            ErrorCode.BAD_REQUEST, f"The ledger entry must be 1 to {MAX_LEDGER_ENTRY_BYTES} bytes."
        )
    teleexpertise = Teleexpertise.objects.filter(room_id=room_id).first()
    if teleexpertise is None:
        raise RelaisError(ErrorCode.NOT_FOUND, "This room has no téléexpertise.")
    role = role_of(teleexpertise, identity.practitioner_id)
    if _CODE_OF_ROLE.get(role) != code:
        raise RelaisError(
            ErrorCode.ROLE_REFUSED, f"As {role.value} your act is {_CODE_OF_ROLE[role].value}."
        )
    if teleexpertise.state not in _REPORTED:
        raise RelaisError(ErrorCode.TRANSITION_REFUSED, "The act exists once the report is sent.")
    if abs(year - teleexpertise.state_changed_at.year) > 1:
        raise RelaisError(ErrorCode.BAD_REQUEST, "The year is not the year of the report.")
    with transaction.atomic():
        # One act at a time per practitioner: counting and inserting cannot interleave
        # between two of their devices.
        Practitioner.objects.select_for_update().filter(pk=identity.practitioner_id).get()
        existing = BillingAct.objects.filter(
            practitioner_id=identity.practitioner_id, teleexpertise=teleexpertise
        ).first()
        count = billable_count(
            practitioner_id=identity.practitioner_id, code=code, year=year, pseudonym=pseudonym
        )
        if existing is not None:
            if (existing.code, existing.year, existing.pseudonym) != (code, year, pseudonym):
                raise RelaisError(
                    ErrorCode.CONFLICT, "Another act is recorded for this téléexpertise."
                )
            return RecordedAct(act=existing, count=count, created=False)
        if billable and count >= limit:
            error = RelaisError(ErrorCode.BILLING_LIMIT_REACHED, f"{count} of {limit} already.")
            raise error
        act = BillingAct.objects.create(
            practitioner_id=identity.practitioner_id,
            teleexpertise=teleexpertise,
            code=code,
            year=year,
            pseudonym=pseudonym,
            billable=billable,
            entry=entry,
            created_at=now,
        )
    return RecordedAct(act=act, count=count + int(billable), created=True)


def ledger_page(*, practitioner_id: str, after_id: int, limit: int) -> list[BillingAct]:
    """The practitioner's acts after ``after_id``, oldest first (every device of the
    practitioner reads the same ledger)."""
    return list(
        BillingAct.objects.filter(practitioner_id=practitioner_id, pk__gt=after_id).order_by("pk")[
            : min(limit, LEDGER_PAGE)
        ]
    )
