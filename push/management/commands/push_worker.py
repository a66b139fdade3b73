"""``manage.py push_worker``: the Web Push worker process (production, with Redis).

Reads the push jobs the server processes append to the Redis stream, and sends the
pushes. Run one or more (systemd: ``deploy/systemd/relais-push-worker.service``);
SIGTERM stops it cleanly. Without Redis the server process sends pushes itself and this
command is not needed. See docs/push.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from chat.clock import SYSTEM_CLOCK
from chat.conf import relais_settings
from chat.presence import RedisPresence
from push.conf import push_settings
from push.dispatcher import Dispatcher
from push.jobs import stream_key
from push.sender import PushSender
from push.worker import PushWorker, StreamSource

logger = logging.getLogger("push.worker")


class Command(BaseCommand):
    help = "Send Web Push notifications for new messages (reads the Redis job stream)."

    def handle(self, *args: Any, **options: Any) -> None:
        settings = push_settings()
        if settings.vapid is None:
            raise CommandError("RELAIS_VAPID_PRIVATE_KEY is not set: Web Push is disabled.")
        if not relais_settings().redis_url:
            raise CommandError(
                "push_worker needs RELAIS_REDIS_URL; without Redis the server process "
                "sends the pushes itself."
            )
        asyncio.run(self._run())

    async def _run(self) -> None:
        import redis.asyncio as redis_asyncio

        settings = push_settings()
        chat_settings = relais_settings()
        assert settings.vapid is not None  # checked in handle()
        redis = redis_asyncio.Redis.from_url(chat_settings.redis_url)
        consumer = settings.worker_name or f"{socket.gethostname()}:{os.getpid()}"
        source = StreamSource(
            redis=redis,
            key=stream_key(chat_settings.redis_prefix),
            consumer=consumer,
            clock=SYSTEM_CLOCK,
        )
        sender = PushSender(
            vapid=settings.vapid,
            subject=settings.vapid_subject,
            ttl_seconds=settings.ttl_seconds,
            timeout_seconds=settings.request_timeout_seconds,
            concurrency=settings.concurrency,
            clock=SYSTEM_CLOCK,
        )
        dispatcher = Dispatcher(
            sender=sender,
            presence=RedisPresence(
                redis=redis, prefix=chat_settings.redis_prefix, clock=SYSTEM_CLOCK
            ),
            clock=SYSTEM_CLOCK,
            settings=settings,
        )
        await source.ensure_group()
        await sender.start()
        worker_task = asyncio.create_task(
            PushWorker(source=source, dispatcher=dispatcher).run(), name="relais-push-worker"
        )
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signal_number, worker_task.cancel)
        self.stdout.write(f"push worker {consumer} started")
        self.stdout.flush()
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await worker_task
        finally:
            await sender.close()
            await redis.aclose()
            self.stdout.write(f"push worker {consumer} stopped")
