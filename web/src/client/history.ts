// The history keys this device holds (docs/protocol.md §10.9), as client/history.py:
// for every sender key it makes or receives, the chain key at the first index it could
// read. They are backed up sealed to the recovery key (only the recovery code opens
// them; the server stores opaque bytes), forwarded to a device this one links, and read
// when an envelope names a sender key this device holds no session for: its own
// earlier messages, or the history before it was linked or recovered.
import type { Api } from "../api/http";
import { b64u, unb64u } from "../e2ee/bytes";
import type { JsonObject } from "../e2ee/canonical";
import type { DeviceRef, InboundSession } from "../e2ee/envelopes";
import { CryptoError } from "../e2ee/errors";
import { type HistoryKey, historyKeyId, historyKeyJson, historyKeyOf, parseHistoryKey, sessionOf } from "../e2ee/history";
import { openSealed, type RecoveryCode, sealToRecovery } from "../e2ee/recovery";

const UPLOAD_BATCH = 200;
const PAGE = 500;

/** What the vault keeps: each history key by its sender key, and which are backed up. */
export interface HistoryData {
  keys: Record<string, JsonObject>;
  uploaded: string[];
}

export function newHistoryData(): HistoryData {
  return { keys: {}, uploaded: [] };
}

const localKey = (room: string, sender: DeviceRef, keyId: Uint8Array): string => `${room}/${sender[0]}/${sender[1]}/${b64u(keyId)}`;

export class History {
  private uploading: Promise<number> = Promise.resolve(0);

  constructor(readonly data: HistoryData) {}

  /** Keep a history key unless one of the same sender key at an earlier index is held
   * (the earliest reads more). True if it was new. ``backedUp``: it came from the
   * backup, so it is not sent there again. */
  record(key: HistoryKey, backedUp = false): boolean {
    const id = localKey(key.room, key.sender, key.keyId);
    const held = this.data.keys[id];
    if (held && (held.index as number) <= key.index) return false;
    this.data.keys[id] = historyKeyJson(key);
    this.data.uploaded = this.data.uploaded.filter((u) => u !== id);
    if (backedUp) this.data.uploaded.push(id);
    return true;
  }

  recordSession(session: InboundSession): boolean {
    return this.record(historyKeyOf(session));
  }

  find(room: string, sender: DeviceRef, keyId: Uint8Array): HistoryKey | null {
    const held = this.data.keys[localKey(room, sender, keyId)];
    return held ? parseHistoryKey(held) : null;
  }

  /** A session reading from the history key of that sender key, if one is held. */
  session(room: string, sender: DeviceRef, keyId: Uint8Array): InboundSession | null {
    const key = this.find(room, sender, keyId);
    return key ? sessionOf(key) : null;
  }

  keys(): HistoryKey[] {
    return Object.values(this.data.keys).map(parseHistoryKey);
  }

  /** Back up the history keys not backed up yet, one pass at a time; how many. */
  upload(api: Api, recoveryPublic: string): Promise<number> {
    this.uploading = this.uploading.catch(() => 0).then(() => this.uploadWaiting(api, recoveryPublic));
    return this.uploading;
  }

  private async uploadWaiting(api: Api, recoveryPublic: string): Promise<number> {
    if (!recoveryPublic) return 0;
    const recoveryKey = unb64u(recoveryPublic, 32, "recovery key");
    const done = new Set(this.data.uploaded);
    const waiting = Object.keys(this.data.keys).filter((id) => !done.has(id));
    for (let start = 0; start < waiting.length; start += UPLOAD_BATCH) {
      const batch = waiting.slice(start, start + UPLOAD_BATCH);
      const keys = [];
      for (const id of batch) {
        const key = parseHistoryKey(this.data.keys[id]);
        keys.push({ id: await historyKeyId(key.room, key.sender, key.keyId), sealed: b64u(await sealToRecovery(recoveryKey, historyKeyJson(key))) });
      }
      await api.post("backup/keys", { keys });
      this.data.uploaded.push(...batch);
    }
    return waiting.length;
  }
}

/** Fetch and open every backed-up history key with the recovery code; how many were
 * restored. A damaged entry, or one filed under another sender key's id, is skipped. */
export async function restoreFromBackup(api: Api, code: RecoveryCode, history: History): Promise<number> {
  let after = 0;
  let restored = 0;
  for (;;) {
    const page = await api.get<{ keys: { n: number; id: string; sealed: string }[] }>(`backup/keys?after=${after}&limit=${PAGE}`);
    if (!page.keys.length) return restored;
    for (const item of page.keys) {
      after = item.n;
      try {
        const key = parseHistoryKey(await openSealed(code, unb64u(item.sealed, undefined, "sealed")));
        if ((await historyKeyId(key.room, key.sender, key.keyId)) === item.id && history.record(key, true)) restored += 1;
      } catch (error) {
        if (!(error instanceof CryptoError)) throw error;
      }
    }
  }
}
