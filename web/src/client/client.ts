// The web client's protocol engine (docs/protocol.md §1–10), as the Python SDK does it
// (client/): registration of the first device, the WebSocket with catch-up, rooms from
// their verified chains, sender keys shared only with devices the log certifies,
// envelopes in and out, receipts, the outbox retried with the same ids. No DOM here.
import type { Api } from "../api/http";
import { ApiError } from "../api/errors";
import { type Frame, Socket } from "../api/socket";
import { b64u, equal, fromUtf8, randomBytes, unb64u, utf8 } from "../e2ee/bytes";
import { canonicalJson, type JsonObject } from "../e2ee/canonical";
import { commitment, LinkCode, linkRequest, openBundle, parseRequest, sealBundle } from "../e2ee/linking";
import { decryptEnvelope, encryptEnvelope, type InboundSession, needsRotation, newOutboundSession, type OutboundSession, parseEnvelope, sessionKey } from "../e2ee/envelopes";
import { CryptoError } from "../e2ee/errors";
import { bind, certify } from "../e2ee/identity";
import { publishKex, verifyKex, type KexKey } from "../e2ee/kex";
import { decryptProfile, encryptProfile, generateProfileKey, type ProfileKey } from "../e2ee/profile";
import { identityBackup, openSealed, RecoveryCode, restoreIdentity, sealToRecovery } from "../e2ee/recovery";
import { isTransfer, KEYS_PER_TRANSFER, openTransfer, type OpenedTransfer, PROFILE_KEYS_PER_TRANSFER, type RoomProfileKey, sealTransfer, verifyTransfer } from "../e2ee/history";
import { safetyNumber, type SafetyNumber } from "../e2ee/safety";
import { acceptShare, openShare, sealShare, shareKexSerial } from "../e2ee/shares";
import { applyEvent, createContent, currentDevice, defaultPolicy, eventHash, memberContent, replayChain, roomDevices, type RoomDevice, type RoomState, signEvent } from "../e2ee/state";
import { generateX25519, SigningKey } from "../e2ee/primitives";
import { signDeviceRegistration, signKexRegistration } from "../e2ee/transparency";
import { adoptProfileKeys, heldProfileKeys, History, newHistoryData, restoreFromBackup } from "./history";
import { CHUNK_MESSAGES, chunkAad, chunkRecord, HistoryChunks, trimHistory } from "./chunks";
import { boundPending, type PendingEnvelope, pendingFrom } from "./pending";
import { forgetOldKex, keyClock, rotateKex, rotationDue } from "./devicekeys";
import { ForkDetectedError, KeyTransparencyError, LogView, type VerifiedIdentity } from "./logview";
import { auditedSignKey, monitorOwnLabel } from "./monitor";
import { type Alert, type ChatMessage, newRoom, type StoredRoom, type VaultData } from "./model";
import { revocationInLog, revocationOf, type SessionState, stateAfter } from "./session";
import type { Vault } from "./vault";
import { type TeleexpertiseFrame, teleexpertiseFrame } from "../teleexpertise/frame";

export class SecurityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SecurityError";
  }
}

export class IdentityExistsError extends Error {}

/** A login after the session ended that cannot go on with this browser's keys:
 * another practitioner logged in, the log holds another identity key for this one, or
 * this device was removed (client/session.ts). */
export class ReloginError extends Error {
  constructor(readonly reason: "other_practitioner" | "identity_changed" | "removed") {
    super(reason);
    this.name = "ReloginError";
  }
}

/** Recovery refused: ``reason`` names why, for the screen to say it (ui/recovery.ts). */
export class RecoveryError extends Error {
  constructor(readonly reason: "bad_code" | "no_backup" | "wrong_code" | "bad_backup" | "not_logged") {
    super(reason);
    this.name = "RecoveryError";
  }
}

interface LocalRoom {
  id: number;
  state: RoomState;
  stored: StoredRoom;
  outbound: OutboundSession | null;
  inbound: Map<string, InboundSession>;
  /** Envelopes waiting for their key, kept in ``stored.pending`` too (client/pending.ts). */
  pending: PendingEnvelope[];
  /** Each sender's message numbers seen (stored.senderSeqs), as sets, made when first needed. */
  senders?: Map<string, { seqs: Set<number>; max: number }>;
}

const MAX_MESSAGES_PER_ROOM = 5000;
const LOOKUP_REUSE_MS = 30_000;
const MESSAGE_ID = /^[A-Za-z0-9._:-]{1,64}$/;
// The device numbers this browser held before that it still recognises as its own.
const MAX_FORMER_DEVICES = 16;
// How often an open app audits the log and checks whether its key-agreement key is due.
const WATCH_INTERVAL_MS = 10 * 60_000;

export type Connection = "online" | "connecting" | "offline";

export type { TeleexpertiseFrame };

export class RelaisClient {
  readonly rooms = new Map<number, LocalRoom>();
  connection: Connection = "offline";
  /** Whether the server still takes this device's token (client/session.ts). */
  session: SessionState = "active";
  typing = new Map<number, { name: string; until: number }>();
  private socket: Socket | null = null;
  private signing!: SigningKey;
  private identity!: SigningKey;
  readonly log: LogView;
  readonly history: History;
  private lookups = new Map<string, { at: number; identity: VerifiedIdentity }>();
  private inFlight = new Set<string>();
  private synced = false;
  private saving: Promise<void> = Promise.resolve();
  private queued: Promise<void> | null = null;
  private closed = false;
  private readonly chunks = new HistoryChunks();
  private listeners = new Set<() => void>();
  private caseListeners = new Set<(frame: TeleexpertiseFrame) => void>();

  private constructor(
    readonly api: Api,
    readonly vault: Vault,
    readonly data: VaultData,
  ) {
    this.log = new LogView(api, data.log);
    data.history ??= newHistoryData(); // a vault written before history keys
    this.history = new History(data.history);
  }

  get nationalId(): string {
    return this.data.nationalId;
  }

  get device(): number {
    return this.data.device;
  }

