"""Organisations and their archiver devices (docs/e2ee.md, "The archiver").

An organisation — a hospital, a health centre, a CPTS — is identified by its national
structure id (IdNat_Struct: ``1``+FINESS, ``2``+SIREN, ``3``+SIRET, ...). It is stored
as a ``Practitioner`` row with ``source=organisation`` so that device tokens, REST and
WebSocket authentication and the key-transparency log work for it unchanged; its
identity there is ``org:`` + IdNat_Struct. The prefix keeps the two namespaces apart:
IdNat_PS and IdNat_Struct use the same leading digits for different things (``0`` is an
ADELI practitioner or an ADELI cabinet, ``1``, ``3`` and ``4`` mean one thing for a
person and another for a structure), so without it an Annuaire Santé import or a login
could one day land on an organisation's row, or the reverse.

An organisation never logs in (``do_issue_device_token`` refuses it), is not listed by
the directory search and cannot be a room member. Its only devices are archivers, made
here for the operator's ``manage.py create_archiver``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from django.db import transaction

from chat.errors import ErrorCode, RelaisError
from chat.models import Device
from chat.services.devices import do_issue_archiver_token
from directory.models import Practitioner, Source

ORGANISATION_PREFIX = "org:"
MAX_NAME_LENGTH = 128

# IdNat_Struct = type prefix + identifier (ANS, StructIdNat; docs/identity.md). Only
# the prefixed forms are accepted: a bare technical number says nothing of its registry.
_STRUCTURE_ID_FORMS: dict[str, tuple[str, re.Pattern[str]]] = {
    "0": ("ADELI cabinet number (9 digits)", re.compile(r"[0-9]{9}")),
    "1": ("FINESS number (9 characters)", re.compile(r"[0-9A-Z]{9}")),
    "2": ("SIREN number (9 digits)", re.compile(r"[0-9]{9}")),
    "3": ("SIRET number (14 digits)", re.compile(r"[0-9]{14}")),
    "4": ("RPPS number and rank (14 digits)", re.compile(r"[0-9]{14}")),
}


def parse_structure_id(value: str) -> str:
    """The IdNat_Struct ``value`` (upper-cased, spaces removed) if well formed; raises
    BAD_REQUEST naming the expected form otherwise."""
    cleaned = "".join(value.split()).upper()
    form = _STRUCTURE_ID_FORMS.get(cleaned[:1])
    if form is None:
        raise RelaisError(
            ErrorCode.BAD_REQUEST,
            "A national structure id (IdNat_Struct) starts with 0 (ADELI cabinet), "
            "1 (FINESS), 2 (SIREN), 3 (SIRET) or 4 (RPPS cabinet).",
        )
    label, pattern = form
    if not pattern.fullmatch(cleaned[1:]):
        raise RelaisError(
            ErrorCode.BAD_REQUEST, f"After the prefix {cleaned[0]}, expected a {label}."
        )
    return cleaned


def organisation_national_id(structure_id: str) -> str:
    """The identity of the organisation with this IdNat_Struct (validated)."""
    return ORGANISATION_PREFIX + parse_structure_id(structure_id)


def structure_id_of(organisation: Practitioner) -> str:
    """The IdNat_Struct of an organisation row."""
    return organisation.national_id.removeprefix(ORGANISATION_PREFIX)


def clean_name(value: str) -> str:
    """The organisation's name with spaces collapsed; BAD_REQUEST if empty, too long
    or holding control characters."""
    name = " ".join(value.split())
    if not name or len(name) > MAX_NAME_LENGTH:
        raise RelaisError(
            ErrorCode.BAD_REQUEST, f"The name must have 1 to {MAX_NAME_LENGTH} characters."
        )
    if any(unicodedata.category(char).startswith("C") for char in name):
        raise RelaisError(ErrorCode.BAD_REQUEST, "The name holds control characters.")
    return name


@dataclass(frozen=True, slots=True)
class CreatedArchiver:
    organisation: Practitioner
    device: Device
    token: str  # shown once: the caller hands it to the archiver and forgets it
    created_organisation: bool


def do_create_archiver(*, structure_id: str, name: str, device_name: str) -> CreatedArchiver:
    """Create (or find, and rename) the organisation and give it a new archiver device.

    Refuses (CONFLICT) when the identity exists but is not an organisation or was
    deactivated. The device's keys are certified later by the archiver itself, with the
    token, through ``POST /api/v1/devices/keys``: the log then issues an ``archiver``
    certificate. Nothing is written if anything fails."""
    national_id = organisation_national_id(structure_id)
    name = clean_name(name)
    with transaction.atomic():
        organisation = Practitioner.objects.select_for_update().filter(pk=national_id).first()
        created = organisation is None
        if organisation is None:
            organisation = Practitioner(
                national_id=national_id,
                first_name="",
                last_name=name,
                profession_code="",
                source=Source.ORGANISATION,
            )
            organisation.save(force_insert=True)
        elif not organisation.is_organisation:
            raise RelaisError(ErrorCode.CONFLICT, f"{national_id} is not an organisation.")
        elif not organisation.is_active:
            raise RelaisError(ErrorCode.CONFLICT, f"{national_id} was deactivated.")
        elif organisation.last_name != name:
            organisation.last_name = name
            organisation.save(update_fields=["last_name"])
        device, token = do_issue_archiver_token(organisation=organisation, device_name=device_name)
    return CreatedArchiver(
        organisation=organisation, device=device, token=token, created_organisation=created
    )
