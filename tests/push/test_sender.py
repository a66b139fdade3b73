"""One push through pywebpush to a real local push service, as a browser receives it."""

from __future__ import annotations

import json

import aiohttp
import pytest
from pywebpush import WebPusher

from chat.clock import ManualClock
from push.sender import Outcome, PushSender, PushTarget, classify, payload_for, topic_for
from push.vapid import TOKEN_LIFETIME_SECONDS, generate_key
from tests.push.conftest import SUBJECT
from tests.push.receiver import Scripted


def sender_for(key, clock, *, subject=SUBJECT, timeout=5.0) -> PushSender:
    return PushSender(
        vapid=key,
        subject=subject,
        ttl_seconds=3600,
        timeout_seconds=timeout,
        concurrency=4,
        clock=clock,
    )


def target_for(browser, subscription_id=1, device_id=1) -> PushTarget:
    keys = browser.to_json()["keys"]
    return PushTarget(
        subscription_id=subscription_id,
        device_id=device_id,
        endpoint=browser.endpoint,
        p256dh=keys["p256dh"],
        auth=keys["auth"],
    )


async def test_the_browser_decrypts_room_and_seq_and_nothing_else(receiver, vapid_key, clock):
    browser = receiver.subscribe()
    sender = sender_for(vapid_key, clock)
    await sender.start()
    result = await sender.send(target_for(browser), room_id=812, seq=40077)
    await sender.close()

    assert result.outcome is Outcome.DELIVERED
    assert result.status == 201
    push = await receiver.next_push()
    assert push.json() == {"room": 812, "seq": 40077}
    assert push.plaintext == b'{"room":812,"seq":40077}'
    # The VAPID token the push service checked (signature, aud, exp, sub).
    assert push.claims["aud"] == receiver.origin
    assert push.claims["sub"] == SUBJECT
    assert push.claims["exp"] == clock.now_ms() // 1000 + TOKEN_LIFETIME_SECONDS
    assert push.headers["TTL"] == "3600"
    assert push.headers["Urgency"] == "high"
    # The topic lets the push service replace an undelivered push of the same room,
    # without telling it which room, nor that two subscriptions share a room.
    target_id = 1  # target_for's subscription
    assert push.headers["Topic"] == topic_for(812, subscription_id=target_id)
    assert len(push.headers["Topic"]) == 32
    assert "812" not in push.headers["Topic"]
    assert topic_for(812, subscription_id=target_id) != topic_for(813, subscription_id=target_id)
    assert topic_for(812, subscription_id=target_id) != topic_for(
        812, subscription_id=target_id + 1
    )
    assert receiver.rejections == []


async def test_the_vapid_token_is_reused_per_origin_and_renewed_before_expiry(vapid_key):
    clock = ManualClock()
    sender = sender_for(vapid_key, clock)
    first = sender.authorization("https://fcm.googleapis.com/fcm/send/abc")
    assert sender.authorization("https://fcm.googleapis.com/fcm/send/other") == first
    assert sender.authorization("https://updates.push.services.mozilla.com/wpush/v2/x") != first
    clock.advance(TOKEN_LIFETIME_SECONDS - 3601)
    assert sender.authorization("https://fcm.googleapis.com/fcm/send/abc") == first
    clock.advance(2)  # less than an hour left: a new token
    assert sender.authorization("https://fcm.googleapis.com/fcm/send/abc") != first


@pytest.mark.parametrize(
    ("answer", "outcome", "retry_after"),
    [
        (Scripted(404), Outcome.GONE, None),
        (Scripted(410), Outcome.GONE, None),
        (Scripted(429, {"Retry-After": "17"}), Outcome.RETRY, 17.0),
        (Scripted(500), Outcome.RETRY, None),
        (Scripted(503, {"Retry-After": "Fri, 15 Jan 2027 08:00:30 GMT"}), Outcome.RETRY, 30.0),
        (Scripted(413), Outcome.REJECTED, None),
    ],
)
async def test_what_the_push_service_answers_decides_what_happens_next(
    receiver, vapid_key, answer, outcome, retry_after
):
    clock = ManualClock()  # starts at 2027-01-15 08:00:00 UTC
    receiver.clock = clock
    browser = receiver.subscribe()
    receiver.respond(browser, answer)
    sender = sender_for(vapid_key, clock)
    await sender.start()
    result = await sender.send(target_for(browser), room_id=1, seq=1)
    await sender.close()
    assert (result.outcome, result.status, result.retry_after) == (
        outcome,
        answer.status,
        retry_after,
    )


