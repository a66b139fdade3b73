"""Which document type (typeCode, from the CI-SIS value set J07) a room's transcript
carries, per room kind, and why.

No J07 code names "a conversation between professionals". A receiving DPI files a
document by its type, and the type also goes into the ``X-MSS-CODECDA`` header, so the
choice decides where the transcript lands in the patient's record. The defaults and the
reasons are in ``DEFAULT_TYPE_CODES`` and docs/archive.md ("Type codes"); an
organisation may choose otherwise per room kind (``TypeCodePolicy(by_kind=...)``), or
``None`` for a kind: then the transcript is sent as a PDF without a CDA.

A téléexpertise compte rendu always keeps ``85208-7`` "CR de télémédecine": it is a
document of its own with its type, whatever the transcript's.

A room without a patient never has a CDA: a CDA R2 document is about one patient
(``recordTarget`` is required), so its archive is the PDF and the files, without
``X-MSS-CODECDA``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from archive.content import ROOM_KINDS, ArchiveContent
from archive.errors import ArchiveError
from documents import codes
from documents.codes import Code
from documents.errors import DocumentError

REPORT_TYPE_CODE: Final = "85208-7"  # CR de télémédecine
CONSULTATION_NOTE: Final = "11488-4"  # CR ou fiche de consultation ou de visite
NURSING_FOLLOW_UP: Final = "11506-3"  # CR ou fiche de suivi de soins par auxiliaire médical

# The XDS classCode of each type Relais may use (TRE_A03 "Classe de document", OID
# 1.2.250.1.213.1.1.4.1): comptes rendus are class 10, synthèses class 11. The CI-SIS
# derives classCode from typeCode with its table ASS_X04; a type whose class is not
# listed here is refused by the policy rather than sent with a guessed class.
CLASS_SYSTEM: Final = "1.2.250.1.213.1.1.4.1"
CLASS_CODES: Final[Mapping[str, Code]] = MappingProxyType(
    {
        "11488-4": Code("10", CLASS_SYSTEM, "Compte rendu"),
        "11506-3": Code("10", CLASS_SYSTEM, "Compte rendu"),
        "85208-7": Code("10", CLASS_SYSTEM, "Compte rendu"),
        "34133-9": Code("11", CLASS_SYSTEM, "Synthèse"),
    }
)

DEFAULT_TYPE_CODES: Final[Mapping[str, str | None]] = MappingProxyType(
    {
        # Two professionals about a patient: the closest J07 type for a record of a
        # clinical exchange, classed "Compte rendu" by receivers.
        "direct": CONSULTATION_NOTE,
        # The team around a home patient: mostly nurses' and physiotherapists' follow-up
        # with the doctor's answers, which is what 11506-3 names.
        "care_team": NURSING_FOLLOW_UP,
        # The exchange around a téléexpertise (request, clarifications): a record of the
        # consultation; the compte rendu itself is its own 85208-7 document, so the
        # transcript must not take that type and be mistaken for it.
        "teleexpertise": CONSULTATION_NOTE,
    }
)

# Why, in one line each, for docs and the operator's view.
REASONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "direct": "échange entre deux professionnels sur un patient : fiche de consultation",
        "care_team": "suivi à domicile par l'équipe de soins : fiche de suivi de soins",
        "teleexpertise": "échanges de la téléexpertise ; le compte rendu garde 85208-7",
    }
)


@dataclass(frozen=True, slots=True)
class TypeChoice:
    """The transcript's type code (None: no CDA) and the reason, in French."""

    code: Code | None
    reason: str


@dataclass(frozen=True, slots=True)
class TypeCodePolicy:
    """Per room kind, the J07 type code of the transcript or None (no CDA). Kinds not
    listed take ``DEFAULT_TYPE_CODES``. Codes are checked against J07 when the policy
    is made, so a wrong configuration fails at start, not at the first archive."""

    by_kind: Mapping[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind, code in self.by_kind.items():
            if kind not in ROOM_KINDS:
                raise ArchiveError(
                    "bad_room_kind",
                    f"Type code policy: unknown room kind {kind!r}.",
                    f"Politique des types : type de salon inconnu {kind!r}.",
                )
            if code is None:
                continue
            if code == REPORT_TYPE_CODE:
                raise ArchiveError(
                    "reserved_type_code",
                    "85208-7 is the téléexpertise report's type, not a transcript's.",
                    "85208-7 est le type du compte rendu de téléexpertise, pas d'une "
                    "transcription.",
                )
            try:
                codes.document_type(code)
            except DocumentError as error:
                raise ArchiveError(error.code, error.message, error.message_fr) from None
            if code not in CLASS_CODES:
                raise ArchiveError(
                    "unknown_class_code",
                    f"No XDS classCode is known here for type {code}.",
                    f"Aucune classCode XDS n'est connue ici pour le type {code}.",
                )

    def type_code(self, room_kind: str) -> str | None:
        if room_kind in self.by_kind:
            return self.by_kind[room_kind]
        return DEFAULT_TYPE_CODES.get(room_kind, CONSULTATION_NOTE)

    def choose(self, content: ArchiveContent) -> TypeChoice:
        """The type of ``content``'s transcript: none without a patient, else the
        room kind's."""
        if content.patient is None:
            return TypeChoice(None, "pas de patient dans le salon : pas de document CDA")
        if not content.messages:
            return TypeChoice(None, "aucun message lisible : pas d'auteur pour un CDA")
        code = self.type_code(content.room_kind)
        if code is None:
            return TypeChoice(None, f"aucun type choisi pour les salons {content.room_kind}")
        reason = (
            REASONS.get(content.room_kind, "type par défaut")
            if content.room_kind not in self.by_kind
            else "choix de l'organisation"
        )
        return TypeChoice(codes.document_type(code), reason)


def class_code(type_code: str) -> Code:
    """The XDS classCode of a type code (``CLASS_CODES``)."""
    found = CLASS_CODES.get(type_code)
    if found is None:
        raise ArchiveError(
            "unknown_class_code",
            f"No XDS classCode is known here for type {type_code}.",
            f"Aucune classCode XDS n'est connue ici pour le type {type_code}.",
        )
    return found


DEFAULT_POLICY: Final = TypeCodePolicy()
