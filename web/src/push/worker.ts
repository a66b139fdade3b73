// Web Push in the service worker (docs/web.md, "Notifications"). A push says only
// {"room", "seq"} (docs/push.md): the worker fetches that envelope and decrypts it here,
// with the keys of the vault, and only then writes who wrote in which room. The vault
// opens only with the key the unlocked app handed over, held in this worker's memory:
// when the browser stops the worker, or the app locks or logs out, the key is gone and
// the notification says "Nouveau message", without a name. A sender key this device
// holds only as a history key (from a linking's transfer or a recovery, kept in the same
// vault: client/history.ts) reads the message as a session would.
import type { JsonObject } from "../e2ee/canonical";
import { b64u, unb64u, utf8 } from "../e2ee/bytes";
import { decryptEnvelope, type InboundSession, parseEnvelope, sessionKey } from "../e2ee/envelopes";
import { decryptProfile } from "../e2ee/profile";
import { replayChain } from "../e2ee/state";
import { History, newHistoryData } from "../client/history";
import type { VaultData } from "../client/model";
import { Vault } from "../client/vault";

let vaultKey: CryptoKey | null = null;

/** A message from a page of the app: the vault's key when it unlocks, its end on lock. */
export function onAppMessage(data: unknown): void {
  if (typeof data !== "object" || data === null) return;
  const message = data as { type?: unknown; key?: unknown };
  if (message.type === "vault-unlocked" && message.key instanceof CryptoKey) vaultKey = message.key;
  if (message.type === "vault-locked") vaultKey = null;
}

export interface PushPayload {
  room: number;
  seq: number;
}

/** The payload as docs/push.md says it is, or null. */
export function parsePayload(text: string): PushPayload | null {
  if (text.length > 256) return null;
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value !== "object" || value === null) return null;
    const { room, seq } = value as Record<string, unknown>;
    if (!Number.isSafeInteger(room) || !Number.isSafeInteger(seq) || (room as number) < 1 || (seq as number) < 1) return null;
    return { room: room as number, seq: seq as number };
  } catch {
    return null;
  }
}

const english = (): boolean => (self.navigator.language || "fr").toLowerCase().startsWith("en");

export function genericTitle(): string {
  return english() ? "New message" : "Nouveau message";
}

function wroteIn(name: string, room: string): string {
  return english() ? `${name} wrote in ${room}` : `${name} a écrit dans ${room}`;
}

interface Shown {
  title: string;
  body: string;
}

/** Who wrote in which room, from the envelope decrypted here; null if it cannot be. */
async function describe(payload: PushPayload): Promise<Shown | null> {
  if (!vaultKey) return null;
  const data = await Vault.openWithKey<VaultData>(vaultKey);
  const stored = data?.rooms[String(payload.room)];
  if (!data || !stored || stored.left || stored.compromised) return null;
  const response = await fetch(`/api/v1/rooms/${payload.room}/messages?after=${payload.seq - 1}&limit=1`, {
    headers: { Accept: "application/json", Authorization: `Bearer ${data.token}` },
    credentials: "omit",
    cache: "no-store",
  });
  if (!response.ok) return null;
  const page = (await response.json()) as { messages?: { seq?: unknown; body?: unknown; sender?: { practitioner?: unknown; device?: unknown } }[] };
  const item = page.messages?.find((m) => m.seq === payload.seq);
  if (!item || typeof item.body !== "string") return null;
  const state = await replayChain(stored.events.map(utf8));
  // Copies of the sender keys: the app, not the worker, moves its ratchets.
  const sessions = new Map<string, InboundSession>();
  for (const s of stored.inbound) {
    sessions.set(sessionKey(s.sender, unb64u(s.keyId)), {
      room: state.room,
      sender: s.sender,
      keyId: unb64u(s.keyId),
      chainKey: unb64u(s.chainKey),
      nextIndex: s.nextIndex,
      epoch: s.epoch,
      skipped: new Map(s.skipped.map(([i, key, nonce]) => [i, { key: unb64u(key), nonce: unb64u(nonce) }])),
    });
  }
  const envelope = parseEnvelope(unb64u(item.body.replace(/=+$/, ""), undefined, "body"));
  const held = sessionKey(envelope.sender, envelope.keyId);
  if (!sessions.has(held)) {
    const past = new History(data.history ?? newHistoryData()).session(state.room, envelope.sender, envelope.keyId);
    if (past) sessions.set(held, past);
  }
  const opened = await decryptEnvelope(state, envelope, sessions);
  if (item.sender?.practitioner !== opened.sender[0] || item.sender.device !== opened.sender[1]) return null;
  const nameOf = (nationalId: string): string => data.names[nationalId] ?? nationalId;
  let title: string | null = null;
  const profile = state.profile;
  const profileKey = profile ? stored.profileKeys[b64u(profile.keyId)] : undefined;
  if (profile && profileKey) {
    const value: JsonObject = await decryptProfile(state.room, profile.version, { keyId: profile.keyId, key: unb64u(profileKey) }, profile.ciphertext);
    if (typeof value.title === "string") title = value.title;
  }
  title ??= [...state.members.keys()].filter((n) => n !== data.nationalId).map(nameOf).join(", ") || `#${payload.room}`;
  return { title: nameOf(opened.sender[0]), body: wroteIn(nameOf(opened.sender[0]), title) };
}

/** Show the notification of one push: described if the vault is open, generic if not. */
export async function notifyPush(registration: ServiceWorkerRegistration, text: string): Promise<void> {
  const payload = parsePayload(text);
  let shown: Shown | null = null;
  if (payload) {
    try {
      shown = await describe(payload);
    } catch {
      shown = null; // a message that does not decrypt here is the app's to report
    }
  }
  await registration.showNotification(shown?.title ?? genericTitle(), {
    body: shown?.body ?? "",
    tag: payload ? `room-${payload.room}` : "relais",
    data: payload ? { room: payload.room } : {},
  });
}
