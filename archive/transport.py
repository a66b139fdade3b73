"""The archiver's mail transport: SMTP out, IMAP in, as an MSSanté operator requires.

Sending: ``EHLO → STARTTLS (TLS 1.2 or later, the client certificate in the handshake,
the server's certificate checked against a configured CA bundle and its host name) →
EHLO → AUTH (when the operator asks for a login) → MAIL FROM → RCPT TO → DATA → QUIT``.
Reading: IMAP with STARTTLS (or implicit TLS), a read-only ``EXAMINE`` of one mailbox and
a bounded ``UID FETCH`` of what came after a known UID. See docs/archive.md, "Transport".

Failures are :class:`TransportError` with a stable code, whether retrying can help
(``permanent``), the server's reply, and a message in English and French. Nothing in an
error comes from the mail itself: only the server's replies and the library's reasons.
"""

from __future__ import annotations

import contextlib
import copy
import imaplib
import os
import re
import smtplib
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.utils import getaddresses
from io import BytesIO
from pathlib import Path
from typing import Any, TypeVar

# A server reply kept in an error or a result: enough for a trace, never a whole page.
MAX_REPLY_CHARS = 500

# (English, French) per code. "Configuration" codes mean the operator must act (a
# certificate, a CA bundle, a password); the message is kept and retried meanwhile.
MESSAGES: dict[str, tuple[str, str]] = {
    "smtp_unreachable": (
        "The mail server cannot be reached; the mail will be sent again later.",
        "Le serveur de messagerie est injoignable ; le courriel sera renvoyé plus tard.",
    ),
    "smtp_timeout": (
        "The mail server did not answer in time; the mail will be sent again later.",
        "Le serveur de messagerie n'a pas répondu à temps ; le courriel sera renvoyé plus tard.",
    ),
    "smtp_temporary": (
        "The mail server refused the mail for now; it will be sent again later.",
        "Le serveur de messagerie refuse le courriel pour l'instant ; il sera renvoyé plus tard.",
    ),
    "tls_failed": (
        "No secure (TLS 1.2 or later) connection could be made with the mail server.",
        "Aucune connexion sécurisée (TLS 1.2 ou plus) n'a pu être établie avec le serveur "
        "de messagerie.",
    ),
    "server_certificate_invalid": (
        "The mail server's certificate is not trusted by the configured CA bundle or does "
        "not name this host.",
        "Le certificat du serveur de messagerie n'est pas reconnu par les autorités "
        "configurées ou ne porte pas ce nom d'hôte.",
    ),
    "client_certificate_unusable": (
        "The archiver's client certificate or key cannot be read.",
        "Le certificat client de l'archiveur ou sa clé est illisible.",
    ),
    "client_certificate_refused": (
        "The mail server refused the archiver's client certificate.",
        "Le serveur de messagerie a refusé le certificat client de l'archiveur.",
    ),
    "authentication_failed": (
        "The mail server refused the archiver's login.",
        "Le serveur de messagerie a refusé l'identification de l'archiveur.",
    ),
    "sender_refused": (
        "The mail server refused the sender address.",
        "Le serveur de messagerie a refusé l'adresse de l'expéditeur.",
    ),
    "recipient_refused": (
        "The mail server refused every recipient of the mail.",
        "Le serveur de messagerie a refusé tous les destinataires du courriel.",
    ),
    "message_refused": (
        "The mail server refused the mail.",
        "Le serveur de messagerie a refusé le courriel.",
    ),
    "invalid_message": (
        "The mail has no usable sender or recipient address.",
        "Le courriel n'a pas d'adresse d'expéditeur ou de destinataire utilisable.",
    ),
    "imap_unreachable": (
        "The mailbox server cannot be reached; it will be read again later.",
        "Le serveur de la boîte aux lettres est injoignable ; elle sera relue plus tard.",
    ),
    "imap_timeout": (
        "The mailbox server did not answer in time; it will be read again later.",
        "Le serveur de la boîte aux lettres n'a pas répondu à temps ; elle sera relue plus tard.",
    ),
    "imap_login_failed": (
        "The mailbox server refused the archiver's login.",
        "Le serveur de la boîte aux lettres a refusé l'identification de l'archiveur.",
    ),
    "mailbox_missing": (
        "The configured mailbox does not exist on the server.",
        "La boîte configurée n'existe pas sur le serveur.",
    ),
    "imap_failed": (
        "The mailbox server answered with an error.",
        "Le serveur de la boîte aux lettres a répondu par une erreur.",
    ),
}

