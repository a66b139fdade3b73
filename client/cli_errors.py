"""What the terminal says when something goes wrong: one line, in French and English,
and what to do — never a Python traceback for an ordinary situation."""

from __future__ import annotations

import httpx
from websockets.exceptions import InvalidHandshake, InvalidStatus

from client.api import ApiError
from client.directory import KeyTransparencyError
from client.events import SecurityError
from client.registration import IdentityExistsError
from client.store import StoreError

EXIT_FAILURE = 2


class CliError(Exception):
    """A one-line message for the person at the terminal (French / English)."""

    def __init__(self, french: str, english: str) -> None:
        self.french = french
        self.english = english
        super().__init__(f"{french} / {english}")

    def __str__(self) -> str:
        return f"{self.french} / {self.english}"


def unreachable(server: str) -> CliError:
    return CliError(
        f"le serveur {server} ne répond pas ; vérifiez qu'il est démarré (make run)",
        f"the server {server} does not answer; check it is running (make run)",
    )


def explain(error: BaseException, *, server: str, store: str = "") -> CliError:
    """The one-line message for an error met in ordinary use."""
    if isinstance(error, CliError):
        return error
    if isinstance(
        error, httpx.TransportError | ConnectionRefusedError | OSError | InvalidHandshake
    ):
        if isinstance(error, InvalidStatus) and error.response.status_code in (401, 403):
            return stale_store(store)
        return unreachable(server)
    if isinstance(error, StoreError):
        return CliError(f"coffre de clés : {error}", f"key store: {error}")
    if isinstance(error, IdentityExistsError):
        return CliError(
            "ce professionnel utilise déjà Relais sur un autre appareil : liez celui-ci "
            "(python -m client link) ou restaurez-le avec le code de récupération "
            "(python -m client recover)",
            "this practitioner already uses Relais on another device: link this one "
            "(python -m client link) or recover it with the recovery code "
            "(python -m client recover)",
        )
    if isinstance(error, KeyTransparencyError):
        return CliError(
            f"vérification du journal de transparence refusée : {error}",
            f"key-transparency check refused: {error}",
        )
    if isinstance(error, SecurityError):
        return CliError(
            f"refusé pour votre sécurité : {error}", f"refused for your safety: {error}"
        )
    if isinstance(error, ApiError):
        if error.code == "auth_failed" or error.status == 401:
            return stale_store(store)
        if error.code == "rate_limited":
            return CliError(
                "trop de requêtes ; réessayez dans un instant", "too many requests; retry shortly"
            )
        return CliError(f"le serveur refuse : {error.code}", f"the server refuses: {error}")
    if isinstance(error, TimeoutError):
        return CliError(
            "le serveur met trop de temps à répondre", "the server takes too long to answer"
        )
    return CliError(f"erreur inattendue : {error!r}", f"unexpected error: {error!r}")


def stale_store(store: str) -> CliError:
    return CliError(
        f"ce coffre de clés ne correspond plus au serveur (base réinitialisée, ou journal de "
        f"clés réécrit) : supprimez {store} ou choisissez-en un autre avec --store",
        f"this key store no longer matches the server (its database was reset, or its key "
        f"log rewritten): delete {store} or choose another with --store",
    )
