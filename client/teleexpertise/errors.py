"""Errors of the téléexpertise SDK: a stable code for programs, one line in English and
one in French for people (the CLI prints both)."""

from __future__ import annotations


class TeleexpertiseError(Exception):
    """A téléexpertise step was refused on the device, before anything was sent, or the
    server refused it (``code`` is then the server's: ``role_refused``...)."""

    def __init__(self, code: str, message: str, message_fr: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.message_fr = message_fr


class ConsentRefusedError(TeleexpertiseError):
    """The patient (or their legal representative) refused: the refusal is recorded on
    the device and no request leaves."""


class BillingLimitError(TeleexpertiseError):
    """The act would be the 5th (or more) of the year for this patient: flagged before
    sending. Send again with ``acknowledge_billing_limit=True`` to go on; the act is
    then recorded as not billable."""

    def __init__(self, code: str, message: str, message_fr: str, *, count: int, limit: int):
        super().__init__(code, message, message_fr)
        self.count = count
        self.limit = limit


def invalid(field: str, english: str, french: str) -> TeleexpertiseError:
    """``bad_field``: a value given to the SDK is not valid."""
    return TeleexpertiseError("bad_field", f"{field}: {english}", f"{field} : {french}")
