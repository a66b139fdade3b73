"""Bearer tokens for the SASL XOAUTH2 login on the MSSanté operator's SMTP and IMAP
servers (docs/archive.md, "Logging in with a token").

The Ségur rules for software that uses a mailbox ("API LPS") ask for a TLS session with
the organisation's certificate, then a SASL XOAUTH2 login with an access token instead
of a password. The archiver gets its token from the identity provider's token endpoint
with the OAuth 2.0 client credentials grant (RFC 6749 §4.4: the mailbox's software
credentials, HTTP Basic), keeps it until shortly before it expires, and sends, base64
encoded by the standard library, ``user=<mailbox>\\x01auth=Bearer <token>\\x01\\x01``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

EARLY_RENEWAL = 30.0  # seconds before expiry a token is renewed
DEFAULT_LIFETIME = 60.0  # when the endpoint does not say (PSC's access tokens live 60 s)


class TokenError(Exception):
    """No token could be had: the endpoint is down, or refused the credentials."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


@dataclass
class ClientCredentials:
    """Tokens from ``token_url`` for ``client_id``/``client_secret``; ``ca_bundle`` the
    CAs that may sign the endpoint's certificate (the system's when None)."""

    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    ca_bundle: Path | None = None
    timeout: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _cached: tuple[str, float] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def token(self) -> str:
        with self._lock:
            now = self.clock()
            if self._cached is not None and now < self._cached[1]:
                return self._cached[0]
            token, lifetime = self._fetch()
            self._cached = (token, now + max(lifetime - EARLY_RENEWAL, 0.0))
            return token

    def _fetch(self) -> tuple[str, float]:
        try:
            response = httpx.post(
                self.token_url,
                data={"grant_type": "client_credentials"},
                auth=(self.client_id, self.client_secret),
                timeout=self.timeout,
                verify=str(self.ca_bundle) if self.ca_bundle else True,
            )
        except httpx.HTTPError as error:
            raise TokenError(f"token endpoint unreachable: {type(error).__name__}") from None
        if response.status_code != 200:
            raise TokenError(f"token endpoint answered {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise TokenError("token endpoint answered no JSON") from None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token or "\x01" in token:
            raise TokenError("token endpoint answered no access token")
        lifetime = body.get("expires_in")
        valid = isinstance(lifetime, int | float) and not isinstance(lifetime, bool)
        return token, float(lifetime) if valid else DEFAULT_LIFETIME


def xoauth2_response(user: str, token: str) -> str:
    """The XOAUTH2 initial client response, before base64."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"
