"""The web client measured in headless Chromium (docs/web.md, "What is measured"):

* time to open the app, cold (new browser profile, nothing cached) and warm (reload:
  HTTP cache and service worker);
* size of the code shipped (the built files the page loads), raw and gzip;
* time to decrypt and show 1,000 messages: a browser that was offline catches up on
  1,000 messages another device (the Python SDK) sent meanwhile, until the open
  conversation shows the last of them (they arrive in order); with the main thread's
  busy time over that span (the part of it the machine's load does not inflate as
  much) and the load average;
* time to open that conversation again after unlocking the app (reload, passphrase,
  rooms list, then the conversation with its messages read back from IndexedDB; a
  room keeps its newest 5,000).

Against the embedded server (SQLite, in-process fan-out, development login), as
``make run`` starts it. ``python -m bench.web`` (after ``make web``);
``--messages 5000`` for another count."""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.async_api import Browser, CDPSession, Locator, Page, async_playwright

from client.session import RelaisClient
from client.store import KeyStore
from tests.e2e.server import ROOT, ServerProcess
from tests.web.build import CHROMIUM, SHIPPED

NURSE, PHARMACIST = "810003456786", "810002765435"
OPENINGS = 5
PASSPHRASE = "phrase de passe du banc"  # noqa: S105 - the throwaway stores of one run


def embedded_server(directory: Path, extra: dict[str, str] | None = None) -> ServerProcess:
    env = {
        **(extra or {}),
        "RELAIS_DEBUG": "1",
        "RELAIS_DATABASE_URL": f"sqlite:///{directory}/relais.sqlite3",
        # One SDK device sends the 1,000 messages as fast as it can.
        "RELAIS_RATE_USER": "100000/minute",
        "RELAIS_RATE_SEND_DEVICE": "100000/minute",
    }
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_")}
    for command in (["migrate", "--noinput"], ["seed_demo"]):
        subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=ROOT,
            env={**clean, **env},
            check=True,
            capture_output=True,
            timeout=300,
        )
    server = ServerProcess(env=env, log_path=directory / "server.log", kind="daphne")
    server.start()
    return server


def shipped_sizes() -> dict[str, tuple[int, int]]:
    sizes = {}
    for path in sorted(p for p in SHIPPED.rglob("*") if p.is_file()):
        data = path.read_bytes()
        name = str(path.relative_to(SHIPPED))
        sizes[name] = (len(data), len(gzip.compress(data, compresslevel=6)))
    return sizes


async def open_times(browser: Browser, url: str) -> tuple[list[float], list[float]]:
    """Milliseconds from navigation to the login form, cold then warm."""
    cold, warm = [], []
    for _ in range(OPENINGS):
        context = await browser.new_context()
        page = await context.new_page()
        start = time.perf_counter()
        await page.goto(url)
        await page.locator("#dev-login").wait_for()
        cold.append((time.perf_counter() - start) * 1000)
        await page.evaluate("navigator.serviceWorker.ready.then(() => true)")
        start = time.perf_counter()
        await page.reload()
        await page.locator("#dev-login").wait_for()
        warm.append((time.perf_counter() - start) * 1000)
        await context.close()
    return cold, warm


async def main_thread_busy(devtools: CDPSession) -> float:
    """Seconds the page's main thread spent running tasks (DevTools' TaskDuration)."""
    metrics = (await devtools.send("Performance.getMetrics"))["metrics"]
    return float(next(m["value"] for m in metrics if m["name"] == "TaskDuration"))


async def log_in(page: Page, url: str) -> None:
    await page.goto(url)
    await page.locator("#national-id").fill(NURSE)
    await page.locator("#passphrase").fill(PASSPHRASE)
    await page.locator("#dev-login").click()
    await page.locator("#recovery-done").click()
    await page.locator('#connection[data-state="online"]').wait_for()


