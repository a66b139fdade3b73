// History keys (docs/protocol.md §10.9) and their transfer to a newly linked device of
// the same practitioner (§10.4.4, step 5), as e2ee/recovery.py and client/history.py:
// a history key is a sender key's chain key at the first index a device could read.
// The rooms' profile keys travel the same ways (the transfer's ``profile_keys``, records
// of their own in the backup) and are used only once the room's verified state names
// them (checkProfileKey).
import { b64u, equal, hex, unb64u, utf8 } from "./bytes";
import { canonicalJson, expectInt, expectObject, expectStr, type JsonObject, parseCanonical } from "./canonical";
import type { DeviceRef, InboundSession } from "./envelopes";
import { CryptoError } from "./errors";
import { HISTORY, HPKE_INFO_HISTORY } from "./labels";
import { hpkeOpen, hpkeSeal, sha256, type SigningKey, verify } from "./primitives";
import { decryptProfile, type ProfileKey } from "./profile";
import type { RoomState } from "./state";

export const KEYS_PER_TRANSFER = 8; // history keys per to-device message (each ≤ 4 KiB)
export const PROFILE_KEYS_PER_TRANSFER = 16; // profile keys per to-device message (≈ 2.8 KiB)
const MAX_TRANSFER_BYTES = 8192;
const ENTRY_KEYS = ["room", "sender", "key_id", "index", "chain_key", "epoch"];
const PROFILE_KEY_FIELDS = ["room", "version", "key_id", "key"];
export const PROFILE_KEY_RECORD = "profile_key"; // the ``type`` of a profile key in the backup

export interface HistoryKey {
  room: string; // the room's uid
  sender: DeviceRef;
  keyId: Uint8Array;
  index: number;
  chainKey: Uint8Array;
  epoch: number;
}

/** The id a history key is filed under: the same for every index of one sender key. */
export async function historyKeyId(room: string, sender: DeviceRef, keyId: Uint8Array): Promise<string> {
  return hex(await sha256(canonicalJson({ room, sender: [sender[0], sender[1]], key_id: b64u(keyId) })));
}

export function historyKeyJson(key: HistoryKey): JsonObject {
  return {
    room: key.room,
    sender: { national_id: key.sender[0], device: key.sender[1] },
    key_id: b64u(key.keyId),
    index: key.index,
    chain_key: b64u(key.chainKey),
    epoch: key.epoch,
  };
}

export function parseHistoryKey(value: unknown): HistoryKey {
  const body = expectObject(value, ENTRY_KEYS, "history key");
  const sender = expectObject(body.sender, ["national_id", "device"], "sender");
  return {
    room: expectStr(body.room, "room", 22),
    sender: [expectStr(sender.national_id, "national_id", 32), expectInt(sender.device, "device", 1)],
    keyId: unb64u(body.key_id, 16, "key_id"),
    index: expectInt(body.index, "index"),
    chainKey: unb64u(body.chain_key, 32, "chain_key"),
    epoch: expectInt(body.epoch, "epoch"),
  };
}

/** The history key of a session: its chain key at the next index it reads. */
export function historyKeyOf(session: InboundSession): HistoryKey {
  return { room: session.room, sender: session.sender, keyId: session.keyId, index: session.nextIndex, chainKey: session.chainKey, epoch: session.epoch };
}

/** An inbound session reading from a history key's index on. */
export function sessionOf(key: HistoryKey): InboundSession {
  return { room: key.room, sender: key.sender, keyId: key.keyId, chainKey: key.chainKey, nextIndex: key.index, epoch: key.epoch, skipped: new Map() };
}

/** The key of one version of a room's profile, as it travels between the devices of one
 * practitioner: PROFILE KEY = {"room","version","key_id","key"}. */
export interface RoomProfileKey {
  room: string; // the room's uid
  version: number;
  key: ProfileKey;
}

export function profileKeyJson(key: RoomProfileKey): JsonObject {
  return { room: key.room, version: key.version, key_id: b64u(key.key.keyId), key: b64u(key.key.key) };
}

export function parseProfileKey(value: unknown): RoomProfileKey {
  const body = expectObject(value, PROFILE_KEY_FIELDS, "profile key");
  return {
    room: expectStr(body.room, "room", 22),
    version: expectInt(body.version, "version", 1),
    key: { keyId: unb64u(body.key_id, 16, "key_id"), key: unb64u(body.key, 32, "key") },
  };
}

/** The backup record of a profile key: PROFILE KEY with "type":"profile_key" (a history
 * key has no ``type``). */
export function profileKeyRecord(key: RoomProfileKey): JsonObject {
  return { type: PROFILE_KEY_RECORD, ...profileKeyJson(key) };
}

export function parseProfileKeyRecord(value: unknown): RoomProfileKey {
  const body = expectObject(value, ["type", ...PROFILE_KEY_FIELDS], "profile key record");
  if (body.type !== PROFILE_KEY_RECORD) throw new CryptoError("bad_encoding", "not a profile key record");
  const { type: _type, ...key } = body;
  return parseProfileKey(key);
}

