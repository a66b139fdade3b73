"""Cost of the end-to-end encryption on one core: ``python -m bench.crypto``.

* encrypt+sign: one envelope (AES-256-GCM with a ratchet step, Ed25519 signature);
* verify+decrypt: the receiving checks of ``e2ee.envelopes.decrypt_envelope``;
* sender-key share to a 50-device room: signing and HPKE-sealing one share for each of
  the other 49 devices (what a sender does after a rotation), and checking the 49
  devices' published key-agreement keys first (protocol v2: they rotate);
* opening one share (HPKE open + signature check).

Short by design (a few seconds): the machine is shared. Median of several rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench.e2ee_traffic import (
    TEXT,
    published_document,
    receiver_copy,
    synthetic_room,
    verify_document,
)
from e2ee import shares
from e2ee.envelopes import OutboundSession, decrypt_envelope, parse_envelope


def _median(samples: list[float]) -> float:
    return statistics.median(samples)


def run(*, messages: int, rounds: int) -> dict[str, float]:
    room_state, keys, refs = synthetic_room(50)
    sender = refs[0]
    results: dict[str, list[float]] = {
        "encrypt": [],
        "decrypt": [],
        "share50": [],
        "kex50": [],
        "open": [],
    }
    for _ in range(rounds):
        outbound = OutboundSession.create(
            room=room_state.room, sender=sender.ref, epoch=room_state.epoch, now_ms=0
        )
        inbound = receiver_copy(outbound)
        sessions = {(*inbound.sender, inbound.key_id): inbound}
        content = {"type": "text", "text": TEXT}
        start = time.perf_counter()
        envelopes = [
            outbound.encrypt(
                state=room_state, key_pair=keys[0], content=content, seq=n + 1, ts=n, log=None
            )
            for n in range(messages)
        ]
        results["encrypt"].append((time.perf_counter() - start) / messages * 1e6)
        start = time.perf_counter()
        for envelope in envelopes:
            decrypt_envelope(state=room_state, envelope=parse_envelope(envelope), sessions=sessions)
        results["decrypt"].append((time.perf_counter() - start) / messages * 1e6)
        documents = [(ref, published_document(keys[index], ref)) for index, ref in enumerate(refs)]
        start = time.perf_counter()
        recipients = [(ref, verify_document(raw, ref)) for ref, raw in documents]
        results["kex50"].append((time.perf_counter() - start) * 1e3)
        start = time.perf_counter()
        sealed = [
            shares.seal_share(
                session=outbound,
                epoch=room_state.epoch,
                key_pair=keys[0],
                recipient=recipient.ref,
                kex=kex_key,
            )
            for recipient, kex_key in recipients[1:]
        ]
        results["share50"].append((time.perf_counter() - start) * 1e3)
        start = time.perf_counter()
        for index, message in enumerate(sealed[:10], start=1):
            opened = shares.open_share(
                message=message, kex_private=keys[index].kex_private, me=refs[index].ref
            )
            shares.accept_share(opened, state=room_state)
        results["open"].append((time.perf_counter() - start) / 10 * 1e6)
    return {name: _median(values) for name, values in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    result = run(messages=args.messages, rounds=args.rounds)
    print(f"envelope of {len(TEXT)} characters, median of {args.rounds} rounds")
    print(f"encrypt + sign           {result['encrypt']:8.1f} µs/message")
    print(f"verify + decrypt         {result['decrypt']:8.1f} µs/message")
    print(
        f"sender-key share, 50-device room {result['share50']:6.1f} ms (49 HPKE seals + signatures)"
    )
    print(
        f"  + checking 49 key-agreement keys {result['kex50']:6.1f} ms (49 Ed25519 verifications)"
    )
    print(f"open + verify one share  {result['open']:8.1f} µs")


if __name__ == "__main__":
    main()