async def test_network_errors_and_timeouts_are_retried(receiver, vapid_key, clock):
    sender = sender_for(vapid_key, clock, timeout=0.3)
    await sender.start()
    hanging = receiver.subscribe()
    receiver.respond(hanging, Scripted(201, hang=True))
    timed_out = await sender.send(target_for(hanging), room_id=1, seq=1)
    closed_port = target_for(receiver.subscribe())
    closed_port = PushTarget(
        subscription_id=2,
        device_id=2,
        endpoint="http://127.0.0.1:9/push/nobody",  # discard port: nothing listens
        p256dh=closed_port.p256dh,
        auth=closed_port.auth,
    )
    refused = await sender.send(closed_port, room_id=1, seq=1)
    await sender.close()
    assert timed_out.outcome is Outcome.RETRY
    assert timed_out.status is None
    assert refused.outcome is Outcome.RETRY
    assert refused.status is None


def test_status_classification():
    assert classify(201, None).outcome is Outcome.DELIVERED
    assert classify(202, None).outcome is Outcome.DELIVERED
    assert classify(401, None).outcome is Outcome.REJECTED
    assert classify(403, None).outcome is Outcome.REJECTED
    assert classify(502, 3.0).retry_after == 3.0
    assert json.loads(payload_for(room_id=3, seq=9)) == {"room": 3, "seq": 9}


# The receiver is a real check: what a push service would refuse, it refuses. -----------


async def post_signed(browser, authorization: str):
    """An encrypted push with the given VAPID header (pywebpush does the RFC 8291 part)."""
    async with aiohttp.ClientSession() as session:
        response = await WebPusher(browser.to_json(), aiohttp_session=session).send_async(
            b"{}", {"Authorization": authorization}, ttl=60
        )
    return response.status


async def test_the_receiver_refuses_a_token_signed_by_another_key(receiver, vapid_key, clock):
    browser = receiver.subscribe()
    other = generate_key()
    # Signed by another key but claiming the subscription's key in k=.
    token = (
        other.authorization(
            audience=receiver.origin, subject=SUBJECT, expires_at=clock.now_ms() // 1000 + 600
        )
        .split("t=")[1]
        .split(",")[0]
    )
    forged = f"vapid t={token}, k={vapid_key.public_key}"
    assert await post_signed(browser, forged) == 401
    assert receiver.rejections == ["the signature does not verify"]
    # Signed by another key and naming it: not the key of the subscription.
    honest_other = other.authorization(
        audience=receiver.origin, subject=SUBJECT, expires_at=clock.now_ms() // 1000 + 600
    )
    assert await post_signed(browser, honest_other) == 403
    assert receiver.received == []


@pytest.mark.parametrize(
    ("audience", "lifetime", "reason"),
    [
        ("https://elsewhere.example", 600, "aud"),
        (None, 25 * 3600, "exp"),
        (None, -10, "exp"),
    ],
)
async def test_the_receiver_checks_aud_and_exp(
    receiver, vapid_key, clock, audience, lifetime, reason
):
    browser = receiver.subscribe()
    authorization = vapid_key.authorization(
        audience=audience or receiver.origin,
        subject=SUBJECT,
        expires_at=clock.now_ms() // 1000 + lifetime,
    )
    assert await post_signed(browser, authorization) == 401
    assert len(receiver.rejections) == 1
    assert receiver.rejections[0].startswith(reason)
    assert receiver.received == []
