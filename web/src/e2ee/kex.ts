// Rotating key-agreement keys (docs/protocol.md §10.4.3).
import { b64u, unb64u } from "./bytes";
import { canonicalJson, expectInt, expectObject, expectStr, parseCanonical } from "./canonical";
import { CryptoError } from "./errors";
import { KEX_KEY } from "./labels";
import { type SigningKey, verify } from "./primitives";

export const DAY_MS = 24 * 3600 * 1000;
export const ROTATE_AFTER_MS = 7 * DAY_MS;
export const LIFETIME_MS = 30 * DAY_MS;
export const KEEP_OLD_PRIVATE_MS = 2 * DAY_MS;
const MAX_KEX_BYTES = 1024;

export interface KexKey {
  nationalId: string;
  device: number;
  kexKey: Uint8Array;
  serial: number;
  createdAt: number;
  expiresAt: number;
  raw: Uint8Array;
}

export async function publishKex(signing: SigningKey, nationalId: string, device: number, kexPublic: Uint8Array, serial: number, nowMs: number, lifetimeMs = LIFETIME_MS): Promise<Uint8Array> {
  const body = {
    v: 2,
    type: "kex_key",
    national_id: nationalId,
    device,
    kex_key: b64u(kexPublic),
    serial,
    created_at: nowMs,
    expires_at: nowMs + lifetimeMs,
  };
  return canonicalJson({ kex: body, sig: b64u(await signing.sign(KEX_KEY, body)) });
}

export async function verifyKex(raw: Uint8Array, nationalId: string, device: number, signKey: Uint8Array, nowMs: number): Promise<KexKey> {
  const outer = expectObject(parseCanonical(raw, MAX_KEX_BYTES), ["kex", "sig"]);
  const body = expectObject(outer.kex, ["v", "type", "national_id", "device", "kex_key", "serial", "created_at", "expires_at"], "kex");
  if (body.v !== 2 || body.type !== "kex_key") throw new CryptoError("bad_encoding", "not a version 2 key-agreement key");
  await verify(signKey, unb64u(outer.sig, 64, "sig"), KEX_KEY, body);
  if (expectStr(body.national_id, "national_id", 32) !== nationalId || body.device !== device) {
    throw new CryptoError("wrong_recipient", "key-agreement key of another device");
  }
  const created = expectInt(body.created_at, "created_at");
  const expires = expectInt(body.expires_at, "expires_at");
  if (!(created < expires && expires <= created + LIFETIME_MS)) throw new CryptoError("bad_encoding", "key-agreement key lifetime");
  const key: KexKey = {
    nationalId,
    device,
    kexKey: unb64u(body.kex_key, 32, "kex_key"),
    serial: expectInt(body.serial, "serial", 1),
    createdAt: created,
    expiresAt: expires,
    raw,
  };
  if (nowMs >= key.expiresAt) throw new CryptoError("expired_key", `key-agreement key of device ${device}`);
  return key;
}