  get me(): [string, number] {
    return [this.data.nationalId, this.data.device];
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The live ``teleexpertise`` frames (§12.4), hints for the téléexpertise screens. */
  onTeleexpertiseFrame(listener: (frame: TeleexpertiseFrame) => void): () => void {
    this.caseListeners.add(listener);
    return () => this.caseListeners.delete(listener);
  }

  private onTeleexpertise(frame: Frame): void {
    const parsed = teleexpertiseFrame(frame);
    if (parsed) for (const listener of this.caseListeners) listener(parsed);
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }

  // Opening ------------------------------------------------------------------------------

  static async open(api: Api, vault: Vault, data: VaultData): Promise<RelaisClient> {
    const client = new RelaisClient(api, vault, data);
    client.signing = await SigningKey.fromSeed(unb64u(data.sign));
    client.identity = await SigningKey.fromSeed(unb64u(data.identity));
    api.setToken(data.token);
    await client.loadHistory();
    for (const [id, stored] of Object.entries(data.rooms)) {
      try {
        client.rooms.set(Number(id), await client.localRoom(Number(id), stored));
      } catch {
        // a stored chain that no longer verifies is kept out (never happens honestly)
      }
    }
    return client;
  }

  /** The history's chunks (client/history.ts), read and opened together; a vault from
   * before the history had records of its own holds it in ``messages``. */
  private async loadHistory(): Promise<void> {
    const index = (this.data.chunks ??= {});
    const wanted: { room: string; chunk: number; nonce: Uint8Array }[] = [];
    for (const [room, entry] of Object.entries(index)) {
      for (const [chunk, nonce] of Object.entries(entry.chunks)) wanted.push({ room, chunk: Number(chunk), nonce: unb64u(nonce, 12) });
    }
    wanted.sort((a, b) => (a.room === b.room ? a.chunk - b.chunk : a.room < b.room ? -1 : 1));
    const opened = await this.vault.open(wanted.map((w) => ({ key: chunkRecord(w.room, w.chunk), nonce: w.nonce, aad: chunkAad(w.room, w.chunk) })));
    const rooms = new Set(wanted.map((w) => w.room));
    for (const room of rooms) this.data.messages[room] = [];
    wanted.forEach((w, i) => {
      const plain = opened[i];
      if (!plain) {
        this.alert("history_damaged", Number(w.room), `messages ${w.chunk * CHUNK_MESSAGES + 1} to ${(w.chunk + 1) * CHUNK_MESSAGES} of this room could not be read back`);
        return;
      }
      const messages = JSON.parse(fromUtf8(plain)) as ChatMessage[];
      this.chunks.loaded(w.room, w.chunk, messages);
      this.data.messages[w.room]!.push(...messages);
    });
  }

  private async localRoom(id: number, stored: StoredRoom): Promise<LocalRoom> {
    const state = await replayChain(stored.events.map(utf8));
    const inbound = new Map<string, InboundSession>();
    for (const s of stored.inbound) {
      const session: InboundSession = {
        room: state.room,
        sender: s.sender,
        keyId: unb64u(s.keyId),
        chainKey: unb64u(s.chainKey),
        nextIndex: s.nextIndex,
        epoch: s.epoch,
        skipped: new Map(s.skipped.map(([i, key, nonce]) => [i, { key: unb64u(key), nonce: unb64u(nonce) }])),
      };
      inbound.set(sessionKey(session.sender, session.keyId), session);
    }
    const o = stored.outbound;
    const outbound: OutboundSession | null = o
      ? { room: state.room, sender: this.me, keyId: unb64u(o.keyId), chainKey: unb64u(o.chainKey), index: o.index, epoch: o.epoch, createdAtMs: o.createdAtMs, sharedWith: o.sharedWith }
      : null;
    const room: LocalRoom = { id, state, stored, outbound, inbound, pending: [] };
    this.holdPending(room, stored.pending ?? []);
    return room;
  }

  /** The practitioner's first device: identity key, device keys in the log, recovery
   * code (to show once). IdentityExistsError when they use Relais elsewhere already. */
  static async registerFirstDevice(api: Api, vault: Vault, login: { token: string; device: number; nationalId: string; displayName: string }): Promise<{ client: RelaisClient; code: RecoveryCode }> {
    api.setToken(login.token);
    const identity = await SigningKey.generate();
    const signing = await SigningKey.generate();
    const kex = await generateX25519();
    const code = RecoveryCode.generate();
    const accountSecret = randomBytes(32);
    const recoveryPublic = await code.publicKey();
    const now = keyClock();
    const data = newVaultData(login, identity, signing, kex, accountSecret, b64u(recoveryPublic));
    const client = new RelaisClient(api, vault, data);
    client.signing = signing;
    client.identity = identity;
    await client.log.start();
    try {
      const answer = await api.post<{ index: number; entry: string; proof: string[]; tree_head: unknown }>("identity", {
        identity_key: b64u(identity.publicKey),
        binding: b64u(await bind(identity, login.nationalId)),
        reset: false,
      });
      const record = await client.log.checkAppended(answer);
      if (record.type !== "identity" || !equal(record.identityKey, identity.publicKey)) throw new KeyTransparencyError("the log published another identity key than ours");
    } catch (error) {
      if (error instanceof ApiError && error.code === "conflict") throw new IdentityExistsError(login.nationalId);
      throw error;
    }
    const [nid, device] = [login.nationalId, login.device];
    const answer = await api.post<{ index: number; entry: string; proof: string[]; tree_head: unknown }>("devices/keys", {
      sign_key: b64u(signing.publicKey),
      kex_key: b64u(kex.publicKey),
      signature: b64u(await signDeviceRegistration(signing, nid, device, "device", identity.publicKey)),
      cross_signature: b64u(await certify(identity, nid, device, "device", signing.publicKey)),
      kex_signature: b64u(await signKexRegistration(signing, nid, device, kex.publicKey)),
    });
    const record = await client.log.checkAppended(answer);
    if (record.type !== "device" || record.device !== device || !equal(record.signKey, signing.publicKey)) throw new KeyTransparencyError("the log certified other keys than ours");
    await api.call("PUT", "devices/kex", { kex: fromUtf8(await publishKex(signing, nid, device, kex.publicKey, 1, now)) });
    const backup = await sealToRecovery(recoveryPublic, identityBackup(nid, identity.seed, accountSecret));
    await api.call("PUT", "backup/identity", { sealed: b64u(backup) });
    await client.save();
    return { client, code };
  }

  // Linking (docs/protocol.md §10.4.4) --------------------------------------------------

  /** A new device of a practitioner who already uses Relais: its keys and a link
   * request; show ``code`` (QR payload or short code) for an existing device to take. */
  static async startLink(api: Api, login: { token: string; device: number; nationalId: string }): Promise<PendingLink> {
    api.setToken(login.token);
    const signing = await SigningKey.generate();
    const kex = await generateX25519();
    const request = linkRequest(login.nationalId, login.device, signing.publicKey, kex.publicKey);
    const answer = await api.post<{ link_id: string }>("devices/link-requests", { request: fromUtf8(canonicalJson(request)) });
    return { code: new LinkCode(unb64u(answer.link_id, 5), await commitment(request)), signing, kex, request };
  }

  /** Whether an existing device approved the request yet; the client once it did: the
   * identity taken from the bundle, checked against the log, this device certified
   * with it and added to its practitioner's rooms by events it signs itself. */
  static async finishLink(api: Api, vault: Vault, login: { token: string; device: number; nationalId: string; displayName: string }, pending: PendingLink): Promise<RelaisClient | null> {
    const answer = await api.get<{ bundle: string | null }>(`devices/link-requests/${pending.code.linkIdText}`);
    if (answer.bundle === null) return null;
    const bundle = await openBundle(unb64u(answer.bundle), pending.kex.privateKey);
    if (bundle.national_id !== login.nationalId || bundle.device !== login.device) throw new SecurityError("the link bundle is for another device");
    const identity = await SigningKey.fromSeed(unb64u(bundle.identity_key, 32));
    const trust = (bundle.trust ?? {}) as { known_devices?: Record<string, string> };
    const data = newVaultData(login, identity, pending.signing, pending.kex, unb64u(bundle.account_secret, 32), typeof bundle.recovery_key === "string" ? bundle.recovery_key : "");
    for (const [device, key] of Object.entries(trust.known_devices ?? {})) if (typeof key === "string") data.knownDevices[device] = key;
    const client = new RelaisClient(api, vault, data);
    client.signing = pending.signing;
    client.identity = identity;
    await client.log.start();
    const mine = await client.identityOf(login.nationalId, false);
    if (!mine.identityKey || !equal(mine.identityKey, identity.publicKey)) throw new KeyTransparencyError("the identity key received is not the one the log holds");
    await client.certifySelf(pending.kex);
    await client.joinMyRooms();
    await client.save();
    return client;
  }

  /** Every device was lost (docs/protocol.md §10.9): the identity comes back from the
   * backup sealed to the recovery code, is checked against the log, certifies this
   * device; then the history keys come back and the rooms are joined. Nothing is written
   * on the server before the code opened the backup and the log confirmed its key. */
  static async recover(api: Api, vault: Vault, login: { token: string; device: number; nationalId: string; displayName: string }, pending: PendingLink, codeText: string): Promise<RelaisClient> {
    let code: RecoveryCode;
    try {
      code = RecoveryCode.parse(codeText);
    } catch {
      throw new RecoveryError("bad_code");
    }
    api.setToken(login.token);
    let sealed: string;
    try {
      sealed = (await api.get<{ sealed: string }>("backup/identity")).sealed;
    } catch (error) {
      if (error instanceof ApiError && error.code === "not_found") throw new RecoveryError("no_backup");
      throw error;
    }
    let restored: { identityPrivate: Uint8Array; accountSecret: Uint8Array };
    try {
      restored = restoreIdentity(await openSealed(code, unb64u(sealed, undefined, "sealed")), login.nationalId);
    } catch (error) {
      if (error instanceof CryptoError) throw new RecoveryError(error.code === "decrypt_failed" ? "wrong_code" : "bad_backup");
      throw error;
    }
    const identity = await SigningKey.fromSeed(restored.identityPrivate);
    const data = newVaultData(login, identity, pending.signing, pending.kex, restored.accountSecret, b64u(await code.publicKey()));
    const client = new RelaisClient(api, vault, data);
    client.signing = pending.signing;
    client.identity = identity;
    await client.log.start();
    const mine = await client.identityOf(login.nationalId, false);
    if (!mine.identityKey || !equal(mine.identityKey, identity.publicKey)) throw new RecoveryError("not_logged");
    await client.certifySelf(pending.kex);
    const profileKeys: RoomProfileKey[] = [];
    await restoreFromBackup(api, code, client.history, profileKeys);
    await client.joinMyRooms();
    // The backup keeps every version: no alert. A room whose state cannot be fetched now
    // gets its profile key with the next share; the recovery itself goes on.
    await client.adoptProfileKeys(profileKeys, null).catch(() => undefined);
    await client.save();
    return client;
  }

  private async certifySelf(kex: { publicKey: Uint8Array }): Promise<void> {
    const [nid, device] = this.me;
    const answer = await this.api.post<{ index: number; entry: string; proof: string[]; tree_head: unknown }>("devices/keys", {
      sign_key: b64u(this.signing.publicKey),
      kex_key: b64u(kex.publicKey),
      signature: b64u(await signDeviceRegistration(this.signing, nid, device, "device", this.identity.publicKey)),
      cross_signature: b64u(await certify(this.identity, nid, device, "device", this.signing.publicKey)),
      kex_signature: b64u(await signKexRegistration(this.signing, nid, device, kex.publicKey)),
    });
    const record = await this.log.checkAppended(answer);
    if (record.type !== "device" || record.device !== device || !equal(record.signKey, this.signing.publicKey)) throw new KeyTransparencyError("the log certified other keys than ours");
    await this.api.call("PUT", "devices/kex", { kex: fromUtf8(await publishKex(this.signing, nid, device, kex.publicKey, 1, this.data.kex[0]!.createdAt)) });
    this.data.knownDevices[String(device)] = b64u(this.signing.publicKey);
  }

  /** This device into every room of its practitioner that does not list it yet. */
  private async joinMyRooms(): Promise<void> {
    await this.refreshRooms();
    const crossSig = await certify(this.identity, this.nationalId, this.device, "device", this.signing.publicKey);
    for (const room of this.rooms.values()) {
      const member = room.state.members.get(this.nationalId);
      if (room.stored.left || room.stored.compromised || !member || member.devices.has(this.device) || !equal(member.identityKey, this.identity.publicKey)) continue;
      const raw = await signEvent({
        state: room.state,
        room: room.state.room,
        author: this.me,
        key: this.signing,
        action: "add_device",
        content: { national_id: this.nationalId, device: { device: this.device, sign_key: b64u(this.signing.publicKey), cross_sig: b64u(crossSig) } },
        timestamp: Date.now(),
        log: this.log.gossip(),
      });
      await this.api.post(`rooms/${room.id}/state`, { event: fromUtf8(raw) });
      room.state = (await applyEvent(room.state, raw)).state;
      room.stored.events.push(fromUtf8(raw));
    }
  }

  /** From an existing device: the request behind a code, checked against it. */
  async linkRequestFor(codeText: string): Promise<{ code: LinkCode; request: JsonObject; device: number; name: string }> {
    let code: LinkCode;
    try {
      code = LinkCode.parse(codeText);
    } catch {
      throw new SecurityError("this is not a Relais link code");
    }
    const answer = await this.api.get<{ request: string; device: number; device_name: string }>(`devices/link-requests/${code.linkIdText}`);
    const request = parseRequest(utf8(answer.request));
    if (!(await code.matches(request))) throw new SecurityError("the request does not match the code shown on the new device: do not link it");
    if (request.national_id !== this.nationalId || request.device !== answer.device) throw new SecurityError("the request is for another practitioner or device");
    return { code, request, device: answer.device, name: answer.device_name };
  }

  /** The user approved: the identity goes to the new device, sealed to its key. */
  async approveLink(found: { code: LinkCode; request: JsonObject; device: number }): Promise<void> {
    const bundle: JsonObject = {
      v: 2,
      type: "link_bundle",
      national_id: this.nationalId,
      device: found.device,
      identity_key: this.data.identity,
      account_secret: this.data.accountSecret,
      recovery_key: this.data.recoveryPublic || null,
      trust: { contacts: {}, verified: {}, known_devices: { ...this.data.knownDevices } },
    };
    const sealed = await sealBundle(found.request, bundle);
    await this.api.post(`devices/link-requests/${found.code.linkIdText}/approve`, { bundle: b64u(sealed) });
    this.data.knownDevices[String(found.device)] = found.request.sign_key as string;
    this.data.alerts = this.data.alerts.filter((a) => !(a.kind === "unknown_device" && a.subject === String(found.device)));
    await this.save();
    await this.forwardHistory(found.device, unb64u(found.request.kex_key, 32));
  }

  /** Every history key this device holds, and each room's current profile key (in
   * messages of their own), to a device it just linked, sealed to the key of its request
   * (docs/protocol.md §10.4.4, step 5, §10.9). */
  private async forwardHistory(device: number, kexKey: Uint8Array): Promise<void> {
    const keys = this.history.keys();
    const profileKeys = heldProfileKeys(this.rooms.values());
    const messages: { device: number; body: string }[] = [];
    for (let start = 0; start < keys.length; start += KEYS_PER_TRANSFER) {
      const sealed = await sealTransfer(keys.slice(start, start + KEYS_PER_TRANSFER), this.me, this.signing, [this.nationalId, device], kexKey);
      messages.push({ device, body: b64u(sealed) });
    }
    for (let start = 0; start < profileKeys.length; start += PROFILE_KEYS_PER_TRANSFER) {
      const sealed = await sealTransfer([], this.me, this.signing, [this.nationalId, device], kexKey, profileKeys.slice(start, start + PROFILE_KEYS_PER_TRANSFER));
      messages.push({ device, body: b64u(sealed) });
    }
    for (let start = 0; start < messages.length; start += 500) await this.api.post("devices/messages", { messages: messages.slice(start, start + 500) });
  }

  /** History keys from another device of this practitioner (it linked this one): taken
   * only from a device the log certifies under this practitioner's identity key. */
  private async onHistoryTransfer(body: Uint8Array): Promise<void> {
    let transfer: OpenedTransfer | null = null;
    for (const kex of [...this.data.kex].sort((a, b) => b.serial - a.serial)) {
      try {
        transfer = await openTransfer(body, unb64u(kex.private), this.me);
        break;
      } catch {
        // sealed to another of this device's keys
      }
    }
    try {
      if (!transfer) throw new CryptoError("decrypt_failed", "history keys");
      if (transfer.sender[0] !== this.nationalId) throw new CryptoError("not_authorised", "history keys from someone else");
      const mine = await this.identityOf(this.nationalId, false);
      const sender = mine.devices.get(transfer.sender[1]);
      if (!mine.identityKey || !equal(mine.identityKey, this.identity.publicKey) || !sender) throw new CryptoError("unknown_device", "history keys from a device the log does not certify");
      await verifyTransfer(transfer, sender.signKey);
    } catch (error) {
      this.alert(error instanceof CryptoError ? error.code : "key_transparency", null, `history keys refused: ${String(error)}`);
      return;
    }
    for (const key of transfer.keys) this.history.record(key);
    await this.adoptProfileKeys(transfer.profileKeys, "history keys refused");
    for (const room of this.rooms.values()) await this.retryPending(room.id);
    void this.uploadHistory();
  }

  /** Profile keys from the history keys or the backup, each kept once the room's
   * verified state names it (client/history.ts); a refusal is an alert headed
   * ``refusedAs`` (null: silent). */
  private async adoptProfileKeys(keys: RoomProfileKey[], refusedAs: string | null): Promise<void> {
    const roomOf = async (uid: string, version: number): Promise<LocalRoom | null> => {
      let room = [...this.rooms.values()].find((r) => r.state.room === uid);
      if (!room) {
        await this.refreshRooms();
        room = [...this.rooms.values()].find((r) => r.state.room === uid);
      }
      if (room && (room.state.profile?.version ?? 0) < version) room = await this.refreshState(room.id);
      return room ?? null;
    };
    const kept = await adoptProfileKeys(keys, roomOf, (error) => {
      if (refusedAs) this.alert(error.code, null, `${refusedAs}: ${String(error)}`);
    });
    if (kept) this.changed();
  }

  /** Back up the history keys not backed up yet (sealed to the recovery key). */
  private async uploadHistory(): Promise<void> {
    try {
      if ((await this.history.upload(this.api, this.data.recoveryPublic, heldProfileKeys(this.rooms.values()))) > 0) await this.save();
    } catch {
      // tried again after the next catch-up
    }
  }

  /** Write the vault and the history's changed chunks. Saves run one after the other; a
   * save asked for while another waits joins it: that one reads the state when it
   * starts, so it holds everything done before either call. */
  save(): Promise<void> {
    if (this.queued) return this.queued;
    const queued = this.saving
      .catch(() => undefined)
      .then(() => {
        this.queued = null;
        return this.write();
      });
    this.queued = this.saving = queued;
    return queued;
  }

  /** Stop: no more frames, and the saves asked for so far finished (logout). */
  async close(): Promise<void> {
    this.disconnect();
    this.closed = true;
    this.api.onUnauthorized = null;
    await this.saving.catch(() => undefined);
  }

  private async write(): Promise<void> {
    if (this.closed) return;
    for (const room of this.rooms.values()) {
      const stored = room.stored;
      stored.inbound = [...room.inbound.values()].map((s) => ({
        sender: s.sender,
        keyId: b64u(s.keyId),
        chainKey: b64u(s.chainKey),
        nextIndex: s.nextIndex,
        epoch: s.epoch,
        skipped: [...s.skipped.entries()].map(([i, k]) => [i, b64u(k.key), b64u(k.nonce)] as [number, string, string]),
      }));
      const o = room.outbound;
      stored.outbound = o ? { keyId: b64u(o.keyId), chainKey: b64u(o.chainKey), index: o.index, epoch: o.epoch, createdAtMs: o.createdAtMs, sharedWith: o.sharedWith } : null;
      stored.pending = room.pending;
      this.data.rooms[String(room.id)] = stored;
    }
    const { writes, deletes } = this.chunks.changes(this.data.messages, (this.data.chunks ??= {}));
    const record: VaultData = { ...this.data, messages: {} };
    try {
      await this.vault.save(record, writes, deletes);
    } catch (error) {
      this.chunks.forget(); // the next save writes every chunk again
      throw error;
    }
  }

  // Connection -------------------------------------------------------------------------

  connect(): void {
    this.api.onUnauthorized = () => void this.sessionRefused();
    this.socket = new Socket(() => this.data.token, {
      ready: () => this.onReady(),
      frame: (frame) => this.onFrame(frame),
      status: (state) => {
        this.connection = state;
        this.changed();
      },
      closed: () => {
        this.synced = false;
        this.inFlight.clear();
      },
      refused: () => void this.sessionRefused(),
    });
    this.socket.start();
    this.log.onNewHead = () => this.scheduleMonitor();
    this.watch ??= setInterval(() => void this.watchTick(), WATCH_INTERVAL_MS);
  }

  disconnect(): void {
    this.socket?.stop();
    this.socket = null;
    if (this.watch !== null) clearInterval(this.watch);
    this.watch = null;
  }

  private watch: ReturnType<typeof setInterval> | null = null;

  /** While the app is open: the monitor, and the key-agreement key when due. */
  private async watchTick(): Promise<void> {
    try {
      await this.rotateKeysIfDue();
    } catch (error) {
      console.error("key rotation", error);
    }
    this.scheduleMonitor();
  }

  // When the session ends (client/session.ts) ---------------------------------------------

  private sessionCheck: Promise<void> | null = null;

  /** The server refused the token (a REST 401, the socket's 4001 or 4010): make sure,
   * then find out from the log whether the session ended or the device was removed. */
  sessionRefused(): Promise<void> {
    if (this.session !== "active" || this.closed) return this.sessionCheck ?? Promise.resolve();
    this.session = "checking";
    this.changed();
    this.sessionCheck = this.checkSession().finally(() => {
      this.sessionCheck = null;
      this.changed();
    });
    return this.sessionCheck;
  }

  private async checkSession(): Promise<void> {
    try {
      await this.api.get("devices");
      // Taken after all (an authentication that ran out of time): connect again.
      this.session = "active";
      setTimeout(() => this.socket?.resume(), 2000);
      return;
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) {
        this.session = "active"; // the network, not the token: try again later
        setTimeout(() => this.socket?.resume(), 5000);
        return;
      }
    }
    this.socket?.stop();
    this.api.setToken(null); // the log's reads are public; nothing else is asked
    let revocation = null;
    try {
      revocation = await revocationInLog(this.log, this.nationalId, this.device, this.signing.publicKey);
    } catch (error) {
      if (error instanceof ForkDetectedError) this.logFork(null, error.message);
      // else the log is out of reach: as far as this browser can tell, the session ended
    }
    this.session = stateAfter(revocation);
    await this.save().catch(() => undefined);
  }

