"""``python -m client teleexpertise``: a téléexpertise from a terminal.

Each terminal is one device of one practitioner (development login, keys certified in
the log, an encrypted key store). Commands, typed at the prompt:

  /request --to ID --patient FILE.json --consent oral[:YYYY-MM-DD] --reason TEXT
           --question TEXT [--photo PATH]... [--clinical TEXT] [--within 48h]
           [--urgent] [--force]            the requérant asks (the patient's identity
                                           in FILE: PatientIdentity fields, JSON)
  /accept  /decline REASON  /ask QUESTION  /report ANSWER        the requis
  /answer TEXT [--photo PATH]...  /cancel [REASON]                 the requérant
  /close  /status  /list  /open ROOM  /acts  /export FROM TO FILE.csv  /fhir FILE.json
  /quit

Commands act on the current téléexpertise (the last one sent or received; ``/open``
chooses another). What arrives is shown as it comes: requests (patient, reason,
question, files saved in ``--save-to``), clarifications, the report (its PDF and CDA
saved there too) and every state change. Refusals are printed in English and French.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from client.api import ApiError
from client.attachments import AttachmentError
from client.cli_errors import CliError
from client.cli_files import printable
from client.cli_session import Options, connected, new_client
from client.events import SecurityError
from client.session import RelaisClient
from client.teleexpertise.consent import Consent, ConsentDecision, ConsentMethod
from client.teleexpertise.contents import (
    Accept,
    Cancel,
    ClarificationAnswer,
    ClarificationRequest,
    Close,
    Decline,
    Report,
    Request,
    Urgency,
)
from client.teleexpertise.errors import BillingLimitError, TeleexpertiseError
from client.teleexpertise.sdk import Received, TeleexpertiseClient
from documents.cda import Organisation
from documents.errors import DocumentError
from documents.ins import PatientIdentity
from teleexpertise.conf import parse_duration

Output = Callable[[str], None]


def _out(line: str) -> None:
    print(line, flush=True)


class CommandError(Exception):
    """A malformed command line (shown with its usage)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # never exit the terminal on a typo
        raise CommandError(message)


def _request_parser() -> _Parser:
    parser = _Parser(prog="/request", add_help=False)
    parser.add_argument("--to", required=True)
    parser.add_argument("--patient", required=True, type=Path)
    parser.add_argument("--consent", required=True)
    parser.add_argument("--reason", required=True)
    parser.add_argument("--question", required=True)
    parser.add_argument("--photo", action="append", default=[], type=Path)
    parser.add_argument("--clinical", default="")
    parser.add_argument("--within", default="48h")
    parser.add_argument("--urgent", action="store_true")
    parser.add_argument("--force", action="store_true")
    return parser


def _words(text: str) -> list[str]:
    """Shell-like words (quotes for paths with spaces); free text with a lone
    apostrophe (``s'aggrave``) is split on spaces instead."""
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def user_path(text: str) -> Path:
    """A path the user typed (``~`` expanded)."""
    return Path(text).expanduser()


def read_patient(path: Path) -> PatientIdentity:
    """A patient identity from a JSON file of ``PatientIdentity`` fields (``v`` and
    ``type`` may be left out)."""
    value = json.loads(path.expanduser().read_text(encoding="utf-8"))
    if isinstance(value, dict):
        value = {"v": 1, "type": "patient_identity", **value}
    return PatientIdentity.from_dict(value)


def read_consent(text: str) -> Consent:
    """``oral``, ``written:2026-03-14``, ``refused:oral``... (given today by default)."""
    parts = text.split(":")
    decision = ConsentDecision.GIVEN
    if parts[0] == "refused":
        decision, parts = ConsentDecision.REFUSED, parts[1:] or ["oral"]
    try:
        method = ConsentMethod(parts[0])
        day = date.fromisoformat(parts[1]) if len(parts) > 1 else date.today()
    except (ValueError, IndexError):
        raise CommandError(
            "--consent: oral, written or electronic, then :YYYY-MM-DD; refused:oral for a refusal"
        ) from None
    return Consent(decision=decision, obtained_on=day, method=method)


def describe_patient(patient: PatientIdentity) -> str:
    ins = (
        f"INS {patient.matricule} (qualifiée)"
        if patient.is_qualified
        else f"identité {patient.status.value} : traits seuls, sans INS"
    )
    born = patient.birth_date.strftime("%d/%m/%Y")
    return f"{patient.display_given_name} {patient.display_family_name}, né(e) le {born}, {ins}"


