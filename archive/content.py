"""What one archive covers, as the archiver has it after decrypting: the organisation
that sends it, the room, an exact range of sequence numbers, the messages with their
files, the room's patient and the téléexpertise reports.

Every class is frozen and checks itself when made, so a builder never meets a value out
of range: aware UTC times, sequence numbers inside the range and in order, file names and
sizes within the limits below (docs/archive.md, "Limits").
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from archive.errors import ArchiveError
from documents.ins import PatientIdentity

MAX_MESSAGES: Final = 20_000
MAX_TEXT_CHARACTERS: Final = 64_000  # a message's text (an envelope is at most 48 KiB)
MAX_FILES: Final = 2_000  # files of every message of one archive together
MAX_FILE_BYTES: Final = 100 * 1024 * 1024  # the server's attachment limit
MAX_ARCHIVE_FILE_BYTES: Final = 500 * 1024 * 1024  # files and reports of one archive
MAX_FILE_NAME: Final = 255
MAX_TITLE: Final = 200
MAX_REPORTS: Final = 10
MAX_RECIPIENTS: Final = 50

ROOM_KINDS: Final = frozenset({"direct", "care_team", "teleexpertise"})
REASONS: Final = frozenset(
    {"teleexpertise_closed", "idle", "daily", "on_demand", "archiver_removed"}
)

_NATIONAL_ID = re.compile(r"^[0-9A-Za-z]{1,20}$")
_STRUCTURE_ID = re.compile(r"^[0-9A-Za-z]{1,40}$")
_PROFESSION = re.compile(r"^[0-9]{2}$")
# An MSSanté address: a local part and a domain of ASCII labels (docs/archive.md).
_MAILBOX = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@(?=.{1,253}$)"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$")


def _fail(code: str, english: str, french: str) -> ArchiveError:
    return ArchiveError(code, english, french)


def _check_text(value: object, *, field: str, maximum: int, empty: bool = False) -> None:
    if not isinstance(value, str) or (not value and not empty) or len(value) > maximum:
        raise _fail(
            "bad_field",
            f"{field}: a text of {0 if empty else 1} to {maximum} characters.",
            f"{field} : un texte de {0 if empty else 1} à {maximum} caractères.",
        )
    if any(ord(c) < 32 and c not in "\n\t" for c in value) or "\x7f" in value:
        raise _fail(
            "bad_field",
            f"{field}: no control characters.",
            f"{field} : pas de caractères de contrôle.",
        )


def _check_utc(value: object, *, field: str) -> None:
    if not isinstance(value, datetime) or value.utcoffset() != timedelta(0):
        raise _fail(
            "naive_time",
            f"{field}: an aware datetime in UTC.",
            f"{field} : un datetime avec fuseau, en UTC.",
        )


def check_mailbox(address: object, *, field: str = "mailbox") -> str:
    """``address`` if it is a plain ASCII mail address; ArchiveError otherwise."""
    if not isinstance(address, str) or not _MAILBOX.match(address):
        raise _fail(
            "bad_mailbox",
            f"{field}: an MSSanté address such as service@structure.mssante.fr.",
            f"{field} : une adresse MSSanté comme service@structure.mssante.fr.",
        )
    return address


@dataclass(frozen=True, slots=True)
class ArchivedFile:
    """A file of a message as it was sent, decrypted: its name as the sender gave it,
    its media type (``image/jpeg``) and its bytes."""

    name: str
    media_type: str
    data: bytes

    def __post_init__(self) -> None:
        _check_text(self.name, field="file name", maximum=MAX_FILE_NAME)
        if "/" in self.name or "\\" in self.name or self.name in (".", ".."):
            raise _fail(
                "bad_file_name",
                "A file name has no path separator.",
                "Un nom de fichier n'a pas de séparateur de chemin.",
            )
        if not isinstance(self.media_type, str) or not _MEDIA_TYPE.match(self.media_type):
            raise _fail(
                "bad_media_type",
                "media_type: a lower-case type/subtype such as image/jpeg.",
                "media_type : un type/sous-type en minuscules comme image/jpeg.",
            )
        if not isinstance(self.data, bytes) or len(self.data) > MAX_FILE_BYTES:
            raise _fail(
                "file_too_large",
                f"A file is at most {MAX_FILE_BYTES} bytes.",
                f"Un fichier fait au plus {MAX_FILE_BYTES} octets.",
            )

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        """SHA-256 of the bytes, lower-case hex."""
        return hashlib.sha256(self.data).hexdigest()

    @property
    def is_image(self) -> bool:
        return self.media_type in ("image/jpeg", "image/png", "image/webp")


@dataclass(frozen=True, slots=True)
class ArchivedAuthor:
    """Who wrote a message: IdNat_PS (``8`` + RPPS, e.g. ``810001234567``), the name
    shown, and the TRE_G15 profession code (``10`` médecin, ``60`` infirmier...).
    ``family_name``/``given_name`` go into the CDA when known; otherwise ``name`` is the
    family name there."""

    national_id: str
    name: str
    profession: str
    family_name: str | None = None
    given_name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.national_id, str) or not _NATIONAL_ID.match(self.national_id):
            raise _fail(
                "bad_national_id",
                "national_id: an IdNat_PS, 8 + RPPS (12 characters) or 0 + ADELI.",
                "national_id : un IdNat_PS, 8 + RPPS (12 caractères) ou 0 + ADELI.",
            )
        _check_text(self.name, field="author name", maximum=MAX_TITLE)
        if not isinstance(self.profession, str) or not _PROFESSION.match(self.profession):
            raise _fail(
                "bad_profession",
                "profession: a two-digit TRE_G15 code (10 médecin, 60 infirmier...).",
                "profession : un code TRE_G15 à deux chiffres (10 médecin, 60 infirmier...).",
            )
        for field, value in (("family_name", self.family_name), ("given_name", self.given_name)):
            if value is not None:
                _check_text(value, field=field, maximum=MAX_TITLE)

    @property
    def rpps(self) -> str | None:
        """The 11-digit RPPS of an IdNat_PS ``8…``; None for another identifier."""
        if self.national_id.startswith("8") and len(self.national_id) == 12:
            return self.national_id[1:]
        return None

    @property
    def id_label(self) -> str:
        """``RPPS 10001234567``, ``ADELI 012345678`` or ``IdNat …``, as printed."""
        if self.rpps is not None:
            return f"RPPS {self.rpps}"
        if self.national_id.startswith("0") and len(self.national_id) == 10:
            return f"ADELI {self.national_id[1:]}"
        return f"IdNat {self.national_id}"


@dataclass(frozen=True, slots=True)
class ArchivedMessage:
    """One message of the room: its sequence number, when the server stored it (UTC),
    its author, its text (may be empty when it only carries files) and its files."""

    seq: int
    sent_at: datetime
    author: ArchivedAuthor
    text: str
    files: tuple[ArchivedFile, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.seq, int) or isinstance(self.seq, bool) or self.seq < 1:
            raise _fail("bad_seq", "seq: a positive integer.", "seq : un entier positif.")
        _check_utc(self.sent_at, field="sent_at")
        if not isinstance(self.author, ArchivedAuthor):
            raise _fail("bad_field", "author: an ArchivedAuthor.", "author : un ArchivedAuthor.")
        _check_text(self.text, field="text", maximum=MAX_TEXT_CHARACTERS, empty=True)
        if not isinstance(self.files, tuple) or not all(
            isinstance(f, ArchivedFile) for f in self.files
        ):
            raise _fail(
                "bad_field", "files: a tuple of ArchivedFile.", "files : un tuple d'ArchivedFile."
            )


@dataclass(frozen=True, slots=True)
class ArchivedReport:
    """A téléexpertise compte rendu (type 85208-7) as the requis' device made it: the PDF
    and, when it was sent, the CDA R2 niveau 1 embedding it. It travels as a document of
    its own in the archive."""

    pdf: bytes
    cda: bytes | None
    title: str

    def __post_init__(self) -> None:
        if not isinstance(self.pdf, bytes) or not self.pdf.startswith(b"%PDF-"):
            raise _fail("not_a_pdf", "A report is a PDF.", "Un compte rendu est un PDF.")
        if self.cda is not None and not isinstance(self.cda, bytes):
            raise _fail("bad_field", "cda: bytes or None.", "cda : des octets ou None.")
        _check_text(self.title, field="report title", maximum=MAX_TITLE)

    @property
    def size(self) -> int:
        return len(self.pdf) + len(self.cda or b"")


@dataclass(frozen=True, slots=True)
class ArchiveOrganisation:
    """The organisation that archives: its name, IdNat_Struct (``structure_id``) and its
    MSSanté mailbox (the sender). ``facility_type`` (J02, e.g. ``SA05`` centre de santé)
    and ``practice_setting`` (J04) describe it in the CDA and the XDS metadata."""

    name: str
    structure_id: str
    mailbox: str
    facility_type: str = "SA07"
    practice_setting: str = "AMBULATOIRE"

    def __post_init__(self) -> None:
        _check_text(self.name, field="organisation name", maximum=MAX_TITLE)
        if not isinstance(self.structure_id, str) or not _STRUCTURE_ID.match(self.structure_id):
            raise _fail(
                "bad_structure_id",
                "structure_id: the IdNat_Struct, letters and digits (1 to 40).",
                "structure_id : l'IdNat_Struct, lettres et chiffres (1 à 40).",
            )
        check_mailbox(self.mailbox)


@dataclass(frozen=True, slots=True)
class ArchiveContent:
    """One archive: messages ``first_seq``..``last_seq`` of a room, inclusive, cut at
    ``cut_at`` for ``reason``. ``messages`` are those of the range the archiver could
    read, in order (a range may hold sequence numbers that are not messages: state
    changes, key shares). ``patient`` is the room's patient (its encrypted profile), if
    any; ``recipients`` the MSSanté addresses the mail goes to."""

    organisation: ArchiveOrganisation
    room_id: int
    room_kind: str
    room_title: str
    first_seq: int
    last_seq: int
    reason: str
    cut_at: datetime
    messages: tuple[ArchivedMessage, ...]
    patient: PatientIdentity | None
    recipients: tuple[str, ...]
    reports: tuple[ArchivedReport, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.organisation, ArchiveOrganisation):
            raise _fail(
                "bad_field",
                "organisation: an ArchiveOrganisation.",
                "organisation : une ArchiveOrganisation.",
            )
        for field, value in (
            ("room_id", self.room_id),
            ("first_seq", self.first_seq),
            ("last_seq", self.last_seq),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise _fail(
                    "bad_seq", f"{field}: a positive integer.", f"{field} : un entier positif."
                )
        if self.first_seq > self.last_seq:
            raise _fail(
                "bad_range",
                "first_seq is at most last_seq.",
                "first_seq est au plus last_seq.",
            )
        if self.room_kind not in ROOM_KINDS:
            raise _fail(
                "bad_room_kind",
                f"room_kind: one of {', '.join(sorted(ROOM_KINDS))}.",
                f"room_kind : l'un de {', '.join(sorted(ROOM_KINDS))}.",
            )
        _check_text(self.room_title, field="room_title", maximum=MAX_TITLE)
        if self.reason not in REASONS:
            raise _fail(
                "bad_reason",
                f"reason: one of {', '.join(sorted(REASONS))}.",
                f"reason : l'un de {', '.join(sorted(REASONS))}.",
            )
        _check_utc(self.cut_at, field="cut_at")
        self._check_messages()
        if self.patient is not None and not isinstance(self.patient, PatientIdentity):
            raise _fail(
                "bad_field",
                "patient: a PatientIdentity or None.",
                "patient : une PatientIdentity ou None.",
            )
        if not isinstance(self.reports, tuple) or len(self.reports) > MAX_REPORTS:
            raise _fail(
                "too_many_reports",
                f"At most {MAX_REPORTS} reports in an archive.",
                f"Au plus {MAX_REPORTS} comptes rendus dans une archive.",
            )
        count = len(self.recipients) if isinstance(self.recipients, tuple) else 0
        if not 1 <= count <= MAX_RECIPIENTS:
            raise _fail(
                "bad_recipients",
                f"recipients: 1 to {MAX_RECIPIENTS} MSSanté addresses.",
                f"recipients : 1 à {MAX_RECIPIENTS} adresses MSSanté.",
            )
        for address in self.recipients:
            check_mailbox(address, field="recipient")
        if len({a.lower() for a in self.recipients}) != len(self.recipients):
            raise _fail(
                "bad_recipients",
                "recipients: each address once.",
                "recipients : chaque adresse une fois.",
            )

    def _check_messages(self) -> None:
        if not isinstance(self.messages, tuple) or len(self.messages) > MAX_MESSAGES:
            raise _fail(
                "too_many_messages",
                f"At most {MAX_MESSAGES} messages in an archive.",
                f"Au plus {MAX_MESSAGES} messages dans une archive.",
            )
        previous = self.first_seq - 1
        files = 0
        size = sum(report.size for report in self.reports if isinstance(report, ArchivedReport))
        for message in self.messages:
            if not isinstance(message, ArchivedMessage):
                raise _fail(
                    "bad_field",
                    "messages: a tuple of ArchivedMessage.",
                    "messages : un tuple d'ArchivedMessage.",
                )
            if not previous < message.seq <= self.last_seq:
                raise _fail(
                    "seq_out_of_range",
                    f"Message {message.seq} is outside {self.first_seq}-{self.last_seq} or "
                    "out of order.",
                    f"Le message {message.seq} est hors de {self.first_seq}-{self.last_seq} "
                    "ou dans le désordre.",
                )
            previous = message.seq
            files += len(message.files)
            size += sum(f.size for f in message.files)
        if files > MAX_FILES:
            raise _fail(
                "too_many_files",
                f"At most {MAX_FILES} files in an archive.",
                f"Au plus {MAX_FILES} fichiers dans une archive.",
            )
        if size > MAX_ARCHIVE_FILE_BYTES:
            raise _fail(
                "archive_too_large",
                f"The files of an archive are at most {MAX_ARCHIVE_FILE_BYTES} bytes.",
                f"Les fichiers d'une archive font au plus {MAX_ARCHIVE_FILE_BYTES} octets.",
            )

    @property
    def authors(self) -> tuple[ArchivedAuthor, ...]:
        """Each author once, in the order they first wrote."""
        seen: dict[str, ArchivedAuthor] = {}
        for message in self.messages:
            seen.setdefault(message.author.national_id, message.author)
        return tuple(seen.values())

    @property
    def files(self) -> tuple[ArchivedFile, ...]:
        return tuple(f for message in self.messages for f in message.files)

    @property
    def period(self) -> tuple[datetime, datetime]:
        """First and last message times; the cut time for an archive with no message."""
        if not self.messages:
            return self.cut_at, self.cut_at
        return self.messages[0].sent_at, self.messages[-1].sent_at
