"""Where the archiver sends and reads mail: ``RELAIS_ARCHIVE_SMTP_*`` and
``RELAIS_ARCHIVE_IMAP_*`` (docs/configuration.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from archive.oauth2 import ClientCredentials


class TransportConfigError(ValueError):
    """A required ``RELAIS_ARCHIVE_*`` setting is missing or malformed."""


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to send. ``username``/``password``: the SASL login (PLAIN or LOGIN,
    after STARTTLS only) when the operator requires one besides the certificate;
    ``oauth2``: log in as ``username`` with SASL XOAUTH2 and a token from it instead."""

    host: str
    port: int
    client_cert: Path
    client_key: Path
    ca_bundle: Path
    timeout: float = 30.0
    helo: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    oauth2: ClientCredentials | None = None


@dataclass(frozen=True)
class ImapConfig:
    """Which mailbox to read and how. ``implicit_tls``: IMAPS (TLS from the first byte,
    usually port 993) instead of STARTTLS (usually port 143). ``oauth2``: log in with
    SASL XOAUTH2 and a token from it instead of ``password``."""

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
    oauth2: ClientCredentials | None = None


def smtp_config_from_env(environ: Mapping[str, str] | None = None) -> SmtpConfig:
    """``RELAIS_ARCHIVE_SMTP_*`` (docs/configuration.md)."""
    source = os.environ if environ is None else environ
    env = _Settings(source, "RELAIS_ARCHIVE_SMTP_")
    oauth2 = oauth2_from_env(source)
    if oauth2 is not None and env.optional("USERNAME") is None:
        raise TransportConfigError(
            "RELAIS_ARCHIVE_SMTP_USERNAME (the mailbox) is needed with "
            "RELAIS_ARCHIVE_OAUTH2_TOKEN_URL"
        )
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
        oauth2=oauth2,
    )


def oauth2_from_env(environ: Mapping[str, str]) -> ClientCredentials | None:
    """``RELAIS_ARCHIVE_OAUTH2_*``: when ``TOKEN_URL`` is set, SMTP and IMAP log in with
    SASL XOAUTH2 and a token of the client credentials grant."""
    env = _Settings(environ, "RELAIS_ARCHIVE_OAUTH2_")
    url = env.optional("TOKEN_URL")
    if url is None:
        return None
    if not url.startswith("https://"):
        raise TransportConfigError("RELAIS_ARCHIVE_OAUTH2_TOKEN_URL must be https://")
    ca = env.optional("CA_BUNDLE")
    return ClientCredentials(
        token_url=url,
        client_id=env.required("CLIENT_ID"),
        client_secret=env.required("CLIENT_SECRET"),
        ca_bundle=Path(ca) if ca else None,
        timeout=env.number("TIMEOUT", 30.0),
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
    oauth2 = oauth2_from_env(source)

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
        # With XOAUTH2 there is no password (an empty one, never sent).
        password="" if oauth2 is not None else inherited("PASSWORD"),
        mailbox=env.optional("MAILBOX") or "INBOX",
        timeout=env.number("TIMEOUT", 30.0),
        implicit_tls=implicit,
        oauth2=oauth2,
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
