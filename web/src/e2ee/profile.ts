// The encrypted room profile (docs/protocol.md §10.5, set_profile). Its key travels in
// key shares (shares.ts) and, between one practitioner's devices, with the history keys
// (history.ts: checkProfileKey before use).
import { b64u, concat, randomBytes } from "./bytes";
import { canonicalJson, type JsonObject, parseCanonical, signingInput } from "./canonical";
import { PROFILE_AAD } from "./labels";
import { aesGcmDecrypt, aesGcmEncrypt } from "./primitives";

const MAX_PROFILE_PLAINTEXT = 12 * 1024;

export interface ProfileKey {
  keyId: Uint8Array;
  key: Uint8Array;
}

export function generateProfileKey(): ProfileKey {
  return { keyId: randomBytes(16), key: randomBytes(32) };
}

function aad(room: string, version: number, keyId: Uint8Array): Uint8Array {
  return signingInput(PROFILE_AAD, { room, version, key_id: b64u(keyId) });
}

export async function encryptProfile(room: string, version: number, key: ProfileKey, profile: JsonObject): Promise<Uint8Array> {
  const plaintext = canonicalJson(profile);
  if (plaintext.length > MAX_PROFILE_PLAINTEXT) throw new Error(`a room profile is at most ${MAX_PROFILE_PLAINTEXT} bytes`);
  const nonce = randomBytes(12);
  return concat(nonce, await aesGcmEncrypt(key.key, nonce, plaintext, aad(room, version, key.keyId)));
}

export async function decryptProfile(room: string, version: number, key: ProfileKey, ciphertext: Uint8Array): Promise<JsonObject> {
  const plaintext = await aesGcmDecrypt(key.key, ciphertext.slice(0, 12), ciphertext.slice(12), aad(room, version, key.keyId));
  return parseCanonical(plaintext, MAX_PROFILE_PLAINTEXT);
}
