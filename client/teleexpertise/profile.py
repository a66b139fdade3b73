"""The patient of a room: the content of a room's encrypted profile (docs/protocol.md
§12.6).

Care-team and téléexpertise rooms carry a profile — a title, the patient (a
``PatientIdentity``: the matricule INS only for a qualified identity), optional notes —
as encrypted room state that every member device and the room's archiver receive, that
admins edit and that is versioned; the server stores only ciphertext. The mechanism
belongs to the SDK session (``set_room_profile`` / ``room_profile``); this module
defines and checks what it carries, so a malformed profile is refused before it is sent
and when it is read.

Profile content (canonical JSON)::

    {"v": 1, "type": "room_profile", "title": "Mme PAT-TROIS — plaie talon",
     "patient": {…patient_identity…}, "notes": "…"}

``patient`` and ``notes`` are optional (absent, never null).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from client.teleexpertise.errors import TeleexpertiseError, invalid
from documents.errors import DocumentError
from documents.ins import PatientIdentity

PROFILE_TYPE = "room_profile"
PROFILE_VERSION = 1
MAX_TITLE = 200
MAX_NOTES = 4000


@dataclass(frozen=True, slots=True)
class RoomProfileContent:
    title: str
    patient: PatientIdentity | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.title, str) or not self.title.strip():
            raise invalid("title", "a title is required.", "un titre est obligatoire.")
        if len(self.title) > MAX_TITLE:
            raise invalid(
                "title", f"at most {MAX_TITLE} characters.", f"au plus {MAX_TITLE} caractères."
            )
        if not isinstance(self.notes, str) or len(self.notes) > MAX_NOTES:
            raise invalid(
                "notes", f"at most {MAX_NOTES} characters.", f"au plus {MAX_NOTES} caractères."
            )
        if self.patient is not None and not isinstance(self.patient, PatientIdentity):
            raise invalid("patient", "a patient identity.", "une identité de patient.")

    def to_dict(self) -> dict[str, Any]:
        value: dict[str, Any] = {"v": PROFILE_VERSION, "type": PROFILE_TYPE, "title": self.title}
        if self.patient is not None:
            value["patient"] = self.patient.to_dict()
        if self.notes:
            value["notes"] = self.notes
        return value

    @classmethod
    def from_dict(cls, value: object) -> RoomProfileContent:
        """Read a profile content; ``bad_profile`` when it does not follow §12.6."""
        try:
            if not isinstance(value, dict):
                raise invalid("profile", "an object.", "un objet.")
            known = {"v", "type", "title", "patient", "notes"}
            if set(value) - known or value.get("v") != PROFILE_VERSION:
                raise invalid(
                    "profile", "unknown version or fields.", "version ou champs inconnus."
                )
            if value.get("type") != PROFILE_TYPE:
                raise invalid("profile", "not a room profile.", "pas un profil de salon.")
            patient, title = value.get("patient"), value.get("title")
            if not isinstance(title, str):
                raise invalid("title", "a title is required.", "un titre est obligatoire.")
            return cls(
                title=title,
                patient=PatientIdentity.from_dict(patient) if patient is not None else None,
                notes=value.get("notes", ""),
            )
        except (TeleexpertiseError, DocumentError) as error:
            raise TeleexpertiseError(
                "bad_profile",
                f"The room profile is malformed and is not shown ({error}).",
                "Le profil du salon est mal formé et n'est pas affiché.",
            ) from None


class ProfileSession(Protocol):
    """What the SDK session offers for room profiles."""

    async def set_room_profile(self, room_id: int, profile: dict[str, Any]) -> Any: ...

    def room_profile(self, room_id: int) -> Any: ...


@dataclass(frozen=True, slots=True)
class VersionedProfile:
    version: int
    content: RoomProfileContent


async def set_profile(session: ProfileSession, room_id: int, profile: RoomProfileContent) -> None:
    """Publish ``profile`` as the room's next profile version (admins only)."""
    await session.set_room_profile(room_id, profile.to_dict())


def profile_of(session: ProfileSession, room_id: int) -> VersionedProfile | None:
    """The room's newest profile this device holds, checked; None if it has none."""
    found = session.room_profile(room_id)
    if found is None:
        return None
    return VersionedProfile(
        version=int(found.version), content=RoomProfileContent.from_dict(found.content)
    )
