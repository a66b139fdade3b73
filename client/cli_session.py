"""Opening a device for a CLI command: the key store, the first registration (with its
recovery code), logging in again when the device's token expired or its PSC session
ended, and people's names as the directory gives them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from websockets.exceptions import InvalidStatus

from client.api import ApiError
from client.cli_errors import CliError, stale_store
from client.directory import KeyTransparencyError
from client.logview import ForkDetectedError, LogConfig
from client.session import RelaisClient
from client.store import KeyStore, StoreError

Output = Callable[[str], None]


@dataclass(frozen=True)
class Options:
    server: str
    me: str
    store_path: Path
    passphrase: str
    home: Path
    out: Output


def open_store(options: Options) -> KeyStore:
    try:
        return KeyStore.open(options.store_path, options.passphrase)
    except StoreError as error:
        raise CliError(f"coffre de clés : {error}", f"key store: {error}") from None


def new_client(options: Options) -> RelaisClient:
    client = RelaisClient(
        server=options.server, store=open_store(options), log_config=LogConfig.from_environment()
    )
    if client.registered and client.national_id != options.me:
        client.store.close()
        raise CliError(
            f"ce coffre de clés appartient à {client.national_id}",
            f"this key store belongs to {client.national_id}",
        )
    return client


async def check_practitioner(client: RelaisClient, national_id: str) -> None:
    """Answer at once when a national id is not a practitioner of the directory."""
    try:
        await client.api.call("GET", f"directory/practitioners/{national_id}")
    except ApiError as error:
        if error.status == 404:
            raise CliError(
                f"{national_id} n'est pas un professionnel connu de l'annuaire",
                f"{national_id} is not a practitioner of the directory",
            ) from None
        raise


def print_recovery_code(code: object, out: Output) -> None:
    out("** code de récupération — notez-le sur papier et gardez-le à l'abri ; il ne sera")
    out("** plus jamais affiché / recovery code — write it down and keep it safe; it will")
    out("** never be shown again:")
    out(f"**     {code}")


async def connected(client: RelaisClient, options: Options) -> RelaisClient:
    """Register the device on first use, connect, and log in again as a new device
    when the server no longer knows this one (token expired, device revoked)."""
    if not client.registered:
        with contextlib.suppress(ApiError):
            await client.api.call("GET", "keys/log")  # the server answers at all
        try:
            code = await client.register_dev(options.me, device_name="terminal")
        except ApiError as error:
            if error.status == 404:
                raise CliError(
                    f"{options.me} n'est pas un professionnel connu (ou la connexion de "
                    "développement est fermée sur ce serveur)",
                    f"{options.me} is not a known practitioner (or the development login "
                    "is off on this server)",
                ) from None
            raise
        options.out(
            f"appareil {client.device_id} de {options.me} : clés certifiées dans le journal "
            f"/ device {client.device_id} of {options.me}: keys certified in the log"
        )
        if code is not None:
            print_recovery_code(code, options.out)
    try:
        await client.connect()
    except ForkDetectedError:
        raise stale_store(str(options.store_path)) from None
    except (ApiError, InvalidStatus) as error:
        status = error.status if isinstance(error, ApiError) else error.response.status_code
        if status not in (401, 403):
            raise
        await client.disconnect()
        options.out(
            "cet appareil n'est plus connecté : nouvelle connexion… / this device was logged "
            "out: logging in again…"
        )
        try:
            await client.register_dev(options.me, device_name="terminal")
        except KeyTransparencyError:
            raise stale_store(str(options.store_path)) from None
        await client.connect()
    return client


@dataclass
class Names:
    """People's names and professions as the directory gives them, looked up once."""

    client: RelaisClient
    known: dict[str, str] = field(default_factory=dict)

    async def of(self, national_id: str) -> str:
        if national_id not in self.known:
            try:
                entry = await self.client.api.call("GET", f"directory/practitioners/{national_id}")
                name = f"{entry['first_name']} {entry['last_name']}".strip()
                label = entry.get("profession_label") or ""
                self.known[national_id] = f"{name} ({label})" if label else name or national_id
            except ApiError:
                self.known[national_id] = national_id
        return self.known[national_id]
