"""Stable identifiers of an archive, derived only from what names it: the organisation's
structure id, the room and the range of sequence numbers.

The same archive built again (after a crash, on another start of the archiver) gets the
same Message-ID, the same document ids and the same XDS UUIDs, so a receiver that already
integrated it sees the same documents again rather than new ones, and the mail can be
found by its Message-ID before it is sent again. UUIDs are version 5 (RFC 9562: SHA-1 of a
name in a namespace); OIDs are ``2.25.`` + the UUID as an integer (ITU-T X.667).
"""

from __future__ import annotations

import uuid
from typing import Final

from archive.content import ArchiveContent

NAMESPACE: Final = uuid.UUID("4ba7faf4-b47f-4f3b-83da-d27cd4fdf12b")  # Relais archives
MESSAGE_ID_DOMAIN: Final = "archive.relais"


def archive_name(content: ArchiveContent) -> str:
    """``<structure id>.<room id>.<first seq>-<last seq>``: the archive's name."""
    return (
        f"{content.organisation.structure_id}.{content.room_id}."
        f"{content.first_seq}-{content.last_seq}"
    )


def archive_uuid(content: ArchiveContent, purpose: str) -> uuid.UUID:
    """A UUID for one part of the archive (``"transcript"``, ``"submission-set"``...)."""
    return uuid.uuid5(NAMESPACE, f"{archive_name(content)}/{purpose}")


def archive_urn(content: ArchiveContent, purpose: str) -> str:
    return archive_uuid(content, purpose).urn


def archive_oid(content: ArchiveContent, purpose: str) -> str:
    return f"2.25.{archive_uuid(content, purpose).int}"


def organisation_oid(structure_id: str, purpose: str) -> str:
    """An OID of the organisation's archiver that does not change between archives
    (the XDS ``sourceId``, the root of room-local patient ids)."""
    return f"2.25.{uuid.uuid5(NAMESPACE, f'{structure_id}/{purpose}').int}"


def message_id(content: ArchiveContent) -> str:
    """``<relais.<structure>.<room>.<first>-<last>@archive.relais>``: the same for the
    same archive, different for any other (RFC 5322 msg-id; every part is ASCII letters,
    digits, dots and a hyphen)."""
    return f"<relais.{archive_name(content)}@{MESSAGE_ID_DOMAIN}>"
