"""Receipts read back from the archiver's mailbox: MDNs and bounces.

An archive mail asks for an MDN (``Disposition-Notification-To``). The receiving system
answers with a ``multipart/report; report-type=disposition-notification`` (RFC 8098):
``processed`` when it integrated the documents, ``processed/Error: <code>^<label>…`` with
an MSSanté error code (900-906) when it could not. A mail that could not be delivered at
all comes back from the operator as a ``multipart/report; report-type=delivery-status``
(RFC 3464). A receiving system asked for no MDN, or one that does not send them,
reports an integration failure with an ordinary mail whose subject starts
``[Erreur d'intégration !][<code>]``, the original mail attached. :func:`parse_receipt`
turns any of them into a :class:`Receipt` tied to the archive's ``Message-ID``; any other
mail gives ``None``. See docs/archive.md, "Receipts".

Nothing from the mail's subject or returned content is kept (the subject of an MSSanté
mail names the patient): only the report fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser, HeaderParser
from typing import Literal

# Receipts are small; MSSanté MDNs re-attach the archive after the report, which is not
# needed: the report parts come first, so a prefix of this size always holds them.
MAX_RECEIPT_BYTES = 2 * 1024 * 1024
MAX_TEXT_CHARS = 300

# The receiving systems' error codes (ANS, CDA document transmission by secure mail,
# table applicationErrorCondition): English, French.
MSSANTE_ERRORS: dict[int, tuple[str, str]] = {
    900: (
        "wrong version of the document to replace or delete",
        "version erronée du document à remplacer ou supprimer",
    ),
    901: (
        "author not allowed to replace or delete the document",
        "auteur non autorisé à remplacer ou supprimer le document",
    ),
    902: ("unknown patient", "patient inconnu"),
    903: ("INS absent from the CDA document", "INS absent du document CDA"),
    904: (
        "INS present but its traits or matricule differ from the receiver's",
        "INS présent mais traits ou matricule différents de ceux du destinataire",
    ),
    905: ("INS incomplete (identity traits missing)", "INS incomplet (traits d'identité absents)"),
    906: ("other integration error", "autre erreur d'intégration"),
}

Kind = Literal["mdn", "dsn", "error_mail"]
Outcome = Literal["integrated", "rejected", "failed"]


@dataclass(frozen=True)
class Receipt:
    """What came back for the mail ``original_message_id``.

    ``outcome``: ``integrated`` (MDN without error), ``rejected`` (MDN with an error or a
    ``deleted`` disposition, or an ``[Erreur d'intégration !]`` mail), ``failed`` (a
    bounce: not delivered). ``code``: the MSSanté error code (900-906) of a rejection.
    ``status``: the MDN's disposition (``processed/error``), the bounce's status
    (``5.1.1``) or ``error_mail``. ``text``: the receiver's
    error label or the bounce's diagnostic.
    """

    original_message_id: str
    kind: Kind
    outcome: Outcome
    code: int | None
    status: str
    text: str


def parse_receipt(raw: bytes) -> Receipt | None:
    """The receipt carried by ``raw`` (one RFC 5322 message), or ``None`` when it is not
    an MDN or a failed-delivery DSN. Only the first :data:`MAX_RECEIPT_BYTES` are read."""
    message = message_from_bytes(raw[:MAX_RECEIPT_BYTES], policy=policy.compat32)
    if message.get_content_type() != "multipart/report":
        return _error_mail(message)
    report_type = str(message.get_param("report-type") or "").lower()
    payload = message.get_payload()
    if not isinstance(payload, list):
        return None
    parts = [part for part in payload if isinstance(part, Message)]
    if report_type == "disposition-notification":
        return _mdn(parts)
    if report_type == "delivery-status":
        return _dsn(parts)
    return None


# --- MDN (RFC 8098) ------------------------------------------------------------------

_DISPOSITION = re.compile(
    r"^\s*(?P<mode>[\w-]+/[\w-]+)\s*;\s*(?P<type>[A-Za-z-]+)"
    r"(?:\s*/\s*(?P<modifiers>.*))?$",
    re.DOTALL,
)
_ERROR = re.compile(r"error\s*:?\s*(?P<value>.*)", re.IGNORECASE | re.DOTALL)


def _mdn(parts: list[Message]) -> Receipt | None:
    block = _report_fields(parts, "message/disposition-notification")
    if block is None:
        return None
    fields = _fields(block)
    original = _message_id(fields.get("original-message-id"))
    match = _DISPOSITION.match(fields.get("disposition", ""))
    if not original or match is None:
        return None
    disposition = match["type"].lower()
    modifiers = _unfold(match["modifiers"] or "")
    code: int | None = None
    label = ""
    error = _ERROR.match(modifiers)
    if error:
        # "Error: 902^Identifiant de patient inconnu^messageErrorCondition| E^Error^…"
        components = error["value"].split("^")
        if components and components[0].strip().isdigit():
            code = int(components[0].strip())
            label = components[1].strip() if len(components) > 1 else ""
        else:
            label = error["value"].strip()
    elif fields.get("error"):  # RFC 3798's separate field
        label = fields["error"]
    failed_type = disposition == "failed"  # RFC 3798; RFC 8098 folds it into "error"
    outcome: Outcome
    if failed_type:
        outcome = "failed"
    elif error or fields.get("error") or disposition == "deleted":
        outcome = "rejected"
    else:
        outcome = "integrated"
    if code is not None and not label and code in MSSANTE_ERRORS:
        label = MSSANTE_ERRORS[code][1]
    status = disposition + ("/error" if error else "")
    return Receipt(
        original_message_id=original,
        kind="mdn",
        outcome=outcome,
        code=code,
        status=status,
        text=label[:MAX_TEXT_CHARS],
    )


# --- DSN (RFC 3464) -------------------------------------------------------------------


def _dsn(parts: list[Message]) -> Receipt | None:
    status_part = next(
        (part for part in parts if part.get_content_type() == "message/delivery-status"), None
    )
    if status_part is None:
        return None
    # The email package reads a delivery-status body as a list of field blocks: the
    # per-message block, then one per recipient.
    payload = status_part.get_payload()
    if not isinstance(payload, list):
        return None
    blocks = [block for block in payload if isinstance(block, Message)]
    recipients = [_fields(block) for block in blocks[1:]]
    failed = [fields for fields in recipients if fields.get("action", "").lower() == "failed"]
    if not failed:
        return None  # delayed, delivered, relayed: not a final outcome
    original = _returned_message_id(parts)
    if not original:
        return None
    first = failed[0]
    status = first.get("status", "")
    diagnostic = first.get("diagnostic-code", "")
    diagnostic = diagnostic.split(";", 1)[1].strip() if ";" in diagnostic else diagnostic
    return Receipt(
        original_message_id=original,
        kind="dsn",
        outcome="failed",
        code=None,
        status=status,
        text=diagnostic[:MAX_TEXT_CHARS],
    )


def _returned_message_id(parts: list[Message]) -> str | None:
    """The Message-ID of the returned mail: a ``message/rfc822`` part (the whole mail) or
    ``text/rfc822-headers`` (its headers only)."""
    for part in parts:
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return _message_id(_fields(payload[0]).get("message-id"))
        if kind == "text/rfc822-headers":
            body = part.get_payload(decode=True)
            if isinstance(body, bytes):
                headers = BytesHeaderParser().parsebytes(body)
                return _message_id(_fields(headers).get("message-id"))
    return None


# --- "[Erreur d'intégration !][<code>]" mails ----------------------------------------

# The subject's prefix (ANS, CDA documents by secure mail, "structure des messages"),
# with a typographic apostrophe or spaces tolerated.
_ERROR_SUBJECT = re.compile(
    r"^\s*\[\s*erreur d['\u2019]\s*int[ée]gration\s*!?\s*\]\s*\[\s*(?P<code>\d{3})\s*\]",
    re.IGNORECASE,
)


def _error_mail(message: Message) -> Receipt | None:
    """An ordinary mail saying the receiver could not integrate the archive (no MDN was
    asked for): the code from the subject, the archive from the attached original
    mail, or else from ``In-Reply-To``. Only the code is kept: the rest of the subject
    names the patient."""
    match = _ERROR_SUBJECT.match(_subject(message))
    if match is None:
        return None
    payload = message.get_payload()
    parts = (
        [part for part in payload if isinstance(part, Message)] if isinstance(payload, list) else []
    )
    original = _returned_message_id(parts) or _message_id(
        _unfold(str(message.get("In-Reply-To", ""))) or None
    )
    if not original:
        return None
    code = int(match["code"])
    label = MSSANTE_ERRORS[code][1] if code in MSSANTE_ERRORS else ""
    return Receipt(
        original_message_id=original,
        kind="error_mail",
        outcome="rejected",
        code=code,
        status="error_mail",
        text=label,
    )


def _subject(message: Message) -> str:
    raw = message.get("Subject")
    if raw is None:
        return ""
    try:
        return _unfold(str(make_header(decode_header(str(raw)))))
    except (LookupError, UnicodeError, ValueError):
        return _unfold(str(raw))


# --- Shared -------------------------------------------------------------------------


def _report_fields(parts: list[Message], content_type: str) -> Message | None:
    """The report part's fields, whether the parser read them as an embedded message or
    left them as text."""
    for part in parts:
        if part.get_content_type() != content_type:
            continue
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return payload[0]
        if isinstance(payload, str):
            return HeaderParser().parsestr(payload)
    return None


def _fields(block: Message) -> dict[str, str]:
    """A block's fields by lower-case name (the first of each), unfolded, as text."""
    fields: dict[str, str] = {}
    for name, value in block.raw_items():
        fields.setdefault(name.lower(), _unfold(str(value)))
    return fields


def _message_id(value: str | None) -> str | None:
    if value is None:
        return None
    match = re.search(r"<[^<>\s]{1,990}>", value)
    return match.group(0) if match else None


def _unfold(value: str) -> str:
    """One line; 8-bit bytes (kept by the parser as surrogate escapes) read as UTF-8."""
    text = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return " ".join(text.split())