# Codes that a person must fix in the configuration or the certificates; retrying as
# is will fail again, but the message itself is not at fault and is kept.
CONFIGURATION_CODES = frozenset(
    {
        "tls_failed",
        "server_certificate_invalid",
        "client_certificate_unusable",
        "client_certificate_refused",
        "authentication_failed",
        "imap_login_failed",
        "mailbox_missing",
    }
)

# OpenSSL alert reasons by which a server says it does not accept our certificate.
_CLIENT_CERTIFICATE_ALERTS = (
    "CERTIFICATE_REQUIRED",
    "UNKNOWN_CA",
    "BAD_CERTIFICATE",
    "CERTIFICATE_UNKNOWN",
    "UNSUPPORTED_CERTIFICATE",
    "ACCESS_DENIED",
)


class TransportError(Exception):
    """A failed exchange with the mail or mailbox server.

    ``permanent``: sending this same message again will be refused again (a 5xx reply).
    ``maybe_delivered``: the connection broke after the message's data was sent, so the
    server may have queued it; look for its Message-ID before sending it again.
    """

    def __init__(
        self,
        code: str,
        permanent: bool,
        reply: str,
        message_en: str | None = None,
        message_fr: str | None = None,
        *,
        maybe_delivered: bool = False,
    ) -> None:
        english, french = MESSAGES[code]
        self.code = code
        self.permanent = permanent
        self.reply = reply[:MAX_REPLY_CHARS]
        self.message_en = message_en or english
        self.message_fr = message_fr or french
        self.maybe_delivered = maybe_delivered
        super().__init__(f"{code}: {self.message_en} ({self.reply})")

    @property
    def needs_configuration(self) -> bool:
        """True when a person must change a certificate, a CA bundle or a login."""
        return self.code in CONFIGURATION_CODES


class DeliveryError(TransportError):
    """Sending over SMTP failed."""


class MailboxError(TransportError):
    """Reading over IMAP failed."""


_E = TypeVar("_E", bound=TransportError)


