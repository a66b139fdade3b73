"""Directory search: find a practitioner by name, profession, specialty, place or
MSSanté address (docs/identity.md, "Directory search").

Names and towns are matched by prefix on folded search keys (accents and case do not
matter); a number (RPPS, ADELI or national id) finds its practitioner. Results are
ordered by ``(name_key, national_id)`` — by the matching key for a name search — and
paged with a keyset cursor, so page 1,000 costs what page 1 costs.
On PostgreSQL every filter has a partial B-tree index over active practitioners that
also gives the order.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from django.db.models import Q, QuerySet

from chat.errors import ErrorCode, RelaisError
from directory.identifiers import national_id_for_number
from directory.models import Activity, MailboxAddress, Practitioner, Source
from directory.normalise import search_key

MAX_PAGE = 50
# A place with up to this many activities is read in name order from its own index
# (at most PLACE_BATCHES batches per page); a denser one is walked.
PLACE_SORT_LIMIT = 20_000
PLACE_BATCHES = 5
# A denser place is checked by chunks of candidates, this many chunks per page at most.
DENSE_WALK_CHUNK = 1000
DENSE_WALK_CHUNKS = 10


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


Found = list[tuple[str, str, Practitioner]]


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
    """Active practitioners matching every criterion but the name and the place.
    Organisations (archiver holders, not people) are never listed."""
    practitioners = Practitioner.objects.filter(is_active=True).exclude(source=Source.ORGANISATION)
    if query.profession_code:
        practitioners = practitioners.filter(profession_code=query.profession_code)
    if query.specialty_code:
        practitioners = practitioners.filter(specialty_code=query.specialty_code)
    if query.mssante_address:
        owners = MailboxAddress.objects.filter(
            address=query.mssante_address.strip().lower()
        ).values("national_id")
        practitioners = practitioners.filter(national_id__in=owners)
    return practitioners


def _place(query: SearchQuery) -> QuerySet[Activity] | None:
    """Activities at the postcode (prefix) and/or town (prefix), with the profession if
    given; None without a place. BAD_REQUEST for a malformed postcode."""
    if not (query.postcode or search_key(query.town)):
        return None
    places = Activity.objects.all()
    if query.postcode:
        # ASCII digits only, so the prefix LIKE needs no escaping.
        if not (query.postcode.isascii() and query.postcode.isdigit()) or len(query.postcode) > 5:
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
    return places


def _page_from_places(
    places: QuerySet[Activity],
    practitioners: QuerySet[Practitioner],
    cursor: tuple[str, str] | None,
    limit: int,
) -> tuple[Found, tuple[str, str] | None]:
    """Practitioners of a place of moderate size, read in name order from the place's
    own index (activities carry the name key), then checked against the other
    criteria. Returns the results and, if it stopped early, where."""
    ordered = places.order_by("name_key", "practitioner_id")
    batch_size = (limit + 1) * 2
    found: Found = []
    position = cursor
    for _ in range(PLACE_BATCHES):
        batch = ordered
        if position is not None:
            batch = batch.filter(name_key__gte=position[0]).filter(
                Q(name_key__gt=position[0]) | Q(practitioner_id__gt=position[1])
            )
        rows = list(batch.values_list("name_key", "practitioner_id")[:batch_size])
        kept = {
            p.national_id: p for p in practitioners.filter(national_id__in={row[1] for row in rows})
        }
        for name_key, national_id in rows:
            # two activities of one person at the place are neighbours in this order
            if national_id in kept and (not found or found[-1][1] != national_id):
                found.append((name_key, national_id, kept[national_id]))
        if len(found) > limit or len(rows) < batch_size:
            return found, None
        position = rows[-1]
    return found, position


def _branches(
    query: SearchQuery, practitioners: QuerySet[Practitioner]
) -> list[tuple[str, QuerySet[Practitioner]]]:
    """``(key column, queryset)`` pairs whose results, each ordered by its key, merge
    into the answer.

    A name matches "last first" (``name_key``) or "first last" (``reversed_name_key``).
    One query with ``OR`` cannot walk an index in order, and the database would scan
    the whole directory for a rare prefix; two queries, each a range scan of its own
    index, stay fast. A person matching both ways is found by the first query only.
    """
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


def _at_place(activity: tuple[str, str, str], query: SearchQuery, town: str) -> bool:
    """The Python twin of ``_place``'s SQL conditions, for ``_walk_dense``."""
    postcode, town_key, profession = activity
    if query.postcode and not (
        postcode == query.postcode
        if len(query.postcode) == 5
        else postcode.startswith(query.postcode)
    ):
        return False
    if town and not town_key.startswith(town):
        return False
    return not query.profession_code or profession == query.profession_code


