"""Web Push in the browser (web/src/push/, docs/web.md "Notifications"), with a real
server process, a real ``push_worker`` process and the local push service of
tests/push (HTTPS, checks VAPID, decrypts the RFC 8291 payload as a browser would).

Headless Chromium cannot reach a real push service, so its ``PushManager.subscribe`` is
the one stand-in: it answers with a subscription of the local push service. Everything
else is the app's own code: the VAPID key fetched, the subscription registered through
the REST API, the mute in the room's controls, and the service worker's push handler,
given the payload the push service received through the DevTools protocol
(``ServiceWorker.deliverPushMessage``), fetching and decrypting the envelope itself.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from channels.db import database_sync_to_async
from playwright.async_api import BrowserContext, CDPSession, Page, WebSocketRoute, expect

from chat.models import Device, ToDeviceMessage
from push.jobs import stream_key
from push.models import PushSubscription, RoomMute
from push.vapid import VapidKey, generate_key
from tests.e2e.sdk import new_client, next_message, open_client
from tests.e2e.server import ServerProcess, production_env
from tests.push.conftest import SUBJECT
from tests.push.receiver import BrowserSubscription, PushReceiver
from tests.push.test_e2e import WorkerProcess
from tests.web.conftest import PHONE, TIMEOUT_MS, link_from_sdk, log_in, new_device

pytestmark = pytest.mark.e2e
NURSE, PHARMACIST = "810003456786", "810002765435"
SECRET_TEXT = "Pansement de Mme Durand refait"


@pytest.fixture
def vapid() -> VapidKey:
    return generate_key()


@pytest.fixture
async def push_service(vapid: VapidKey, tmp_path: Path) -> AsyncIterator[PushReceiver]:
    service = PushReceiver(vapid_public_key=vapid.public_key, tls_dir=tmp_path)
    await service.start()
    yield service
    await service.close()


@pytest.fixture
def push_server(
    web_build: None, practitioners: Any, push_service: PushReceiver, vapid: VapidKey, tmp_path: Path
) -> Iterator[ServerProcess]:
    """The app's server with Web Push on, and its push worker."""
    env = production_env(
        RELAIS_DEBUG="1",
        RELAIS_VAPID_PRIVATE_KEY=vapid.private_key_text,
        RELAIS_VAPID_SUBJECT=SUBJECT,
        RELAIS_PUSH_ENDPOINT_HOSTS="127.0.0.1",  # the local push service stands for FCM
    )
    server = ServerProcess(env=env, log_path=tmp_path / "server.log")
    server.start()
    worker = WorkerProcess(
        env={**env, "SSL_CERT_FILE": str(push_service.cert_path)},
        log_path=tmp_path / "worker.log",
    )
    worker.start()
    yield server
    worker.stop()
    server.stop()
    with redis.Redis.from_url(env["RELAIS_REDIS_URL"]) as client:
        client.delete(stream_key(env["RELAIS_REDIS_PREFIX"]))


def fake_subscribe_script(subscription: BrowserSubscription) -> str:
    """The browser's push service, replaced by the local one (nothing else is)."""
    return f"""
    (() => {{
      if (typeof PushManager === "undefined") return;
      const json = {json.dumps(subscription.to_json())};
      let subscribed = null;
      PushManager.prototype.subscribe = async function (options) {{
        self.__relaisVapidKey = options.applicationServerKey;
        subscribed = {{ endpoint: json.endpoint, toJSON: () => json }};
        return subscribed;
      }};
      PushManager.prototype.getSubscription = async function () {{ return subscribed; }};
    }})();
    """


async def notifications(page: Page) -> list[list[str]]:
    result: list[list[str]] = await page.evaluate(
        """async () => {
             const registration = await navigator.serviceWorker.ready;
             const shown = await registration.getNotifications();
             return shown.map((n) => [n.title, n.body]);
           }"""
    )
    return result


