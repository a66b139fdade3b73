// The recovery code, the account secret and what is sealed to the recovery key
// (docs/protocol.md §10.9).
import { b64u, randomBytes, unb64u, utf8 } from "./bytes";
import { canonicalJson, type JsonObject, parseCanonical } from "./canonical";
import { fromCode, toCode } from "./codes";
import { CryptoError } from "./errors";
import { ACCOUNT_KEY, HPKE_INFO_RECOVERY, RECOVERY_KEY } from "./labels";
import { hkdf, hpkeOpen, hpkeSeal, x25519Public } from "./primitives";

const CODE_BYTES = 20;
const MAX_SEALED_BYTES = 8192;

export class RecoveryCode {
  constructor(readonly secret: Uint8Array) {}

  static generate(): RecoveryCode {
    return new RecoveryCode(randomBytes(CODE_BYTES));
  }

  static parse(code: string): RecoveryCode {
    return new RecoveryCode(fromCode(code, CODE_BYTES));
  }

  toString(): string {
    return toCode(this.secret);
  }

  privateKey(): Promise<Uint8Array> {
    return hkdf(this.secret, utf8(RECOVERY_KEY), 32);
  }

  async publicKey(): Promise<Uint8Array> {
    return x25519Public(await this.privateKey());
  }
}

export function sealToRecovery(recoveryPublic: Uint8Array, value: JsonObject): Promise<Uint8Array> {
  return hpkeSeal(recoveryPublic, utf8(HPKE_INFO_RECOVERY), canonicalJson(value));
}

export async function openSealed(code: RecoveryCode, sealed: Uint8Array): Promise<JsonObject> {
  if (sealed.length > MAX_SEALED_BYTES) throw new CryptoError("bad_encoding", "sealed backup too large");
  const plaintext = await hpkeOpen(await code.privateKey(), utf8(HPKE_INFO_RECOVERY), sealed);
  return parseCanonical(plaintext, MAX_SEALED_BYTES);
}

export function identityBackup(nationalId: string, identityPrivate: Uint8Array, accountSecret: Uint8Array): JsonObject {
  return {
    v: 2,
    type: "identity_backup",
    national_id: nationalId,
    identity_key: b64u(identityPrivate),
    account_secret: b64u(accountSecret),
  };
}

export function restoreIdentity(value: JsonObject, nationalId: string): { identityPrivate: Uint8Array; accountSecret: Uint8Array } {
  if (value.type !== "identity_backup" || value.national_id !== nationalId) {
    throw new CryptoError("bad_encoding", "not this practitioner's identity backup");
  }
  return {
    identityPrivate: unb64u(value.identity_key, 32, "identity_key"),
    accountSecret: unb64u(value.account_secret, 32, "account_secret"),
  };
}

export function accountKey(accountSecret: Uint8Array, purpose: string): Promise<Uint8Array> {
  if (!purpose || !/^[\x00-\x7f]+$/.test(purpose)) throw new Error("a purpose is a non-empty ASCII name");
  return hkdf(accountSecret, utf8(ACCOUNT_KEY + purpose), 32);
}
