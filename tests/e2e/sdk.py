"""Helpers for end-to-end tests with SDK clients against a real server process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from client import registration
from client.events import Message, SecurityAlert
from client.logview import LogConfig
from client.session import RelaisClient
from client.store import KeyStore
from e2ee.recovery import RecoveryCode
from tests.identities import account_store_entry

TIMEOUT = 20
PASSPHRASE = "correct horse battery staple"


def _store(directory: Path, name: str) -> KeyStore:
    return KeyStore.open(directory / f"{name}.store", PASSPHRASE, n=2**10)


def identity_store(directory: Path, name: str, national_id: str) -> KeyStore:
    """A store that already holds its practitioner's identity, as a linked device's
    does (every test device of one practitioner holds the same: tests/identities.py)."""
    store = _store(directory, name)
    store.data.setdefault("account", account_store_entry(national_id))
    return store


async def open_client(
    server_url: str,
    directory: Path,
    national_id: str,
    name: str,
    *,
    clock: Callable[[], int] | None = None,
    log_config: LogConfig | None = None,
    linked_from: RelaisClient | None = None,
    recovery_code: str | None = None,
    with_code: bool = False,
    holds_identity: bool = False,
) -> Any:
    """A registered, connected client with its own encrypted store (cheap scrypt): the
    practitioner's first device (it makes the identity; with ``with_code``, the recovery
    code it showed is returned too), a device linked from ``linked_from`` by the link
    code, a device recovered with ``recovery_code``, or (``holds_identity``) a device
    whose store already holds the practitioner's test identity."""
    extra: dict[str, Any] = {"log_config": log_config}
    if clock is not None:
        extra["clock"] = clock
    store = (
        identity_store(directory, name, national_id) if holds_identity else _store(directory, name)
    )
    client = RelaisClient(server=server_url, store=store, **extra)
    code: RecoveryCode | None = None
    if linked_from is not None:
        login = await client.api.dev_login(national_id, name)
        pending = await registration.start_link(
            client, token=login["token"], device=login["device"], national_id=national_id
        )

        async def yes(device: int, device_name: str) -> bool:
            return True

        await registration.approve_link(linked_from, pending.code.short_code, confirm=yes)
        await registration.finish_link(client, pending)
    elif recovery_code is not None:
        login = await client.api.dev_login(national_id, name)
        await registration.recover(
            client,
            token=login["token"],
            device=login["device"],
            national_id=national_id,
            code_text=recovery_code,
        )
    else:
        code = await client.register_dev(national_id, device_name=name)
    await client.connect()
    return (client, code) if with_code else client


async def new_client(
    server_url: str, directory: Path, national_id: str, name: str, **options: Any
) -> RelaisClient:
    """A registered, connected device of a practitioner whose store holds their test
    identity: several calls for one practitioner give devices of one identity, as
    linking would (``open_client`` links for real)."""
    client: RelaisClient = await open_client(
        server_url, directory, national_id, name, holds_identity=True, **options
    )
    return client


async def token_client(
    server_url: str, directory: Path, *, national_id: str, name: str, device: int, token: str
) -> RelaisClient:
    """A connected client whose device token was issued by any login (the tests issue it
    in the database), for servers without the development login."""
    client = RelaisClient(server=server_url, store=identity_store(directory, name, national_id))
    await client.register_with_token(token=token, device=device, national_id=national_id)
    await client.connect()
    return client


async def reopen(client: RelaisClient, directory: Path, name: str) -> RelaisClient:
    """The same device after an app restart: the store read back from disk."""
    await client.close()
    again = RelaisClient(server=client.server, store=_store(directory, name))
    await again.connect()
    return again


async def next_message(client: RelaisClient) -> Message:
    """The next message from another device (the server also returns one's own
    messages when it fills a gap; the SDK marks them ``own``)."""
    while True:
        message = await asyncio.wait_for(client.messages.get(), TIMEOUT)
        if not message.own:
            return message


async def next_alert(client: RelaisClient) -> SecurityAlert:
    return await asyncio.wait_for(client.alerts.get(), TIMEOUT)


async def wait_alert(client: RelaisClient, kind: str) -> SecurityAlert:
    """The next alert of ``kind`` (others before it are skipped)."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            alert = await client.alerts.get()
            if alert.kind == kind:
                return alert


async def barrier(client: RelaisClient) -> None:
    """Everything the server queued for this client before now has been processed."""
    await client.sync()
