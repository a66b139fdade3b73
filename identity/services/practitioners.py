"""Who a PSC identity is in the local directory (docs/identity.md, "Unknown RPPS")."""

from __future__ import annotations

from chat.errors import ErrorCode, RelaisError
from directory.models import Practitioner, Source
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
    practitioner.save(force_insert=True)
    return practitioner