  /** After the session ended, a new login's token and device number: this browser keeps
   * its identity, history keys, history and outbox, certifies the new device number with
   * the identity key it holds, joins its rooms with it and removes the device it was
   * (docs/protocol.md §10.4.5); the outbox goes once connected. ReloginError when it
   * cannot go on (the new device is then logged out again). */
  async continueAsNewDevice(login: { token: string; device: number; nationalId: string }): Promise<void> {
    if (login.nationalId !== this.nationalId) throw new ReloginError("other_practitioner");
    this.disconnect();
    const old = { device: this.device, signKey: this.signing.publicKey };
    this.api.setToken(login.token);
    this.lookups.clear();
    await this.log.start();
    const mine = await this.identityOf(this.nationalId, false);
    let refused: ReloginError | null = null;
    if (!mine.identityKey || !equal(mine.identityKey, this.identity.publicKey)) refused = new ReloginError("identity_changed");
    else if (this.session === "removed" || stateAfter(revocationOf(mine.chain.history, old.device, old.signKey)) === "removed") refused = new ReloginError("removed");
    if (refused) {
      if (refused.reason === "removed") this.session = "removed";
      await this.api.logout().catch(() => undefined); // the device this login made is not used
      this.api.setToken(null);
      this.changed();
      throw refused;
    }
    const signing = await SigningKey.generate();
    const kex = await generateX25519();
    this.data.replacedDevices = [...new Set([...(this.data.replacedDevices ?? []), old.device])];
    this.data.formerDevices = [...(this.data.formerDevices ?? []).filter((n) => n !== old.device), old.device].slice(-MAX_FORMER_DEVICES);
    this.data.token = login.token;
    this.data.device = login.device;
    this.data.sign = b64u(signing.seed);
    this.data.kex = [{ serial: 1, private: b64u(kex.privateKey), createdAt: keyClock() }];
    this.signing = signing;
    for (const room of this.rooms.values()) room.outbound = null;
    await this.certifySelf(kex);
    await this.save();
    await this.settleDevices();
    this.session = "active";
    await this.save();
    this.changed();
    this.connect();
  }

