"""Directory search: find a practitioner by name, profession, specialty, place or
MSSanté address (docs/identity.md, "Directory search").

Names and towns are matched by prefix on folded search keys (accents and case do not
matter). Results are ordered by ``(name_key, national_id)`` — by the matching key for a
name search — and paged with a keyset cursor, so page 1,000 costs what page 1 costs.
On PostgreSQL every filter has a partial B-tree index over active practitioners that
also gives the order.
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
# Up to this many activities at a place, their practitioners are fetched and sorted.
PLACE_DRIVE_LIMIT = 3000


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


def encode_cursor(key: str, national_id: str) -> str:
    raw = json.dumps([key, national_id]).encode("utf-8")
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
    """Active practitioners matching every criterion but the name."""
    practitioners = Practitioner.objects.filter(is_active=True)
    if query.profession_code:
        practitioners = practitioners.filter(profession_code=query.profession_code)
    if query.specialty_code:
        practitioners = practitioners.filter(specialty_code=query.specialty_code)
    if query.postcode or query.town:
        practitioners = _at_place(practitioners, query)
    if query.mssante_address:
        owners = MailboxAddress.objects.filter(
            address=query.mssante_address.strip().lower()
        ).values("national_id")
        practitioners = practitioners.filter(national_id__in=owners)
    return practitioners


def _at_place(practitioners: QuerySet[Practitioner], query: SearchQuery) -> QuerySet[Practitioner]:
    """Practitioners with an activity at the postcode (prefix) and/or town (prefix).

    A place usually holds a few hundred activities: their practitioners are collected
    first (the activity indexes), then sorted by name. A very large place (a department
    prefix, a big city) is instead checked practitioner by practitioner while walking
    the name index, which finds a page quickly precisely because the place is dense.
    """
    places = Activity.objects.all()
    if query.postcode:
        # Digits only, so the prefix LIKE needs no escaping.
        if not query.postcode.isdigit() or len(query.postcode) > 5:
            raise RelaisError(ErrorCode.BAD_REQUEST, "A postcode is one to five digits.")
        if len(query.postcode) == 5:
            places = places.filter(postcode=query.postcode)
        else:
            places = places.filter(postcode__startswith=query.postcode)
    town = search_key(query.town)
    if town:
        places = places.filter(town_key__startswith=town)
    if query.profession_code:
        places = places.filter(profession_code=query.profession_code)
    ids = list(places.values_list("practitioner_id", flat=True)[: PLACE_DRIVE_LIMIT + 1])
    if len(ids) <= PLACE_DRIVE_LIMIT:
        return practitioners.filter(national_id__in=set(ids))
    return practitioners.filter(Exists(places.filter(practitioner=OuterRef("pk"))))


def _branches(query: SearchQuery) -> list[tuple[str, QuerySet[Practitioner]]]:
    """``(key column, queryset)`` pairs whose results, each ordered by its key, merge
    into the answer.

    A name matches "last first" (``name_key``) or "first last" (``reversed_name_key``).
    One query with ``OR`` cannot walk an index in order, and the database would scan
    the whole directory for a rare prefix; two queries, each a range scan of its own
    index, stay fast. A person matching both ways is found by the first query only.
    """
    practitioners = _filtered(query)
    name = search_key(query.name)
    if not name:
        return [("name_key", practitioners)]
    return [
        ("name_key", practitioners.filter(name_key__startswith=name)),
        (
            "reversed_name_key",
            practitioners.filter(reversed_name_key__startswith=name).exclude(
                name_key__startswith=name
            ),
        ),
    ]


def _after(
    practitioners: QuerySet[Practitioner], key: str, cursor: tuple[str, str] | None
) -> QuerySet[Practitioner]:
    if cursor is None:
        return practitioners
    value, national_id = cursor
    # ">=" first lets the index start at the cursor; the OR only trims that first key.
    return practitioners.filter(**{f"{key}__gte": value}).filter(
        Q(**{f"{key}__gt": value}) | Q(national_id__gt=national_id)
    )


def search_practitioners(*, query: SearchQuery) -> SearchPage:
    """One page of active practitioners matching every given criterion, ordered by the
    name that matched (``last first`` or ``first last``), then national id.

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
    cursor = decode_cursor(query.cursor) if query.cursor else None
    found: list[tuple[str, str, Practitioner]] = []
    for key, practitioners in _branches(query):
        ordered = _after(practitioners, key, cursor).order_by(key, "national_id")
        found.extend((getattr(p, key), p.national_id, p) for p in ordered[: limit + 1])
    found.sort(key=lambda item: (item[0], item[1]))
    page = found[: limit + 1]
    has_more = len(page) > limit
    page = page[:limit]
    next_cursor = encode_cursor(page[-1][0], page[-1][1]) if has_more else None
    return SearchPage(results=[item[2] for item in page], next_cursor=next_cursor)
