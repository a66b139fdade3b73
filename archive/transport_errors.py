"""The archiver's transport failures: stable codes, messages in English and French.

See docs/archive.md, "Transport". Nothing in an error comes from the mail itself: only
the servers' replies and the TLS library's reasons.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TypeVar

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
    "oauth2_token_failed": (
        "No login token could be had from the identity provider; it will be tried again later.",
        "Aucun jeton d'identification n'a pu être obtenu du fournisseur d'identité ; "
        "nouvel essai plus tard.",
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


def tls_context(
    *,
    ca_bundle: Path,
    client_cert: Path,
    client_key: Path,
    failure: type[TransportError] = DeliveryError,
) -> ssl.SSLContext:
    """TLS 1.2 or later; the server's certificate checked against ``ca_bundle`` only (not
    the system's CAs) and its host name; our certificate (with its chain) presented."""
    try:
        context = ssl.create_default_context(cafile=str(ca_bundle))
    except (OSError, ssl.SSLError) as error:
        raise failure("server_certificate_invalid", False, describe(error)) from error
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        context.load_cert_chain(certfile=str(client_cert), keyfile=str(client_key))
    except (OSError, ssl.SSLError) as error:
        raise failure("client_certificate_unusable", False, describe(error)) from error
    return context


def tls_error(error: ssl.SSLError, kind: type[_E]) -> _E:
    reason = describe(error)
    if any(alert in reason.upper() for alert in _CLIENT_CERTIFICATE_ALERTS):
        return kind("client_certificate_refused", False, reason)
    return kind("tls_failed", False, reason)


def describe(error: BaseException) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"{error.reason}: {error.verify_message}"
    if isinstance(error, ssl.SSLError) and error.reason:
        return f"{error.library or 'ssl'}: {error.reason}"
    return f"{type(error).__name__}: {error}"