class TransportConfigError(ValueError):
    """A required ``RELAIS_ARCHIVE_*`` setting is missing or malformed."""


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to send. ``username``/``password``: the SASL login (PLAIN or LOGIN,
    after STARTTLS only) when the operator requires one besides the certificate."""

    host: str
    port: int
    client_cert: Path
    client_key: Path
    ca_bundle: Path
    timeout: float = 30.0
    helo: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ImapConfig:
    """Which mailbox to read and how. ``implicit_tls``: IMAPS (TLS from the first byte,
    usually port 993) instead of STARTTLS (usually port 143)."""

    host: str
    port: int
    ca_bundle: Path
    client_cert: Path
    client_key: Path
    username: str
    password: str = field(repr=False)
    mailbox: str = "INBOX"
    timeout: float = 30.0
    implicit_tls: bool = False


@dataclass(frozen=True)
class SendResult:
    """The server's answer to the end of DATA, e.g. ``250`` and ``2.0.0 Ok: queued as
    4dLx2K1Zq3z9v``; ``refused``: recipients refused for good while others were accepted
    (address → reply)."""

    code: int
    reply: str
    queue_id: str | None
    refused: Mapping[str, str]


@dataclass(frozen=True)
class FetchedMail:
    """One message as stored (``raw``: RFC 5322 bytes, cut at the fetch's per-message
    limit when ``truncated``; ``size``: its full size on the server)."""

    uid: int
    raw: bytes
    size: int
    truncated: bool


@dataclass(frozen=True)
class FetchBatch:
    """What :func:`fetch_new` read. ``uidvalidity`` changes when the server renumbered
    the mailbox: UIDs remembered under another value mean nothing any more. ``more``:
    messages remain after the last one returned (call again from its UID)."""

    uidvalidity: int
    mails: list[FetchedMail]
    more: bool

    def __iter__(self) -> Iterator[FetchedMail]:
        return iter(self.mails)

    def __len__(self) -> int:
        return len(self.mails)


def tls_context(*, ca_bundle: Path, client_cert: Path, client_key: Path) -> ssl.SSLContext:
    """TLS 1.2 or later; the server's certificate checked against ``ca_bundle`` only (not
    the system's CAs) and its host name; our certificate (with its chain) presented."""
    try:
        context = ssl.create_default_context(cafile=str(ca_bundle))
    except (OSError, ssl.SSLError) as error:
        raise DeliveryError("server_certificate_invalid", False, _reason(error)) from error
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        context.load_cert_chain(certfile=str(client_cert), keyfile=str(client_key))
    except (OSError, ssl.SSLError) as error:
        raise DeliveryError("client_certificate_unusable", False, _reason(error)) from error
    return context


def send_mail(
    config: SmtpConfig,
    message: EmailMessage,
    *,
    envelope_sender: str | None = None,
    recipients: list[str] | None = None,
) -> SendResult:
    """Send ``message`` once. The envelope defaults to the From address and the To, Cc
    and Bcc addresses (Bcc is not transmitted). Returns when the server has accepted the
    data; raises :class:`DeliveryError` otherwise. A recipient refused for now (4xx)
    aborts the whole transaction, so that a retry never delivers twice to the others."""
    sender = envelope_sender or _single_address(message, "From")
    targets = recipients or [
        address
        for header in ("To", "Cc", "Bcc")
        for _, address in getaddresses(message.get_all(header, []))
        if address
    ]
    if not sender or not targets:
        raise DeliveryError("invalid_message", True, "no envelope sender or recipient")
    data = _wire_bytes(message)
    context = tls_context(
        ca_bundle=config.ca_bundle, client_cert=config.client_cert, client_key=config.client_key
    )
    smtp = _connect(config)
    try:
        _secure_session(smtp, config, context)
        return _transaction(smtp, sender, targets, data)
    finally:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


def _connect(config: SmtpConfig) -> smtplib.SMTP:
    """Connected and greeted (the host name is kept for STARTTLS's certificate check)."""
    try:
        return smtplib.SMTP(
            config.host, config.port, local_hostname=config.helo, timeout=config.timeout
        )
    except smtplib.SMTPConnectError as error:
        raise _reply_error(error.smtp_code, error.smtp_error, "smtp_temporary") from error
    except smtplib.SMTPServerDisconnected as error:
        raise _disconnected(error) from error
    except TimeoutError as error:
        raise DeliveryError("smtp_timeout", False, "no answer on connect") from error
    except OSError as error:
        raise DeliveryError("smtp_unreachable", False, _reason(error)) from error


