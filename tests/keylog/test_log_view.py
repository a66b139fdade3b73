"""The client's rules for tree heads (client/logview.py), against an in-memory log that
can answer as a dishonest operator holding the log key would: heads not signed by the
log, not cosigned by the witnesses, stale, from the future, smaller than one already
accepted, or forked — and gossip between two devices."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client.logview import ForkDetectedError, KeyTransparencyError, LogConfig, LogView
from e2ee.keys import raw_public
from e2ee.tree_heads import TreeHead
from tests.keylog.memory_log import NOW, MemoryLog

HOUR = 3_600_000


def view(log: MemoryLog, **config) -> LogView:
    options = {
        "log_key": log.log_public,
        "witnesses": [raw_public(w) for w in log.witnesses],
        "clock": lambda: NOW,
        **config,
    }
    return LogView(log, {}, LogConfig(**options))  # type: ignore[arg-type]


def largest(device: LogView) -> TreeHead:
    head = device.largest
    assert head is not None
    return head


@pytest.fixture
def log() -> MemoryLog:
    memory = MemoryLog([Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()])
    memory.append(5)
    return memory


async def test_a_signed_cosigned_fresh_head_is_accepted_and_becomes_the_view(log):
    device = view(log)
    await device.start()
    assert device.largest == log.head()
    assert not device.tofu
    log.append(3)
    grown = await device.accept(**log.served(log.head()))
    assert device.largest == grown
    assert grown.size == 8


async def test_another_log_key_is_refused_and_none_configured_is_trust_on_first_use(log):
    with pytest.raises(KeyTransparencyError, match="not the one this app trusts"):
        await view(log, log_key=raw_public(Ed25519PrivateKey.generate())).start()
    development = view(log, log_key=None, witnesses=[])
    await development.start()
    assert development.tofu


async def test_unsigned_uncosigned_stale_and_future_heads_are_refused(log):
    device = view(log)
    await device.start()
    impostor = MemoryLog(log.witnesses)
    impostor.append(5)
    impostor.keys = type(log.keys)(Ed25519PrivateKey.generate(), log.keys.vrf_secret)
    cases = {
        "not the log's signature": impostor.served(impostor.head()),
        "one witness of two": log.served(log.head(), [log.witnesses[0]]),
        "a stranger's cosignature": log.served(log.head(), [Ed25519PrivateKey.generate()]),
        "older than the maximum age": log.served(log.head(timestamp=NOW - HOUR - 1)),
        "from the future": log.served(log.head(timestamp=NOW + HOUR)),
    }
    for _why, served in cases.items():
        with pytest.raises(KeyTransparencyError):  # {why}
            await device.accept(**served)
    # A configured minimum of one witness accepts a head one of them cosigned.
    lenient = view(log, required_cosignatures=1)
    await lenient.accept(**log.served(log.head(), [log.witnesses[1]]))


async def test_a_smaller_head_is_checked_as_a_prefix_and_never_replaces_the_largest(log):
    device = view(log)
    log.append(5)
    await device.accept(**log.served(log.head()))
    older = await device.accept(**log.served(log.head(4)))
    assert older.size == 4
    assert largest(device).size == 10  # the view never goes back
    # A smaller head of another history: refused as a fork.
    with pytest.raises(ForkDetectedError):
        await device.accept(**log.served(log.head(4, root=bytes(32))))
    assert largest(device).size == 10


async def test_a_forked_head_of_the_same_size_or_a_rewritten_history_is_a_fork(log):
    device = view(log)
    await device.accept(**log.served(log.head()))
    with pytest.raises(ForkDetectedError):
        await device.accept(**log.served(log.head(root=bytes(32))))
    log.leaves[2] = bytes(32)  # history rewritten, then grown
    log.append(2)
    with pytest.raises(ForkDetectedError):
        await device.accept(**log.served(log.head()))


async def test_gossip_between_two_devices_finds_a_fork(log):
    honest, victim = view(log), view(log)
    await honest.accept(**log.served(log.head()))
    # The operator shows the victim another tree of the same size (cosigned by no
    # witness here: a development setup without witnesses would accept it).
    fork = log.head(root=bytes(32))
    forked_victim = view(log, witnesses=[])
    await forked_victim.accept(**log.served(fork, []))
    gossiped = honest.gossip()
    assert gossiped is not None
    size, root = gossiped
    with pytest.raises(ForkDetectedError):
        await forked_victim.observe_gossip(size, root)
    with pytest.raises(ForkDetectedError):
        await honest.observe_gossip(size, fork.root)
    # Honest gossip of a larger, consistent head moves the view forward.
    log.append(2)
    await victim.accept(**log.served(log.head(5)))
    await victim.observe_gossip(7, log.head().root)
    assert largest(victim).size == 7