  /** This device into its practitioner's rooms, the devices it replaced out of them,
   * then those revoked (their tokens no longer work; nobody shares keys with them). */
  private async settleDevices(): Promise<void> {
    await this.joinMyRooms();
    const replaced = new Set(this.data.replacedDevices ?? []);
    for (const room of this.rooms.values()) {
      const member = room.state.members.get(this.nationalId);
      if (room.stored.left || room.stored.compromised || !member || !member.devices.has(this.device)) continue;
      for (const number of [...member.devices.keys()].filter((n) => replaced.has(n)).sort((a, b) => a - b)) {
        const raw = await signEvent({ state: room.state, room: room.state.room, author: this.me, key: this.signing, action: "remove_device", content: { national_id: this.nationalId, device: number }, timestamp: Date.now(), log: this.log.gossip() });
        await this.api.post(`rooms/${room.id}/state`, { event: fromUtf8(raw) });
        room.state = (await applyEvent(room.state, raw)).state;
        room.stored.events.push(fromUtf8(raw));
        room.outbound = null;
      }
    }
    for (const number of replaced) {
      await this.api.call("DELETE", `devices/${number}`, { reason: "replaced" }).catch(() => undefined);
    }
    this.data.replacedDevices = [];
    await this.save();
  }

  /** Catch-up is asked for first, so that the server reads what was missed while this
   * device checks the log, its rooms and its keys; the pages it sends are handled once
   * this is done (frames are handled in order). A room found meanwhile is asked for
   * after. */
  private async onReady(): Promise<void> {
    const asked = this.requestSync(new Set());
    try {
      await this.log.start();
    } catch (error) {
      if (error instanceof ForkDetectedError) this.logFork(null, error.message);
      else this.alert("log_head_refused", null, String(error));
    }
    await this.rotateKeysIfDue().catch((error: unknown) => console.error("key rotation", error));
    await this.refreshRooms();
    if (this.data.replacedDevices?.length) await this.settleDevices(); // a login again left unfinished
    await this.processToDevice();
    if (this.socket?.open) this.requestSync(asked);
    await this.checkMyDevices();
  }

  /** ``sync`` for the rooms not in ``asked`` (all of them the first time); the rooms
   * asked for now. The outbox goes once its answer is handled (``synced``). */
  private requestSync(asked: Set<number>): Set<number> {
    const rooms: Record<string, number> = {};
    for (const room of this.rooms.values()) if (!room.stored.left && !asked.has(room.id)) rooms[String(room.id)] = this.syncFrom(room);
    const ids = Object.keys(rooms).map(Number);
    if (ids.length || !asked.size) this.socket?.send({ type: "sync", rooms });
    return new Set([...asked, ...ids]);
  }

  /** Where a room's catch-up starts: after the last number this browser holds, or, once
   * it has logged in again as a new device, no later than where it stood when a message
   * still queued first went out. The server may have stored that message from the device
   * this browser was, and skips a device's own envelopes in what it delivers live, so a
   * later number may have come meanwhile; the catch-up brings the envelope back and the
   * message is recognised (``ownEcho``) before the outbox is sent. A device that stayed
   * the same needs none of this: the server takes a message id of a device once. */
  private syncFrom(room: LocalRoom): number {
    let from = room.stored.lastSeq;
    if (!this.data.formerDevices?.length) return from;
    for (const item of this.data.outbox) if (item.room === room.id && item.after !== undefined) from = Math.min(from, item.after);
    return Math.max(from, 0);
  }

  /** Whether ``device`` is, or was, this browser's device. */
  private isOwnDevice(device: number): boolean {
    return device === this.device || (this.data.formerDevices ?? []).includes(device);
  }

  private async onFrame(frame: Frame): Promise<void> {
    switch (frame.type) {
      case "ack":
        this.onAck(frame);
        break;
      case "error":
        this.onError(frame);
        break;
      case "message":
        await this.onEnvelope(frame);
        await this.save();
        this.receipt(frame.room as number, frame.seq as number, "delivered");
        break;
      case "backlog":
        this.batching = true;
        try {
          const held = new Set(this.messages(frame.room as number).map((m) => m.seq));
          for (const item of frame.messages as Frame[]) await this.onEnvelope(item, false, held);
        } finally {
          this.batching = false;
        }
        this.data.messages[String(frame.room)]?.sort(bySeq);
        await this.save();
        break;
      case "synced":
        this.synced = true;
        void this.uploadHistory();
        for (const [room, seq] of Object.entries(frame.rooms as Record<string, number>)) if (seq > 0) this.receipt(Number(room), seq, "delivered");
        await this.flushOutbox();
        break;
      case "receipt":
        this.onReceipt(frame);
        break;
      case "typing":
        if (frame.active) this.typing.set(frame.room as number, { name: this.nameOf(frame.practitioner as string), until: Date.now() + 6000 });
        else this.typing.delete(frame.room as number);
        break;
      case "membership":
      case "room_state":
        await this.onRoomChange(frame.room as number);
        break;
      case "to_device":
        await this.processToDevice();
        break;
      case "teleexpertise":
        this.onTeleexpertise(frame);
        break;
    }
    this.changed();
  }

  receipt(room: number, seq: number, kind: "delivered" | "read"): void {
    this.socket?.send({ type: "receipt", room, seq, kind });
  }

  setTyping(room: number, active: boolean): void {
    this.socket?.send({ type: "typing", room, active });
  }

  private onReceipt(frame: Frame): void {
    if (frame.practitioner === this.nationalId) {
      if (frame.kind === "read") {
        const room = this.rooms.get(frame.room as number);
        if (room) room.stored.readSeq = Math.max(room.stored.readSeq, frame.seq as number);
      }
      return;
    }
    const key = String(frame.room);
    const current = this.data.receipts[key] ?? { delivered: 0, read: 0 };
    if (frame.kind === "read") current.read = Math.max(current.read, frame.seq as number);
    current.delivered = Math.max(current.delivered, frame.seq as number);
    this.data.receipts[key] = current;
    for (const message of this.data.messages[key] ?? []) {
      if (!message.own || message.seq === null || message.state === "pending") continue;
      if (message.seq <= current.read) message.state = "read";
      else if (message.seq <= current.delivered && message.state === "sent") message.state = "delivered";
    }
  }