def _secure_session(smtp: smtplib.SMTP, config: SmtpConfig, context: ssl.SSLContext) -> None:
    _ehlo(smtp, after_tls=False)
    if not smtp.has_extn("starttls"):
        raise DeliveryError("tls_failed", False, "the server does not offer STARTTLS")
    try:
        smtp.starttls(context=context)
    except ssl.SSLCertVerificationError as error:
        raise DeliveryError("server_certificate_invalid", False, _reason(error)) from error
    except ssl.SSLError as error:
        raise _tls_error(error, DeliveryError) from error
    except smtplib.SMTPResponseException as error:
        raise _reply_error(error.smtp_code, error.smtp_error, "tls_failed") from error
    except TimeoutError as error:
        raise DeliveryError("smtp_timeout", False, "no answer to STARTTLS") from error
    except OSError as error:
        raise DeliveryError("smtp_unreachable", False, _reason(error)) from error
    _ehlo(smtp, after_tls=True)
    if config.username is not None:
        try:
            smtp.login(config.username, config.password or "")
        except smtplib.SMTPAuthenticationError as error:
            raise DeliveryError(
                "authentication_failed", False, _text(error.smtp_code, error.smtp_error)
            ) from error
        except smtplib.SMTPNotSupportedError as error:
            raise DeliveryError("authentication_failed", False, str(error)) from error
        except smtplib.SMTPServerDisconnected as error:
            raise _disconnected(error) from error
        except smtplib.SMTPResponseException as error:
            raise _reply_error(
                error.smtp_code, error.smtp_error, "authentication_failed"
            ) from error
        except smtplib.SMTPException as error:
            raise DeliveryError("authentication_failed", False, str(error)) from error
        except TimeoutError as error:
            raise DeliveryError("smtp_timeout", False, "no answer to AUTH") from error
        except OSError as error:
            raise DeliveryError("smtp_unreachable", False, _reason(error)) from error


def _ehlo(smtp: smtplib.SMTP, *, after_tls: bool) -> None:
    """EHLO; right after STARTTLS, a server that requires a client certificate closes
    the session here (Postfix: ``421 4.7.1 … No client certificate presented`` or a
    close without a word for an untrusted one)."""
    try:
        code, reply = smtp.ehlo()
    except smtplib.SMTPServerDisconnected as error:
        if after_tls and not isinstance(error.__context__, TimeoutError):
            raise DeliveryError(
                "client_certificate_refused",
                False,
                "the server closed the session after the TLS handshake",
            ) from error
        raise _disconnected(error) from error
    except ssl.SSLError as error:
        raise _tls_error(error, DeliveryError) from error
    except TimeoutError as error:
        raise DeliveryError("smtp_timeout", False, "no answer to EHLO") from error
    except OSError as error:
        raise DeliveryError("smtp_unreachable", False, _reason(error)) from error
    if 200 <= code <= 299:
        return
    text = _text(code, reply)
    if after_tls and "certificate" in text.lower():
        raise DeliveryError("client_certificate_refused", False, text)
    if code == -1:
        raise DeliveryError("smtp_unreachable", False, "the server closed the connection")
    raise _reply_error(code, reply, "smtp_temporary")


def _transaction(smtp: smtplib.SMTP, sender: str, targets: list[str], data: bytes) -> SendResult:
    try:
        code, reply = smtp.mail(sender)
        if code != 250:
            raise _reply_error(code, reply, "sender_refused")
        accepted: list[str] = []
        refused: dict[str, str] = {}
        for address in targets:
            code, reply = smtp.rcpt(address)
            if code in (250, 251):
                accepted.append(address)
            elif 400 <= code <= 499 or code == -1:
                smtp.rset()
                raise DeliveryError("smtp_temporary", False, _text(code, reply))
            else:
                refused[address] = _text(code, reply)
        if not accepted:
            raise DeliveryError("recipient_refused", True, "; ".join(refused.values()))
    except smtplib.SMTPServerDisconnected as error:
        raise _disconnected(error) from error
    except TimeoutError as error:
        raise DeliveryError("smtp_timeout", False, "no answer during the envelope") from error
    except OSError as error:
        raise DeliveryError("smtp_unreachable", False, _reason(error)) from error
    try:
        code, reply = smtp.data(data)
    except smtplib.SMTPDataError as error:
        raise _reply_error(error.smtp_code, error.smtp_error, "message_refused") from error
    except smtplib.SMTPServerDisconnected as error:
        raise _disconnected(error, maybe_delivered=True) from error
    except TimeoutError as error:
        raise DeliveryError(
            "smtp_timeout", False, "no answer after the data", maybe_delivered=True
        ) from error
    except OSError as error:
        raise DeliveryError("smtp_unreachable", False, _reason(error), maybe_delivered=True) from (
            error
        )
    if code != 250:
        raise _reply_error(code, reply, "message_refused")
    text = _text(code, reply)
    queued = re.search(r"queued as (\S+)", text)
    return SendResult(
        code=code, reply=text, queue_id=queued.group(1) if queued else None, refused=refused
    )


