"""``RELAIS_PSC_*`` environment variables, read once by ``server/settings.py``.

Production is the default; ``RELAIS_PSC_ENVIRONMENT=sandbox`` selects PSC's sandbox
("bac à sable", BAS). The endpoints are ANS's (docs/identity.md); every one can be
overridden, which is how the tests point Relais at a provider on loopback.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from server.environment import ConfigurationError, env_int, env_list, env_str

PSC_ENDPOINTS = {
    "production": {
        "ISSUER": "https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet",
        "AUTHORIZATION_ENDPOINT": "https://wallet.esw.esante.gouv.fr/auth",
    },
    "sandbox": {
        "ISSUER": "https://auth.bas.psc.esante.gouv.fr/auth/realms/esante-wallet",
        "AUTHORIZATION_ENDPOINT": "https://wallet.bas.psc.esante.gouv.fr/auth",
    },
}
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _https_or_loopback(name: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        return url
    raise ConfigurationError(f"{name} must be an https:// URL (http:// only on loopback): {url!r}")


def psc_from_environment() -> dict[str, Any]:
    environment = env_str("RELAIS_PSC_ENVIRONMENT", "production").strip().lower()
    if environment not in PSC_ENDPOINTS:
        raise ConfigurationError(
            f"RELAIS_PSC_ENVIRONMENT must be production or sandbox, not {environment!r}"
        )
    defaults = PSC_ENDPOINTS[environment]
    issuer = env_str("RELAIS_PSC_ISSUER", defaults["ISSUER"]).rstrip("/")
    # With a custom issuer, the authorization endpoint comes from its discovery document
    # unless given explicitly.
    default_authorization = (
        defaults["AUTHORIZATION_ENDPOINT"] if issuer == defaults["ISSUER"] else ""
    )
    authorization = env_str("RELAIS_PSC_AUTHORIZATION_ENDPOINT", default_authorization)
    unknown = env_str("RELAIS_PSC_UNKNOWN_PRACTITIONER", "create").strip().lower()
    if unknown not in {"create", "refuse"}:
        raise ConfigurationError(
            f"RELAIS_PSC_UNKNOWN_PRACTITIONER must be create or refuse, not {unknown!r}"
        )
    return {
        "ENVIRONMENT": environment,
        "ISSUER": _https_or_loopback("RELAIS_PSC_ISSUER", issuer),
        "AUTHORIZATION_ENDPOINT": authorization
        and _https_or_loopback("RELAIS_PSC_AUTHORIZATION_ENDPOINT", authorization),
        "CLIENT_ID": env_str("RELAIS_PSC_CLIENT_ID", ""),
        "CLIENT_SECRET": env_str("RELAIS_PSC_CLIENT_SECRET", ""),
        "REDIRECT_URI": env_str("RELAIS_PSC_REDIRECT_URI", ""),
        "POST_LOGOUT_REDIRECT_URI": env_str("RELAIS_PSC_POST_LOGOUT_REDIRECT_URI", ""),
        "CLIENT_REDIRECT_URIS": env_list("RELAIS_PSC_CLIENT_REDIRECT_URIS", []),
        "SESSION_CHECK_SECONDS": env_int("RELAIS_PSC_SESSION_CHECK_SECONDS", 300),
        "UNKNOWN_PRACTITIONER": unknown,
        "HTTP_TIMEOUT_SECONDS": env_int("RELAIS_PSC_HTTP_TIMEOUT", 10),
        "LOGIN_TIMEOUT_SECONDS": env_int("RELAIS_PSC_LOGIN_TIMEOUT", 600),
        "LOGIN_CODE_SECONDS": 120,
    }
