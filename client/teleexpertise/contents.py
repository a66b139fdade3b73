"""The end-to-end encrypted events of a téléexpertise (docs/protocol.md §12.2).

Each event is the plaintext content of an envelope (protocol §10.6) with a ``type``
``teleexpertise.<step>`` and ``v: 1``. The server never sees them; it sees the step's
name in the REST call that carries the envelope. ``to_content`` gives the JSON object
to encrypt; ``parse_event`` reads a decrypted content back, refusing unknown or missing
fields and out-of-range values (``bad_event``), so a receiver never shows a half-read
step.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from client.attachments.descriptor import AttachmentDescriptor, compact, descriptor_from_dict
from client.attachments.errors import AttachmentError
from client.teleexpertise.consent import Consent
from client.teleexpertise.errors import TeleexpertiseError, invalid
from documents.errors import DocumentError
from documents.ins import PatientIdentity
from e2ee.encoding import canonical_json
from teleexpertise.workflow import Action

PREFIX = "teleexpertise."
VERSION = 1
MAX_REASON = 500
MAX_QUESTION = 5000
MAX_CLINICAL_DATA = 12000
MAX_ANSWER = 20000
MAX_NOTE = 2000
MAX_ATTACHMENTS = 10
# An event's content in canonical JSON, before the envelope's padding: encrypted and
# base64url-encoded with its header, it stays under the 48 KiB envelope limit (§10.6).
MAX_EVENT_BYTES = 32 * 1024
MAX_NAME = 200


class Urgency(StrEnum):
    ROUTINE = "routine"
    URGENT = "urgent"


def _text(value: object, name: str, *, limit: int, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise invalid(name, "a non-empty text.", "un texte non vide.")
    if len(value) > limit:
        raise invalid(name, f"at most {limit} characters.", f"au plus {limit} caractères.")
    return value


def _time(value: object, name: str) -> datetime:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = datetime.fromisoformat(value)
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise invalid(name, "a date and time with its offset.", "une date et heure avec fuseau.")
    return value


def _french(number: int) -> str:
    """12 345: thousands separated by a narrow no-break space."""
    return f"{number:,}".replace(",", "\N{NARROW NO-BREAK SPACE}")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _attachments(value: object, name: str) -> tuple[AttachmentDescriptor, ...]:
    if not isinstance(value, list) or len(value) > MAX_ATTACHMENTS:
        raise invalid(
            name,
            f"a list of at most {MAX_ATTACHMENTS} files.",
            f"au plus {MAX_ATTACHMENTS} fichiers.",
        )
    try:
        return tuple(descriptor_from_dict(item, compact_form=True) for item in value)
    except (AttachmentError, TypeError, ValueError):
        raise invalid(
            name, "a file description is malformed.", "un fichier est mal décrit."
        ) from None


@dataclass(frozen=True, slots=True)
class Professional:
    """Who asks or answers, as the sender's device read it from the directory: shown on
    the other side and written in the report."""

    national_id: str
    family_name: str
    given_name: str
    profession_code: str
    profession_label: str = ""
    specialty_code: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "national_id": self.national_id,
            "family_name": self.family_name,
            "given_name": self.given_name,
            "profession_code": self.profession_code,
            "profession_label": self.profession_label,
            "specialty_code": self.specialty_code,
        }

    @classmethod
    def from_dict(cls, value: object, name: str) -> Professional:
        if not isinstance(value, dict) or set(value) != {f.name for f in fields(cls)}:
            raise invalid(name, "a professional's fields.", "les champs d'un professionnel.")
        for key, item in value.items():
            _text(item, f"{name}.{key}", limit=MAX_NAME, required=key in {"national_id"})
        return cls(**value)

    @property
    def display(self) -> str:
        label = f" ({self.profession_label})" if self.profession_label else ""
        return f"{self.given_name} {self.family_name}{label}".strip()


class Event:
    """Base of the event types; ``action`` is the lifecycle step it carries."""

    action: ClassVar[Action]

    def fields(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_content(self) -> dict[str, Any]:
        return {"type": PREFIX + self.action.value, "v": VERSION, **self.fields()}

    def check_size(self) -> None:
        """``event_too_large`` when the event would not fit one envelope (long texts
        with many files): the user shortens it, nothing is sent."""
        size = len(canonical_json(self.to_content()))
        if size > MAX_EVENT_BYTES:
            raise TeleexpertiseError(
                "event_too_large",
                f"The texts and files of this step take {size:,} bytes, more than "
                f"{MAX_EVENT_BYTES:,}: shorten the texts or send fewer files.",
                f"Les textes et fichiers de cette étape font {_french(size)} octets, plus "
                f"que {_french(MAX_EVENT_BYTES)} : raccourcissez les textes ou envoyez moins "
                "de fichiers.",
            )


@dataclass(frozen=True, slots=True)
class Request(Event):
    """The requérant's request: the patient (the matricule INS only for a qualified
    identity: ``PatientIdentity`` refuses anything else), the reason and the question,
    clinical data, files (uploaded with this event's message id), urgency, the wished
    answer time, and the consent as attested. ``documents``: the request as PDF and CDA
    75496-0, when a structure keeps them (the room's archiver)."""

    action: ClassVar[Action] = Action.REQUEST
    requerant: Professional
    requis: Professional
    patient: PatientIdentity
    reason: str
    question: str
    consent: Consent
    deadline: datetime
    requested_at: datetime
    urgency: Urgency = Urgency.ROUTINE
    clinical_data: str = ""
    attachments: tuple[AttachmentDescriptor, ...] = field(default=())
    documents: tuple[AttachmentDescriptor, ...] = field(default=())

    def __post_init__(self) -> None:
        _text(self.reason, "reason", limit=MAX_REASON)
        _text(self.question, "question", limit=MAX_QUESTION)
        _text(self.clinical_data, "clinical_data", limit=MAX_CLINICAL_DATA, required=False)
        if not self.consent.given:
            raise invalid(
                "consent", "the patient's consent is required.", "le consentement est requis."
            )
        if len(self.attachments) > MAX_ATTACHMENTS:
            raise invalid(
                "attachments", f"at most {MAX_ATTACHMENTS}.", f"au plus {MAX_ATTACHMENTS}."
            )

    def fields(self) -> dict[str, Any]:
        return {
            "requerant": self.requerant.to_dict(),
            "requis": self.requis.to_dict(),
            "patient": self.patient.to_dict(),
            "reason": self.reason,
            "question": self.question,
            "clinical_data": self.clinical_data,
            "consent": self.consent.to_dict(),
            "urgency": self.urgency.value,
            "deadline": _iso(self.deadline),
            "requested_at": _iso(self.requested_at),
            "attachments": [compact(a).to_dict() for a in self.attachments],
            "documents": [compact(d).to_dict() for d in self.documents],
        }


@dataclass(frozen=True, slots=True)
class Accept(Event):
    action: ClassVar[Action] = Action.ACCEPT
    deadline: datetime | None = None  # the answer time the requis commits to
    note: str = ""

    def fields(self) -> dict[str, Any]:
        value: dict[str, Any] = {"note": _text(self.note, "note", limit=MAX_NOTE, required=False)}
        if self.deadline is not None:
            value["deadline"] = _iso(self.deadline)
        return value


@dataclass(frozen=True, slots=True)
class Decline(Event):
    action: ClassVar[Action] = Action.DECLINE
    reason: str

    def fields(self) -> dict[str, Any]:
        return {"reason": _text(self.reason, "reason", limit=MAX_NOTE)}


@dataclass(frozen=True, slots=True)
class ClarificationRequest(Event):
    action: ClassVar[Action] = Action.CLARIFICATION_REQUEST
    question_id: str
    question: str
    asked_at: datetime

    def fields(self) -> dict[str, Any]:
        return {
            "question_id": _text(self.question_id, "question_id", limit=64),
            "question": _text(self.question, "question", limit=MAX_QUESTION),
            "asked_at": _iso(self.asked_at),
        }


@dataclass(frozen=True, slots=True)
class ClarificationAnswer(Event):
    action: ClassVar[Action] = Action.CLARIFICATION_ANSWER
    question_id: str
    answer: str
    answered_at: datetime
    attachments: tuple[AttachmentDescriptor, ...] = field(default=())

    def fields(self) -> dict[str, Any]:
        return {
            "question_id": _text(self.question_id, "question_id", limit=64),
            "answer": _text(self.answer, "answer", limit=MAX_ANSWER),
            "answered_at": _iso(self.answered_at),
            "attachments": [compact(a).to_dict() for a in self.attachments],
        }


@dataclass(frozen=True, slots=True)
class Report(Event):
    """The requis' answer. ``documents`` are the compte rendu as a PDF and as a CDA R2
    niveau 1 (type 85208-7), uploaded with this event's message id."""

    action: ClassVar[Action] = Action.REPORT
    answer: str
    reported_at: datetime
    documents: tuple[AttachmentDescriptor, ...] = field(default=())

    def fields(self) -> dict[str, Any]:
        return {
            "answer": _text(self.answer, "answer", limit=MAX_ANSWER),
            "reported_at": _iso(self.reported_at),
            "documents": [compact(d).to_dict() for d in self.documents],
        }


@dataclass(frozen=True, slots=True)
class Close(Event):
    action: ClassVar[Action] = Action.CLOSE
    note: str = ""

    def fields(self) -> dict[str, Any]:
        return {"note": _text(self.note, "note", limit=MAX_NOTE, required=False)}


@dataclass(frozen=True, slots=True)
class Cancel(Event):
    action: ClassVar[Action] = Action.CANCEL
    reason: str = ""

    def fields(self) -> dict[str, Any]:
        return {"reason": _text(self.reason, "reason", limit=MAX_NOTE, required=False)}


TeleexpertiseEvent = (
    Request
    | Accept
    | Decline
    | ClarificationRequest
    | ClarificationAnswer
    | Report
    | Close
    | Cancel
)


def is_event(content: dict[str, Any]) -> bool:
    kind = content.get("type")
    return isinstance(kind, str) and kind.startswith(PREFIX)


def _expect(
    content: dict[str, Any], required: set[str], optional: frozenset[str] = frozenset()
) -> None:
    keys = set(content) - {"type", "v", "pad"}
    if content.get("v") != VERSION or not required <= keys or keys - required - optional:
        raise invalid(
            "event",
            "unknown version, or unknown or missing fields.",
            "version inconnue, ou champs inconnus ou manquants.",
        )


def parse_event(content: dict[str, Any]) -> TeleexpertiseEvent:
    """The typed event of a decrypted content (``is_event`` true); TeleexpertiseError
    ``bad_event`` when it does not follow §12.2."""
    try:
        return _parse(content)
    except (TeleexpertiseError, DocumentError) as error:
        raise TeleexpertiseError(
            "bad_event",
            f"A téléexpertise event was malformed and is not shown ({error}).",
            "Un événement de téléexpertise mal formé n'est pas affiché.",
        ) from None


def _parse(content: dict[str, Any]) -> TeleexpertiseEvent:
    try:
        action = Action(str(content.get("type", "")).removeprefix(PREFIX))
    except ValueError:
        raise invalid("type", "unknown event.", "événement inconnu.") from None
    if action is Action.REQUEST:
        _expect(
            content,
            {"requerant", "requis", "patient", "reason", "question", "clinical_data", "consent"}
            | {"urgency", "deadline", "requested_at", "attachments", "documents"},
        )
        try:
            urgency = Urgency(content["urgency"])
        except ValueError:
            raise invalid("urgency", "routine or urgent.", "routine ou urgent.") from None
        return Request(
            requerant=Professional.from_dict(content["requerant"], "requerant"),
            requis=Professional.from_dict(content["requis"], "requis"),
            patient=PatientIdentity.from_dict(content["patient"]),
            reason=content["reason"],
            question=content["question"],
            clinical_data=content["clinical_data"],
            consent=Consent.from_dict(content["consent"]),
            urgency=urgency,
            deadline=_time(content["deadline"], "deadline"),
            requested_at=_time(content["requested_at"], "requested_at"),
            attachments=_attachments(content["attachments"], "attachments"),
            documents=_attachments(content["documents"], "documents"),
        )
    if action is Action.ACCEPT:
        _expect(content, {"note"}, frozenset({"deadline"}))
        deadline = content.get("deadline")
        return Accept(
            deadline=_time(deadline, "deadline") if deadline is not None else None,
            note=_text(content["note"], "note", limit=MAX_NOTE, required=False),
        )
    if action is Action.DECLINE:
        _expect(content, {"reason"})
        return Decline(reason=_text(content["reason"], "reason", limit=MAX_NOTE))
    if action is Action.CLARIFICATION_REQUEST:
        _expect(content, {"question_id", "question", "asked_at"})
        event = ClarificationRequest(
            question_id=content["question_id"],
            question=content["question"],
            asked_at=_time(content["asked_at"], "asked_at"),
        )
        event.fields()
        return event
    if action is Action.CLARIFICATION_ANSWER:
        _expect(content, {"question_id", "answer", "answered_at", "attachments"})
        answer = ClarificationAnswer(
            question_id=content["question_id"],
            answer=content["answer"],
            answered_at=_time(content["answered_at"], "answered_at"),
            attachments=_attachments(content["attachments"], "attachments"),
        )
        answer.fields()
        return answer
    if action is Action.REPORT:
        _expect(content, {"answer", "reported_at", "documents"})
        report = Report(
            answer=content["answer"],
            reported_at=_time(content["reported_at"], "reported_at"),
            documents=_attachments(content["documents"], "documents"),
        )
        report.fields()
        return report
    if action is Action.CLOSE:
        _expect(content, {"note"})
        return Close(note=_text(content["note"], "note", limit=MAX_NOTE, required=False))
    if action is Action.CANCEL:
        _expect(content, {"reason"})
        return Cancel(reason=_text(content["reason"], "reason", limit=MAX_NOTE, required=False))
    raise invalid("type", "not an event a member sends.", "pas un événement envoyé par un membre.")
