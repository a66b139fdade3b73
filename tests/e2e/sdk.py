"""Helpers for end-to-end tests with SDK clients against a real server process."""

from __future__ import annotations

import asyncio
from pathlib import Path

from client.events import Message, SecurityAlert
from client.session import RelaisClient
from client.store import KeyStore
from tests.identities import identity_store_entry

TIMEOUT = 20


def linked_store(path: Path, national_id: str) -> KeyStore:
    """A new device's store holding its practitioner's identity key, as linking from
    another device of theirs gives it (the same key for every test device of one
    practitioner: tests/identities.py)."""
    store = KeyStore.open(path, "correct horse battery staple", n=2**10)
    store.data.setdefault("identity", identity_store_entry(national_id))
    return store


async def new_client(
    server_url: str, directory: Path, national_id: str, name: str, **options: object
) -> RelaisClient:
    """A registered, connected client with its own encrypted store (cheap scrypt)."""
    store = linked_store(directory / f"{name}.store", national_id)
    client = RelaisClient(server=server_url, store=store, **options)  # type: ignore[arg-type]
    await client.register_dev(national_id, device_name=name)
    await client.connect()
    return client


async def token_client(
    server_url: str, directory: Path, *, national_id: str, name: str, device: int, token: str
) -> RelaisClient:
    """A connected client whose device token was issued by any login (the tests issue it
    in the database), for servers without the development login."""
    store = linked_store(directory / f"{name}.store", national_id)
    client = RelaisClient(server=server_url, store=store)
    await client.register_with_token(token=token, device=device, national_id=national_id)
    await client.connect()
    return client


async def reopen(client: RelaisClient, directory: Path, name: str) -> RelaisClient:
    """The same device after an app restart: the store read back from disk."""
    await client.close()
    store = KeyStore.open(directory / f"{name}.store", "correct horse battery staple", n=2**10)
    again = RelaisClient(server=client.server, store=store)
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


async def barrier(client: RelaisClient) -> None:
    """Everything the server queued for this client before now has been processed."""
    await client.sync()
