"""The OpenID Connect conversation with Pro Santé Connect (docs/identity.md).

Authlib does the OAuth 2.0 parts (authorization URL with PKCE S256, code exchange and
refresh with HTTP Basic client authentication); joserfc verifies the JWTs. What is
PSC-specific lives here: the discovery document at
``/.well-known/wallet-openid-configuration``, the authorization endpoint on the separate
``wallet.`` host, ``scope=openid scope_all`` with ``acr_values=eidas1``, the ``acr``
check, and a userinfo answer that may be JSON or a signed JWT.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    JoseError,
)
from joserfc.jwk import KeySet, OctKey

from chat.errors import ErrorCode, RelaisError
from identity.conf import PscSettings

SCOPE = "openid scope_all"
ACR_VALUES = "eidas1"
# Levels PSC may return, lowest first; anything else (or nothing) is refused.
ACCEPTED_ACR = ("eidas1", "eidas2", "eidas3")
SIGNING_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384"]
CLOCK_LEEWAY_SECONDS = 30
METADATA_TTL_SECONDS = 3600
MAX_RESPONSE_BYTES = 1_000_000
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# OAuth 2.0 error codes that mean "try again later", not "no".
_OUTAGE_ERRORS = {"server_error", "temporarily_unavailable"}

logger = logging.getLogger(__name__)

Now = Callable[[], float]


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    end_session_endpoint: str
    jwks_uri: str


@dataclass(frozen=True)
class TokenSet:
    """A token endpoint answer. The access token must not outlive the request."""

    access_token: str
    id_token: str
    refresh_token: str


def _provider_error(detail: str) -> RelaisError:
    return RelaisError(ErrorCode.PSC_PROVIDER_ERROR, detail)


class PscClient:
    """One configured PSC client; cheap to build, caches discovery and keys per issuer."""

    _metadata_cache: dict[str, tuple[float, ProviderMetadata]] = {}
    _jwks_cache: dict[str, KeySet] = {}

    def __init__(self, settings: PscSettings, *, now: Now = time.time) -> None:
        if not settings.enabled:
            raise RelaisError(ErrorCode.PSC_NOT_CONFIGURED)
        self.settings = settings
        self.now = now

    # -- HTTP ---------------------------------------------------------------------------

    def _get(self, url: str, **kwargs: Any) -> requests.Response:
        try:
            response = requests.get(url, timeout=self.settings.http_timeout_seconds, **kwargs)
        except requests.RequestException as error:
            raise _provider_error(f"{url} is unreachable") from error
        if len(response.content) > MAX_RESPONSE_BYTES:
            raise _provider_error(f"{url} answered more than {MAX_RESPONSE_BYTES} bytes")
        return response

    def _oauth(self, *, redirect_uri: str | None = None) -> OAuth2Session:
        return OAuth2Session(
            client_id=self.settings.client_id,
            client_secret=self.settings.client_secret,
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106 (a method name)
            scope=SCOPE,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
        )

    # -- discovery and keys -------------------------------------------------------------

    def metadata(self) -> ProviderMetadata:
        """The provider's endpoints, from PSC's discovery document (cached for an hour)."""
        cached = self._metadata_cache.get(self.settings.discovery_url)
        if cached and cached[0] > self.now():
            return cached[1]
        response = self._get(self.settings.discovery_url)
        if response.status_code != 200:
            raise _provider_error(f"discovery answered HTTP {response.status_code}")
        try:
            document = response.json()
            metadata = ProviderMetadata(
                issuer=document["issuer"],
                authorization_endpoint=self.settings.authorization_endpoint
                or document["authorization_endpoint"],
                token_endpoint=document["token_endpoint"],
                userinfo_endpoint=document["userinfo_endpoint"],
                end_session_endpoint=document.get("end_session_endpoint", ""),
                jwks_uri=document["jwks_uri"],
            )
        except (ValueError, KeyError, TypeError) as error:
            raise _provider_error("the discovery document is malformed") from error
        if metadata.issuer != self.settings.issuer:
            raise _provider_error("the discovery document names another issuer")
        for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"):
            self._check_endpoint(name, getattr(metadata, name))
        if metadata.end_session_endpoint:
            self._check_endpoint("end_session_endpoint", metadata.end_session_endpoint)
        self._metadata_cache[self.settings.discovery_url] = (
            self.now() + METADATA_TTL_SECONDS,
            metadata,
        )
        return metadata

    def _check_endpoint(self, name: str, url: str) -> None:
        """Tokens, codes and the client secret go to these URLs: https only. Plain http
        is accepted on loopback alone, and only when the issuer itself is a loopback
        http URL (the tests' provider, ``make psc-provider``)."""
        parts = urlsplit(url)
        if parts.scheme == "https" and parts.hostname:
            return
        issuer = urlsplit(self.settings.issuer)
        local = issuer.scheme == "http" and issuer.hostname in _LOOPBACK
        if local and parts.scheme == "http" and parts.hostname in _LOOPBACK:
            return
        raise _provider_error(f"the discovery document's {name} is not an https URL")

    def _keys(self, metadata: ProviderMetadata, *, refresh: bool = False) -> KeySet:
        if not refresh and metadata.jwks_uri in self._jwks_cache:
            return self._jwks_cache[metadata.jwks_uri]
        response = self._get(metadata.jwks_uri)
        try:
            keys = KeySet.import_key_set(response.json())
        except (ValueError, KeyError, TypeError, JoseError) as error:
            raise _provider_error("the provider's key set is malformed") from error
        self._jwks_cache[metadata.jwks_uri] = keys
        return keys

    def _decode(self, value: str, metadata: ProviderMetadata) -> jwt.Token:
        """Verify a JWS signed by the provider (its JWKS; HS256 with our client secret)."""
        if value.count(".") != 2:
            raise RelaisError(ErrorCode.PSC_TOKEN_INVALID, "not a signed JWT (JWS compact)")
        for attempt in range(2):  # the provider may have rotated its keys: refetch once
            keys = self._keys(metadata, refresh=attempt > 0)
            try:
                return jwt.decode(value, keys, algorithms=SIGNING_ALGORITHMS)
            except (BadSignatureError, ValueError, JoseError) as error:
                last_error: Exception = error
        try:
            return jwt.decode(
                value, OctKey.import_key(self.settings.client_secret), algorithms=["HS256"]
            )
        except (ValueError, JoseError):
            raise RelaisError(
                ErrorCode.PSC_TOKEN_INVALID, "the signature does not verify"
            ) from last_error

    # -- the authorization code flow -----------------------------------------------------

    def authorization_url(
        self, *, redirect_uri: str, state: str, nonce: str, code_verifier: str
    ) -> str:
        metadata = self.metadata()
        url, _state = self._oauth(redirect_uri=redirect_uri).create_authorization_url(
            metadata.authorization_endpoint,
            state=state,
            code_verifier=code_verifier,
            nonce=nonce,
            acr_values=ACR_VALUES,
        )
        return str(url)

    def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str) -> TokenSet:
        metadata = self.metadata()
        try:
            token = self._oauth(redirect_uri=redirect_uri).fetch_token(
                metadata.token_endpoint,
                grant_type="authorization_code",
                code=code,
                code_verifier=code_verifier,
                timeout=self.settings.http_timeout_seconds,
            )
        except (OAuthError, requests.RequestException, ValueError) as error:
            raise _provider_error("the code was refused by the token endpoint") from error
        if not token.get("access_token") or not token.get("id_token"):
            raise _provider_error("the token endpoint gave no access or ID token")
        return TokenSet(
            access_token=str(token["access_token"]),
            id_token=str(token["id_token"]),
            refresh_token=str(token.get("refresh_token") or ""),
        )

    def verify_id_token(self, id_token: str, *, nonce: str) -> dict[str, Any]:
        """The ID token's claims once signature, issuer, audience, times, nonce and acr
        are checked; a RelaisError with the precise code otherwise."""
        metadata = self.metadata()
        claims = dict(self._decode(id_token, metadata).claims)
        registry = jwt.JWTClaimsRegistry(
            now=int(self.now()),
            leeway=CLOCK_LEEWAY_SECONDS,
            iss={"essential": True, "value": metadata.issuer},
            aud={"essential": True, "value": self.settings.client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError as error:
            raise RelaisError(ErrorCode.PSC_TOKEN_EXPIRED) from error
        except JoseError as error:
            raise RelaisError(ErrorCode.PSC_TOKEN_INVALID, str(error)) from error
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.settings.client_id:
            raise RelaisError(ErrorCode.PSC_TOKEN_INVALID, "azp is not this client")
        if claims.get("nonce") != nonce:
            raise RelaisError(ErrorCode.PSC_NONCE_MISMATCH)
        if claims.get("acr") not in ACCEPTED_ACR:
            raise RelaisError(ErrorCode.PSC_ACR_INSUFFICIENT)
        return claims

    def userinfo(self, *, access_token: str, subject: str) -> dict[str, Any]:
        """The userinfo document, as JSON or as a JWT verified against the JWKS."""
        metadata = self.metadata()
        response = self._get(
            metadata.userinfo_endpoint, headers={"Authorization": f"Bearer {access_token}"}
        )
        if response.status_code != 200:
            raise _provider_error(f"userinfo answered HTTP {response.status_code}")
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        claims: dict[str, Any]
        if content_type == "application/jwt":
            claims = dict(self._decode(response.text.strip(), metadata).claims)
            registry = jwt.JWTClaimsRegistry(
                now=int(self.now()),
                leeway=CLOCK_LEEWAY_SECONDS,
                iss={"essential": True, "value": metadata.issuer},
                aud={"essential": True, "value": self.settings.client_id},
            )
            try:
                registry.validate(claims)
            except JoseError as error:
                raise RelaisError(ErrorCode.PSC_TOKEN_INVALID, str(error)) from error
        else:
            try:
                claims = json.loads(response.content)
            except ValueError as error:
                raise _provider_error("userinfo is neither JSON nor a JWT") from error
            if not isinstance(claims, dict):
                raise _provider_error("userinfo is not a JSON object")
        if claims.get("sub") != subject:
            raise RelaisError(ErrorCode.PSC_TOKEN_INVALID, "userinfo is about someone else")
        return claims

    def refresh(self, *, refresh_token: str) -> TokenSet | None:
        """New tokens while the PSC session lives; None once PSC refuses the refresh.

        Any OAuth 2.0 error answer (RFC 6749 §5.2: ``invalid_grant`` when the session
        ended or the user logged out at PSC, but also ``invalid_client``,
        ``unauthorized_client``, ``invalid_request``, ``invalid_scope``...) is a refusal:
        PSC no longer vouches for the session, so it ends. Only an outage raises (no
        answer, an HTTP 5xx, ``server_error``, ``temporarily_unavailable``): an
        unreachable PSC is not a logout."""
        metadata = self.metadata()
        try:
            token = self._oauth().refresh_token(
                metadata.token_endpoint,
                refresh_token=refresh_token,
                timeout=self.settings.http_timeout_seconds,
            )
        except OAuthError as error:
            if error.error in _OUTAGE_ERRORS:
                raise _provider_error(f"refresh failed: {error.error}") from error
            if error.error not in {"invalid_grant", "invalid_token"}:
                # Refused for a reason of ours (e.g. the client secret): say so once per
                # session check, without the token.
                logger.warning("Pro Santé Connect refused a refresh: %s", str(error.error)[:64])
            return None
        except (requests.RequestException, ValueError) as error:
            raise _provider_error("the token endpoint is unreachable") from error
        return TokenSet(
            access_token="",  # not needed: only the session's liveness matters
            id_token=str(token.get("id_token") or ""),
            refresh_token=str(token.get("refresh_token") or refresh_token),
        )

    def end_session_url(
        self, *, id_token_hint: str, post_logout_redirect_uri: str, state: str
    ) -> str:
        metadata = self.metadata()
        if not metadata.end_session_endpoint:
            return ""
        request = requests.Request(
            "GET",
            metadata.end_session_endpoint,
            params={
                "id_token_hint": id_token_hint,
                "post_logout_redirect_uri": post_logout_redirect_uri,
                "state": state,
                "client_id": self.settings.client_id,
            },
        ).prepare()
        return str(request.url)