async def notifications_when(
    page: Page, condition: Callable[[list[list[str]]], bool]
) -> list[list[str]]:
    """The notifications shown, once ``condition`` holds (checked as Playwright checks
    its own conditions, every 100 ms, for as long as its actions may take)."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT_MS / 1000
    while True:
        shown = await notifications(page)
        if condition(shown) or asyncio.get_running_loop().time() > deadline:
            return shown
        await page.wait_for_timeout(100)


async def worker_session(context: BrowserContext, page: Page) -> tuple[CDPSession, str]:
    """A DevTools session on the page and the id of its service worker's registration."""
    session = await context.new_cdp_session(page)
    registrations: list[dict[str, Any]] = []
    registered = asyncio.Event()

    def on_registrations(event: dict[str, Any]) -> None:
        registrations.extend(r for r in event["registrations"] if not r["isDeleted"])
        if registrations:
            registered.set()

    session.on("ServiceWorker.workerRegistrationUpdated", on_registrations)
    await session.send("ServiceWorker.enable")
    await asyncio.wait_for(registered.wait(), 20)
    return session, str(registrations[0]["registrationId"])


async def stored_subscription_endpoints() -> list[str]:
    def read() -> list[str]:
        return [s.endpoint for s in PushSubscription.objects.all()]

    endpoints: list[str] = await database_sync_to_async(read)()
    return endpoints


async def device_mutes(room: int) -> list[tuple[int, bool]]:
    def read() -> list[tuple[int, bool]]:
        return [(m.room_id, m.device_id is not None) for m in RoomMute.objects.filter(room_id=room)]

    mutes: list[tuple[int, bool]] = await database_sync_to_async(read)()
    return mutes


async def test_a_content_free_push_is_decrypted_in_the_service_worker_and_names_who_wrote(
    push_server, push_service, browser, tmp_path
):
    subscription = push_service.subscribe()
    context = await new_device(browser, viewport=PHONE)
    await context.grant_permissions(["notifications"], origin=push_server.http_url)
    await context.add_init_script(fake_subscribe_script(subscription))
    page = await context.new_page()
    pharmacist = await new_client(push_server.http_url, tmp_path, PHARMACIST, "pharmacist")
    try:
        await log_in(page, push_server.http_url, NURSE)
        room = await pharmacist.create_room(kind="direct", members=[NURSE])
        await pharmacist.send_text(room, "Bonjour")
        await page.locator("#room-list button.room").first.click()
        first = page.locator("#messages li", has_text="Bonjour")
        await first.wait_for()
        sender_name = "Karim Benali (Pharmacien)"  # the demo directory's pharmacist
        await expect(first.locator(".meta").first).to_have_text(sender_name)

        # Turned on from the room's controls: the VAPID key from the server, the
        # subscription registered through the REST API.
        await page.get_by_role("button", name="Activer les notifications").click()
        await expect(page.locator("#notify-enable")).to_have_count(0)
        assert await stored_subscription_endpoints() == [subscription.endpoint]
        assert await page.evaluate("() => self.__relaisVapidKey") == push_service.vapid_public_key

        # The page stays open but its WebSocket cannot reach the server: the server
        # counts this device as offline and pushes to it.
        async def refuse(route: WebSocketRoute) -> None:
            await route.close()

        await context.route_web_socket("**/ws/v1/", refuse)
        await context.set_offline(True)
        await expect(page.locator("#connection")).not_to_have_attribute("data-state", "online")
        await context.set_offline(False)

        seq = await pharmacist.send_text(room, SECRET_TEXT)
        push = await push_service.next_push(wait_seconds=30)
        assert push.token == subscription.token
        assert push.json() == {"room": room, "seq": seq}
        assert SECRET_TEXT.encode() not in push.plaintext
        assert push_service.rejections == []

        # The service worker is given that payload: it fetches the envelope, decrypts
        # it with the vault the unlocked app handed it, and says who wrote where.
        session, registration_id = await worker_session(context, page)
        delivery = {
            "origin": push_server.http_url,
            "registrationId": registration_id,
            "data": push.plaintext.decode(),
        }
        await session.send("ServiceWorker.deliverPushMessage", delivery)
        shown = await notifications_when(page, lambda shown: len(shown) > 0)
        assert len(shown) == 1
        title, body = shown[0]
        assert title == sender_name
        assert body.startswith(f"{sender_name} a écrit dans ")
        assert SECRET_TEXT not in title + body

        # The browser stops the worker: the key it held in memory is gone, the vault
        # stays closed, and the next push shows no name.
        await session.send("ServiceWorker.stopAllWorkers")
        await session.send("ServiceWorker.deliverPushMessage", delivery)
        shown = await notifications_when(page, lambda shown: ["Nouveau message", ""] in shown)
        assert shown == [["Nouveau message", ""]]  # the same room's tag: replaced

        # The room's mute, through the REST API, for this device.
        mute = "Couper les notifications de cette conversation"
        await page.get_by_role("button", name=mute).click()
        await expect(page.locator("#notify-mute")).to_have_attribute("aria-pressed", "true")
        assert await device_mutes(room) == [(room, True)]
        await page.get_by_role(
            "button", name="Rétablir les notifications de cette conversation"
        ).click()
        await expect(page.locator("#notify-mute")).to_have_attribute("aria-pressed", "false")
        assert await device_mutes(room) == []
    finally:
        await pharmacist.close()
        await context.close()


