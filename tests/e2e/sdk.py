"""Helpers for end-to-end tests with SDK clients against a real server process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from client import registration
from client.events import Message, SecurityAlert
from client.session import RelaisClient
from client.store import KeyStore
from e2ee.recovery import RecoveryCode

TIMEOUT = 20
PASSPHRASE = "correct horse battery staple"


def _store(directory: Path, name: str) -> KeyStore:
    return KeyStore.open(directory / f"{name}.store", PASSPHRASE, n=2**10)


async def open_client(
    server_url: str,
    directory: Path,
    national_id: str,
    name: str,
    *,
    clock: Callable[[], int] | None = None,
    linked_from: RelaisClient | None = None,
    recovery_code: str | None = None,
    with_code: bool = False,
) -> Any:
    """A registered, connected client with its own encrypted store (cheap scrypt): the
    practitioner's first device, a device linked from ``linked_from`` (approved by it),
    or a device recovered with ``recovery_code``. With ``with_code``, also the recovery
    code the first device showed."""
    extra = {"clock": clock} if clock is not None else {}
    client = RelaisClient(server=server_url, store=_store(directory, name), **extra)
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


async def new_client(server_url: str, directory: Path, national_id: str, name: str) -> RelaisClient:
    """A practitioner's first device, registered and connected."""
    client: RelaisClient = await open_client(server_url, directory, national_id, name)
    return client


async def token_client(
    server_url: str, directory: Path, *, national_id: str, name: str, device: int, token: str
) -> RelaisClient:
    """A connected client whose device token was issued by any login (the tests issue it
    in the database), for servers without the development login."""
    client = RelaisClient(server=server_url, store=_store(directory, name))
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