def _walk_dense(
    ordered: QuerySet[Practitioner],
    key: str,
    cursor: tuple[str, str] | None,
    query: SearchQuery,
    limit: int,
) -> tuple[list[tuple[str, str]], tuple[str, str] | None]:
    """Candidates in ``key`` order, a chunk at a time, kept when one of their own
    activities is at the place; returns the hits' ``(key, national id)`` and, if the
    walk stopped early, where it stopped.

    A chunk's activities are read through the practitioner-leading unique index only
    (the place is checked here, in Python): asking the database "which of these practise
    there?" lets it pick the place index and rescan the whole place for every chunk.
    """
    town = search_key(query.town)
    hits: list[tuple[str, str]] = []
    position = cursor
    for _ in range(DENSE_WALK_CHUNKS):
        chunk = list(
            _after(ordered, key, position).values_list(key, "national_id")[:DENSE_WALK_CHUNK]
        )
        if not chunk:
            return hits, None
        there = {
            practitioner_id
            for practitioner_id, *activity in Activity.objects.filter(
                practitioner_id__in=[national_id for _, national_id in chunk]
            ).values_list("practitioner_id", "postcode", "town_key", "profession_code")
            if _at_place((activity[0], activity[1], activity[2]), query, town)
        }
        hits.extend(item for item in chunk if item[1] in there)
        position = chunk[-1]
        if len(hits) > limit or len(chunk) < DENSE_WALK_CHUNK:
            return hits, None
    return hits, position


def search_practitioners(*, query: SearchQuery) -> SearchPage:
    """One page of active practitioners matching every given criterion, ordered by the
    name that matched (``last first`` or ``first last``), then national id.

    A page may hold fewer than ``limit`` results while ``next`` is set (a search that
    looked through many candidates stops and says where to go on).
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
    places = _place(query)
    national_id = national_id_for_number(query.name)
    if national_id is not None:
        # A number (RPPS, ADELI, national id): the one practitioner, if the other
        # criteria agree. Professionals look each other up by number every day.
        numbered = _filtered(query).filter(national_id=national_id)
        if places is not None:
            numbered = numbered.filter(national_id__in=places.values("practitioner_id"))
        return SearchPage(results=list(numbered[:1]), next_cursor=None)
    base = _filtered(query)
    found: Found = []
    stop: tuple[str, str] | None = None  # the earliest point a search stopped at
    name = search_key(query.name)
    if (
        places is not None
        and not name
        # counted on indexed columns only: an index-only scan
        and places.values("practitioner_id")[: PLACE_SORT_LIMIT + 1].count() <= PLACE_SORT_LIMIT
    ):
        found, stop = _page_from_places(places, base, cursor, limit)
    else:
        for key, practitioners in _branches(query, base):
            ordered = practitioners.order_by(key, "national_id")
            if places is None:
                hits: Found = [
                    (getattr(p, key), p.national_id, p)
                    for p in _after(ordered, key, cursor)[: limit + 1]
                ]
                stopped = None
            else:
                keys, stopped = _walk_dense(ordered, key, cursor, query, limit)
                chosen = {p.national_id: p for p in practitioners.filter(
                    national_id__in=[national_id for _, national_id in keys[: limit + 1]]
                )}  # fmt: skip
                hits = [(k, n, chosen[n]) for k, n in keys[: limit + 1]]
            found.extend(hits)
            if stopped is not None and (stop is None or stopped < stop):
                stop = stopped
    found.sort(key=lambda item: (item[0], item[1]))
    if stop is not None:
        found = [item for item in found if (item[0], item[1]) <= stop]
    page = found[:limit]
    if len(found) > limit:
        next_cursor: str | None = encode_cursor(page[-1][0], page[-1][1])
    elif stop is not None:
        next_cursor = encode_cursor(*stop)
    else:
        next_cursor = None
    return SearchPage(results=[item[2] for item in page], next_cursor=next_cursor)
