"""Reading the archiver's mailbox over IMAP: STARTTLS (or implicit TLS) with the client
certificate, a login, a read-only ``EXAMINE`` and a bounded ``UID FETCH`` of what came
after a known UID (docs/archive.md, "Transport")."""

from __future__ import annotations

import contextlib
import imaplib
import re
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from archive.oauth2 import TokenError, xoauth2_response
from archive.transport_config import ImapConfig
from archive.transport_errors import MailboxError, describe, tls_context, tls_error


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


MAX_MESSAGES_PER_FETCH = 100
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_BYTES_PER_FETCH = 32 * 1024 * 1024

_FETCH_ITEM = re.compile(rb"(UID|RFC822\.SIZE) (\d+)")
_MESSAGE_ID = re.compile(r"<[\x21-\x7e]{1,990}>")


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


def find_message(config: ImapConfig, message_id: str) -> int | None:
    """The UID of a message of ``config.mailbox`` whose Message-ID is ``message_id``, or
    ``None``: after a send that may have been delivered (``maybe_delivered``), a mailbox
    the mail was also sent to tells whether it arrived. Read-only."""
    if not _MESSAGE_ID.fullmatch(message_id):
        raise ValueError("not a Message-ID")
    imap = _imap_session(config)
    try:
        status, _ = _imap_call(imap.select, _quote_mailbox(config.mailbox), readonly=True)
        if status != "OK":
            raise MailboxError("mailbox_missing", False, f"EXAMINE {status}")
        status, found = _imap_call(
            imap.uid, "SEARCH", "HEADER", "Message-ID", _quote_mailbox(message_id)
        )
        if status != "OK":
            raise MailboxError("imap_failed", False, f"UID SEARCH {status}")
        uids = [int(word) for word in (found[0] or b"").split()]
        return min(uids) if uids else None
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            imap.logout()


def _imap_session(config: ImapConfig) -> imaplib.IMAP4:
    context = tls_context(
        ca_bundle=config.ca_bundle,
        client_cert=config.client_cert,
        client_key=config.client_key,
        failure=MailboxError,
    )
    try:
        imap = _open(config, context)
    except ssl.SSLCertVerificationError as error:
        raise MailboxError("server_certificate_invalid", False, describe(error)) from error
    except ssl.SSLError as error:
        raise tls_error(error, MailboxError) from error
    except TimeoutError as error:
        raise MailboxError("imap_timeout", False, "no answer on connect") from error
    except imaplib.IMAP4.abort as error:
        raise MailboxError("imap_unreachable", False, str(error)) from error
    except imaplib.IMAP4.error as error:
        raise MailboxError("tls_failed", False, str(error)) from error
    except OSError as error:
        raise MailboxError("imap_unreachable", False, describe(error)) from error
    try:
        _login(imap, config)
    except MailboxError as error:
        with contextlib.suppress(OSError):
            imap.shutdown()
        if error.code != "imap_failed":
            raise
        # Dovecot completes the TLS handshake with an untrusted certificate and refuses
        # the login: "[ALERT] Client didn't present valid SSL certificate".
        code = "client_certificate_refused" if "certificate" in error.reply else "imap_login_failed"
        raise MailboxError(code, False, error.reply) from error
    return imap


def _login(imap: imaplib.IMAP4, config: ImapConfig) -> None:
    """LOGIN with the password, or AUTHENTICATE XOAUTH2 with a token (``config.oauth2``)."""
    if config.oauth2 is None:
        _imap_call(imap.login, config.username, config.password)
        return
    try:
        token = config.oauth2.token()
    except TokenError as error:
        raise MailboxError("oauth2_token_failed", False, error.reply) from None
    response = xoauth2_response(config.username, token).encode()

    def respond(challenge: bytes) -> bytes:
        # The first continuation is empty; a later one carries the server's error:
        # an empty answer ends the exchange and the server says NO.
        return b"" if challenge else response

    _imap_call(imap.authenticate, "XOAUTH2", respond)


def _open(config: ImapConfig, context: ssl.SSLContext) -> imaplib.IMAP4:
    """Connected and in TLS; the socket is closed if STARTTLS fails."""
    if config.implicit_tls:
        return imaplib.IMAP4_SSL(
            config.host, config.port, ssl_context=context, timeout=config.timeout
        )
    imap = imaplib.IMAP4(config.host, config.port, timeout=config.timeout)
    try:
        imap.starttls(ssl_context=context)
    except BaseException:
        with contextlib.suppress(OSError):
            imap.shutdown()
        raise
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
        raise tls_error(error, MailboxError) from error
    except TimeoutError as error:
        raise MailboxError("imap_timeout", False, "no answer") from error
    except OSError as error:
        raise MailboxError("imap_unreachable", False, describe(error)) from error
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