def _disconnected(
    error: smtplib.SMTPServerDisconnected, *, maybe_delivered: bool = False
) -> DeliveryError:
    """smtplib reports a read that timed out as a disconnection; tell them apart."""
    if isinstance(error.__context__, TimeoutError):
        return DeliveryError(
            "smtp_timeout", False, "no answer in time", maybe_delivered=maybe_delivered
        )
    return DeliveryError("smtp_unreachable", False, str(error), maybe_delivered=maybe_delivered)


def _reply_error(code: int, reply: bytes | str, permanent_code: str) -> DeliveryError:
    """4xx (and no reply at all): retry later; 5xx: ``permanent_code``, for good."""
    text = _text(code, reply)
    if 500 <= code <= 599:
        permanent = permanent_code not in CONFIGURATION_CODES
        return DeliveryError(permanent_code, permanent, text)
    return DeliveryError("smtp_temporary", False, text)


def _tls_error(error: ssl.SSLError, kind: type[_E]) -> _E:
    reason = _reason(error)
    if any(alert in reason.upper() for alert in _CLIENT_CERTIFICATE_ALERTS):
        return kind("client_certificate_refused", False, reason)
    return kind("tls_failed", False, reason)


def _reason(error: BaseException) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"{error.reason}: {error.verify_message}"
    if isinstance(error, ssl.SSLError) and error.reason:
        return f"{error.library or 'ssl'}: {error.reason}"
    return f"{type(error).__name__}: {error}"


def _text(code: int, reply: bytes | str) -> str:
    words = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return f"{code} {' '.join(words.split())}"[:MAX_REPLY_CHARS]


def _single_address(message: EmailMessage, header: str) -> str:
    addresses = [address for _, address in getaddresses(message.get_all(header, [])) if address]
    return addresses[0] if len(addresses) == 1 else ""


def _wire_bytes(message: EmailMessage) -> bytes:
    """The message as transmitted: CRLF line ends, no Bcc header (smtplib dot-stuffs)."""
    sent = copy.copy(message)
    del sent["Bcc"]
    buffer = BytesIO()
    BytesGenerator(buffer, policy=message.policy.clone(linesep="\r\n")).flatten(sent)
    return buffer.getvalue()


# --- Reading over IMAP -------------------------------------------------------------------

MAX_MESSAGES_PER_FETCH = 100
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_BYTES_PER_FETCH = 32 * 1024 * 1024

_FETCH_ITEM = re.compile(rb"(UID|RFC822\.SIZE) (\d+)")


