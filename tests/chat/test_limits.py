"""How many WebSockets a device and an address may hold (docs/protocol.md §7)."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async as sync_to_async

from tests.wsclient import Client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def few(settings):
    settings.RELAIS = {
        **settings.RELAIS,
        "MAX_CONNECTIONS_PER_DEVICE": 2,
        "MAX_CONNECTIONS_PER_ADDRESS": 4,
        "MAX_UNAUTHENTICATED_PER_ADDRESS": 2,
    }


async def refused(client: Client) -> int:
    assert await client.connect()
    error = await client.receive_type("error")
    assert error["code"] == "too_many_connections"
    assert error["message_fr"]
    return await client.expect_close()


async def test_a_device_holds_a_few_sockets_and_the_next_is_refused(
    runtime, practitioners, device_token, few
):
    _device, token = await sync_to_async(device_token)(practitioners["nurse"])
    first, second = (
        Client(token=token, address="192.0.2.1"),
        Client(token=token, address="192.0.2.2"),
    )
    await first.start()
    await second.start()
    # Another address changes nothing: the ceiling is the device's.
    assert await refused(Client(token=token, address="192.0.2.3")) == 4029
    # Also through an auth frame.
    late = Client(address="192.0.2.4")
    assert await late.connect()
    await late.send({"type": "auth", "token": token})
    assert (await late.receive_type("error"))["code"] == "too_many_connections"
    assert await late.expect_close() == 4029
    await first.close()
    again = Client(token=token, address="192.0.2.3")
    await again.start()  # a closed socket frees its place
    for client in (second, again):
        await client.close()


async def test_an_address_holds_a_few_sockets_not_authenticated_and_a_few_in_all(
    runtime, practitioners, device_token, few
):
    waiting = [Client(address="198.51.100.7") for _ in range(2)]
    for client in waiting:
        assert await client.connect()
    assert await refused(Client(address="198.51.100.7")) == 4029
    assert await Client(address="198.51.100.8").connect()  # another address
    # Authenticating frees an unauthenticated place; the address's total still counts.
    tokens = [
        (await sync_to_async(device_token)(practitioners[name]))[1]
        for name in ("nurse", "doctor", "physio")
    ]
    await waiting[0].send({"type": "auth", "token": tokens[0]})
    await waiting[0].receive_type("ready")
    extra = Client(token=tokens[1], address="198.51.100.7")
    await extra.start()  # 3 sockets at this address
    fourth = Client(address="198.51.100.7")
    assert await fourth.connect()  # 4: the ceiling
    assert await refused(Client(token=tokens[2], address="198.51.100.7")) == 4029
    for client in (*waiting, extra, fourth):
        await client.close()
