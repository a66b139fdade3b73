// Message envelopes and the sender-key sessions that make and open them
// (docs/protocol.md §10.6).
import { b64u, equal, randomBytes, unb64u } from "./bytes";
import { canonicalJson, expectInt, expectObject, expectStr, type JsonObject, parseCanonical, signingInput } from "./canonical";
import { CryptoError } from "./errors";
import { ENVELOPE, ENVELOPE_AAD } from "./labels";
import { aesGcmDecrypt, aesGcmEncrypt, type SigningKey, verify } from "./primitives";
import { type MessageKey, messageKey, nextChainKey } from "./ratchet";
import { deviceAt, isArchiverDevice, removedBetween, type RoomState } from "./state";

const PAD_BLOCK = 128;
export const MAX_SKIP = 1000;
const MAX_SKIPPED_KEYS = 2000;
const MAX_ENVELOPE_BYTES = 48 * 1024;
const HEADER_KEYS = ["v", "type", "room", "epoch", "state", "sender", "key_id", "index", "log"];
const RESERVED = ["pad", "seq", "ts"];

export type DeviceRef = [string, number];

export function padContent(content: JsonObject, seq: number, ts: number): Uint8Array {
  if (RESERVED.some((key) => key in content) || typeof content.type !== "string") {
    throw new Error("content needs a string 'type' and no 'pad', 'seq' or 'ts'");
  }
  const full = { ...content, seq, ts };
  const unpadded = canonicalJson({ ...full, pad: "" }).length;
  return canonicalJson({ ...full, pad: "0".repeat((PAD_BLOCK - (unpadded % PAD_BLOCK)) % PAD_BLOCK) });
}

export function unpadContent(plaintext: Uint8Array): { content: JsonObject; seq: number; ts: number } {
  const content = parseCanonical(plaintext, MAX_ENVELOPE_BYTES);
  const { pad, seq, ts, ...rest } = content;
  if (typeof pad !== "string" || /[^0]/.test(pad) || typeof rest.type !== "string") throw new CryptoError("bad_encoding", "malformed message content");
  return { content: rest, seq: expectInt(seq, "seq", 1), ts: expectInt(ts, "ts") };
}

const aad = (header: JsonObject): Uint8Array => signingInput(ENVELOPE_AAD, header);

/** This device's current sender key in one room. */
export interface OutboundSession {
  room: string;
  sender: DeviceRef;
  keyId: Uint8Array;
  chainKey: Uint8Array;
  index: number;
  epoch: number;
  createdAtMs: number;
  sharedWith: string[];
}

export function newOutboundSession(room: string, sender: DeviceRef, epoch: number, nowMs: number): OutboundSession {
  return { room, sender, keyId: randomBytes(16), chainKey: randomBytes(32), index: 0, epoch, createdAtMs: nowMs, sharedWith: [] };
}

export function needsRotation(session: OutboundSession, state: RoomState, nowMs: number): boolean {
  const policy = state.policy;
  return removedBetween(state, session.epoch, state.epoch) || session.index >= policy.rotate_after_messages || nowMs - session.createdAtMs >= policy.rotate_after_seconds * 1000;
}

/** Encrypt and sign ``content`` at the state's epoch; the chain moves on. */
export async function encryptEnvelope(session: OutboundSession, state: RoomState, signing: SigningKey, content: JsonObject, seq: number, ts: number, log: JsonObject | null = null): Promise<Uint8Array> {
  if (state.room !== session.room || state.epoch < session.epoch) throw new Error("the session does not belong to this room state");
  const header: JsonObject = {
    v: 2,
    type: "envelope",
    room: session.room,
    epoch: state.epoch,
    state: b64u(state.head),
    sender: { national_id: session.sender[0], device: session.sender[1] },
    key_id: b64u(session.keyId),
    index: session.index,
    log,
  };
  const keys = await messageKey(session.chainKey);
  const ciphertext = await aesGcmEncrypt(keys.key, keys.nonce, padContent(content, seq, ts), aad(header));
  const signed = { ...header, ct: b64u(ciphertext) };
  const signature = await signing.sign(ENVELOPE, signed);
  session.chainKey = await nextChainKey(session.chainKey);
  session.index += 1;
  return canonicalJson({ ...signed, sig: b64u(signature) });
}

/** Another device's sender key, as received in a verified key share. */
export interface InboundSession {
  room: string;
  sender: DeviceRef;
  keyId: Uint8Array;
  chainKey: Uint8Array;
  nextIndex: number;
  epoch: number;
  skipped: Map<number, MessageKey>;
}

