"""Who a PSC identity is in the local directory (docs/identity.md, "Unknown RPPS")."""

from __future__ import annotations

from django.db import transaction

from chat.errors import ErrorCode, RelaisError
from directory.models import Activity, Practitioner, Source
from identity.claims import PscIdentity


def do_practitioner_for_identity(*, identity: PscIdentity, unknown_policy: str) -> Practitioner:
    """The practitioner PSC authenticated.

    * Known and active: that practitioner (the directory stays the reference for names).
    * Known but deactivated (gone from the national directory): refused.
    * Unknown: created from the PSC claims (``source=psc``) when ``unknown_policy`` is
      ``create`` — PSC is fed by the RPPS itself and the local extract may be weeks
      old — or refused when it is ``refuse``.
    """
    practitioner = Practitioner.objects.filter(national_id=identity.national_id).first()
    if practitioner is not None:
        if not practitioner.is_active:
            raise RelaisError(
                ErrorCode.NOT_IN_DIRECTORY, "This practitioner left the national directory."
            )
        return practitioner
    if unknown_policy != "create":
        raise RelaisError(ErrorCode.NOT_IN_DIRECTORY)
    first_activity = identity.activities[0] if identity.activities else None
    practitioner = Practitioner(
        national_id=identity.national_id,
        civility=identity.civility,
        first_name=identity.first_name,
        last_name=identity.last_name or identity.national_id,
        profession_code=identity.profession_code,
        specialty_code=identity.specialty_code,
        postcode=first_activity.postcode[:10] if first_activity else "",
        source=Source.PSC,
        check_digit_valid=identity.check_digit_valid,
    )
    with transaction.atomic():
        if Practitioner.objects.filter(national_id=identity.national_id).exists():
            # Created by a concurrent login of the same person a moment ago.
            return Practitioner.objects.get(national_id=identity.national_id)
        practitioner.save(force_insert=True)
        for index, activity in enumerate(identity.activities):
            Activity(
                practitioner=practitioner,
                activity_hash=f"psc-{index}",
                profession_code=activity.profession_code,
                specialty_code=activity.specialty_code,
                mode_code=activity.mode_code,
                sector_code=activity.sector_code,
                structure_id=activity.structure_id[:64],
                structure_name=(activity.structure_name or activity.brand)[:256],
                siret=activity.siret[:20],
                finess=activity.finess[:20],
                postcode=activity.postcode[:10],
            ).save()
    return practitioner