  // Rooms --------------------------------------------------------------------------------

  async refreshRooms(): Promise<void> {
    const listing = await this.api.get<{ rooms: { id: number }[] }>("rooms");
    for (const item of listing.rooms) {
      if (this.rooms.has(item.id)) await this.refreshState(item.id);
      else await this.loadRoom(item.id);
    }
    try {
      const unread = await this.api.get<{ rooms: { room: number; read_seq: number }[] }>("rooms/unread");
      for (const info of unread.rooms) {
        const room = this.rooms.get(info.room);
        if (room) room.stored.readSeq = Math.max(room.stored.readSeq, info.read_seq);
      }
    } catch {
      // counts come back with the next refresh
    }
    // Envelopes kept from before a reload whose room moved on meanwhile (a later epoch).
    for (const room of this.rooms.values()) await this.retryPending(room.id);
    await this.save();
  }

  private async loadRoom(id: number): Promise<LocalRoom | null> {
    const answer = await this.api.get<{ events: { epoch: number; event: string }[] }>(`rooms/${id}/state`);
    const events = answer.events.map((e) => e.event);
    let state: RoomState;
    try {
      state = await replayChain(events.map(utf8));
    } catch (error) {
      this.alert(error instanceof CryptoError ? error.code : "bad_chain", id, `room chain refused: ${String(error)}`);
      return null;
    }
    const existing = this.rooms.get(id);
    if (existing) return existing;
    const room: LocalRoom = { id, state, stored: newRoom(events), outbound: null, inbound: new Map(), pending: [] };
    if (!state.members.has(this.nationalId)) room.stored.left = true;
    this.rooms.set(id, room);
    for (const event of events) await this.checkGossip((JSON.parse(event) as { event: { log: JsonObject | null } }).event.log, id);
    return room;
  }

  /** Fetch and verify the room's new events; a forged or forked chain marks the room. */
  async refreshState(id: number): Promise<LocalRoom> {
    const room = this.rooms.get(id) ?? (await this.loadRoom(id));
    if (!room) throw new SecurityError(`room ${id} has no valid chain`);
    const answer = await this.api.get<{ events: { epoch: number; event: string }[] }>(`rooms/${id}/state?after=${room.state.epoch}`);
    for (const item of answer.events) {
      const raw = utf8(item.event);
      if (item.epoch <= room.state.epoch) {
        const head = room.state.heads[item.epoch];
        if (!head || !equal(head, await eventHash(raw))) {
          room.stored.compromised = "bad_chain: the server showed two different histories";
          this.alert("bad_chain", id, room.stored.compromised);
          break;
        }
        continue;
      }
      try {
        const applied = await applyEvent(room.state, raw);
        room.state = applied.state;
        room.stored.events.push(item.event);
        const event = applied.event;
        await this.checkGossip(event.log, id);
        if (["remove_member", "remove_device", "set_archiver", "set_identity", "set_profile"].includes(event.action)) room.outbound = null;
        if (event.action === "remove_member" && event.content.national_id === this.nationalId) {
          room.stored.left = true;
          room.inbound.clear();
          this.alert("removed", id, "you were removed from this room");
        }
      } catch (error) {
        const code = error instanceof CryptoError ? error.code : "bad_chain";
        room.stored.compromised = `${code}: ${error instanceof Error ? error.message : String(error)}`;
        this.alert(code, id, `state event refused: ${room.stored.compromised}`);
        break;
      }
    }
    if (room.stored.behind >= 0 && room.stored.behind <= room.state.epoch) room.stored.behind = -1;
    return room;
  }

  private async onRoomChange(id: number): Promise<void> {
    if (this.rooms.has(id)) await this.refreshState(id);
    else await this.loadRoom(id);
    await this.retryPending(id);
    await this.save();
  }

  room(id: number): LocalRoom | undefined {
    return this.rooms.get(id);
  }

  messages(id: number): ChatMessage[] {
    return this.data.messages[String(id)] ?? [];
  }

  unread(id: number): number {
    const room = this.rooms.get(id);
    if (!room) return 0;
    return this.messages(id).filter((m) => !m.own && m.seq !== null && m.seq > room.stored.readSeq).length;
  }

  markRead(id: number): void {
    const room = this.rooms.get(id);
    const last = room?.stored.lastSeq ?? 0;
    if (!room || last <= room.stored.readSeq) return;
    room.stored.readSeq = last;
    this.receipt(id, last, "read");
    void this.save();
  }

  roomTitle(id: number): string {
    const room = this.rooms.get(id);
    if (!room) return `#${id}`;
    const profile = this.profileOf(room);
    if (profile && typeof profile.title === "string") return profile.title;
    const others = [...room.state.members.keys()].filter((n) => n !== this.nationalId);
    return others.map((n) => this.nameOf(n)).join(", ") || `#${id}`;
  }

  private profiles = new Map<string, JsonObject>();

  private profileOf(room: LocalRoom): JsonObject | null {
    const profile = room.state.profile;
    if (!profile) return null;
    const cacheKey = `${room.id}/${profile.version}`;
    const cached = this.profiles.get(cacheKey);
    if (cached) return cached;
    const key = room.stored.profileKeys[b64u(profile.keyId)];
    if (!key) return null;
    void decryptProfile(room.state.room, profile.version, { keyId: profile.keyId, key: unb64u(key) }, profile.ciphertext)
      .then((value) => {
        this.profiles.set(cacheKey, value);
        this.changed();
      })
      .catch(() => undefined);
    return null;
  }

  nameOf(nationalId: string): string {
    return this.data.names[nationalId] ?? nationalId;
  }

  async learnName(nationalId: string): Promise<void> {
    if (this.data.names[nationalId]) return;
    try {
      const entry = await this.api.get<{ first_name: string; last_name: string; profession_label: string }>(`directory/practitioners/${encodeURIComponent(nationalId)}`);
      this.data.names[nationalId] = `${entry.first_name} ${entry.last_name}`.trim() + (entry.profession_label ? ` (${entry.profession_label})` : "");
      void this.save(); // the service worker's notifications name people from the vault
    } catch {
      // the number stays shown
    }
  }

  async learnNames(): Promise<void> {
    const ids = new Set<string>();
    for (const room of this.rooms.values()) for (const id of room.state.members.keys()) ids.add(id);
    for (const id of ids) await this.learnName(id);
    this.changed();
  }

  // Looking people up -------------------------------------------------------------------

  private async identityOf(nationalId: string, reuse = true): Promise<VerifiedIdentity> {
    const cached = this.lookups.get(nationalId);
    if (reuse && cached && Date.now() - cached.at < LOOKUP_REUSE_MS) return cached.identity;
    // An organisation (its number is "org:…", never a practitioner's) has archiver
    // devices only: a room's archiver gets its sender keys as a member's device does.
    const identity = await this.log.identityOf(nationalId, nationalId.startsWith("org:") ? "archiver" : "device");
    this.lookups.set(nationalId, { at: Date.now(), identity });
    if (nationalId !== this.nationalId && identity.identityKey) this.noteContactKey(nationalId, identity.identityKey);
    return identity;
  }

  /** The first identity key seen for a contact is remembered; a later different one
   * alerts, and blocks when the contact was verified (docs/protocol.md §10.8). */
  private noteContactKey(nationalId: string, identityKey: Uint8Array): boolean {
    const known = this.data.contacts[nationalId];
    if (!known) {
      this.data.contacts[nationalId] = { identityKey: b64u(identityKey), verified: false };
      return true;
    }
    if (known.identityKey === b64u(identityKey)) return true;
    if (known.verified) {
      this.alert("key_changed", null, `the identity key of ${nationalId}, whom you verified, changed`, nationalId);
      return false;
    }
    this.alert("identity_changed", null, `the identity key of ${nationalId} changed`, nationalId);
    this.data.contacts[nationalId] = { identityKey: b64u(identityKey), verified: false };
    return true;
  }

  isBlocked(nationalId: string): boolean {
    const known = this.data.contacts[nationalId];
    const cached = this.lookups.get(nationalId)?.identity.identityKey;
    return !!known?.verified && !!cached && known.identityKey !== b64u(cached);
  }

  async acceptKeyChange(nationalId: string): Promise<void> {
    const identity = await this.identityOf(nationalId, false);
    if (identity.identityKey) this.data.contacts[nationalId] = { identityKey: b64u(identity.identityKey), verified: false };
    await this.save();
  }

  async safetyNumberWith(nationalId: string): Promise<SafetyNumber> {
    const identity = await this.identityOf(nationalId, false);
    if (!identity.identityKey) throw new KeyTransparencyError(`${nationalId} has no identity key in the log`);
    return safetyNumber(this.nationalId, this.identity.publicKey, nationalId, identity.identityKey);
  }

  async markVerified(nationalId: string): Promise<void> {
    const identity = await this.identityOf(nationalId, false);
    if (!identity.identityKey) return;
    this.data.contacts[nationalId] = { identityKey: b64u(identity.identityKey), verified: true };
    await this.save();
    this.changed();
  }

  isVerified(nationalId: string): boolean {
    return this.data.contacts[nationalId]?.verified === true;
  }

  // Creating rooms ---------------------------------------------------------------------------

