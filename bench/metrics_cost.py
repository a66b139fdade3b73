"""What the metrics cost on the message path, per batch and per envelope.

    python -m bench.metrics_cost [--batch 8] [--rate 10000]

The message path updates the Prometheus metrics once per store batch (``relais_sends``,
``relais_acks``, the batch size and time), once per Redis batch published
(two counters) and once per Redis batch received (the fan-out lag), never per envelope.
This times exactly those calls, as ``chat/storage/postgres.py`` and ``chat/fanout.py``
make them, and says what they add at ``--rate`` envelopes/s in batches of ``--batch``.
"""

from __future__ import annotations

import argparse
import time

from prometheus_client import CollectorRegistry, Counter, Histogram

from observability import metrics

REPEAT = 200_000


def store_batch(size: int) -> None:
    """The calls of PostgresMessageStore._write_batch for one batch."""
    started = time.monotonic()
    metrics.SENDS.inc(size)
    metrics.STORE_BATCH_SIZE.observe(size)
    metrics.STORE_BATCH_SECONDS.observe(time.monotonic() - started)
    metrics.ACKS.inc(size)


def fanout_batch(size: int) -> None:
    """One batch published (FanoutHub._publish_forever) and one received (_on_batch)."""
    metrics.FANOUT_BATCHES_PUBLISHED.inc()
    metrics.FANOUT_EVENTS_PUBLISHED.inc(size)
    metrics.FANOUT_LAG_SECONDS.observe(max(0.0, time.time() - time.time()))


_registry = CollectorRegistry()
_SENDS = Counter("sends", "", registry=_registry)
_ACKS = Counter("acks", "", registry=_registry)
_SIZE = Histogram("size", "", registry=_registry, buckets=metrics.STORE_BATCH_SIZE.bounds)
_SECONDS = Histogram("seconds", "", registry=_registry, buckets=metrics.STORE_BATCH_SECONDS.bounds)


def store_batch_with_prometheus_client(size: int) -> None:
    """The same calls on prometheus_client's own (locked) Counter and Histogram."""
    started = time.monotonic()
    _SENDS.inc(size)
    _SIZE.observe(size)
    _SECONDS.observe(time.monotonic() - started)
    _ACKS.inc(size)


def per_call_us(function: object, size: int) -> float:
    assert callable(function)
    started = time.perf_counter()
    for _ in range(REPEAT):
        function(size)
    return (time.perf_counter() - started) / REPEAT * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8, help="envelopes per batch")
    parser.add_argument("--rate", type=int, default=10_000, help="envelopes per second")
    args = parser.parse_args()
    store_us = per_call_us(store_batch, args.batch)
    fanout_us = per_call_us(fanout_batch, args.batch)
    per_batch = store_us + fanout_us
    batches_per_s = args.rate / args.batch
    locked_us = per_call_us(store_batch_with_prometheus_client, args.batch)
    print(f"store batch metrics:  {store_us:6.2f} µs per batch")
    print(f"  (with prometheus_client's Counter and Histogram: {locked_us:6.2f} µs)")
    print(f"fan-out batch metrics: {fanout_us:6.2f} µs per batch (published + received)")
    print(
        f"at {args.rate:,} envelopes/s in batches of {args.batch}: "
        f"{per_batch / args.batch:.3f} µs per envelope, "
        f"{per_batch * batches_per_s / 1e4:.3f} % of one core"
    )


if __name__ == "__main__":
    main()
