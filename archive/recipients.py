"""Who receives a room's archives (docs/archive.md, "Recipients"): the organisation's
mailbox and, when the room's signed policy says ``archive_to_members``, every current
member's personal MSSanté addresses as the directory lists them.

The policy is read from the room state the archiver verified itself (signed,
hash-chained events, docs/protocol.md §10.5): a server cannot turn it on or off. The
addresses come from the Relais server's copy of the national directory (the MSSanté
extract's personal mailboxes, ``GET directory/practitioners/{id}``), public data the
server holds anyway. A member without a usable address is listed, not a failure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from archive.content import MAX_RECIPIENTS, check_mailbox
from archive.errors import ArchiveError
from client.api import ApiError
from client.archiver import ArchiverClient

# Why a member got no copy, as the outbox and the status show it.
NO_ADDRESS = "no_address"  # the directory lists no personal MSSanté mailbox
NOT_IN_DIRECTORY = "not_in_directory"  # the member is not (or no longer) in the directory
BAD_ADDRESS = "bad_address"  # the listed address is not a plain ASCII mail address
TOO_MANY = "too_many_recipients"  # past the per-mail limit of recipients


@dataclass(frozen=True, slots=True)
class Skipped:
    """A member who gets no copy of the archive, and why (one of the codes above)."""

    national_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Recipients:
    """The addresses a mail goes to (the organisation's first), which member each
    member address belongs to, and the members left out."""

    addresses: tuple[str, ...]
    members: dict[str, str]  # address (lower case) -> national id
    skipped: tuple[Skipped, ...] = ()


async def member_addresses(client: ArchiverClient, national_id: str) -> list[str] | None:
    """The member's personal MSSanté addresses in the directory; None if the directory
    does not know them. Any other error of the server is raised (ApiError): the
    archive is built again on the next turn."""
    try:
        entry: dict[str, Any] = await client.api.call(
            "GET", f"directory/practitioners/{national_id}"
        )
    except ApiError as error:
        if error.status == 404:
            return None
        raise
    found = entry.get("mssante_addresses")
    return [a for a in found if isinstance(a, str)] if isinstance(found, list) else []


async def resolve(client: ArchiverClient, room_id: int, organisation: Iterable[str]) -> Recipients:
    """The recipients of the room's next archive: ``organisation`` (the configured
    mailboxes) and, if the room's verified policy asks for it, each current member's
    addresses (sorted by national id, then address; each address once)."""
    addresses = list(organisation)
    seen = {a.lower() for a in addresses}
    members: dict[str, str] = {}
    skipped: list[Skipped] = []
    room = client.rooms.get(room_id)
    if room is None or room.left or not room.state.policy.archive_to_members:
        return Recipients(tuple(addresses), members)
    for national_id in sorted(room.state.members):
        found = await member_addresses(client, national_id)
        if found is None:
            skipped.append(Skipped(national_id, NOT_IN_DIRECTORY))
            continue
        usable = [a for a in found if _usable(a)]
        if not usable:
            skipped.append(Skipped(national_id, BAD_ADDRESS if found else NO_ADDRESS))
            continue
        for address in usable:
            if address.lower() in seen:
                continue
            if len(addresses) >= MAX_RECIPIENTS:
                skipped.append(Skipped(national_id, TOO_MANY))
                break
            seen.add(address.lower())
            addresses.append(address)
            members[address.lower()] = national_id
    return Recipients(tuple(addresses), members, tuple(skipped))


def _usable(address: str) -> bool:
    try:
        check_mailbox(address)
    except ArchiveError:
        return False
    return True
