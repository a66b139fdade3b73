"""The log against a dishonest operator, on real server processes with real SDK clients
and the witness running as its own process (``python -m witness``).

* Clients that require the witness refuse every head it did not cosign, and accept
  the log once it has; the witness refuses to cosign a forked head the operator signs.
* The operator (database and log key) publishes a rogue identity key and a device
  under it for the doctor, and answers the doctor's device with an older, consistent
  head so that its audit would stop before them (the "blinded monitor"): a head the
  nurse gossips brings the doctor's view forward, and the doctor's monitor alerts.
* The operator shows the nurse a forked tree: gossip between two devices finds it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest
from channels.db import database_sync_to_async as sync_to_async
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import transaction

from client.logview import ForkDetectedError, KeyTransparencyError, LogConfig
from client.session import RelaisClient
from e2ee import merkle, transparency, tree_heads
from e2ee.encoding import b64u
from e2ee.keys import DeviceKeyPair, raw_public
from keylog.keys import log_public, log_signing_key
from keylog.models import Cosignature, LogEntry, SignedTreeHead
from keylog.services import _append as operator_append
from tests.e2e.sdk import new_client, next_alert
from tests.e2e.server import ROOT, ServerProcess

pytestmark = pytest.mark.e2e
NURSE, DOCTOR = "810003456786", "810001987659"
TIMEOUT = 20


def largest(client: RelaisClient) -> tree_heads.TreeHead:
    head = client.directory.log.largest
    assert head is not None
    return head


def gossip(client: RelaisClient) -> tuple[int, bytes]:
    seen = client.directory.log.gossip()
    assert seen is not None
    return seen


async def until(predicate: Any, what: str) -> None:
    """Wait (bounded) for another process to do something we can only observe."""
    async with asyncio.timeout(TIMEOUT):
        while not await predicate():  # noqa: ASYNC110 (another process: no event to await)
            await asyncio.sleep(0.1)


@pytest.fixture
def witness_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def server(server_env, tmp_path, practitioners, witness_key):
    env = {
        **server_env,
        "RELAIS_DEBUG": "1",
        "RELAIS_KEYLOG_WITNESSES": b64u(raw_public(witness_key)),
    }
    process = ServerProcess(env=env, log_path=tmp_path / "server.log")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def dev_server(server_env, practitioners, shared_server):
    """A development server without witnesses, for the operator's tricks: the test
    worker's shared one."""
    shared_server.wait_healthy()
    return shared_server


def start_witness(server: ServerProcess, key: Ed25519PrivateKey, tmp_path) -> subprocess.Popen:
    key_file = tmp_path / "witness.key"
    key_file.write_bytes(key.private_bytes_raw())
    key_file.chmod(0o600)
    log = (tmp_path / "witness.log").open("ab")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "witness",
            "--log-url",
            server.http_url,
            # With "=": a base64url key may begin with "-", which argparse would take for
            # an option.
            f"--log-key={b64u(log_public())}",
            "--key-file",
            str(key_file),
            "--state-file",
            str(tmp_path / "witness-state.json"),
            "--interval",
            "0.2",
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def test_clients_need_the_witness_and_it_never_cosigns_a_fork(server, tmp_path, witness_key):
    config = LogConfig(log_key=log_public(), witnesses=[raw_public(witness_key)])
    nurse = await new_client(server.http_url, tmp_path, NURSE, "nurse", log_config=config)
    # Nothing is cosigned yet: every head the log serves is refused.
    with pytest.raises(KeyTransparencyError, match="cosigned by 0 of the 1"):
        await nurse.directory.pin_log_key()
    with pytest.raises(KeyTransparencyError):
        await nurse.directory.identity_of(NURSE)
    witness = start_witness(server, witness_key, tmp_path)
    try:
        size = await sync_to_async(LogEntry.objects.count)()

        async def cosigned() -> bool:
            found: bool = await sync_to_async(Cosignature.objects.filter(head__size=size).exists)()
            return found

        await until(cosigned, "the witness cosigns the current head")
        # Now the same client accepts the log and finds its own keys.
        identity = await nurse.directory.identity_of(NURSE)
        assert list(identity.devices) == [nurse.device_id]
        assert largest(nurse).size == size

        # The operator signs another tree of the same size, newer: the witness
        # refuses it, clients keep being served the cosigned head, and refuse the fork.
        forged = tree_heads.sign_tree_head(
            log_key=log_signing_key(),
            size=size,
            root=bytes(32),
            timestamp=largest(nurse).timestamp + 1,
        )
        await sync_to_async(SignedTreeHead.objects.create)(
            size=size, root=forged.root, timestamp_ms=forged.timestamp, signature=forged.signature
        )

        async def refused() -> bool:
            return "refusing to cosign" in (tmp_path / "witness.log").read_text()

        await until(refused, "the witness refuses the fork")
        assert not await sync_to_async(Cosignature.objects.filter(head__root=bytes(32)).exists)()
        assert (await nurse.directory.identity_of(NURSE)).identity_key is not None
        with pytest.raises(KeyTransparencyError, match="cosigned by 0 of the 1"):
            await nurse.directory.accept_tree_head(
                forged.to_json(log_public=log_public()),
                [
                    tree_heads.cosign(
                        witness_key=Ed25519PrivateKey.generate(),
                        log_public=log_public(),
                        head=forged,
                    )
                ],
            )
    finally:
        witness.terminate()
        assert witness.wait(timeout=10) == 0
    await nurse.close()