def fetch_new(
    config: ImapConfig,
    *,
    after_uid: int,
    max_messages: int = MAX_MESSAGES_PER_FETCH,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    max_bytes: int = MAX_BYTES_PER_FETCH,
) -> FetchBatch:
    """The messages of ``config.mailbox`` with a UID above ``after_uid``, oldest first,
    read-only (nothing is marked seen or moved). At most ``max_messages`` messages and
    about ``max_bytes`` bytes (at least one message is returned when there is one);
    each message cut at ``max_message_bytes``. Raises :class:`MailboxError`."""
    imap = _imap_session(config)
    try:
        status, _ = _imap_call(imap.select, _quote_mailbox(config.mailbox), readonly=True)
        if status != "OK":
            raise MailboxError("mailbox_missing", False, f"EXAMINE {status}")
        _, values = imap.response("UIDVALIDITY")
        uidvalidity = int(values[0]) if values and values[0] else 0
        status, found = _imap_call(imap.uid, "SEARCH", "UID", f"{after_uid + 1}:*")
        if status != "OK":
            raise MailboxError("imap_failed", False, f"UID SEARCH {status}")
        uids = sorted(
            uid for uid in (int(word) for word in (found[0] or b"").split()) if uid > after_uid
        )
        mails: list[FetchedMail] = []
        total = 0
        for uid in uids[:max_messages]:
            mail = _fetch_one(imap, uid, max_message_bytes)
            if mail is None:
                continue
            if mails and total + len(mail.raw) > max_bytes:
                break
            mails.append(mail)
            total += len(mail.raw)
        more = bool(uids) and (not mails or mails[-1].uid != uids[-1])
        return FetchBatch(uidvalidity=uidvalidity, mails=mails, more=more)
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            imap.logout()


def _imap_session(config: ImapConfig) -> imaplib.IMAP4:
    context = tls_context(
        ca_bundle=config.ca_bundle, client_cert=config.client_cert, client_key=config.client_key
    )
    try:
        if config.implicit_tls:
            imap: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                config.host, config.port, ssl_context=context, timeout=config.timeout
            )
        else:
            imap = imaplib.IMAP4(config.host, config.port, timeout=config.timeout)
            imap.starttls(ssl_context=context)
    except ssl.SSLCertVerificationError as error:
        raise MailboxError("server_certificate_invalid", False, _reason(error)) from error
    except ssl.SSLError as error:
        raise _tls_error(error, MailboxError) from error
    except TimeoutError as error:
        raise MailboxError("imap_timeout", False, "no answer on connect") from error
    except imaplib.IMAP4.abort as error:
        raise MailboxError("imap_unreachable", False, str(error)) from error
    except imaplib.IMAP4.error as error:
        raise MailboxError("tls_failed", False, str(error)) from error
    except OSError as error:
        raise MailboxError("imap_unreachable", False, _reason(error)) from error
    try:
        _imap_call(imap.login, config.username, config.password)
    except MailboxError as error:
        if error.code != "imap_failed":
            raise
        # Dovecot completes the TLS handshake with an untrusted certificate and refuses
        # the login: "[ALERT] Client didn't present valid SSL certificate".
        code = "client_certificate_refused" if "certificate" in error.reply else "imap_login_failed"
        raise MailboxError(code, False, error.reply) from error
    return imap


def _imap_call(
    function: Callable[..., tuple[str, Any]], *args: Any, **kwargs: Any
) -> tuple[str, list[Any]]:
    try:
        status, data = function(*args, **kwargs)
    except imaplib.IMAP4.abort as error:
        raise MailboxError("imap_unreachable", False, _imap_text(error)) from error
    except imaplib.IMAP4.error as error:
        raise MailboxError("imap_failed", False, _imap_text(error)) from error
    except ssl.SSLError as error:
        raise _tls_error(error, MailboxError) from error
    except TimeoutError as error:
        raise MailboxError("imap_timeout", False, "no answer") from error
    except OSError as error:
        raise MailboxError("imap_unreachable", False, _reason(error)) from error
    return status, list(data)


def _imap_text(error: imaplib.IMAP4.error) -> str:
    """imaplib puts the server's reply in the error as bytes."""
    reply = error.args[0] if error.args else ""
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _fetch_one(imap: imaplib.IMAP4, uid: int, max_message_bytes: int) -> FetchedMail | None:
    items = f"(UID RFC822.SIZE BODY.PEEK[]<0.{max_message_bytes}>)"
    status, data = _imap_call(imap.uid, "FETCH", str(uid), items)
    if status != "OK":
        raise MailboxError("imap_failed", False, f"UID FETCH {status}")
    raw = b""
    fields: dict[bytes, int] = {}
    for part in data:
        if isinstance(part, tuple):
            fields.update((name, int(value)) for name, value in _FETCH_ITEM.findall(part[0]))
            raw = part[1]
        elif isinstance(part, bytes):
            fields.update((name, int(value)) for name, value in _FETCH_ITEM.findall(part))
    if fields.get(b"UID") != uid:
        return None  # expunged meanwhile
    size = fields.get(b"RFC822.SIZE", len(raw))
    return FetchedMail(uid=uid, raw=raw, size=size, truncated=size > len(raw))


