// The service worker: keeps the app's own files so that it opens without a network
// (read only: what was decrypted before stays readable). It never caches the API.
import { notifyPush, onAppMessage } from "./push/worker";

const worker = self as unknown as ServiceWorkerGlobalScope;

// Web Push (push/worker.ts): a content-free wake-up, decrypted and written here.
worker.addEventListener("push", (event) => {
  event.waitUntil(notifyPush(worker.registration, event.data?.text() ?? ""));
});

worker.addEventListener("message", (event) => onAppMessage(event.data));

worker.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(
    worker.clients.matchAll({ type: "window" }).then((windows) => {
      const open = windows[0];
      return open ? open.focus().then(() => undefined) : worker.clients.openWindow("/").then(() => undefined);
    }),
  );
});

const CACHE = "relais-shell-v1";
const SHELL = ["/", "/manifest.webmanifest", "/app/icons/icon-192.png"];

worker.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL))
      .then(() => worker.skipWaiting()),
  );
});

worker.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
      .then(() => worker.clients.claim()),
  );
});

function isShell(url: URL): boolean {
  return url.origin === worker.location.origin && (url.pathname === "/" || url.pathname.startsWith("/app/") || url.pathname === "/manifest.webmanifest");
}

worker.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || !isShell(url)) return;
  // Network first, so a new version is seen at once; the cached copy when offline.
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      try {
        const response = await fetch(request);
        // The page is kept under its path alone: its query may hold a one-time code on
        // the way back from Pro Santé Connect, which has no place in Cache Storage.
        if (response.ok) await cache.put(url.pathname === "/" ? `${url.origin}/` : request, response.clone());
        return response;
      } catch {
        const cached = await cache.match(request, { ignoreSearch: url.pathname === "/" });
        if (cached) return cached;
        throw new Error("offline and not cached");
      }
    })(),
  );
});

