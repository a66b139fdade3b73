// This device's key-agreement keys rotate (docs/protocol.md §10.4.3, as the SDK's
// client/devicekeys.py): every ROTATE_AFTER_MS a new X25519 key is made, signed and
// published; a replaced private key is kept KEEP_OLD_PRIVATE_MS longer for shares
// already on their way, then deleted from the vault. After that, a copy of the vault
// taken before opens no share sealed to this device.
import type { Api } from "../api/http";
import { b64u, fromUtf8 } from "../e2ee/bytes";
import { KEEP_OLD_PRIVATE_MS, publishKex, ROTATE_AFTER_MS } from "../e2ee/kex";
import { generateX25519, type SigningKey } from "../e2ee/primitives";

export interface StoredKex {
  serial: number;
  private: string;
  createdAt: number;
}

/** The clock of key rotation: the time, moved forward by a test only (a page script
 * that sets ``relaisKeyClockOffsetMs`` before or while the app runs, docs/web.md).
 * Nothing in the app sets it. */
export function keyClock(): number {
  const offset = (globalThis as { relaisKeyClockOffsetMs?: unknown }).relaisKeyClockOffsetMs;
  return Date.now() + (typeof offset === "number" && Number.isSafeInteger(offset) && offset > 0 ? offset : 0);
}

export function currentKex(keys: StoredKex[]): StoredKex {
  return keys.reduce((a, b) => (b.serial > a.serial ? b : a));
}

export function rotationDue(keys: StoredKex[], now: number): boolean {
  return now - currentKex(keys).createdAt >= ROTATE_AFTER_MS;
}

/** Delete every private key replaced more than KEEP_OLD_PRIVATE_MS ago; the current one
 * stays. True if one was deleted. */
export function forgetOldKex(keys: StoredKex[], now: number): boolean {
  const before = keys.length;
  const kept = keys.filter((key) => {
    const newer = keys.find((k) => k.serial === key.serial + 1);
    return !newer || now - newer.createdAt < KEEP_OLD_PRIVATE_MS;
  });
  keys.splice(0, keys.length, ...kept);
  return keys.length !== before;
}

/** A new current key, published signed; the replaced one is kept for its grace. */
export async function rotateKex(api: Api, keys: StoredKex[], signing: SigningKey, nationalId: string, device: number, now: number): Promise<void> {
  const serial = currentKex(keys).serial + 1;
  const pair = await generateX25519();
  await api.call("PUT", "devices/kex", { kex: fromUtf8(await publishKex(signing, nationalId, device, pair.publicKey, serial, now)) });
  keys.push({ serial, private: b64u(pair.privateKey), createdAt: now });
  forgetOldKex(keys, now);
}