  private async memberFor(nationalId: string, role: string): Promise<JsonObject> {
    const identity = await this.identityOf(nationalId, false);
    if (this.isBlocked(nationalId)) throw new SecurityError(`the identity key of ${nationalId} changed since you verified it`);
    if (!identity.identityKey || identity.devices.size === 0) throw new KeyTransparencyError(`${nationalId} has no certified device yet`);
    const devices = [...identity.devices.values()].map((d) => ({ device: d.device, signKey: d.signKey, crossSig: d.crossSig }));
    return memberContent(nationalId, role, identity.identityKey, devices);
  }

  directRoomWith(nationalId: string): number | null {
    for (const room of this.rooms.values()) {
      if (room.state.kind === "direct" && !room.stored.left && room.state.members.has(nationalId) && room.state.members.has(this.nationalId)) return room.id;
    }
    return null;
  }

  /** A room with ``members``, each with every device the log certifies for them; this
   * device signs as the first admin. A care team gets its title as an encrypted profile. */
  async createRoom(kind: "direct" | "care_team" | "teleexpertise", members: string[], title = "", profile?: JsonObject, archiver: RoomDevice | null = null): Promise<number> {
    const others = [...new Set(members)].filter((m) => m !== this.nationalId).sort();
    const role = kind === "direct" ? "admin" : "member";
    const mine = { device: this.device, signKey: this.signing.publicKey, crossSig: await certify(this.identity, this.nationalId, this.device, "device", this.signing.publicKey) };
    const content = [memberContent(this.nationalId, "admin", this.identity.publicKey, [mine])];
    for (const other of others) content.push(await this.memberFor(other, role));
    const uid = b64u(randomBytes(16));
    const raw = await signEvent({ state: null, room: uid, author: this.me, key: this.signing, action: "create", content: createContent(kind, content, defaultPolicy(kind), archiver), timestamp: Date.now(), log: this.log.gossip() });
    const { state } = await applyEvent(null, raw);
    const answer = await this.api.post<{ id: number }>("rooms", { event: fromUtf8(raw) });
    const room: LocalRoom = { id: answer.id, state, stored: newRoom([fromUtf8(raw)]), outbound: null, inbound: new Map(), pending: [] };
    this.rooms.set(answer.id, room);
    if (kind === "care_team" && title) await this.setProfile(room, { title });
    if (profile) await this.setProfile(room, profile);
    await this.ensureSenderKey(await this.roomForSending(answer.id));
    await this.save();
    this.changed();
    return answer.id;
  }

  private async setProfile(room: LocalRoom, profile: JsonObject): Promise<void> {
    const key: ProfileKey = generateProfileKey();
    const version = room.state.profile ? room.state.profile.version + 1 : 1;
    const ct = await encryptProfile(room.state.room, version, key, profile);
    const raw = await signEvent({ state: room.state, room: room.state.room, author: this.me, key: this.signing, action: "set_profile", content: { version, key_id: b64u(key.keyId), ct: b64u(ct) }, timestamp: Date.now(), log: this.log.gossip() });
    await this.api.post(`rooms/${room.id}/state`, { event: fromUtf8(raw) });
    room.state = (await applyEvent(room.state, raw)).state;
    room.stored.events.push(fromUtf8(raw));
    room.stored.profileKeys[b64u(key.keyId)] = b64u(key.key);
    room.outbound = null;
  }

  // Sending ----------------------------------------------------------------------------------

  /** Queue a text: shown as pending at once, sent when connected, retried with the same
   * id until the server acknowledges it. */
  async sendText(roomId: number, text: string): Promise<string> {
    const id = crypto.randomUUID();
    const message: ChatMessage = { id, room: roomId, seq: null, sender: this.nationalId, senderDevice: this.device, text, ts: Date.now(), own: true, state: "pending", flags: [] };
    const key = String(roomId);
    (this.data.messages[key] ??= []).push(message);
    this.data.outbox.push({ id, room: roomId, text, ts: message.ts });
    await this.save();
    this.changed();
    void this.flushOutbox();
    return id;
  }

  /** Queue an attachment's message (ui/attachments.ts), with the id its upload named. */
  async sendAttachment(roomId: number, content: JsonObject, id: string): Promise<void> {
    const text = typeof content.text === "string" ? content.text : "";
    const attachment = content.attachment as JsonObject;
    const message: ChatMessage = { id, room: roomId, seq: null, sender: this.nationalId, senderDevice: this.device, text, ts: Date.now(), own: true, state: "pending", flags: [], attachment };
    (this.data.messages[String(roomId)] ??= []).push(message);
    this.data.outbox.push({ id, room: roomId, text, ts: message.ts, content });
    await this.save();
    this.changed();
    void this.flushOutbox();
  }

  /** Encrypt ``content`` as this device's next envelope in a room, for a call that
   * sends it with a step (teleexpertise/, docs/protocol.md §12.3). */
  async seal(roomId: number, content: JsonObject): Promise<Uint8Array> {
    const room = await this.roomForSending(roomId);
    await this.ensureSenderKey(room);
    room.stored.sentSeq += 1;
    const envelope = await encryptEnvelope(room.outbound!, room.state, this.signing, content, room.stored.sentSeq, Date.now(), this.log.gossip());
    await this.save(); // the ratchet moved: never reuse a message key
    return envelope;
  }

  private flushing = false;
  private flushAgain = false;
  private batching = false;

  /** Send every queued message not on its way yet. A call while a pass runs makes that
   * pass look again once done, so a message queued meanwhile is never left behind. */
  async flushOutbox(): Promise<void> {
    if (this.flushing) {
      this.flushAgain = true;
      return;
    }
    if (!this.synced || !this.socket?.open) return;
    this.flushing = true;
    try {
      do {
        this.flushAgain = false;
        await this.flushPass();
      } while (this.flushAgain && this.synced && this.socket?.open);
    } finally {
      this.flushing = false;
      this.changed();
    }
  }

  private async flushPass(): Promise<void> {
    for (const item of [...this.data.outbox]) {
      if (this.inFlight.has(item.id) || !MESSAGE_ID.test(item.id)) continue;
      try {
        const room = await this.roomForSending(item.room);
        await this.ensureSenderKey(room);
        room.stored.sentSeq += 1;
        const envelope = await encryptEnvelope(room.outbound!, room.state, this.signing, item.content ?? { type: "text", text: item.text }, room.stored.sentSeq, item.ts, this.log.gossip());
        item.after ??= room.stored.lastSeq; // if stored, it is stored after this (syncFrom)
        await this.save(); // the ratchet moved: never reuse a message key
        if (this.socket?.send({ type: "send", room: item.room, id: item.id, body: b64u(envelope) })) this.inFlight.add(item.id);
      } catch (error) {
        if (error instanceof SecurityError || error instanceof KeyTransparencyError) {
          this.fail(item.id, error.message);
          this.alert("key_transparency", item.room, error.message);
        } else {
          console.error("send", error);
        }
      }
    }
  }

  private fail(id: string, why: string): void {
    this.data.outbox = this.data.outbox.filter((o) => o.id !== id);
    for (const list of Object.values(this.data.messages)) {
      const message = list.find((m) => m.id === id);
      if (message) {
        message.state = "failed";
        message.flags.push(why);
      }
    }
    void this.save();
  }

  private onAck(frame: Frame): void {
    const id = frame.id as string;
    this.inFlight.delete(id);
    this.data.outbox = this.data.outbox.filter((o) => o.id !== id);
    const list = this.data.messages[String(frame.room)] ?? [];
    const message = list.find((m) => m.id === id);
    if (message) {
      message.seq = frame.seq as number;
      if (message.state === "pending") message.state = "sent";
      const receipts = this.data.receipts[String(frame.room)];
      if (receipts && message.seq <= receipts.read) message.state = "read";
      else if (receipts && message.seq <= receipts.delivered) message.state = "delivered";
    }
    const room = this.rooms.get(frame.room as number);
    if (room) room.stored.lastSeq = Math.max(room.stored.lastSeq, frame.seq as number);
    list.sort(bySeq);
    void this.save();
  }

  private onError(frame: Frame): void {
    const ref = frame.ref as string | null;
    if (!ref || !this.inFlight.has(ref)) return;
    this.inFlight.delete(ref);
    if (frame.code === "server_busy" || frame.code === "internal" || frame.code === "rate_limited") {
      setTimeout(() => void this.flushOutbox(), 1000);
    } else {
      this.fail(ref, `${frame.code as string}`);
    }
  }

  async roomForSending(id: number): Promise<LocalRoom> {
    if (this.log.forked) throw new SecurityError(`the key log forked, nothing is sent: ${this.log.forked}`);
    const room = await this.refreshState(id);
    if (room.stored.compromised) throw new SecurityError(`room ${id} refused: ${room.stored.compromised}`);
    if (room.stored.left) throw new SecurityError(`you are no longer a member of room ${id}`);
    if (room.stored.behind > room.state.epoch) throw new SecurityError(`room ${id}: the server withholds a change of the room`);
    if (currentDevice(room.state, ...this.me) === null) throw new SecurityError("this device is not in the room's verified state");
    return room;
  }

  private async ensureSenderKey(room: LocalRoom): Promise<void> {
    const now = Date.now();
    if (!room.outbound || needsRotation(room.outbound, room.state, now)) {
      const o = newOutboundSession(room.state.room, this.me, room.state.epoch, now);
      room.outbound = o;
      // Its first chain key, so that this practitioner's devices read what it sends.
      if (this.history.record({ room: o.room, sender: o.sender, keyId: o.keyId, index: 0, chainKey: o.chainKey, epoch: o.epoch })) void this.uploadHistory();
    }
    await this.share(room);
  }

