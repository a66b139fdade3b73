// Sender-key shares, sealed to a device's key-agreement key (docs/protocol.md §10.7).
import { b64u, unb64u, utf8 } from "./bytes";
import { canonicalJson, expectInt, expectObject, expectStr, type JsonObject, parseCanonical } from "./canonical";
import type { DeviceRef, InboundSession, OutboundSession } from "./envelopes";
import { CryptoError } from "./errors";
import type { KexKey } from "./kex";
import { HPKE_INFO_SENDER_KEY, SENDER_KEY_SHARE } from "./labels";
import { hpkeOpen, hpkeSeal, type SigningKey, verify } from "./primitives";
import type { ProfileKey } from "./profile";
import { deviceAt, isArchiverDevice, type RoomState } from "./state";

const MAX_SHARE_BYTES = 4096;
const BODY_KEYS = ["v", "type", "room", "epoch", "sender", "recipient", "key_id", "index", "chain_key", "profile_key"];

export function shareBody(session: OutboundSession, epoch: number, recipient: DeviceRef, profileKey: ProfileKey | null = null): JsonObject {
  return {
    v: 2,
    type: "sender_key",
    room: session.room,
    epoch,
    sender: { national_id: session.sender[0], device: session.sender[1] },
    recipient: { national_id: recipient[0], device: recipient[1] },
    key_id: b64u(session.keyId),
    index: session.index,
    chain_key: b64u(session.chainKey),
    profile_key: profileKey ? { key_id: b64u(profileKey.keyId), key: b64u(profileKey.key) } : null,
  };
}

export async function sealShare(session: OutboundSession, epoch: number, signing: SigningKey, recipient: DeviceRef, kex: KexKey, profileKey: ProfileKey | null = null): Promise<Uint8Array> {
  if (kex.nationalId !== recipient[0] || kex.device !== recipient[1]) throw new Error("the key-agreement key belongs to another device");
  const body = shareBody(session, epoch, recipient, profileKey);
  const signed = canonicalJson({ share: body, sig: b64u(await signing.sign(SENDER_KEY_SHARE, body)) });
  const sealed = await hpkeSeal(kex.kexKey, utf8(HPKE_INFO_SENDER_KEY), signed);
  return canonicalJson({ v: 2, type: "sender_key_share", kex_serial: kex.serial, ct: b64u(sealed) });
}

export interface OpenedShare {
  body: JsonObject;
  signature: Uint8Array;
  room: string;
  epoch: number;
  sender: DeviceRef;
  profileKey: ProfileKey | null;
}

export function shareKexSerial(message: Uint8Array): number {
  const outer = expectObject(parseCanonical(message, MAX_SHARE_BYTES), ["v", "type", "kex_serial", "ct"]);
  if (outer.v !== 2 || outer.type !== "sender_key_share") throw new CryptoError("bad_encoding", "not a sender key share");
  return expectInt(outer.kex_serial, "kex_serial", 1);
}

export async function openShare(message: Uint8Array, kexPrivate: Uint8Array, me: DeviceRef): Promise<OpenedShare> {
  shareKexSerial(message);
  const outer = parseCanonical(message, MAX_SHARE_BYTES);
  const plaintext = await hpkeOpen(kexPrivate, utf8(HPKE_INFO_SENDER_KEY), unb64u(outer.ct, undefined, "ct"));
  const signed = expectObject(parseCanonical(plaintext, MAX_SHARE_BYTES), ["share", "sig"]);
  const body = expectObject(signed.share, BODY_KEYS, "share");
  if (body.v !== 2 || body.type !== "sender_key") throw new CryptoError("bad_encoding", "not a version 2 sender key");
  unb64u(body.room, 16, "room");
  expectInt(body.epoch, "epoch");
  expectInt(body.index, "index");
  unb64u(body.key_id, 16, "key_id");
  unb64u(body.chain_key, 32, "chain_key");
  let profileKey: ProfileKey | null = null;
  if (body.profile_key !== null) {
    const profile = expectObject(body.profile_key, ["key_id", "key"], "profile_key");
    profileKey = { keyId: unb64u(profile.key_id, 16, "profile_key.key_id"), key: unb64u(profile.key, 32, "profile_key.key") };
  }
  const refs: DeviceRef[] = [];
  for (const name of ["sender", "recipient"]) {
    const value = expectObject(body[name], ["national_id", "device"], name);
    refs.push([expectStr(value.national_id, `${name}.national_id`, 32), expectInt(value.device, `${name}.device`, 1)]);
  }
  const [sender, recipient] = refs as [DeviceRef, DeviceRef];
  if (recipient[0] !== me[0] || recipient[1] !== me[1]) throw new CryptoError("wrong_recipient", "share addressed to another device");
  return { body, signature: unb64u(signed.sig, 64), room: body.room as string, epoch: body.epoch as number, sender, profileKey };
}

/** Check a share against the verified room state; the inbound session it gives. */
export async function acceptShare(share: OpenedShare, state: RoomState): Promise<InboundSession> {
  if (share.room !== state.room) throw new CryptoError("bad_chain", "share of another room");
  if (share.epoch > state.epoch) throw new CryptoError("future_epoch", `epoch ${share.epoch}`);
  if (isArchiverDevice(state, ...share.sender)) throw new CryptoError("not_authorised", "the archiver does not send");
  const senderKey = deviceAt(state, ...share.sender, share.epoch);
  if (!senderKey) throw new CryptoError("unknown_device", "sender not in the room at that epoch");
  await verify(senderKey, share.signature, SENDER_KEY_SHARE, share.body);
  return {
    room: share.room,
    sender: share.sender,
    keyId: unb64u(share.body.key_id, 16),
    chainKey: unb64u(share.body.chain_key, 32),
    nextIndex: share.body.index as number,
    epoch: share.epoch,
    skipped: new Map(),
  };
}
