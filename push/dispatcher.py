"""From push jobs to push deliveries: who, when, and what to do with the answer.

* ``add_jobs`` turns committed envelopes into deliveries (``recipients.push_targets``),
  one per (subscription, room). A newer envelope for a delivery still waiting only
  raises its ``seq``: a device that is woken fetches everything anyway, so pushes per
  room never pile up behind a slow or failing push service.
* ``send_due`` drops the deliveries whose device is connected now (``chat.presence``),
  and sends the others concurrently (at most ``concurrency`` requests at a time).
* 2xx: done. 404/410: the subscription is deleted, with every delivery waiting for it.
  429, 5xx, timeouts, network errors: tried again after an exponential, jittered delay,
  never sooner than ``Retry-After``, at most ``max_attempts`` times and never past the
  push TTL; before a retry the subscription is checked again (device not revoked,
  endpoint unchanged). Other answers: given up.

Time comes from an injected clock: tests move it instead of sleeping. Nothing here
waits for time to pass; ``worker.PushWorker`` does, using ``seconds_until_next_due``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from channels.db import database_sync_to_async

from chat.clock import Clock
from chat.presence import Presence
from push.backoff import Jitter, equal_jitter, retry_delay
from push.conf import PushSettings
from push.jobs import PushJob
from push.recipients import do_remove_gone_subscription, push_targets, still_pushable
from push.sender import Outcome, PushTarget, SendResult

logger = logging.getLogger(__name__)

TargetResolver = Callable[[Sequence[PushJob], datetime], Awaitable[list[list[PushTarget]]]]
TargetChecker = Callable[[Sequence[PushTarget]], Awaitable[set[int]]]
SubscriptionRemover = Callable[[PushTarget], Awaitable[None]]


class Sender(Protocol):
    """What the dispatcher needs from ``sender.PushSender``."""

    async def send(self, target: PushTarget, *, room_id: int, seq: int) -> SendResult: ...


@dataclass
class Delivery:
    target: PushTarget
    room_id: int
    seq: int
    due: float  # clock.monotonic() seconds
    queued_at: float
    failures: int = 0

    @property
    def key(self) -> tuple[int, int]:
        return (self.target.subscription_id, self.room_id)


@dataclass
class DispatchStats:
    """Counts since the start (logged by the worker; no endpoint, no content)."""

    sent: int = 0
    gone: int = 0
    retried: int = 0
    rejected: int = 0
    gave_up: int = 0
    expired: int = 0
    skipped_connected: int = 0
    merged: int = 0
    last_status: dict[int, int] = field(default_factory=dict)


async def _resolve_targets(jobs: Sequence[PushJob], now: datetime) -> list[list[PushTarget]]:
    targets: list[list[PushTarget]] = await database_sync_to_async(push_targets)(jobs=jobs, now=now)
    return targets


async def _check_targets(targets: Sequence[PushTarget]) -> set[int]:
    valid: set[int] = await database_sync_to_async(still_pushable)(targets=targets)
    return valid


async def _remove_subscription(target: PushTarget) -> None:
    await database_sync_to_async(do_remove_gone_subscription)(
        subscription_id=target.subscription_id, endpoint=target.endpoint
    )


class Dispatcher:
    def __init__(
        self,
        *,
        sender: Sender,
        presence: Presence,
        clock: Clock,
        settings: PushSettings,
        jitter: Jitter = equal_jitter,
        resolve_targets: TargetResolver = _resolve_targets,
        check_targets: TargetChecker = _check_targets,
        remove_subscription: SubscriptionRemover = _remove_subscription,
    ) -> None:
        self._sender = sender
        self._presence = presence
        self._clock = clock
        self._settings = settings
        self._jitter = jitter
        self._resolve_targets = resolve_targets
        self._check_targets = check_targets
        self._remove_subscription = remove_subscription
        self._pending: dict[tuple[int, int], Delivery] = {}
        self._in_flight: dict[tuple[int, int], asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(settings.concurrency)
        self.stats = DispatchStats()
        self.on_change: Callable[[], None] = lambda: None

    # Jobs in ------------------------------------------------------------------

    async def add_jobs(self, jobs: Sequence[PushJob]) -> int:
        """Resolve the targets of committed envelopes and queue their deliveries now.

        Returns the number of deliveries queued or merged. Raises on database errors
        (the caller keeps the jobs and tries again).
        """
        now_wall = datetime.fromtimestamp(self._clock.now_ms() / 1000, tz=UTC)
        targets_per_job = await self._resolve_targets(jobs, now_wall)
        now = self._clock.monotonic()
        now_ms = self._clock.now_ms()
        count = 0
        for job, targets in zip(jobs, targets_per_job, strict=True):
            if job.created_ms and now_ms - job.created_ms > self._settings.ttl_seconds * 1000:
                self.stats.expired += len(targets)
                continue
            for target in targets:
                self._queue(
                    Delivery(
                        target=target, room_id=job.room_id, seq=job.seq, due=now, queued_at=now
                    )
                )
                count += 1
        if count:
            self.on_change()
        return count

    def _queue(self, delivery: Delivery) -> None:
        waiting = self._pending.get(delivery.key)
        if waiting is None:
            self._pending[delivery.key] = delivery
            return
        self.stats.merged += 1
        waiting.seq = max(waiting.seq, delivery.seq)
        waiting.failures = max(waiting.failures, delivery.failures)
        waiting.due = max(waiting.due, delivery.due)
        waiting.queued_at = min(waiting.queued_at, delivery.queued_at)

    # Deliveries out -----------------------------------------------------------

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    @property
    def in_flight_count(self) -> int:
        return len(self._in_flight)

    def pending(self) -> list[Delivery]:
        return list(self._pending.values())

    def seconds_until_next_due(self) -> float | None:
        """None when nothing waits; 0 when something is due (or waits for a slot)."""
        waiting = [d.due for key, d in self._pending.items() if key not in self._in_flight]
        if not waiting:
            return None
        return max(0.0, min(waiting) - self._clock.monotonic())

    async def send_due(self) -> int:
        """Start the due deliveries of devices that are not connected; returns how many
        were started. Does not wait for their answers (see ``wait_idle``)."""
        now = self._clock.monotonic()
        due = [
            delivery
            for key, delivery in self._pending.items()
            if delivery.due <= now and key not in self._in_flight
        ]
        if not due:
            return 0
        for delivery in due:
            del self._pending[delivery.key]
        live = [d for d in due if now - d.queued_at <= self._settings.ttl_seconds]
        self.stats.expired += len(due) - len(live)
        retries = [d.target for d in live if d.failures]
        if retries:
            # Minutes may have passed: a device revoked or a subscription replaced
            # meanwhile must not be pushed.
            valid = await self._check_targets(retries)
            live = [d for d in live if not d.failures or d.target.subscription_id in valid]
        try:
            connected = await self._presence.connected({d.target.device_id for d in live})
        except Exception:
            # Unknown presence: rather wake a connected device than miss an offline one.
            logger.warning("presence lookup failed; pushing to every due device", exc_info=True)
            connected = set()
        started = 0
        for delivery in live:
            if delivery.target.device_id in connected:
                self.stats.skipped_connected += 1
                continue
            task = asyncio.create_task(self._deliver(delivery), name="relais-push-delivery")
            self._in_flight[delivery.key] = task
            started += 1
        return started

    async def wait_idle(self) -> None:
        """Wait until every started delivery has its answer handled."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)

    async def close(self) -> None:
        for task in self._in_flight.values():
            task.cancel()
        await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
        self._in_flight.clear()

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            async with self._slots:
                result = await self._sender.send(
                    delivery.target, room_id=delivery.room_id, seq=delivery.seq
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("a push to subscription %s failed", delivery.target.subscription_id)
            result = SendResult(Outcome.RETRY)
        try:
            await self._handle(delivery, result)
        finally:
            self._in_flight.pop(delivery.key, None)
            self.on_change()

    async def _handle(self, delivery: Delivery, result: SendResult) -> None:
        if result.status is not None:
            self.stats.last_status[result.status] = self.stats.last_status.get(result.status, 0) + 1
        subscription_id = delivery.target.subscription_id
        if result.outcome is Outcome.DELIVERED:
            self.stats.sent += 1
        elif result.outcome is Outcome.GONE:
            self.stats.gone += 1
            for key in [key for key in self._pending if key[0] == subscription_id]:
                del self._pending[key]
            await self._remove_subscription(delivery.target)
            logger.info("subscription %s is gone (%s); removed", subscription_id, result.status)
        elif result.outcome is Outcome.REJECTED:
            self.stats.rejected += 1
            logger.warning("push to subscription %s refused (%s)", subscription_id, result.status)
        else:
            self._retry_later(delivery, result)

    def _retry_later(self, delivery: Delivery, result: SendResult) -> None:
        failures = delivery.failures + 1
        if failures >= self._settings.max_attempts:
            self.stats.gave_up += 1
            logger.warning(
                "gave up pushing to subscription %s after %d attempts (last: %s)",
                delivery.target.subscription_id,
                failures,
                result.status or "network error",
            )
            return
        self.stats.retried += 1
        delay = retry_delay(
            failures=failures,
            base_seconds=self._settings.backoff_base_seconds,
            max_seconds=self._settings.backoff_max_seconds,
            retry_after=result.retry_after,
            jitter=self._jitter,
        )
        delivery.failures = failures
        delivery.due = self._clock.monotonic() + delay
        self._queue(delivery)