def _quote_mailbox(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- Configuration from the environment -----------------------------------------------------


def smtp_config_from_env(environ: Mapping[str, str] | None = None) -> SmtpConfig:
    """``RELAIS_ARCHIVE_SMTP_*`` (docs/configuration.md)."""
    env = _Settings(os.environ if environ is None else environ, "RELAIS_ARCHIVE_SMTP_")
    return SmtpConfig(
        host=env.required("HOST"),
        port=env.integer("PORT", 587),
        client_cert=Path(env.required("CLIENT_CERT")),
        client_key=Path(env.required("CLIENT_KEY")),
        ca_bundle=Path(env.required("CA_BUNDLE")),
        timeout=env.number("TIMEOUT", 30.0),
        helo=env.optional("HELO"),
        username=env.optional("USERNAME"),
        password=env.optional("PASSWORD"),
    )


def imap_config_from_env(environ: Mapping[str, str] | None = None) -> ImapConfig:
    """``RELAIS_ARCHIVE_IMAP_*``; host, certificates and login default to the SMTP ones."""
    source = os.environ if environ is None else environ
    env = _Settings(source, "RELAIS_ARCHIVE_IMAP_")
    smtp = _Settings(source, "RELAIS_ARCHIVE_SMTP_")
    tls = env.optional("TLS") or "starttls"
    if tls not in ("starttls", "implicit"):
        raise TransportConfigError("RELAIS_ARCHIVE_IMAP_TLS must be starttls or implicit")
    implicit = tls == "implicit"

    def inherited(name: str) -> str:
        value = env.optional(name) or smtp.optional(name)
        if value is None:
            raise TransportConfigError(f"RELAIS_ARCHIVE_IMAP_{name} is not set")
        return value

    return ImapConfig(
        host=inherited("HOST"),
        port=env.integer("PORT", 993 if implicit else 143),
        ca_bundle=Path(inherited("CA_BUNDLE")),
        client_cert=Path(inherited("CLIENT_CERT")),
        client_key=Path(inherited("CLIENT_KEY")),
        username=inherited("USERNAME"),
        password=inherited("PASSWORD"),
        mailbox=env.optional("MAILBOX") or "INBOX",
        timeout=env.number("TIMEOUT", 30.0),
        implicit_tls=implicit,
    )


@dataclass(frozen=True)
class _Settings:
    environ: Mapping[str, str]
    prefix: str

    def optional(self, name: str) -> str | None:
        value = self.environ.get(self.prefix + name, "").strip()
        return value or None

    def required(self, name: str) -> str:
        value = self.optional(name)
        if value is None:
            raise TransportConfigError(f"{self.prefix}{name} is not set")
        return value

    def integer(self, name: str, default: int) -> int:
        value = self.optional(name)
        try:
            number = int(value) if value is not None else default
        except ValueError:
            raise TransportConfigError(f"{self.prefix}{name} must be a number") from None
        if not 0 < number < 65536:
            raise TransportConfigError(f"{self.prefix}{name} must be a port number")
        return number

    def number(self, name: str, default: float) -> float:
        value = self.optional(name)
        try:
            number = float(value) if value is not None else default
        except ValueError:
            raise TransportConfigError(f"{self.prefix}{name} must be a number") from None
        if not number > 0:
            raise TransportConfigError(f"{self.prefix}{name} must be positive")
        return number
