// The sender-key hash ratchet (docs/protocol.md §10.6).
import { utf8 } from "./bytes";
import { RATCHET_CHAIN, RATCHET_MESSAGE } from "./labels";
import { hkdf } from "./primitives";

export interface MessageKey {
  key: Uint8Array;
  nonce: Uint8Array;
}

export async function messageKey(chainKey: Uint8Array): Promise<MessageKey> {
  const material = await hkdf(chainKey, utf8(RATCHET_MESSAGE), 44);
  return { key: material.slice(0, 32), nonce: material.slice(32) };
}

export function nextChainKey(chainKey: Uint8Array): Promise<Uint8Array> {
  return hkdf(chainKey, utf8(RATCHET_CHAIN), 32);
}

export async function advance(chainKey: Uint8Array, steps: number): Promise<Uint8Array> {
  let key = chainKey;
  for (let i = 0; i < steps; i++) key = await nextChainKey(key);
  return key;
}