  /** The sender key to every device of the verified state that lacks it, after checking
   * each against the log (client/sharing.py): a device the log does not know at all was
   * inserted by the server, and then nobody gets the key. */
  private async share(room: LocalRoom): Promise<void> {
    const outbound = room.outbound!;
    const missing = roomDevices(room.state).filter((d) => !(d.nationalId === this.nationalId && d.device === this.device) && !outbound.sharedWith.includes(`${d.nationalId}/${d.device}`));
    if (!missing.length) return;
    const ready: RoomDevice[] = [];
    for (const device of missing) {
      let identity = await this.identityOf(device.nationalId);
      // A reused lookup may predate the device (linked or recovered since): ask again.
      if (!identity.devices.has(device.device)) identity = await this.identityOf(device.nationalId, false);
      if (!identity.identityKey || !equal(identity.identityKey, device.identityKey)) {
        if (!identity.identityKey || device === room.state.archiver) {
          const detail = `device ${device.device} of ${device.nationalId} is not certified`;
          this.alert("key_transparency", room.id, detail);
          throw new SecurityError(detail);
        }
        this.alert("identity_changed", room.id, `${device.nationalId}'s identity key in the room is not the one the log holds`, device.nationalId);
        continue;
      }
      if (device.nationalId !== this.nationalId && this.isBlocked(device.nationalId)) continue;
      const certified = identity.devices.get(device.device);
      if (!certified) {
        if (identity.chain.revoked.some((r) => r.device === device.device && equal(r.signKey, device.signKey))) {
          this.alert("device_revoked", room.id, `device ${device.device} of ${device.nationalId} was revoked: it gets no key`);
          continue;
        }
        const detail = `device ${device.device} of ${device.nationalId} is not certified in the log`;
        this.alert("key_transparency", room.id, detail);
        throw new SecurityError(detail);
      }
      if (!equal(certified.signKey, device.signKey)) {
        const detail = `device ${device.device} of ${device.nationalId} is not certified with these keys`;
        this.alert("key_transparency", room.id, detail);
        throw new SecurityError(detail);
      }
      ready.push(device);
    }
    const keys = await this.kexKeys(ready);
    const profile = room.state.profile;
    const profileKey = profile && room.stored.profileKeys[b64u(profile.keyId)] ? { keyId: profile.keyId, key: unb64u(room.stored.profileKeys[b64u(profile.keyId)]) } : null;
    const messages: { device: number; body: string }[] = [];
    const refs: string[] = [];
    for (const device of ready) {
      const key = keys.get(`${device.nationalId}/${device.device}`);
      if (!key) {
        this.alert("device_unreachable", room.id, `device ${device.device} of ${device.nationalId} has no fresh key`);
        continue;
      }
      const sealed = await sealShare(outbound, room.state.epoch, this.signing, [device.nationalId, device.device], key, profileKey);
      messages.push({ device: device.device, body: b64u(sealed) });
      refs.push(`${device.nationalId}/${device.device}`);
    }
    if (messages.length) await this.api.post("devices/messages", { messages });
    outbound.sharedWith.push(...refs);
  }

  private async kexKeys(devices: RoomDevice[]): Promise<Map<string, KexKey>> {
    const found = new Map<string, KexKey>();
    if (!devices.length) return found;
    const numbers = [...new Set(devices.map((d) => d.device))].sort((a, b) => a - b);
    const answer = await this.api.get<{ keys: { device: number; kex: string }[] }>(`devices/kex?devices=${numbers.join(",")}`);
    const documents = new Map(answer.keys.map((k) => [k.device, k.kex]));
    for (const device of devices) {
      const document = documents.get(device.device);
      if (!document) continue;
      try {
        const key = await verifyKex(utf8(document), device.nationalId, device.device, device.signKey, Date.now());
        const label = `${device.nationalId}/${device.device}`;
        if (key.serial < (this.data.kexSeen[label] ?? 0)) continue;
        this.data.kexSeen[label] = key.serial;
        found.set(label, key);
      } catch {
        // not a key this device signed, or expired
      }
    }
    return found;
  }

  // Receiving --------------------------------------------------------------------------------

  /** ``held``: the numbers of the messages the room's list holds, when the caller keeps
   * them (a catch-up page), instead of looking through the list for each message. */
  private async onEnvelope(item: Frame | PendingEnvelope, retrying = false, held?: Set<number | null>): Promise<boolean> {
    const roomId = item.room as number;
    const seq = item.seq as number;
    let room = this.rooms.get(roomId) ?? (await this.loadRoom(roomId));
    if (!room || room.stored.left) return true;
    room.stored.lastSeq = Math.max(room.stored.lastSeq, seq);
    const key = String(roomId);
    const list = (this.data.messages[key] ??= []);
    if (held ? held.has(seq) : list.some((m) => m.seq === seq)) return true; // already shown (a catch-up repeat)
    let opened;
    try {
      const parsed = parseEnvelope(unb64u((item.body as string).replace(/=+$/, ""), undefined, "body"));
      await this.checkGossip(parsed.log, roomId);
      if (parsed.epoch > room.state.epoch) {
        room = await this.refreshState(roomId);
        if (parsed.epoch > room.state.epoch && room.stored.behind < parsed.epoch) {
          room.stored.behind = parsed.epoch;
          this.alert("withheld_state", roomId, `another member used room state ${parsed.epoch} that the server does not show`);
        }
      }
      const held = sessionKey(parsed.sender, parsed.keyId);
      if (!room.inbound.has(held)) {
        // A sender key held as a history key only: this device's own earlier messages,
        // or what was sent before it was linked or recovered.
        const past = this.history.session(room.state.room, parsed.sender, parsed.keyId);
        if (past) room.inbound.set(held, past);
        else if (!retrying) await this.processToDevice();
      }
      opened = await decryptEnvelope(room.state, parsed, room.inbound);
    } catch (error) {
      if (error instanceof CryptoError && (error.code === "unknown_key" || error.code === "future_epoch")) {
        const from = item.sender as { device: number; practitioner: string };
        if (from.practitioner === this.nationalId && this.isOwnDevice(from.device) && this.ownEcho(list, item.id, seq, true)) return true;
        if (!retrying) this.holdPending(room, [pendingFrom(item, Date.now())]);
        return false;
      }
      this.alert(error instanceof CryptoError ? error.code : "bad_encoding", roomId, `message ${seq} refused: ${String(error)}`);
      return true;
    }
    const sender = item.sender as { device: number; practitioner: string };
    if (sender.practitioner !== opened.sender[0] || sender.device !== opened.sender[1]) {
      this.alert("bad_sender", roomId, `message ${seq}: server and envelope disagree`);
      return true;
    }
    const seen = this.senderSeen(room, `${opened.sender[0]}/${opened.sender[1]}`);
    if (seen.seqs.has(opened.seq)) {
      this.alert("replay", roomId, `message ${seq}: its sender's number ${opened.seq} came twice`);
      return true;
    }
    const flags: string[] = [];
    if (seen.seqs.size && opened.seq < seen.max) flags.push("reordered");
    seen.seqs.add(opened.seq);
    seen.max = Math.max(seen.max, opened.seq);
    room.stored.senderSeqs[`${opened.sender[0]}/${opened.sender[1]}`]!.push(opened.seq);
    held?.add(seq);
    const own = opened.sender[0] === this.nationalId;
    if (own && this.isOwnDevice(opened.sender[1]) && this.ownEcho(list, item.id, seq, false)) return true;
    list.push({
      id: (item.id as string) ?? `${roomId}:${seq}`,
      room: roomId,
      seq,
      sender: opened.sender[0],
      senderDevice: opened.sender[1],
      text: typeof opened.content.text === "string" ? opened.content.text : opened.content.type === "attachment" ? "" : `[${String(opened.content.type)}]`,
      ...(opened.content.type === "attachment" ? { attachment: opened.content.attachment as JsonObject } : {}),
      ...(String(opened.content.type).startsWith("teleexpertise.") ? { event: opened.content } : {}),
      ts: opened.ts,
      own,
      state: own ? "sent" : "delivered",
      flags,
    });
    if (!this.batching) list.sort(bySeq);
    trimHistory((this.data.chunks ??= {}), key, list, MAX_MESSAGES_PER_ROOM);
    if (!this.data.names[opened.sender[0]]) void this.learnName(opened.sender[0]).then(() => this.changed());
    return true;
  }

  /** An envelope of this browser's device, or of a device it was before logging in
   * again (``formerDevices``), carrying the client message id of a message it shows: the
   * server stores the id it acknowledged, so that message (pending, or sent and back in a
   * catch-up) is this one, whatever its text (an attachment without a caption has none),
   * and the outbox does not send it again. ``unopened``: the envelope could not be
   * decrypted (its key is not here), so only a message still queued is matched, on the
   * server's word: the server could name a queued message's id to make it look sent,
   * which it can already do by acknowledging it and dropping it. */
  private ownEcho(list: ChatMessage[], id: unknown, seq: number, unopened: boolean): boolean {
    if (typeof id !== "string") return false;
    const mine = list.find((m) => m.own && m.id === id);
    if (!mine || (unopened && !this.data.outbox.some((o) => o.id === id))) return false;
    this.data.outbox = this.data.outbox.filter((o) => o.id !== id); // the server has it
    mine.seq ??= seq;
    mine.state = mine.state === "pending" ? "sent" : mine.state;
    list.sort(bySeq);
    return true;
  }