def refusal(out: Output, error: BaseException) -> None:
    """Why a command failed, in English then French, with its stable code."""
    if isinstance(error, TeleexpertiseError | DocumentError | AttachmentError):
        code, english, french = error.code, error.message, error.message_fr
    elif isinstance(error, ApiError):
        code, english = error.code, error.message
        french = error.message_fr or "refusé par le serveur."
    elif isinstance(error, SecurityError):
        code, english = "security", str(error)
        french = "refusé : la vérification de sécurité a échoué."
    elif isinstance(error, ConnectionError | TimeoutError | httpx.HTTPError):
        code, english = "connection_lost", "the server did not answer; try again."
        french = "le serveur n'a pas répondu ; réessayez."
    elif isinstance(error, OSError):
        code, english = "unreadable_file", f"{error.strerror or error}: {error.filename or ''}"
        french = "fichier illisible ou introuvable."
    else:
        code, english, french = "bad_command", str(error), "commande mal formée."
    out(f"!! refused ({code}): {english}")
    out(f"   refusé : {french}")


@dataclass
class Terminal:
    te: TeleexpertiseClient
    save_to: Path
    out: Output
    current: int | None = None
    archiver: str | None = None  # the organisation whose archiver new rooms include

    @property
    def session(self) -> RelaisClient:
        return self.te.session

    def room(self) -> int:
        if self.current is None:
            raise CommandError("no téléexpertise yet: /request one, or wait for one")
        return self.current

    # What arrives ------------------------------------------------------------------

    async def show(self, received: Received) -> None:
        event, room = received.event, received.room_id
        self.current = room
        stamp = time.strftime("%H:%M")
        who = received.sender
        if isinstance(event, Request):
            self.out(f"[{stamp}] téléexpertise #{room}: request from {event.requerant.display}")
            self.out(f"  patient: {describe_patient(event.patient)}")
            self.out(f"  reason: {printable(event.reason)}")
            self.out(f"  question: {printable(event.question)}")
            if event.clinical_data:
                self.out(f"  clinical data: {printable(event.clinical_data)}")
            self.out(f"  {event.consent.describe()[1]}")
            due = event.deadline.astimezone().strftime("%d/%m %H:%M")
            self.out(f"  answer wished before {due} ({event.urgency.value})")
            for attachment in (*event.attachments, *event.documents):
                saved = await self.session.save_attachment(attachment, self.save_to)
                self.out(f"  saved: {saved}")
            self.out("  /accept, /decline REASON or /ask QUESTION")
        elif isinstance(event, ClarificationRequest):
            self.out(f"[{stamp}] #{room} question from {who}: {printable(event.question)}")
            self.out("  /answer TEXT")
        elif isinstance(event, ClarificationAnswer):
            self.out(f"[{stamp}] #{room} answer from {who}: {printable(event.answer)}")
            for attachment in event.attachments:
                self.out(f"  saved: {await self.session.save_attachment(attachment, self.save_to)}")
        elif isinstance(event, Accept):
            self.out(f"[{stamp}] #{room} accepted by {who}")
        elif isinstance(event, Decline):
            self.out(f"[{stamp}] #{room} declined by {who}: {printable(event.reason)}")
        elif isinstance(event, Report):
            self.out(f"[{stamp}] #{room} report from {who}: {printable(event.answer)}")
            for path in await self.te.save_documents(room, self.save_to):
                self.out(f"  saved: {path}")
            if received.act is not None:
                act = received.act
                money = f"{act.amount_cents / 100:.2f} €" if act.billable else "not billable"
                self.out(f"  act {act.code} recorded: {money}")
        elif isinstance(event, Close):
            self.out(f"[{stamp}] #{room} closed by {who}")
        elif isinstance(event, Cancel):
            self.out(f"[{stamp}] #{room} cancelled by {who}: {printable(event.reason)}")

    async def listen(self) -> None:
        while True:
            message = await self.session.messages.get()
            if message.own:
                continue
            try:
                received = await self.te.receive(message)
                if received is not None:
                    await self.show(received)
            except (TeleexpertiseError, AttachmentError, ApiError, OSError) as error:
                refusal(self.out, error)

    async def frames(self) -> None:
        while True:
            change = self.te.on_frame(await self.session.teleexpertise_frames.get())
            due = change.deadline.astimezone().strftime("%d/%m %H:%M")
            if change.action == "remind":
                self.out(f"[reminder] #{change.room_id}: answer due before {due}")
            else:
                self.out(f"[state] #{change.room_id}: {change.action} → {change.state.value}")

    async def alerts(self) -> None:
        while True:
            alert = await self.session.alerts.get()
            self.out(f"!! {alert.kind}: {alert.detail}")

    # Commands ----------------------------------------------------------------------

    async def request(self, words: list[str], _text: str) -> None:
        args = _request_parser().parse_args(words)
        within = parse_duration(args.within, variable="--within")
        patient = await asyncio.to_thread(read_patient, args.patient)
        sent = await self.te.request(
            requis=args.to,
            patient=patient,
            reason=args.reason,
            question=args.question,
            consent=read_consent(args.consent),
            deadline=datetime.now(UTC) + timedelta(seconds=within),
            clinical_data=args.clinical,
            urgency=Urgency.URGENT if args.urgent else Urgency.ROUTINE,
            files=list(args.photo),
            archiver=self.archiver,
            acknowledge_billing_limit=args.force,
        )
        self.current = sent.room_id
        self.out(f"  request sent: téléexpertise #{sent.room_id} ({sent.state.value})")
        if sent.billing is not None and sent.billing.over_limit:
            self.out("  !! not billable: yearly limit reached / non facturable : limite atteinte")

    async def accept(self, words: list[str], _text: str) -> None:
        await self.te.accept(self.room(), acknowledge_billing_limit="--force" in words)
        self.out(f"  accepted #{self.room()}")

    async def decline(self, _words: list[str], text: str) -> None:
        await self.te.decline(self.room(), text)
        self.out(f"  declined #{self.room()}")

    async def ask(self, _words: list[str], text: str) -> None:
        await self.te.ask(self.room(), text)
        self.out("  question sent")

    async def answer(self, words: list[str], _text: str) -> None:
        case = self.te.cases.require(self.room())
        if not case.open_questions:
            raise CommandError("no open question to answer")
        photos: list[str] = []
        kept: list[str] = []
        for number, word in enumerate(words):
            if word == "--photo":
                continue
            (photos if number and words[number - 1] == "--photo" else kept).append(word)
        question = next(iter(case.open_questions))
        files = [user_path(p) for p in photos]
        await self.te.answer(self.room(), question, " ".join(kept), files=files)
        self.out("  answer sent")

    async def report(self, _words: list[str], text: str) -> None:
        sent = await self.te.report(self.room(), text)
        self.out(f"  report sent (PDF and CDA 85208-7), #{sent.seq}")

    async def close(self, _words: list[str], text: str) -> None:
        await self.te.close(self.room(), text)
        self.out(f"  closed #{self.room()}")

    async def cancel(self, _words: list[str], text: str) -> None:
        await self.te.cancel(self.room(), text)
        self.out(f"  cancelled #{self.room()}")

    async def open(self, _words: list[str], text: str) -> None:
        self.te.cases.require(int(text))
        self.current = int(text)

    async def status(self, _words: list[str], _text: str) -> None:
        status = await self.te.status(self.room())
        self.out(f"  #{status['room']}: {status['state']}, deadline {status['deadline']}")
        for step in status["transitions"]:
            self.out(f"    {step['at'][:16]} {step['action']} → {step['state']}")

    async def cases(self, _words: list[str], _text: str) -> None:
        for room_id, case in sorted(self.te.cases.cases.items()):
            marker = "*" if room_id == self.current else " "
            state = case.state.value if case.state else "?"
            self.out(f" {marker}#{room_id} {state}: {describe_patient(case.request.patient)}")

    async def acts(self, _words: list[str], _text: str) -> None:
        for entry in await (await self.te.billing()).ledger():
            money = f"{entry.amount_cents / 100:.2f} €"
            patient = describe_patient(entry.patient)
            self.out(f"  {entry.day} {entry.code} {money} #{entry.room} {patient}")

    async def export(self, words: list[str], _text: str) -> None:
        if len(words) != 3:
            raise CommandError("usage: /export FROM TO FILE.csv (dates YYYY-MM-DD)")
        start, end = date.fromisoformat(words[0]), date.fromisoformat(words[1])
        csv_text = await (await self.te.billing()).export(start=start, end=end)
        path = user_path(words[2])
        await asyncio.to_thread(path.write_text, csv_text, encoding="utf-8")
        self.out(f"  {csv_text.count(chr(10)) - 1} acts written to {path}")

    async def fhir(self, _words: list[str], text: str) -> None:
        bundle = json.dumps(self.te.service_request(self.room()), ensure_ascii=False, indent=2)
        path = user_path(text)
        await asyncio.to_thread(path.write_text, bundle, encoding="utf-8")
        self.out(f"  FHIR ServiceRequest bundle written to {path}")

    async def run(self, line: str) -> bool:
        """Run one command line; False on /quit."""
        command, _, rest = line.strip().partition(" ")
        if command == "/quit":
            return False
        handlers = {
            "/request": self.request,
            "/accept": self.accept,
            "/decline": self.decline,
            "/ask": self.ask,
            "/answer": self.answer,
            "/report": self.report,
            "/close": self.close,
            "/cancel": self.cancel,
            "/open": self.open,
            "/status": self.status,
            "/list": self.cases,
            "/acts": self.acts,
            "/export": self.export,
            "/fhir": self.fhir,
        }
        handler = handlers.get(command)
        if handler is None:
            raise CommandError(f"unknown command {command}; see the help at the top")
        await handler(_words(rest), rest.strip())
        return True


