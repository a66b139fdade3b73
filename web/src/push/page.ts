// Web Push from the app's side (docs/web.md, "Notifications"): the subscription with
// the server's VAPID key, registered through the REST API (docs/push.md), per-room mutes,
// and the vault's key handed to the service worker while the app is unlocked.
import type { Api } from "../api/http";
import type { Vault } from "../client/vault";

export class PushRefused extends Error {}

/** The service worker may decrypt pushes while this page is unlocked (push/worker.ts). */
export async function unlockWorker(vault: Vault): Promise<void> {
  if (!("serviceWorker" in navigator)) return;
  const registration = await navigator.serviceWorker.ready;
  if (registration.active) vault.shareWith(registration.active);
}

export async function lockWorker(): Promise<void> {
  if (!("serviceWorker" in navigator)) return;
  const registration = await navigator.serviceWorker.getRegistration();
  registration?.active?.postMessage({ type: "vault-locked" });
}

/** After a login again (a new device number): this browser's push subscription, if it
 * has one, registered for the device it is now. */
export async function registerPushAgain(api: Api): Promise<void> {
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) return;
  const registration = await navigator.serviceWorker.ready;
  const subscription = await registration.pushManager.getSubscription();
  if (subscription) await api.call("PUT", "push/subscription", subscription.toJSON());
}

/** Whether this browser has a push subscription already. */
export async function pushEnabled(): Promise<boolean> {
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) return false;
  const registration = await navigator.serviceWorker.ready;
  return (await registration.pushManager.getSubscription()) !== null;
}

/** Subscribe this browser with the server's VAPID key and register the subscription. */
export async function enablePush(api: Api): Promise<void> {
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) throw new PushRefused("no push in this browser");
  if ((await Notification.requestPermission()) !== "granted") throw new PushRefused("permission refused");
  const { public_key: publicKey } = await api.get<{ public_key: string }>("push/vapid-key");
  const registration = await navigator.serviceWorker.ready;
  const subscription =
    (await registration.pushManager.getSubscription()) ??
    (await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: publicKey.replace(/=+$/, "") }));
  await api.call("PUT", "push/subscription", subscription.toJSON());
}

/** The rooms muted for this device or its practitioner, now. */
export async function mutedRooms(api: Api): Promise<Set<number>> {
  const answer = await api.get<{ mutes: { room: number }[] }>("push/mutes");
  return new Set(answer.mutes.map((m) => m.room));
}

/** Mute a room on this device (docs/push.md: scope "device", no end), or unmute it. */
export async function setMuted(api: Api, room: number, muted: boolean): Promise<void> {
  if (muted) await api.call("PUT", `rooms/${room}/mute`, { scope: "device", until: null });
  else await api.call("DELETE", `rooms/${room}/mute?scope=device`);
}
