"""The Prometheus metrics of a Relais server process.

Every process has its own registry (prometheus_client's default one), scraped on its own
port at ``/metrics`` (``observability.asgi``). The message path updates them per *batch*
(one store commit, one Redis batch), never per envelope, so that counting costs nothing
measurable next to the work they count (docs/performance.md, "Metrics").

Names follow Prometheus conventions: ``_total`` for counters, base units (seconds).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

WEBSOCKET_CONNECTIONS = Gauge(
    "relais_websocket_connections", "WebSocket connections open on this process"
)
WEBSOCKET_CONNECTIONS_OPENED = Counter(
    "relais_websocket_connections_opened", "WebSocket connections opened on this process"
)
HTTP_REQUESTS = Counter(
    "relais_http_requests", "HTTP requests answered, by status class", ["status"]
)

SENDS = Counter("relais_sends", "Envelopes handed to the store (retries included)")
ACKS = Counter("relais_acks", "Envelopes committed (new or found again), answered with an ack")
STORE_BATCH_SIZE = Histogram(
    "relais_store_batch_size",
    "Envelopes per group commit",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
STORE_BATCH_SECONDS = Histogram(
    "relais_store_batch_seconds",
    "Time to store one batch (one database call), seconds",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
STORE_FAILURES = Counter("relais_store_failed_batches", "Batches the store could not commit")

FANOUT_LAG_SECONDS = Histogram(
    "relais_fanout_lag_seconds",
    "From another process's Redis publish to this process's local delivery, seconds",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
)
FANOUT_BATCHES_PUBLISHED = Counter(
    "relais_fanout_published_batches", "Event batches this process published to Redis"
)
FANOUT_EVENTS_PUBLISHED = Counter(
    "relais_fanout_published_events", "Events this process published to Redis"
)

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
