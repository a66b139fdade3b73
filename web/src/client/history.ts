// The history keys this device holds (docs/protocol.md §10.9), as client/history.py:
// for every sender key it makes or receives, the chain key at the first index it could
// read. They are backed up sealed to the recovery key (only the recovery code opens
// them; the server stores opaque bytes), forwarded to a device this one links, and read
// when an envelope names a sender key this device holds no session for: its own
// earlier messages, or the history before it was linked or recovered. The key of each
// room's current profile is backed up and forwarded with them, and a profile key that
// comes back is kept only once the room's verified state names it.
import type { Api } from "../api/http";
import { b64u, unb64u } from "../e2ee/bytes";
import type { JsonObject } from "../e2ee/canonical";
import type { DeviceRef, InboundSession } from "../e2ee/envelopes";
import { CryptoError } from "../e2ee/errors";
import { checkProfileKey, type HistoryKey, historyKeyId, historyKeyJson, historyKeyOf, parseHistoryKey, parseProfileKeyRecord, PROFILE_KEY_RECORD, profileKeyId, profileKeyRecord, type RoomProfileKey, sessionOf } from "../e2ee/history";
import { openSealed, type RecoveryCode, sealToRecovery } from "../e2ee/recovery";
import type { RoomState } from "../e2ee/state";

const UPLOAD_BATCH = 200;
const PAGE = 500;

/** What the vault keeps: each history key by its sender key, and which are backed up;
 * ``uploadedProfiles``: the backup ids of the profile keys backed up (absent in a vault
 * written before profile keys were). */
export interface HistoryData {
  keys: Record<string, JsonObject>;
  uploaded: string[];
  uploadedProfiles?: string[];
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

  /** Back up the history keys, and the given profile keys, not backed up yet, one pass
   * at a time; how many records. */
  upload(api: Api, recoveryPublic: string, profileKeys: RoomProfileKey[] = []): Promise<number> {
    this.uploading = this.uploading.catch(() => 0).then(() => this.uploadWaiting(api, recoveryPublic, profileKeys));
    return this.uploading;
  }

  /** A profile key restored from the backup: not sent there again. */
  markProfileKeyBackedUp(id: string): void {
    (this.data.uploadedProfiles ??= []).push(id);
  }

  private async uploadWaiting(api: Api, recoveryPublic: string, profileKeys: RoomProfileKey[]): Promise<number> {
    if (!recoveryPublic) return 0;
    const recoveryKey = unb64u(recoveryPublic, 32, "recovery key");
    const done = new Set(this.data.uploaded);
    const waiting: { local: string; profile: boolean; value: () => Promise<{ id: string; record: JsonObject }> }[] = Object.keys(this.data.keys)
      .filter((id) => !done.has(id))
      .map((local) => ({
        local,
        profile: false,
        value: async () => {
          const key = parseHistoryKey(this.data.keys[local]);
          return { id: await historyKeyId(key.room, key.sender, key.keyId), record: historyKeyJson(key) };
        },
      }));
    const profilesDone = new Set(this.data.uploadedProfiles ?? []);
    for (const key of profileKeys) {
      const id = await profileKeyId(key);
      if (!profilesDone.has(id)) waiting.push({ local: id, profile: true, value: async () => ({ id, record: profileKeyRecord(key) }) });
    }
    for (let start = 0; start < waiting.length; start += UPLOAD_BATCH) {
      const batch = waiting.slice(start, start + UPLOAD_BATCH);
      const keys = [];
      for (const item of batch) {
        const { id, record } = await item.value();
        keys.push({ id, sealed: b64u(await sealToRecovery(recoveryKey, record)) });
      }
      await api.post("backup/keys", { keys });
      this.data.uploaded.push(...batch.filter((i) => !i.profile).map((i) => i.local));
      for (const item of batch.filter((i) => i.profile)) this.markProfileKeyBackedUp(item.local);
    }
    return waiting.length;
  }
}

/** What a room must offer for its profile keys to be forwarded, backed up and adopted. */
export interface RoomWithProfile {
  state: RoomState;
  stored: { profileKeys: Record<string, string>; left: boolean };
}

/** The key of each room's current profile this device holds. */
export function heldProfileKeys(rooms: Iterable<RoomWithProfile>): RoomProfileKey[] {
  const held: RoomProfileKey[] = [];
  for (const room of rooms) {
    const profile = room.state.profile;
    const key = profile && !room.stored.left ? room.stored.profileKeys[b64u(profile.keyId)] : undefined;
    if (profile && key) held.push({ room: room.state.room, version: profile.version, key: { keyId: profile.keyId, key: unb64u(key, 32, "profile key") } });
  }
  return held;
}

/** Keep each profile key the room's verified state names (checkProfileKey); how many.
 * ``roomOf(uid, version)`` gives the room with a state at least that fresh when it can
 * (null: not a room of ours). A key older than the state's profile is outdated and
 * dropped; any other mismatch goes to ``refused``. */
export async function adoptProfileKeys(keys: RoomProfileKey[], roomOf: (uid: string, version: number) => Promise<RoomWithProfile | null>, refused: (error: CryptoError) => void): Promise<number> {
  let kept = 0;
  for (const key of keys) {
    try {
      const room = await roomOf(key.room, key.version);
      if (!room || room.stored.left) throw new CryptoError("unknown_key", "profile key of a room we are not in");
      if (room.state.profile && key.version < room.state.profile.version) continue; // outdated
      await checkProfileKey(key, room.state);
      room.stored.profileKeys[b64u(key.key.keyId)] = b64u(key.key.key);
      kept += 1;
    } catch (error) {
      if (!(error instanceof CryptoError)) throw error;
      refused(error);
    }
  }
  return kept;
}

/** Fetch and open every backed-up record with the recovery code; how many history keys
 * were restored. The profile keys found go to ``profileKeys``, for the caller to check
 * against the rooms' states once it has them (adoptProfileKeys). A damaged entry, or
 * one filed under another id, is skipped. */
export async function restoreFromBackup(api: Api, code: RecoveryCode, history: History, profileKeys: RoomProfileKey[] = []): Promise<number> {
  let after = 0;
  let restored = 0;
  for (;;) {
    const page = await api.get<{ keys: { n: number; id: string; sealed: string }[] }>(`backup/keys?after=${after}&limit=${PAGE}`);
    if (!page.keys.length) return restored;
    for (const item of page.keys) {
      after = item.n;
      try {
        const value = await openSealed(code, unb64u(item.sealed, undefined, "sealed"));
        if (value.type === PROFILE_KEY_RECORD) {
          const key = parseProfileKeyRecord(value);
          if ((await profileKeyId(key)) !== item.id) continue;
          history.markProfileKeyBackedUp(item.id);
          profileKeys.push(key);
          continue;
        }
        const key = parseHistoryKey(value);
        if ((await historyKeyId(key.room, key.sender, key.keyId)) === item.id && history.record(key, true)) restored += 1;
      } catch (error) {
        if (!(error instanceof CryptoError)) throw error;
      }
    }
  }
}
