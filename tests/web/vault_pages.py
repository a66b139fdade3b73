"""What a browser test reads in, or puts back into, the app's IndexedDB (docs/web.md,
"Where keys live"): the vault opened with the passphrase as the app opens it, and the
history's sealed chunk records as they are stored."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from playwright.async_api import Page

from tests.web.conftest import PASSPHRASE

# The page's own IndexedDB request, as a promise; the database the app keeps.
_OPEN = """
  const request = (r) => new Promise((ok, ko) => {
    r.onsuccess = () => ok(r.result);
    r.onerror = () => ko(r.error);
  });
  const db = await request(indexedDB.open("relais", 1));
"""

READ_VAULT = (
    """async (passphrase) => {"""
    + _OPEN
    + """
  const sealed = await request(db.transaction("kv").objectStore("kv").get("vault"));
  db.close();
  const bytes = (s) => {
    const base64 = s.replace(/-/g, "+").replace(/_/g, "/");
    return Uint8Array.from(atob(base64 + "===".slice((base64.length + 3) % 4)), (c) =>
      c.charCodeAt(0));
  };
  const utf8 = (s) => new TextEncoder().encode(s);
  const material = await crypto.subtle.importKey(
    "raw", utf8(passphrase), "PBKDF2", false, ["deriveKey"]);
  const key = await crypto.subtle.deriveKey(
    { name: "PBKDF2", hash: "SHA-256", salt: bytes(sealed.salt),
      iterations: sealed.iterations },
    material, { name: "AES-GCM", length: 256 }, false, ["decrypt"]);
  const plain = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: bytes(sealed.nonce), additionalData: utf8("relais/web/vault") },
    key, bytes(sealed.ct));
  return JSON.parse(new TextDecoder().decode(plain));
}"""
)

# A sealed record exactly as stored (its nonce and ciphertext), as lists of bytes.
COPY_RECORD = (
    """async (key) => {"""
    + _OPEN
    + """
  const record = await request(db.transaction("kv").objectStore("kv").get(key));
  db.close();
  return { nonce: [...new Uint8Array(record.nonce)], ct: [...new Uint8Array(record.ct)] };
}"""
)

# A copy taken by COPY_RECORD put back in place of what the record holds now.
PUT_RECORD = (
    """async ([key, copy]) => {"""
    + _OPEN
    + """
  const transaction = db.transaction("kv", "readwrite");
  transaction.objectStore("kv").put(
    { nonce: new Uint8Array(copy.nonce), ct: new Uint8Array(copy.ct).buffer }, key);
  await new Promise((ok, ko) => {
    transaction.oncomplete = ok;
    transaction.onerror = () => ko(transaction.error);
  });
  db.close();
}"""
)


async def read_vault(page: Page) -> dict[str, Any]:
    """The vault as the app would open it with the test passphrase."""
    vault: dict[str, Any] = await page.evaluate(READ_VAULT, PASSPHRASE)
    return vault


async def wait_vault(page: Page, predicate: str) -> None:
    """Until ``predicate`` (a JavaScript expression over ``vault``) holds for the vault
    as stored: what the app wrote, not what it shows."""
    await until_true(
        page,
        f"async () => {{ const vault = await ({READ_VAULT})({json.dumps(PASSPHRASE)});"
        f" return !!({predicate}); }}",
    )


async def until_true(page: Page, function: str) -> None:
    """Until the page's async ``function`` resolves to true. (``wait_for_function``
    takes the pending promise of an async function for a true value and returns at
    once, so reading IndexedDB needs a loop of its own.)"""
    async with asyncio.timeout(30):
        while not await page.evaluate(function):  # noqa: ASYNC110 (IndexedDB, not an event)
            await asyncio.sleep(0.25)


def chunk_record(room: int, chunk: int) -> str:
    """The IndexedDB key of a room's history chunk (web/src/client/chunks.ts)."""
    return f"history/{room}/{chunk}"


async def copy_record(page: Page, key: str) -> dict[str, list[int]]:
    copy: dict[str, list[int]] = await page.evaluate(COPY_RECORD, key)
    return copy


async def put_record(page: Page, key: str, copy: dict[str, list[int]]) -> None:
    await page.evaluate(PUT_RECORD, [key, copy])
