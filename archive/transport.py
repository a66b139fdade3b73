"""The archiver's mail transport: SMTP out, IMAP in, as an MSSanté operator requires.

Sending: ``EHLO → STARTTLS (TLS 1.2 or later, the client certificate in the handshake,
the server's certificate checked against a configured CA bundle and its host name) →
EHLO → AUTH (when the operator asks for a login) → MAIL FROM → RCPT TO → DATA → QUIT``.
Reading (archive/imap.py): IMAP with STARTTLS (or implicit TLS), a read-only ``EXAMINE``
of one mailbox and a bounded ``UID FETCH`` of what came after a known UID. Settings are in
archive/transport_config.py, failures in archive/transport_errors.py; every public name
of the transport is importable from here. See docs/archive.md, "Transport".

Failures are :class:`TransportError` with a stable code, whether retrying can help
(``permanent``), the server's reply, and a message in English and French. Nothing in an
error comes from the mail itself: only the server's replies and the library's reasons.
"""

from __future__ import annotations

import copy
import re
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.utils import getaddresses
from io import BytesIO

from archive.imap import FetchBatch, FetchedMail, fetch_new, find_message
from archive.oauth2 import TokenError, xoauth2_response
from archive.transport_config import (
    ImapConfig,
    SmtpConfig,
    TransportConfigError,
    imap_config_from_env,
    smtp_config_from_env,
)
from archive.transport_errors import (
    CONFIGURATION_CODES,
    MAX_REPLY_CHARS,
    MESSAGES,
    DeliveryError,
    MailboxError,
    TransportError,
    describe,
    tls_context,
    tls_error,
)

__all__ = [
    "CONFIGURATION_CODES",
    "MESSAGES",
    "DeliveryError",
    "FetchBatch",
    "FetchedMail",
    "ImapConfig",
    "MailboxError",
    "SendResult",
    "SmtpConfig",
    "TransportConfigError",
    "TransportError",
    "fetch_new",
    "find_message",
    "imap_config_from_env",
    "send_mail",
    "smtp_config_from_env",
    "tls_context",
]


@dataclass(frozen=True)
class SendResult:
    """The server's answer to the end of DATA, e.g. ``250`` and ``2.0.0 Ok: queued as
    4dLx2K1Zq3z9v``; ``refused``: recipients refused for good while others were accepted
    (address → reply)."""

    code: int
    reply: str
    queue_id: str | None
    refused: Mapping[str, str]


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
        raise DeliveryError("smtp_unreachable", False, describe(error)) from error


def _login(smtp: smtplib.SMTP, config: SmtpConfig) -> None:
    """PLAIN or LOGIN with the password, or XOAUTH2 with a token (``config.oauth2``)."""
    user = config.username or ""
    if config.oauth2 is None:
        smtp.login(user, config.password or "")
        return
    try:
        token = config.oauth2.token()
    except TokenError as error:
        raise DeliveryError("oauth2_token_failed", False, error.reply) from None
    if not smtp.has_extn("auth") or "XOAUTH2" not in smtp.esmtp_features["auth"].upper():
        raise DeliveryError("authentication_failed", False, "the server does not offer XOAUTH2")

    def respond(challenge: bytes | None = None) -> str:
        # A challenge after the first response carries the server's error (JSON): an
        # empty answer ends the exchange, and the server says 535.
        return xoauth2_response(user, token) if challenge is None else ""

    smtp.auth("XOAUTH2", respond)


def _secure_session(smtp: smtplib.SMTP, config: SmtpConfig, context: ssl.SSLContext) -> None:
    _ehlo(smtp, after_tls=False)
    if not smtp.has_extn("starttls"):
        raise DeliveryError("tls_failed", False, "the server does not offer STARTTLS")
    try:
        smtp.starttls(context=context)
    except ssl.SSLCertVerificationError as error:
        raise DeliveryError("server_certificate_invalid", False, describe(error)) from error
    except ssl.SSLError as error:
        raise tls_error(error, DeliveryError) from error
    except smtplib.SMTPResponseException as error:
        raise _reply_error(error.smtp_code, error.smtp_error, "tls_failed") from error
    except TimeoutError as error:
        raise DeliveryError("smtp_timeout", False, "no answer to STARTTLS") from error
    except OSError as error:
        raise DeliveryError("smtp_unreachable", False, describe(error)) from error
    _ehlo(smtp, after_tls=True)
    if config.username is not None:
        try:
            _login(smtp, config)
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
            raise DeliveryError("smtp_unreachable", False, describe(error)) from error


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
        raise tls_error(error, DeliveryError) from error
    except TimeoutError as error:
        raise DeliveryError("smtp_timeout", False, "no answer to EHLO") from error
    except OSError as error:
        raise DeliveryError("smtp_unreachable", False, describe(error)) from error
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
            replies = "; ".join(refused.values())
            # Postfix judges the sender at RCPT time (smtpd_delay_reject): a sender that
            # is not the logged-in mailbox's comes back on every recipient.
            refusal = (
                "sender_refused" if "Sender address rejected" in replies else "recipient_refused"
            )
            raise DeliveryError(refusal, True, replies)
    except smtplib.SMTPServerDisconnected as error:
        raise _disconnected(error) from error
    except TimeoutError as error:
        raise DeliveryError("smtp_timeout", False, "no answer during the envelope") from error
    except OSError as error:
        raise DeliveryError("smtp_unreachable", False, describe(error)) from error
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
        raise DeliveryError("smtp_unreachable", False, describe(error), maybe_delivered=True) from (
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
