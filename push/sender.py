"""Sending one push: RFC 8291 encryption and the HTTP request by pywebpush, VAPID
(RFC 8292) authorization, and what the push service's answer means.

The payload is ``{"room": <id>, "seq": <n>}`` and nothing else: no sender, no text, no
room kind. The device fetches and decrypts the envelope itself. Endpoints are never
logged (docs/push.md, "Privacy of endpoints").
"""

from __future__ import annotations

import base64
import enum
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from django.utils.crypto import salted_hmac
from pywebpush import WebPusher

from chat.clock import Clock
from push.backoff import parse_retry_after
from push.vapid import TOKEN_LIFETIME_SECONDS, VapidKey

# Renew the VAPID token this long before it expires.
_TOKEN_RENEW_MARGIN_SECONDS = 3600


class Outcome(enum.Enum):
    DELIVERED = "delivered"  # 2xx: the push service accepted it
    GONE = "gone"  # 404 / 410: the subscription no longer exists; delete it
    RETRY = "retry"  # 429, 5xx, timeout, network error: try again later
    REJECTED = "rejected"  # any other answer: retrying the same request will not help


@dataclass(frozen=True, slots=True)
class PushTarget:
    """A subscription to push to (a row of ``PushSubscription``)."""

    subscription_id: int
    device_id: int
    endpoint: str
    p256dh: str
    auth: str


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    status: int | None = None
    retry_after: float | None = None


def payload_for(*, room_id: int, seq: int) -> bytes:
    """The plaintext of a push: the room and the sequence number, nothing more."""
    return json.dumps({"room": room_id, "seq": seq}, separators=(",", ":")).encode("ascii")


def topic_for(room_id: int, *, subscription_id: int) -> str:
    """RFC 8030 ``Topic``: a newer push for the same room replaces an undelivered one.

    A keyed hash of the subscription and the room (32 base64url characters): the push
    service cannot read the room id from it, and two members of one room get different
    topics, so it cannot tell that they share a room either.
    """
    digest = salted_hmac(
        "relais.push.topic", f"{subscription_id}:{room_id}", algorithm="sha256"
    ).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode("ascii")


def origin_of(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


def classify(status: int, retry_after: float | None) -> SendResult:
    if 200 <= status < 300:
        return SendResult(Outcome.DELIVERED, status)
    if status in (404, 410):
        return SendResult(Outcome.GONE, status)
    if status == 429 or status >= 500:
        return SendResult(Outcome.RETRY, status, retry_after)
    return SendResult(Outcome.REJECTED, status)


class PushSender:
    """Sends pushes over one pooled HTTP session; ``start`` inside the event loop."""

    def __init__(
        self,
        *,
        vapid: VapidKey,
        subject: str,
        ttl_seconds: int,
        timeout_seconds: float,
        concurrency: int,
        clock: Clock,
    ) -> None:
        self._vapid = vapid
        self._subject = subject
        self._ttl = ttl_seconds
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._concurrency = concurrency
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._tokens: dict[str, tuple[str, int]] = {}

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._concurrency), timeout=self._timeout
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def authorization(self, endpoint: str) -> str:
        """The VAPID header for the endpoint's origin, signed once per origin and reused
        until it nears expiry (an ES256 signature per push would be wasted work)."""
        audience = origin_of(endpoint)
        now = self._clock.now_ms() // 1000
        cached = self._tokens.get(audience)
        if cached is not None and cached[1] - now > _TOKEN_RENEW_MARGIN_SECONDS:
            return cached[0]
        expires_at = now + TOKEN_LIFETIME_SECONDS
        value = self._vapid.authorization(
            audience=audience, subject=self._subject, expires_at=expires_at
        )
        self._tokens[audience] = (value, expires_at)
        return value

    async def send(self, target: PushTarget, *, room_id: int, seq: int) -> SendResult:
        session = self._session
        if session is None:
            raise RuntimeError("PushSender.start() was not called")
        pusher = WebPusher(
            {"endpoint": target.endpoint, "keys": {"p256dh": target.p256dh, "auth": target.auth}},
            aiohttp_session=session,
        )
        headers = {
            "Authorization": self.authorization(target.endpoint),
            "Urgency": "high",
            "Topic": topic_for(room_id, subscription_id=target.subscription_id),
        }
        try:
            response = await pusher.send_async(
                payload_for(room_id=room_id, seq=seq),
                headers,
                ttl=self._ttl,
                timeout=self._timeout,
            )
        except (aiohttp.ClientError, TimeoutError, OSError):
            return SendResult(Outcome.RETRY)
        retry_after = parse_retry_after(
            response.headers.get("Retry-After"), now_seconds=self._clock.now_ms() / 1000
        )
        return classify(response.status, retry_after)
