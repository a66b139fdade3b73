"""Directory settings, read from Django settings (``RELAIS_PSC_ENVIRONMENT``)."""

from __future__ import annotations

from django.conf import settings

from directory.extracts.reader import CheckDigitPolicy


def is_sandbox() -> bool:
    """True when Relais runs against PSC's sandbox (BAS): test identities, lenient checks."""
    return bool(getattr(settings, "RELAIS_PSC", {}).get("ENVIRONMENT") == "sandbox")


def directory_check_digit_policy() -> CheckDigitPolicy:
    """A wrong RPPS/ADELI check digit is a warning in the sandbox, a refusal in production."""
    return CheckDigitPolicy.WARN if is_sandbox() else CheckDigitPolicy.REFUSE