/** The id a profile key's backup record is filed under: one per room and key. */
export async function profileKeyId(key: RoomProfileKey): Promise<string> {
  return hex(await sha256(canonicalJson({ room: key.room, profile_key_id: b64u(key.key.keyId) })));
}

/** Refuse a profile key unless the room's verified state names it: the same room, its
 * newest set_profile of this version and key id, and a key that opens that profile. */
export async function checkProfileKey(key: RoomProfileKey, state: RoomState): Promise<void> {
  const profile = state.profile;
  if (state.room !== key.room) throw new CryptoError("unknown_key", "a profile key for another room");
  if (!profile || profile.version !== key.version || !equal(profile.keyId, key.key.keyId)) throw new CryptoError("unknown_key", "a profile key the room's state does not name");
  try {
    await decryptProfile(key.room, key.version, key.key, profile.ciphertext);
  } catch {
    throw new CryptoError("decrypt_failed", "room profile");
  }
}

/** The signed body of a transfer; ``profile_keys`` is written only when there are some,
 * so a transfer of history keys alone is the same bytes as before it existed. */
export function transferBody(keys: HistoryKey[], sender: DeviceRef, recipient: DeviceRef, profileKeys: RoomProfileKey[] = []): JsonObject {
  const body: JsonObject = {
    v: 2,
    type: "history_keys",
    sender: { national_id: sender[0], device: sender[1] },
    recipient: { national_id: recipient[0], device: recipient[1] },
    keys: keys.map(historyKeyJson),
  };
  if (profileKeys.length) body.profile_keys = profileKeys.map(profileKeyJson);
  return body;
}

/** One to-device message carrying history keys (and profile keys) to a device of the
 * same practitioner, signed by the sending device and sealed to the recipient's
 * key-agreement key. */
export async function sealTransfer(keys: HistoryKey[], sender: DeviceRef, signing: SigningKey, recipient: DeviceRef, recipientKex: Uint8Array, profileKeys: RoomProfileKey[] = []): Promise<Uint8Array> {
  const body = transferBody(keys, sender, recipient, profileKeys);
  const signed = canonicalJson({ transfer: body, sig: b64u(await signing.sign(HISTORY, body)) });
  const sealed = await hpkeSeal(recipientKex, utf8(HPKE_INFO_HISTORY), signed);
  return canonicalJson({ v: 2, type: "history_keys", ct: b64u(sealed) });
}

export function isTransfer(message: Uint8Array): boolean {
  try {
    return parseCanonical(message, MAX_TRANSFER_BYTES).type === "history_keys";
  } catch {
    return false;
  }
}

export interface OpenedTransfer {
  sender: DeviceRef;
  keys: HistoryKey[];
  profileKeys: RoomProfileKey[];
  body: JsonObject;
  signature: Uint8Array;
}

/** Open a transfer addressed to ``me``; its signature is checked by ``verifyTransfer``
 * once the sender's signing key is known from the log. */
export async function openTransfer(message: Uint8Array, kexPrivate: Uint8Array, me: DeviceRef): Promise<OpenedTransfer> {
  const outer = expectObject(parseCanonical(message, MAX_TRANSFER_BYTES), ["v", "type", "ct"]);
  const plaintext = await hpkeOpen(kexPrivate, utf8(HPKE_INFO_HISTORY), unb64u(outer.ct, undefined, "ct"));
  const signed = expectObject(parseCanonical(plaintext, MAX_TRANSFER_BYTES), ["transfer", "sig"]);
  const fields = ["v", "type", "sender", "recipient", "keys"];
  const withProfiles = typeof signed.transfer === "object" && signed.transfer !== null && "profile_keys" in signed.transfer;
  if (withProfiles) fields.push("profile_keys"); // absent in transfers of history keys alone
  const body = expectObject(signed.transfer, fields, "transfer");
  if (body.v !== 2 || body.type !== "history_keys") throw new CryptoError("bad_encoding", "not a version 2 history transfer");
  const recipient = expectObject(body.recipient, ["national_id", "device"], "recipient");
  if (recipient.national_id !== me[0] || recipient.device !== me[1]) throw new CryptoError("wrong_recipient", "history transfer for another device");
  const sender = expectObject(body.sender, ["national_id", "device"], "sender");
  if (!Array.isArray(body.keys)) throw new CryptoError("bad_encoding", "keys");
  const profileKeys = withProfiles ? body.profile_keys : [];
  if (!Array.isArray(profileKeys) || (withProfiles && !profileKeys.length)) throw new CryptoError("bad_encoding", "profile_keys");
  return {
    sender: [expectStr(sender.national_id, "sender.national_id", 32), expectInt(sender.device, "sender.device", 1)],
    keys: body.keys.map(parseHistoryKey),
    profileKeys: profileKeys.map(parseProfileKey),
    body,
    signature: unb64u(signed.sig, 64, "sig"),
  };
}

export function verifyTransfer(transfer: OpenedTransfer, signKey: Uint8Array): Promise<void> {
  return verify(signKey, transfer.signature, HISTORY, transfer.body);
}