def load_average() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def last_message(page: Page, messages: int) -> Locator:
    """The last message the bench sends. A room keeps its newest 5,000 messages, so
    counting rows would never reach ``messages + 1`` beyond that."""
    return page.locator("#messages li", has_text=f"Message {messages - 1} du banc d'essai")


async def catch_up_time(
    browser: Browser, server: ServerProcess, directory: Path, messages: int
) -> dict[str, float | str]:
    """Milliseconds from the network coming back to ``messages`` more messages shown;
    the main thread's busy time meanwhile; then the conversation opened after an unlock."""
    context = await browser.new_context()
    context.set_default_timeout(300_000)
    page = await context.new_page()
    await log_in(page, server.http_url + "/")
    store = KeyStore.open(directory / "pharmacist.store", PASSPHRASE, n=2**10)
    pharmacist = RelaisClient(server=server.http_url, store=store)
    await pharmacist.register_dev(PHARMACIST, device_name="bench")
    await pharmacist.connect()
    try:
        room = await pharmacist.create_room(kind="direct", members=[NURSE])
        await pharmacist.send_text(room, "Bonjour")
        await page.locator("#room-list button.room").first.click()
        await page.locator("#messages li").first.wait_for()
        await context.set_offline(True)
        await page.locator('#connection[data-state="offline"]').wait_for()
        for number in range(messages):
            await pharmacist.send_text(room, f"Message {number} du banc d'essai")
        devtools = await context.new_cdp_session(page)
        await devtools.send("Performance.enable")
        busy_before = await main_thread_busy(devtools)
        load = load_average()
        start = time.perf_counter()
        await context.set_offline(False)
        await last_message(page, messages).wait_for()
        result: dict[str, float | str] = {"catch_up": (time.perf_counter() - start) * 1000}
        result["busy"] = (await main_thread_busy(devtools) - busy_before) * 1000
        result["load"] = f"{load} before, {load_average()} after"
        # Opening it again: reload, unlock, the rooms list, the conversation.
        await page.reload()
        await page.locator("#passphrase").fill(PASSPHRASE)
        start = time.perf_counter()
        await page.locator("#passphrase").press("Enter")
        await page.locator("#room-list button.room").first.wait_for()
        result["unlock"] = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        await page.locator("#room-list button.room").first.click()
        await last_message(page, messages).wait_for()
        result["open"] = (time.perf_counter() - start) * 1000
        result["shown"] = await page.locator("#messages li").count()
        return result
    finally:
        await pharmacist.close()
        await context.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1000, help="messages to catch up on")
    messages = parser.parse_args().messages
    if not (SHIPPED / "main.js").exists():
        raise SystemExit("build the web client first: make web")
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        server = embedded_server(directory)
        try:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
                )
                cold, warm = await open_times(browser, server.http_url + "/")
                catch_up = await catch_up_time(browser, server, directory, messages)
                await browser.close()
        finally:
            server.stop()
    print("Relais web client, headless Chromium, embedded server on loopback")
    print(f"open the app, cold: median {statistics.median(cold):.0f} ms ({OPENINGS} runs)")
    print(f"open the app, warm: median {statistics.median(warm):.0f} ms ({OPENINGS} runs)")
    total_raw = total_gzip = 0
    for name, (raw, packed) in shipped_sizes().items():
        total_raw, total_gzip = total_raw + raw, total_gzip + packed
        print(f"shipped {name}: {raw / 1024:.1f} KiB, gzip {packed / 1024:.1f} KiB")
    print(f"shipped in all: {total_raw / 1024:.1f} KiB, gzip {total_gzip / 1024:.1f} KiB")
    print(
        f"decrypt and show {messages} messages (catch-up after a cut): "
        f"{catch_up['catch_up']:.0f} ms"
        f" (main thread busy {catch_up['busy']:.0f} ms; load average {catch_up['load']})"
    )
    print(f"unlock to the rooms list: {catch_up['unlock']:.0f} ms")
    print(
        f"open the conversation of {catch_up['shown']:.0f} stored messages: "
        f"{catch_up['open']:.0f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