  private senderSeen(room: LocalRoom, sender: string): { seqs: Set<number>; max: number } {
    room.senders ??= new Map();
    let seen = room.senders.get(sender);
    if (!seen) {
      const stored = (room.stored.senderSeqs[sender] ??= []);
      seen = { seqs: new Set(stored), max: stored.reduce((a, b) => Math.max(a, b), 0) };
      room.senders.set(sender, seen);
    }
    return seen;
  }

  /** ``added`` kept with the room's envelopes waiting for their key, within the bounds
   * of client/pending.ts; each one given up is an alert, as a message that does not open
   * is (nothing shown). */
  private holdPending(room: LocalRoom, added: PendingEnvelope[]): void {
    const { kept, dropped } = boundPending(room.pending, added, Date.now());
    room.pending = kept;
    for (const item of dropped) this.alert("unknown_key", room.id, `message ${item.seq} given up: its key did not come`);
  }

  private async retryPending(id: number): Promise<void> {
    const room = this.rooms.get(id);
    if (!room || !room.pending.length) return;
    const waiting = room.pending.sort((a, b) => a.seq - b.seq);
    room.pending = [];
    for (const item of waiting) if (!(await this.onEnvelope(item, true))) room.pending.push(item);
  }

  private processing: Promise<void> | null = null;

  async processToDevice(): Promise<void> {
    if (this.processing) return this.processing;
    this.processing = this.drainToDevice().finally(() => {
      this.processing = null;
    });
    return this.processing;
  }

  private async drainToDevice(): Promise<void> {
    let after = 0;
    for (;;) {
      const answer = await this.api.get<{ messages: { id: number; kind: string; body: string }[] }>(`devices/messages?after=${after}`);
      if (!answer.messages.length) break;
      for (const item of answer.messages) await this.onToDevice(item);
      after = answer.messages[answer.messages.length - 1]!.id;
      await this.api.post("devices/messages/ack", { up_to: after });
    }
    await this.save();
  }

  private async onToDevice(item: { kind: string; body: string }): Promise<void> {
    const body = unb64u(item.body.replace(/=+$/, ""), undefined, "body");
    if (item.kind === "notice") {
      await this.checkMyDevices();
      return;
    }
    if (isTransfer(body)) {
      await this.onHistoryTransfer(body);
      return;
    }
    try {
      const serial = shareKexSerial(body);
      const kex = this.data.kex.find((k) => k.serial === serial);
      if (!kex) throw new CryptoError("decrypt_failed", "a key-agreement key we deleted");
      const opened = await openShare(body, unb64u(kex.private), this.me);
      let room = [...this.rooms.values()].find((r) => r.state.room === opened.room);
      if (!room) {
        await this.refreshRooms();
        room = [...this.rooms.values()].find((r) => r.state.room === opened.room);
      }
      if (!room || room.stored.left) throw new CryptoError("bad_chain", "share for a room we are not in");
      if (opened.epoch > room.state.epoch) room = await this.refreshState(room.id);
      const session = await acceptShare(opened, room.state);
      const key = sessionKey(session.sender, session.keyId);
      if (!room.inbound.has(key)) {
        room.inbound.set(key, session); // never rewound by a replay
        if (this.history.recordSession(session)) void this.uploadHistory();
      }
      if (opened.profileKey) room.stored.profileKeys[b64u(opened.profileKey.keyId)] = b64u(opened.profileKey.key);
      await this.retryPending(room.id);
    } catch (error) {
      this.alert(error instanceof CryptoError ? error.code : "key_transparency", null, `key share refused: ${String(error)}`);
    }
  }

  // Own devices ------------------------------------------------------------------------------

  /** The monitor (client/monitor.ts): every entry of the log since the last audited
   * head, and each identity key or device under this practitioner's label that this
   * device does not know is an alert, until the user says the device is theirs. */
  checkMyDevices(): Promise<number[]> {
    // One pass at a time: each continues from where the previous one stopped.
    const pass = this.monitorChain.then(() => this.monitorPass());
    this.monitorChain = pass.then(
      () => undefined,
      () => undefined,
    );
    return pass;
  }

  private monitorChain: Promise<void> = Promise.resolve();
  private monitorQueued = false;

  /** A monitor pass after the one running, unless one is already waiting (a new head). */
  scheduleMonitor(): void {
    if (this.monitorQueued || this.log.forked) return;
    this.monitorQueued = true;
    this.monitorChain = this.monitorChain.then(() => {
      this.monitorQueued = false;
    });
    void this.checkMyDevices();
  }

  private async monitorPass(): Promise<number[]> {
    let report;
    try {
      report = await monitorOwnLabel(this.log, this.nationalId, this.identity.publicKey, this.data.knownDevices);
    } catch (error) {
      if (error instanceof ForkDetectedError) this.logFork(null, error.message);
      else this.alert("log_head_refused", null, `the log could not be audited: ${String(error)}`);
      return [];
    }
    for (const finding of report.findings) this.alert(finding.kind, null, finding.detail, finding.subject);
    if (report.findings.length) await this.save();
    return report.findings.filter((f) => f.kind === "unknown_device").map((f) => Number(f.subject));
  }

  /** Two heads of the log that cannot both be true: a blocking alert (once); the log
   * view accepts nothing more, so no lookup, and so no key share, is made from it. */
  private logFork(room: number | null, detail: string): void {
    if (!this.data.alerts.some((a) => a.kind === "log_fork")) this.alert("log_fork", room, detail);
    void this.save();
  }

  /** A log head another member or device saw (an envelope's or a room event's), checked
   * against this view (docs/protocol.md §10.6.4). */
  private async checkGossip(log: JsonObject | null, room: number | null): Promise<void> {
    if (!log || typeof log.size !== "number" || typeof log.root !== "string") return;
    try {
      await this.log.observeGossip(log.size, log.root);
    } catch (error) {
      if (error instanceof ForkDetectedError) this.logFork(room, error.message);
      else if (error instanceof KeyTransparencyError) this.alert("key_transparency", room, error.message);
      // a network failure: the next head carried is checked again
    }
  }

  /** A new key-agreement key when the current one is a week old (keyClock), published
   * before use; replaced private keys go after their grace; every room's sender key
   * rotates with it (docs/protocol.md §10.6.1). True if it rotated. */
  async rotateKeysIfDue(): Promise<boolean> {
    const now = keyClock();
    const forgot = forgetOldKex(this.data.kex, now);
    if (!rotationDue(this.data.kex, now)) {
      if (forgot) await this.save();
      return false;
    }
    await rotateKex(this.api, this.data.kex, this.signing, this.nationalId, this.device, now);
    for (const room of this.rooms.values()) room.outbound = null;
    await this.save();
    this.changed();
    return true;
  }

  approveDevice(device: number): void {
    const signKey = auditedSignKey(this.log, device);
    if (signKey) this.data.knownDevices[String(device)] = signKey;
    this.data.alerts = this.data.alerts.filter((a) => !(a.kind === "unknown_device" && a.subject === String(device)));
    void this.save();
    this.changed();
  }

  async devices(): Promise<{ device: number; name: string; current: boolean; revoked: boolean; created_at: string }[]> {
    return (await this.api.get<{ devices: { device: number; name: string; current: boolean; revoked: boolean; created_at: string }[] }>("devices")).devices;
  }

  async revokeDevice(device: number): Promise<void> {
    await this.api.call("DELETE", `devices/${device}`, { reason: "lost" });
    delete this.data.knownDevices[String(device)];
    await this.save();
  }

  // Alerts -----------------------------------------------------------------------------------

  alert(kind: string, room: number | null, detail: string, subject = ""): void {
    this.data.alerts.push({ id: crypto.randomUUID(), kind, room, detail, subject, ts: Date.now() });
    if (this.data.alerts.length > 100) this.data.alerts.splice(0, this.data.alerts.length - 100);
    this.changed();
  }

  dismissAlert(id: string): void {
    this.data.alerts = this.data.alerts.filter((a) => a.id !== id);
    void this.save();
    this.changed();
  }
}

export interface PendingLink {
  code: LinkCode;
  signing: SigningKey;
  kex: { privateKey: Uint8Array; publicKey: Uint8Array };
  request: JsonObject;
}

function newVaultData(login: { token: string; device: number; nationalId: string; displayName: string }, identity: SigningKey, signing: SigningKey, kex: { privateKey: Uint8Array; publicKey: Uint8Array }, accountSecret: Uint8Array, recoveryPublic: string): VaultData {
  return {
    version: 1,
    nationalId: login.nationalId,
    device: login.device,
    token: login.token,
    displayName: login.displayName,
    identity: b64u(identity.seed),
    accountSecret: b64u(accountSecret),
    recoveryPublic,
    sign: b64u(signing.seed),
    kex: [{ serial: 1, private: b64u(kex.privateKey), createdAt: keyClock() }],
    log: {},
    knownDevices: { [String(login.device)]: b64u(signing.publicKey) },
    contacts: {},
    rooms: {},
    messages: {},
    outbox: [],
    kexSeen: {},
    receipts: {},
    names: {},
    alerts: [],
    history: newHistoryData(),
  };
}

function bySeq(a: ChatMessage, b: ChatMessage): number {
  if (a.seq === null && b.seq === null) return a.ts - b.ts;
  if (a.seq === null) return 1;
  if (b.seq === null) return -1;
  return a.seq - b.seq;
}
