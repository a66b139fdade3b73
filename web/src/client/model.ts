// What the web client keeps, in the vault (client/vault.ts): keys, verified room
// chains, sender keys, envelopes waiting for their key, the decrypted history it shows,
// the outbox. JSON only.
import type { JsonObject } from "../e2ee/canonical";
import type { HistoryIndex } from "./chunks";
import type { HistoryData } from "./history";
import type { LogData } from "./logview";
import type { PendingEnvelope } from "./pending";

export type MessageState = "pending" | "sent" | "delivered" | "read" | "failed";

/** A message shown in a conversation. Once in its room's list, only ``seq``, ``state``
 * and ``flags`` (appended to) change: the history's chunks (client/chunks.ts) notice
 * changes by these alone. */
export interface ChatMessage {
  id: string;
  room: number;
  seq: number | null;
  sender: string;
  senderDevice: number;
  text: string;
  ts: number;
  own: boolean;
  state: MessageState;
  flags: string[];
  attachment?: JsonObject; // a photo's or file's descriptor (docs/protocol.md §11.2), checked when shown
  event?: JsonObject; // a téléexpertise event (docs/protocol.md §12.2), checked when read
}

export interface StoredOutbound {
  keyId: string;
  chainKey: string;
  index: number;
  epoch: number;
  createdAtMs: number;
  sharedWith: string[];
}

export interface StoredInbound {
  sender: [string, number];
  keyId: string;
  chainKey: string;
  nextIndex: number;
  epoch: number;
  skipped: [number, string, string][];
}

export interface StoredRoom {
  events: string[];
  outbound: StoredOutbound | null;
  inbound: StoredInbound[];
  lastSeq: number;
  sentSeq: number;
  readSeq: number;
  profileKeys: Record<string, string>;
  left: boolean;
  compromised: string;
  behind: number;
  senderSeqs: Record<string, number[]>;
  pending?: PendingEnvelope[]; // envelopes waiting for their key (client/pending.ts); absent in older vaults
}

export interface Alert {
  id: string;
  kind: string;
  room: number | null;
  detail: string;
  subject: string;
  ts: number;
}

export interface OutboxItem {
  id: string;
  room: number;
  text: string;
  ts: number;
  content?: JsonObject; // another content than a text (an attachment), sent as it is
  // The room's last known number when this message first went out (absent until then):
  // if the server stored it, it stored it after that. A catch-up after logging in again
  // as a new device starts no later, to find it (client/client.ts, ``syncFrom``).
  after?: number;
}

export interface VaultData {
  version: 1;
  nationalId: string;
  device: number;
  token: string;
  displayName: string;
  identity: string;
  accountSecret: string;
  recoveryPublic: string;
  sign: string;
  kex: { serial: number; private: string; createdAt: number }[];
  log: LogData;
  knownDevices: Record<string, string>;
  contacts: Record<string, { identityKey: string; verified: boolean }>;
  rooms: Record<string, StoredRoom>;
  messages: Record<string, ChatMessage[]>; // in memory; stored in the history's chunks
  chunks?: Record<string, HistoryIndex>; // each room's chunks of messages (client/chunks.ts)
  outbox: OutboxItem[];
  kexSeen: Record<string, number>;
  receipts: Record<string, { delivered: number; read: number }>;
  names: Record<string, string>;
  alerts: Alert[];
  history: HistoryData;
  // Device numbers this browser held before its session ended and it logged in again
  // (client/session.ts): removed from its rooms, then revoked, by the device it is now.
  replacedDevices?: number[];
  // Every device number this browser held before (the last few, kept when settled): an
  // envelope of one of them carrying a queued message's id is that message, stored.
  formerDevices?: number[];
}

export function newRoom(events: string[]): StoredRoom {
  return { events, outbound: null, inbound: [], lastSeq: 0, sentSeq: 0, readSeq: 0, profileKeys: {}, left: false, compromised: "", behind: -1, senderSeqs: {}, pending: [] };
}
