"""The Prometheus metrics of a Relais server process.

Every process has its own registry (prometheus_client's default one), scraped on its own
port at ``/metrics`` (``observability.asgi``). The message path updates its metrics per
*batch* (one store commit, one Redis batch), never per envelope, with plain numbers
turned into Prometheus families at scrape time, so that counting costs nothing
measurable next to the work it counts (docs/performance.md, "Metrics").

Names follow Prometheus conventions: ``_total`` for counters, base units (seconds).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from itertools import accumulate

from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

WEBSOCKET_CONNECTIONS = Gauge(
    "relais_websocket_connections", "WebSocket connections open on this process"
)
WEBSOCKET_CONNECTIONS_OPENED = Counter(
    "relais_websocket_connections_opened", "WebSocket connections opened on this process"
)
HTTP_REQUESTS = Counter(
    "relais_http_requests", "HTTP requests answered, by status class", ["status"]
)

# The message path's metrics are plain numbers, bumped in the event loop's thread (the
# store's writers, the hub's reader and publisher) and turned into Prometheus families
# only when scraped (``_HotPathCollector``): a bump costs a fraction of a microsecond,
# where prometheus_client's locked Counter.inc and Histogram.observe cost one to four
# (bench/metrics_cost.py, docs/performance.md).


class HotCounter:
    """A counter bumped from one thread (the event loop's)."""

    __slots__ = ("documentation", "name", "value")

    def __init__(self, name: str, documentation: str) -> None:
        self.name = name
        self.documentation = documentation
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def family(self) -> CounterMetricFamily:
        return CounterMetricFamily(self.name, self.documentation, value=self.value)


class HotHistogram:
    """A histogram observed from one thread (the event loop's)."""

    __slots__ = ("bounds", "counts", "documentation", "name", "total")

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...]) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def family(self) -> HistogramMetricFamily:
        cumulative = list(accumulate(self.counts))
        buckets = [(str(float(b)), c) for b, c in zip(self.bounds, cumulative, strict=False)]
        buckets.append(("+Inf", cumulative[-1]))
        return HistogramMetricFamily(
            self.name, self.documentation, buckets=buckets, sum_value=self.total
        )


SENDS = HotCounter("relais_sends", "Envelopes handed to the store (retries included)")
ACKS = HotCounter("relais_acks", "Envelopes committed (new or found again), answered with an ack")
STORE_BATCH_SIZE = HotHistogram(
    "relais_store_batch_size",
    "Envelopes per group commit",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
STORE_BATCH_SECONDS = HotHistogram(
    "relais_store_batch_seconds",
    "Time to store one batch (one database call), seconds",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
STORE_FAILURES = HotCounter("relais_store_failed_batches", "Batches the store could not commit")
FANOUT_LAG_SECONDS = HotHistogram(
    "relais_fanout_lag_seconds",
    "From another process's Redis publish to this process's local delivery, seconds",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
)
FANOUT_BATCHES_PUBLISHED = HotCounter(
    "relais_fanout_published_batches", "Event batches this process published to Redis"
)
FANOUT_EVENTS_PUBLISHED = HotCounter(
    "relais_fanout_published_events", "Events this process published to Redis"
)
_HOT_PATH: list[HotCounter | HotHistogram] = [
    SENDS,
    ACKS,
    STORE_BATCH_SIZE,
    STORE_BATCH_SECONDS,
    STORE_FAILURES,
    FANOUT_LAG_SECONDS,
    FANOUT_BATCHES_PUBLISHED,
    FANOUT_EVENTS_PUBLISHED,
]


class _HotPathCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        for metric in _HOT_PATH:
            yield metric.family()


REGISTRY.register(_HotPathCollector())

PUSH_JOBS_WAITING = Gauge(
    "relais_push_jobs_waiting", "Push jobs in the Redis stream that no worker has read yet"
)
PUSH_JOBS_PENDING = Gauge(
    "relais_push_jobs_pending", "Push jobs read by a worker and not finished yet"
)

ERRORS = Counter(
    "relais_errors",
    "Error answers sent to clients, by transport and stable code",
    ["transport", "code"],
)


def count_error(transport: str, code: str) -> None:
    """One error answer (``transport``: ``ws`` or ``rest``) with its stable code."""
    ERRORS.labels(transport, code).inc()
