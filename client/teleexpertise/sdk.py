"""``TeleexpertiseClient``: every step of a téléexpertise from one device, end to end
encrypted (docs/teleexpertise.md; the protocol is docs/protocol.md §12).

It is composed around an SDK session (``RelaisClient``), which it uses to encrypt
(``seal``), to upload files and to call the REST API; it keeps its cases in the
session's encrypted key store. Each step is checked on the device first (the same
lifecycle table as the server, the consent, the patient's identity rules, the requis'
profession, the yearly billing limit) so that a refused step sends nothing; then the
step and its encrypted event go to the server in one call.

    te = TeleexpertiseClient(session, account_key=session.account_key)
    sent = await te.request(requis="810001987659", patient=patient, reason="Plaie",
                            question="Avis sur la cicatrisation ?", consent=consent,
                            deadline=in_48_hours, files=[Path("plaie.jpg")])
    # on the requis' device, for each decrypted message:
    received = await te.receive(message)      # a verified event, or None
    await te.accept(room_id)
    await te.report(room_id, "Plaie propre, poursuivre les soins.")
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from client.api import ApiError
from client.attachments.descriptor import AttachmentDescriptor
from client.attachments.errors import AttachmentError
from client.events import Message, SecurityAlert
from client.teleexpertise.acts import BillingBook, BillingCheck
from client.teleexpertise.billing import AccountKey, LedgerEntry
from client.teleexpertise.cases import Case, CaseBook, room_facts
from client.teleexpertise.consent import Consent
from client.teleexpertise.contents import (
    Accept,
    Cancel,
    ClarificationAnswer,
    ClarificationRequest,
    Close,
    Decline,
    Report,
    Request,
    TeleexpertiseEvent,
    Urgency,
    is_event,
)
from client.teleexpertise.errors import ConsentRefusedError, TeleexpertiseError
from client.teleexpertise.fhir import service_request_bundle
from client.teleexpertise.people import Professionals, server_refusal
from client.teleexpertise.profile import MAX_TITLE, RoomProfileContent, set_profile
from client.teleexpertise.report import (
    DEFAULT_FACILITY_TYPE,
    Documents,
    report_documents,
    request_documents,
)
from client.teleexpertise.tariffs import ActCode, TariffTable, Zone, zone_of_postcode
from client.teleexpertise.uploads import FileSource, custodian_of, upload, withdraw
from documents.cda import Organisation
from documents.ins import PatientIdentity
from e2ee.encoding import b64u
from teleexpertise.workflow import Action, Role, State

if TYPE_CHECKING:
    from client.session import RelaisClient


@dataclass(frozen=True, slots=True)
class SentStep:
    room_id: int
    seq: int
    message_id: str
    state: State
    event: TeleexpertiseEvent
    billing: BillingCheck | None = None
    documents: Documents | None = None


@dataclass(frozen=True, slots=True)
class Received:
    """A verified event from the other side, with the case after it."""

    room_id: int
    seq: int
    sender: str
    event: TeleexpertiseEvent
    case: Case
    act: LedgerEntry | None = None  # recorded on arrival of the report (requérant)


@dataclass(frozen=True, slots=True)
class StateChange:
    """A ``teleexpertise`` frame: the server recorded a step (or reminds)."""

    room_id: int
    action: str
    state: State
    deadline: datetime
    seq: int | None


def _utc_now() -> datetime:
    return datetime.now(UTC)


class TeleexpertiseClient:
    def __init__(
        self,
        session: RelaisClient,
        *,
        account_key: AccountKey | None = None,
        tariffs: TariffTable | None = None,
        zone: Zone | None = None,
        organisation: Organisation | None = None,
        facility_type: str = DEFAULT_FACILITY_TYPE,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.session = session
        self.account_key: AccountKey = account_key or session.account_key
        self.tariffs = tariffs or TariffTable.load()
        self.zone = zone
        self.organisation = organisation
        self.facility_type = facility_type
        self.clock = clock
        data = session.store.data
        self.cases = CaseBook(data.setdefault("teleexpertise", {}), me=session.national_id)
        self._refusals: list[dict[str, Any]] = data.setdefault("consent_refusals", [])
        self.people = Professionals(session.api)
        self._book: BillingBook | None = None

    # Billing --------------------------------------------------------------------------

    async def billing(self) -> BillingBook:
        if self._book is None:
            zone = self.zone
            if zone is None:
                entry = await self.people.entry(self.session.national_id)
                zone = zone_of_postcode(str(entry.get("postcode") or ""))
            self._book = BillingBook(
                api=self.session.api,
                national_id=self.session.national_id,
                account_key=self.account_key,
                tariffs=self.tariffs,
                zone=zone,
            )
        return self._book

    def _today(self) -> date:
        return self.clock().astimezone().date()

    # Consent --------------------------------------------------------------------------

    @property
    def refusals(self) -> list[dict[str, Any]]:
        """Consent refusals recorded on this device (patient, attestation, when)."""
        return list(self._refusals)

    def _record_refusal(self, patient: PatientIdentity, consent: Consent, requis: str) -> None:
        self._refusals.append(
            {
                "patient": patient.to_dict(),
                "consent": consent.to_dict(),
                "requis": requis,
                "recorded_at": self.clock().isoformat(timespec="seconds"),
            }
        )
        self.session.save()

    # Sending a step -------------------------------------------------------------------

    async def custodian(self, room_id: int) -> Organisation:
        """The structure that keeps the documents (``uploads.custodian_of``)."""
        return await custodian_of(self.session, room_id, configured=self.organisation)

    async def _send(
        self,
        *,
        room_id: int,
        event: TeleexpertiseEvent,
        path: str,
        body: dict[str, Any],
        message_id: str,
        uploaded: Sequence[AttachmentDescriptor] = (),
    ) -> tuple[int, State]:
        """Seal the event, send it with its step, record it in the case."""
        try:
            event.check_size()
            envelope = await self.session.seal(room_id, event.to_content())
            answer = await self.session.api.call(
                "POST", path, json={**body, "id": message_id, "body": b64u(envelope)}
            )
        except ApiError as error:
            await withdraw(self.session, uploaded)
            raise server_refusal(error) from None
        except BaseException:
            await withdraw(self.session, uploaded)
            raise
        seq = int(answer["step"]["seq"])
        self.cases.accept(
            room=room_facts(self.session.rooms[room_id]),
            seq=seq,
            sender=self.session.national_id,
            content=event.to_content(),
        )
        self.session.save()
        return seq, State(answer["teleexpertise"]["state"])

    async def request(
        self,
        *,
        requis: str,
        patient: PatientIdentity,
        reason: str,
        question: str,
        consent: Consent,
        deadline: datetime,
        clinical_data: str = "",
        urgency: Urgency = Urgency.ROUTINE,
        files: Sequence[FileSource] = (),
        room_id: int | None = None,
        archiver: str | None = None,
        acknowledge_billing_limit: bool = False,
    ) -> SentStep:
        """Ask ``requis`` for a téléexpertise about ``patient``.

        Refused on the device, with nothing sent: a refused consent
        (``ConsentRefusedError``, and the refusal is recorded here), a requis who is not a
        médecin, sage-femme or chirurgien-dentiste, a deadline in the past, and — unless
        ``acknowledge_billing_limit`` — a 5th RQD this year for this patient
        (``BillingLimitError``). ``room_id``: an empty téléexpertise room with the requis;
        by default one is created (with the archiver of organisation ``archiver``).
        """
        if not consent.given:
            self._record_refusal(patient, consent, requis)
            english, french = consent.describe()
            raise ConsentRefusedError(
                "consent_refused",
                f"{english}: the request is not sent (refusal recorded).",
                f"{french} : la demande n'est pas envoyée (refus enregistré).",
            )
        now = self.clock()
        if deadline.tzinfo is None or deadline <= now:
            raise TeleexpertiseError(
                "bad_field",
                "deadline: a future date and time with its offset.",
                "deadline : une date et heure futures avec fuseau.",
            )
        requis_card = await self.people.requis(requis)
        me = await self.people.professional(self.session.national_id)
        book = await self.billing()
        check = await book.check(patient=patient, code=ActCode.RQD, day=self._today())
        if check.over_limit and not acknowledge_billing_limit:
            raise check.warning()
        if room_id is None:
            room_id = await self.session.create_room(
                kind="teleexpertise", members=[requis], archiver=archiver
            )
            await self._set_profile(room_id, reason=reason, patient=patient)
        message_id = str(uuid.uuid4())
        uploaded = await upload(self.session, room_id, message_id, files)
        event = Request(
            requerant=me,
            requis=requis_card,
            patient=patient,
            reason=reason,
            question=question,
            consent=consent,
            deadline=deadline,
            requested_at=now,
            urgency=urgency,
            clinical_data=clinical_data,
            attachments=tuple(uploaded),
        )
        try:
            event = await self._with_documents(room_id, message_id, event)
        except BaseException:
            await withdraw(self.session, uploaded)
            raise
        uploaded += event.documents
        seq, state = await self._send(
            room_id=room_id,
            event=event,
            path="teleexpertise",
            body={
                "room": room_id,
                "requis": requis,
                "deadline": deadline.isoformat(),
            },
            message_id=message_id,
            uploaded=uploaded,
        )
        return SentStep(room_id, seq, message_id, state, event, billing=check)

    async def _set_profile(self, room_id: int, *, reason: str, patient: PatientIdentity) -> None:
        """Give a new téléexpertise room its encrypted profile (title, patient), so every
        device of the room and its archiver show the patient (protocol §12.6)."""
        title = f"Téléexpertise : {reason}"[:MAX_TITLE]
        await set_profile(self.session, room_id, RoomProfileContent(title=title, patient=patient))

    async def _with_documents(self, room_id: int, message_id: str, event: Request) -> Request:
        """The request with its PDF and CDA 75496-0 when a structure keeps them (the
        room's archiver, or the configured structure); as it is otherwise."""
        try:
            keeper = await self.custodian(room_id)
        except TeleexpertiseError:
            return event
        documents = await asyncio.to_thread(
            request_documents, request=event, custodian=keeper, facility_type=self.facility_type
        )
        uploaded = await upload(self.session, room_id, message_id, [documents])
        return dataclasses.replace(event, documents=tuple(uploaded))

    def _check_mine(self, case: Case, event: TeleexpertiseEvent) -> None:
        """The lifecycle table, for this device's own step (nothing sent if refused)."""
        case.check(event, sender=self.session.national_id)

    async def _step(
        self,
        room_id: int,
        event: TeleexpertiseEvent,
        *,
        uploaded: Sequence[AttachmentDescriptor] = (),
        extra: dict[str, Any] | None = None,
        message_id: str | None = None,
    ) -> SentStep:
        case = self.cases.require(room_id)
        self._check_mine(case, event)
        message_id = message_id or str(uuid.uuid4())
        seq, state = await self._send(
            room_id=room_id,
            event=event,
            path=f"teleexpertise/{room_id}/steps",
            body={"action": event.action.value, **(extra or {})},
            message_id=message_id,
            uploaded=uploaded,
        )
        return SentStep(room_id, seq, message_id, state, event)

    async def accept(
        self,
        room_id: int,
        *,
        deadline: datetime | None = None,
        note: str = "",
        acknowledge_billing_limit: bool = False,
    ) -> SentStep:
        """Accept (the requis). A 5th TE2 this year for this patient is flagged
        (``BillingLimitError``) unless ``acknowledge_billing_limit``."""
        case = self.cases.require(room_id)
        event = Accept(deadline=deadline, note=note)
        self._check_mine(case, event)
        book = await self.billing()
        check = await book.check(patient=case.request.patient, code=ActCode.TE2, day=self._today())
        if check.over_limit and not acknowledge_billing_limit:
            raise check.warning()
        extra = {"deadline": deadline.isoformat()} if deadline is not None else None
        sent = await self._step(room_id, event, extra=extra)
        return SentStep(sent.room_id, sent.seq, sent.message_id, sent.state, event, billing=check)

    async def decline(self, room_id: int, reason: str) -> SentStep:
        return await self._step(room_id, Decline(reason=reason))

    async def ask(self, room_id: int, question: str) -> SentStep:
        """A clarification question (the requis); its id is ``event.question_id``."""
        event = ClarificationRequest(
            question_id=str(uuid.uuid4()), question=question, asked_at=self.clock()
        )
        return await self._step(room_id, event)

    async def answer(
        self, room_id: int, question_id: str, answer: str, *, files: Sequence[FileSource] = ()
    ) -> SentStep:
        """Answer a clarification question (the requérant), with files if needed."""
        case = self.cases.require(room_id)
        probe = ClarificationAnswer(
            question_id=question_id, answer=answer, answered_at=self.clock()
        )
        self._check_mine(case, probe)
        message_id = str(uuid.uuid4())
        uploaded = await upload(self.session, room_id, message_id, files)
        event = ClarificationAnswer(
            question_id=question_id,
            answer=answer,
            answered_at=probe.answered_at,
            attachments=tuple(uploaded),
        )
        return await self._step(room_id, event, uploaded=uploaded, message_id=message_id)

    async def report(self, room_id: int, answer: str) -> SentStep:
        """Send the answer (the requis): the compte rendu as PDF and CDA 85208-7, as
        encrypted attachments of the report event; then record the TE2 act."""
        case = self.cases.require(room_id)
        reported_at = self.clock()
        self._check_mine(case, Report(answer=answer, reported_at=reported_at))
        documents = await asyncio.to_thread(
            report_documents,
            case=case,
            answer=answer,
            reported_at=reported_at,
            custodian=await self.custodian(room_id),
            facility_type=self.facility_type,
        )
        message_id = str(uuid.uuid4())
        uploaded = await upload(self.session, room_id, message_id, [documents])
        event = Report(answer=answer, reported_at=reported_at, documents=tuple(uploaded))
        sent = await self._step(room_id, event, uploaded=uploaded, message_id=message_id)
        await self.record_act(room_id)
        return SentStep(
            sent.room_id, sent.seq, sent.message_id, sent.state, event, documents=documents
        )

    async def close(self, room_id: int, note: str = "") -> SentStep:
        return await self._step(room_id, Close(note=note))

    async def cancel(self, room_id: int, reason: str = "") -> SentStep:
        return await self._step(room_id, Cancel(reason=reason))

    async def record_act(self, room_id: int) -> LedgerEntry | None:
        """Record this practitioner's act (RQD or TE2) once the report exists; None if
        already recorded by this device."""
        case = self.cases.require(room_id)
        report = case.report
        if report is None or case.billed:
            return None
        request = case.request
        book = await self.billing()
        entry = await book.record(
            room_id=room_id,
            code=ActCode.RQD if case.role is Role.REQUERANT else ActCode.TE2,
            day=report.reported_at.astimezone().date(),
            patient=request.patient,
            requerant=request.requerant.national_id,
            requis=request.requis.national_id,
        )
        case.billed = True
        self.cases.save(case)
        self.session.save()
        return entry

    # Receiving ------------------------------------------------------------------------

    async def receive(self, message: Message) -> Received | None:
        """Verify a decrypted message that carries a téléexpertise event and update its
        case; None for other messages, events already seen, and refused events (those
        raise a SecurityAlert on the session with the reason). The requérant's act is
        recorded when the report arrives."""
        if not is_event(message.content):
            return None
        room = self.session.rooms.get(message.room)
        if room is None:
            return None
        try:
            event = self.cases.accept(
                room=room_facts(room),
                seq=message.seq,
                sender=message.sender[0],
                content=message.content,
            )
        except TeleexpertiseError as error:
            await self.session.alerts.put(
                SecurityAlert(kind=error.code, room=message.room, detail=error.message)
            )
            return None
        self.session.save()
        if event is None:
            return None
        case = self.cases.require(message.room)
        act = None
        if isinstance(event, Report) and case.party is Role.REQUERANT:
            act = await self.record_act(message.room)
        return Received(message.room, message.seq, message.sender[0], event, case, act)

    def on_frame(self, frame: dict[str, Any]) -> StateChange:
        """A ``teleexpertise`` frame from ``session.teleexpertise_frames``; an expiry is
        applied to the case."""
        change = StateChange(
            room_id=int(frame["room"]),
            action=str(frame["action"]),
            state=State(frame["state"]),
            deadline=datetime.fromtimestamp(int(frame["deadline"]) / 1000, UTC),
            seq=frame.get("seq"),
        )
        case = self.cases.get(change.room_id)
        if (
            case is not None
            and change.action == Action.EXPIRE.value
            and case.expire(datetime.fromtimestamp(int(frame["at"]) / 1000, UTC))
        ):
            self.cases.save(case)
            self.session.save()
        return change

    async def status(self, room_id: int) -> dict[str, Any]:
        """The server's lifecycle record (states, steps, deadline)."""
        try:
            answer: dict[str, Any] = await self.session.api.call("GET", f"teleexpertise/{room_id}")
        except ApiError as error:
            raise server_refusal(error) from None
        return answer

    def service_request(self, room_id: int) -> dict[str, Any]:
        """The request as a FHIR transaction Bundle (``fhir.py``), made here."""
        case = self.cases.require(room_id)
        room = self.session.rooms[room_id]
        return service_request_bundle(
            request=case.request, state=case.state or State.REQUESTED, room_uid=room.state.room
        )

    async def request_documents(self, room_id: int) -> Documents:
        """The request as PDF and CDA 75496-0 (on the requérant's device)."""
        case = self.cases.require(room_id)
        return await asyncio.to_thread(
            request_documents,
            request=case.request,
            custodian=await self.custodian(room_id),
            facility_type=self.facility_type,
        )

    async def save_documents(self, room_id: int, folder: Path) -> list[Path]:
        """Download, check and decrypt the report's PDF and CDA into ``folder``."""
        report = self.cases.require(room_id).report
        if report is None:
            raise TeleexpertiseError(
                "no_report", "There is no report yet.", "Il n'y a pas encore de compte rendu."
            )
        try:
            return [await self.session.save_attachment(d, folder) for d in report.documents]
        except AttachmentError as error:
            raise TeleexpertiseError(error.code, error.message, error.message_fr) from None