async def inbox_of(national_id: str) -> list[int]:
    """The to-device messages waiting for ``national_id``'s browser devices."""

    def read() -> list[int]:
        devices = Device.objects.filter(practitioner_id=national_id, name="Navigateur")
        return list(
            ToDeviceMessage.objects.filter(recipient__in=devices).values_list("pk", flat=True)
        )

    waiting: list[int] = await database_sync_to_async(read)()
    return waiting


async def test_a_push_read_only_with_a_history_key_names_who_wrote(
    push_server, push_service, browser, tmp_path
):
    """A browser linked from the nurse's SDK device holds the pharmacist's sender key
    only as a history key (the linking's transfer; the room's catch-up is held back, so
    the app never made a session of it): a push for the pharmacist's next message,
    under the same key, is decrypted by the service worker from that history key."""
    subscription = push_service.subscribe()
    context = await new_device(browser, viewport=PHONE)
    await context.grant_permissions(["notifications"], origin=push_server.http_url)
    await context.add_init_script(fake_subscribe_script(subscription))
    cut = False

    async def relay(route: WebSocketRoute) -> None:
        """The real server's socket without catch-up pages; none at all once ``cut``."""
        if cut:
            await route.close()
            return
        server = route.connect_to_server()

        def to_page(message: str | bytes) -> None:
            if json.loads(message).get("type") != "backlog":
                route.send(message)

        server.on_message(to_page)
        route.on_message(server.send)

    await context.route_web_socket("**/ws/v1/", relay)
    page = await context.new_page()
    computer = await open_client(push_server.http_url, tmp_path, NURSE, "computer")
    pharmacist = await new_client(push_server.http_url, tmp_path, PHARMACIST, "pharmacist")
    try:
        room = await pharmacist.create_room(kind="direct", members=[NURSE])
        await pharmacist.send_text(room, "Avant la liaison")
        assert (await next_message(computer)).text == "Avant la liaison"

        await link_from_sdk(page, push_server.http_url, NURSE, computer)  # with the history keys
        sender_name = "Karim Benali (Pharmacien)"
        room_button = page.locator("#room-list button.room").first
        await expect(room_button).to_contain_text(sender_name)
        await expect(page.locator("#connection")).to_have_attribute("data-state", "online")
        deadline = asyncio.get_running_loop().time() + TIMEOUT_MS / 1000
        while await inbox_of(NURSE) and asyncio.get_running_loop().time() < deadline:
            await page.wait_for_timeout(100)  # the history keys, taken and acknowledged
        assert await inbox_of(NURSE) == []
        await room_button.click()
        await page.get_by_role("button", name="Activer les notifications").click()
        await expect(page.locator("#notify-enable")).to_have_count(0)
        # The message before the link was never decrypted in the app (its page held back).
        await expect(page.locator("#messages li")).to_have_count(0)

        cut = True
        await context.set_offline(True)
        await expect(page.locator("#connection")).not_to_have_attribute("data-state", "online")
        await context.set_offline(False)

        seq = await pharmacist.send_text(room, SECRET_TEXT)
        push = await push_service.next_push(wait_seconds=30)
        assert push.json() == {"room": room, "seq": seq}
        session, registration_id = await worker_session(context, page)
        await session.send(
            "ServiceWorker.deliverPushMessage",
            {
                "origin": push_server.http_url,
                "registrationId": registration_id,
                "data": push.plaintext.decode(),
            },
        )
        shown = await notifications_when(page, lambda shown: len(shown) > 0)
        assert shown == [[sender_name, f"{sender_name} a écrit dans {sender_name}"]]
    finally:
        await pharmacist.close()
        await computer.close()
        await context.close()
