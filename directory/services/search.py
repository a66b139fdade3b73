"""Directory search: find a practitioner by name, profession, specialty, place or
MSSanté address (docs/identity.md, "Directory search").

Names and towns are matched by prefix on folded search keys (accents and case do not
matter). Results are ordered by ``(name_key, national_id)`` and paged with a keyset
cursor, so page 1,000 costs what page 1 costs. On PostgreSQL every filter has a
partial B-tree index over active practitioners that also gives the order.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q, QuerySet

from chat.errors import ErrorCode, RelaisError
from directory.models import Activity, MailboxAddress, Practitioner
from directory.normalise import search_key

MAX_PAGE = 50


@dataclass(frozen=True)
class SearchQuery:
    name: str = ""
    profession_code: str = ""
    specialty_code: str = ""
    postcode: str = ""
    town: str = ""
    mssante_address: str = ""
    cursor: str = ""
    limit: int = 20


@dataclass(frozen=True)
class SearchPage:
    results: list[Practitioner]
    next_cursor: str | None


def encode_cursor(practitioner: Practitioner) -> str:
    raw = json.dumps([practitioner.name_key, practitioner.national_id]).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        name_key, national_id = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, TypeError, binascii.Error) as error:
        raise RelaisError(ErrorCode.BAD_REQUEST, "The cursor is malformed.") from error
    if not isinstance(name_key, str) or not isinstance(national_id, str):
        raise RelaisError(ErrorCode.BAD_REQUEST, "The cursor is malformed.")
    return name_key, national_id


def _filtered(query: SearchQuery) -> QuerySet[Practitioner]:
    practitioners = Practitioner.objects.filter(is_active=True)
    name = search_key(query.name)
    if name:
        practitioners = practitioners.filter(
            Q(name_key__startswith=name) | Q(reversed_name_key__startswith=name)
        )
    if query.profession_code:
        practitioners = practitioners.filter(profession_code=query.profession_code)
    if query.specialty_code:
        practitioners = practitioners.filter(specialty_code=query.specialty_code)
    places = Activity.objects.filter(practitioner=OuterRef("pk"))
    if query.postcode:
        # Digits only, so the prefix LIKE needs no escaping.
        if not query.postcode.isdigit() or len(query.postcode) > 5:
            raise RelaisError(ErrorCode.BAD_REQUEST, "A postcode is one to five digits.")
        places = places.filter(postcode__startswith=query.postcode)
    town = search_key(query.town)
    if town:
        places = places.filter(town_key__startswith=town)
    if query.postcode or town:
        practitioners = practitioners.filter(Exists(places))
    if query.mssante_address:
        owners = MailboxAddress.objects.filter(
            address=query.mssante_address.strip().lower()
        ).values("national_id")
        practitioners = practitioners.filter(national_id__in=owners)
    return practitioners


def search_practitioners(*, query: SearchQuery) -> SearchPage:
    """One page of active practitioners matching every given criterion.

    Precondition: at least one criterion is given (listing the whole directory is not a
    search); BAD_REQUEST otherwise.
    """
    if not any(
        (
            search_key(query.name),
            query.profession_code,
            query.specialty_code,
            query.postcode,
            search_key(query.town),
            query.mssante_address,
        )
    ):
        raise RelaisError(ErrorCode.BAD_REQUEST, "Give at least one search criterion.")
    limit = max(1, min(query.limit, MAX_PAGE))
    practitioners = _filtered(query)
    if query.cursor:
        name_key, national_id = decode_cursor(query.cursor)
        practitioners = practitioners.filter(
            Q(name_key__gt=name_key) | Q(name_key=name_key, national_id__gt=national_id)
        )
    page = list(practitioners.order_by("name_key", "national_id")[: limit + 1])
    has_more = len(page) > limit
    page = page[:limit]
    return SearchPage(results=page, next_cursor=encode_cursor(page[-1]) if has_more else None)