async function keyFor(session: InboundSession, index: number): Promise<{ keys: MessageKey; chain: Uint8Array; nextIndex: number; skipped: Map<number, MessageKey> }> {
  if (index < session.nextIndex) {
    const stored = session.skipped.get(index);
    if (!stored) throw new CryptoError("replay", `index ${index} already used`);
    const remaining = new Map(session.skipped);
    remaining.delete(index);
    return { keys: stored, chain: session.chainKey, nextIndex: session.nextIndex, skipped: remaining };
  }
  if (index - session.nextIndex > MAX_SKIP) throw new CryptoError("too_far_ahead", `index ${index}`);
  const skipped = new Map(session.skipped);
  let chain = session.chainKey;
  for (let missing = session.nextIndex; missing < index; missing++) {
    skipped.set(missing, await messageKey(chain));
    chain = await nextChainKey(chain);
  }
  while (skipped.size > MAX_SKIPPED_KEYS) skipped.delete(Math.min(...skipped.keys()));
  return { keys: await messageKey(chain), chain: await nextChainKey(chain), nextIndex: index + 1, skipped };
}

export interface ParsedEnvelope {
  header: JsonObject;
  ciphertext: Uint8Array;
  ct: string; // the ciphertext as the envelope writes it (what the signature covers)
  signature: Uint8Array;
  sender: DeviceRef;
  keyId: Uint8Array;
  epoch: number;
  room: string;
  index: number;
  log: JsonObject | null;
}

export function parseEnvelope(data: Uint8Array): ParsedEnvelope {
  const body = expectObject(parseCanonical(data, MAX_ENVELOPE_BYTES), [...HEADER_KEYS, "ct", "sig"]);
  if (body.v !== 2 || body.type !== "envelope") throw new CryptoError("bad_encoding", "not a version 2 envelope");
  unb64u(body.room, 16, "room");
  expectInt(body.epoch, "epoch");
  unb64u(body.state, 32, "state");
  const sender = expectObject(body.sender, ["national_id", "device"], "sender");
  expectStr(sender.national_id, "sender.national_id", 32);
  expectInt(sender.device, "sender.device", 1);
  const keyId = unb64u(body.key_id, 16, "key_id");
  expectInt(body.index, "index");
  if (body.log !== null) {
    const log = expectObject(body.log, ["size", "root"], "log");
    expectInt(log.size, "log.size");
    unb64u(log.root, 32, "log.root");
  }
  const header: JsonObject = {};
  for (const key of HEADER_KEYS) header[key] = body[key]!;
  return {
    header,
    ciphertext: unb64u(body.ct, undefined, "ct"),
    ct: body.ct as string,
    signature: unb64u(body.sig, 64, "sig"),
    sender: [sender.national_id as string, sender.device as number],
    keyId,
    epoch: body.epoch as number,
    room: body.room as string,
    index: body.index as number,
    log: body.log as JsonObject | null,
  };
}

export interface Decrypted {
  sender: DeviceRef;
  epoch: number;
  index: number;
  content: JsonObject;
  seq: number;
  ts: number;
}

export const sessionKey = (sender: DeviceRef, keyId: Uint8Array): string => `${sender[0]}/${sender[1]}/${b64u(keyId)}`;

/** Verify and decrypt; on success the matching session's ratchet moves forward.
 * ``sessions`` maps sessionKey(sender, key id) to this room's inbound sessions. */
export async function decryptEnvelope(state: RoomState, envelope: ParsedEnvelope, sessions: Map<string, InboundSession>): Promise<Decrypted> {
  if (envelope.room !== state.room) throw new CryptoError("bad_chain", "envelope of another room");
  if (envelope.epoch > state.epoch) throw new CryptoError("future_epoch", `epoch ${envelope.epoch}`);
  const head = state.heads[envelope.epoch];
  if (!head || !equal(head, unb64u(envelope.header.state, 32))) throw new CryptoError("bad_chain", "envelope names another room state");
  if (isArchiverDevice(state, ...envelope.sender)) throw new CryptoError("not_authorised", "the archiver does not send");
  const senderKey = deviceAt(state, ...envelope.sender, envelope.epoch);
  if (!senderKey) throw new CryptoError("unknown_device", "sender not in the room at that epoch");
  await verify(senderKey, envelope.signature, ENVELOPE, { ...envelope.header, ct: envelope.ct });
  const session = sessions.get(sessionKey(envelope.sender, envelope.keyId));
  if (!session) throw new CryptoError("unknown_key", "no sender key with this id");
  if (session.epoch > envelope.epoch || removedBetween(state, session.epoch, envelope.epoch)) throw new CryptoError("stale_key", "sender key not rotated after a removal");
  const next = await keyFor(session, envelope.index);
  const plaintext = await aesGcmDecrypt(next.keys.key, next.keys.nonce, envelope.ciphertext, aad(envelope.header));
  const { content, seq, ts } = unpadContent(plaintext);
  session.chainKey = next.chain;
  session.nextIndex = next.nextIndex;
  session.skipped = next.skipped;
  return { sender: envelope.sender, epoch: envelope.epoch, index: envelope.index, content, seq, ts };
}