def rogue_identity_and_device(national_id: str) -> tuple[bytes, int]:
    """The operator publishes an identity key of its own for ``national_id`` (as an
    identity reset would) and a device properly cross-signed by it."""
    rogue = Ed25519PrivateKey.generate()
    keys = DeviceKeyPair.generate()
    device = 999_000 + int(national_id[-3:])
    common: dict[str, Any] = {"national_id": national_id, "device": device, "kind": "device"}
    with transaction.atomic():
        operator_append(
            national_id=national_id,
            device_id=None,
            sign_key=None,
            record=lambda label, prev: transparency.IdentityEntry(
                label,
                prev,
                raw_public(rogue),
                "practitioner",
                transparency.sign_identity_binding(rogue, national_id),
                1,
            ),
        )
        operator_append(
            national_id=national_id,
            device_id=device,
            sign_key=keys.public.sign_key,
            record=lambda label, prev: transparency.DeviceEntry(
                label,
                prev,
                device,
                "device",
                raw_public(rogue),
                keys.public.sign_key,
                transparency.sign_device_certificate(
                    rogue, **common, sign_key=keys.public.sign_key
                ),
                transparency.sign_device_registration(
                    keys.sign_private, **common, identity_key=raw_public(rogue)
                ),
                1,
            ),
        )
    return raw_public(rogue), device


class ChosenAnswers:
    """The operator's answers to one client: ``overrides[path](params)`` when present,
    the real server's otherwise."""

    def __init__(self, client: Any, overrides: dict[str, Any]) -> None:
        self.real = client.api.call
        self.overrides = overrides
        client.api.call = self.call

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        if path in self.overrides:
            return await self.overrides[path](kwargs.get("params"))
        return await self.real(method, path, **kwargs)


async def test_the_blinded_monitor_still_alerts_on_a_rogue_identity_key(dev_server, tmp_path):
    doctor = await new_client(dev_server.http_url, tmp_path, DOCTOR, "doctor")
    nurse = await new_client(dev_server.http_url, tmp_path, NURSE, "nurse")
    older = await doctor.api.call("GET", "keys/log")  # the head the doctor is kept on
    await doctor.directory.accept_tree_head(older["tree_head"], older["cosignatures"])
    before = largest(doctor)
    rogue_key, rogue_device = await sync_to_async(rogue_identity_and_device)(DOCTOR)
    # Everyone else now sees the new identity key under the doctor's name.
    assert (await nurse.directory.identity_of(DOCTOR)).identity_key == rogue_key

    async def old_head(_params: Any) -> Any:
        return older

    ChosenAnswers(doctor, {"keys/log": old_head})
    # Blinded: auditing only up to what the server answers finds nothing.
    assert await doctor.check_my_devices() == []
    assert largest(doctor).size == before.size
    # The nurse's head reaches the doctor's device (inside an envelope or a state
    # event): it is checked against the log and becomes the doctor's view.
    size, root = gossip(nurse)
    await doctor.directory.observe_gossip(size, root)
    assert largest(doctor).size == size > before.size
    # The monitor audits up to the largest head ever accepted, whatever it is told now.
    assert await doctor.check_my_devices() == [rogue_device]
    alerts = {(await next_alert(doctor)).kind for _ in range(2)}
    assert alerts == {"unknown_identity_key", "unknown_device"}
    await doctor.close()
    await nurse.close()


async def test_a_forked_tree_shown_to_one_device_is_found_by_gossip(dev_server, tmp_path):
    nurse = await new_client(dev_server.http_url, tmp_path, NURSE, "nurse")
    doctor = await new_client(dev_server.http_url, tmp_path, DOCTOR, "doctor")
    # The operator keeps an alternative tree: the real entries, then one of its own.
    leaves = await sync_to_async(
        lambda: [merkle.leaf_hash(bytes(e.leaf)) for e in LogEntry.objects.order_by("index")]
    )()
    size = len(leaves)
    forked_leaves = [*leaves, merkle.leaf_hash(b"the operator's own entry")]
    forked = tree_heads.sign_tree_head(
        log_key=log_signing_key(),
        size=size + 1,
        root=merkle.root(forked_leaves),
        timestamp=largest(nurse).timestamp + 1,
    )
    real_info = await nurse.api.call("GET", "keys/log")

    async def forked_head(_params: Any) -> Any:
        return {
            **real_info,
            "tree_head": forked.to_json(log_public=log_public()),
            "cosignatures": [],
        }

    async def forked_proof(params: Any) -> Any:
        proof = merkle.consistency_proof(forked_leaves[: params["second"]], params["first"])
        return {**params, "proof": [b64u(p) for p in proof]}

    ChosenAnswers(nurse, {"keys/log": forked_head, "keys/log/consistency": forked_proof})
    await nurse.directory.pin_log_key()
    assert largest(nurse) == forked  # the nurse alone cannot tell
    # The real log grows by one entry, which the doctor's device sees.
    await sync_to_async(rogue_identity_and_device)(NURSE)  # two entries: size + 2
    await doctor.directory.pin_log_key()
    # Gossip of the doctor's head to the nurse, and of the nurse's to the doctor.
    with pytest.raises(ForkDetectedError):
        await nurse.directory.observe_gossip(*gossip(doctor))
    with pytest.raises(ForkDetectedError):
        await doctor.directory.observe_gossip(size + 1, forked.root)
    await nurse.close()
    await doctor.close()