def read_structure(text: str | None) -> Organisation | None:
    if not text:
        return None
    identifier, _, name = text.partition(":")
    if not identifier or not name:
        raise CliError(
            "--structure : IDNAT_STRUCT:NOM, par exemple 1750000123:Cabinet des Pentes",
            "--structure: IDNAT_STRUCT:NAME, e.g. 1750000123:Cabinet des Pentes",
        )
    return Organisation(national_id=identifier, name=name)


_REFUSED = (
    CommandError,
    BillingLimitError,
    TeleexpertiseError,
    DocumentError,
    AttachmentError,
    ApiError,
    SecurityError,
    ConnectionError,
    TimeoutError,
    OSError,
    ValueError,
    httpx.HTTPError,
)


async def interact(
    session: RelaisClient,
    *,
    save_to: Path,
    archiver: str | None,
    structure: Organisation | None,
    out: Output,
) -> int:
    """The terminal on a connected session: what arrives is shown, lines typed are
    commands; returns at /quit or end of input (the session is closed)."""
    te = TeleexpertiseClient(session, organisation=structure)
    terminal = Terminal(te=te, save_to=save_to, out=out, archiver=archiver)
    tasks: list[asyncio.Task[None]] = []
    try:
        me = await te.people.professional(session.national_id)
        out(f"téléexpertise as {me.display}, end-to-end encrypted; files are saved in {save_to}")
        out("type /request ... (requérant) or wait for a request (requis); /quit leaves")
        tasks = [
            asyncio.create_task(terminal.listen()),
            asyncio.create_task(terminal.frames()),
            asyncio.create_task(terminal.alerts()),
        ]
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            if not line.strip():
                continue
            try:
                if not await terminal.run(line):
                    break
            except _REFUSED as error:
                refusal(out, error)
    finally:
        for task in tasks:
            task.cancel()
        await session.close()
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m client teleexpertise`` beside ``--as``, ``--server``
    and ``--store``."""
    parser.add_argument("--save-to", type=Path, help="folder for received files and reports")
    parser.add_argument(
        "--archiver", help="organisation (org:IDNAT_STRUCT) whose archiver new rooms include"
    )
    parser.add_argument(
        "--structure", help="IDNAT_STRUCT:NAME, the structure that keeps your documents"
    )


async def teleexpertise(options: Options, args: argparse.Namespace) -> int:
    """``python -m client teleexpertise``: the terminal on this practitioner's device."""
    save_to = (args.save_to or options.home / "received" / options.me).expanduser().resolve()
    save_to.mkdir(mode=0o700, parents=True, exist_ok=True)
    structure = read_structure(args.structure)
    client = new_client(options)
    try:
        await connected(client, options)
    except BaseException:
        await client.close()
        raise
    return await interact(
        client, save_to=save_to, archiver=args.archiver, structure=structure, out=options.out
    )
