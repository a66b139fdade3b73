// The primitives of the protocol (docs/protocol.md §10.1), all from the browser's
// WebCrypto: SHA-256/512, HKDF-SHA256, AES-256-GCM, Ed25519 and X25519; HPKE (RFC 9180)
// from @hpke/core on the same WebCrypto. No primitive is written here.
import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import { concat, unb64u } from "./bytes";
import { signingInput } from "./canonical";
import { CryptoError } from "./errors";

const subtle = globalThis.crypto.subtle;
type Bytes = Uint8Array<ArrayBuffer>;

/** The same bytes, typed as WebCrypto wants them (a view of a plain ArrayBuffer). */
export function view(data: Uint8Array): Bytes {
  return data.buffer instanceof ArrayBuffer ? (data as Bytes) : new Uint8Array(data);
}

export async function sha256(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await subtle.digest("SHA-256", view(data)));
}

export async function sha512(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await subtle.digest("SHA-512", view(data)));
}

/** HKDF-SHA256 without salt (RFC 5869: 32 zero bytes). */
export async function hkdf(ikm: Uint8Array, info: Uint8Array, length: number): Promise<Uint8Array> {
  const key = await subtle.importKey("raw", view(ikm), "HKDF", false, ["deriveBits"]);
  const bits = await subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(32), info: view(info) },
    key,
    length * 8,
  );
  return new Uint8Array(bits);
}

export async function aesGcmEncrypt(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Promise<Uint8Array> {
  const cryptoKey = await subtle.importKey("raw", view(key), "AES-GCM", false, ["encrypt"]);
  return new Uint8Array(
    await subtle.encrypt({ name: "AES-GCM", iv: view(nonce), additionalData: view(aad) }, cryptoKey, view(plaintext)),
  );
}

export async function aesGcmDecrypt(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, aad: Uint8Array): Promise<Uint8Array> {
  const cryptoKey = await subtle.importKey("raw", view(key), "AES-GCM", false, ["decrypt"]);
  try {
    return new Uint8Array(
      await subtle.decrypt({ name: "AES-GCM", iv: view(nonce), additionalData: view(aad) }, cryptoKey, view(ciphertext)),
    );
  } catch {
    throw new CryptoError("decrypt_failed", "AES-GCM");
  }
}

// Ed25519 -----------------------------------------------------------------------------

// A raw 32-byte private key (seed) as PKCS #8 (RFC 8410), the form WebCrypto imports.
const ED25519_PKCS8 = new Uint8Array([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);
const X25519_PKCS8 = new Uint8Array([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20]);

/** A private signing key: its seed (kept wrapped at rest) and its public key. */
export class SigningKey {
  private constructor(
    readonly seed: Uint8Array,
    readonly publicKey: Uint8Array,
    private readonly key: CryptoKey,
  ) {}

  static async fromSeed(seed: Uint8Array): Promise<SigningKey> {
    if (seed.length !== 32) throw new CryptoError("bad_encoding", "Ed25519 keys are 32 bytes");
    const key = await subtle.importKey("pkcs8", view(concat(ED25519_PKCS8, seed)), "Ed25519", true, ["sign"]);
    const jwk = await subtle.exportKey("jwk", key);
    const signing = await subtle.importKey("pkcs8", view(concat(ED25519_PKCS8, seed)), "Ed25519", false, ["sign"]);
    return new SigningKey(seed, unb64u(jwk.x, 32), signing);
  }

  static generate(): Promise<SigningKey> {
    return SigningKey.fromSeed(crypto.getRandomValues(new Uint8Array(32)));
  }

  async signBytes(data: Uint8Array): Promise<Uint8Array> {
    return new Uint8Array(await subtle.sign("Ed25519", this.key, view(data)));
  }

  /** Ed25519 over ``label || 0x00 || canonical(value)``. */
  sign(label: string, value: unknown): Promise<Uint8Array> {
    return this.signBytes(signingInput(label, value));
  }
}

// Imported public keys, by their bytes: a room's few senders are verified again and again.
const verifyKeys = new Map<string, Promise<CryptoKey>>();

function verifyKey(publicKey: Uint8Array): Promise<CryptoKey> {
  const name = String.fromCharCode(...publicKey);
  let key = verifyKeys.get(name);
  if (!key) {
    if (verifyKeys.size >= 1024) verifyKeys.clear();
    key = subtle.importKey("raw", view(publicKey), "Ed25519", false, ["verify"]);
    verifyKeys.set(name, key);
    key.catch(() => verifyKeys.delete(name));
  }
  return key;
}

export async function verifyBytes(publicKey: Uint8Array, signature: Uint8Array, data: Uint8Array): Promise<boolean> {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    const key = await verifyKey(publicKey);
    return await subtle.verify("Ed25519", key, view(signature), view(data));
  } catch {
    return false;
  }
}

/** Raise bad_signature unless ``signature`` is ``publicKey``'s over the labelled value. */
export async function verify(publicKey: Uint8Array, signature: Uint8Array, label: string, value: unknown): Promise<void> {
  if (!(await verifyBytes(publicKey, signature, signingInput(label, value)))) {
    throw new CryptoError("bad_signature", label);
  }
}

// X25519 and HPKE ----------------------------------------------------------------------

export async function x25519Public(privateKey: Uint8Array): Promise<Uint8Array> {
  const key = await subtle.importKey("pkcs8", view(concat(X25519_PKCS8, privateKey)), "X25519", true, ["deriveBits"]);
  const jwk = await subtle.exportKey("jwk", key);
  return unb64u(jwk.x, 32);
}

export interface KeyAgreementKey {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

export async function generateX25519(): Promise<KeyAgreementKey> {
  const privateKey = crypto.getRandomValues(new Uint8Array(32));
  return { privateKey, publicKey: await x25519Public(privateKey) };
}

const suite = new CipherSuite({
  kem: new DhkemX25519HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Aes256Gcm(),
});

/** HPKE base mode, single shot, empty AAD: ``enc(32) || ciphertext``. */
export async function hpkeSeal(recipientPublic: Uint8Array, info: Uint8Array, plaintext: Uint8Array): Promise<Uint8Array> {
  const recipientPublicKey = await suite.kem.deserializePublicKey(view(recipientPublic).buffer);
  const sealed = await suite.seal({ recipientPublicKey, info: view(info).buffer }, view(plaintext).buffer);
  return concat(new Uint8Array(sealed.enc), new Uint8Array(sealed.ct));
}

export async function hpkeOpen(recipientPrivate: Uint8Array, info: Uint8Array, sealed: Uint8Array): Promise<Uint8Array> {
  if (sealed.length < 32 + 16) throw new CryptoError("decrypt_failed", "HPKE message too short");
  try {
    const recipientKey = await suite.kem.importKey("raw", new Uint8Array(recipientPrivate).buffer, false);
    const opened = await suite.open(
      { recipientKey, enc: sealed.slice(0, 32).buffer, info: view(info).buffer },
      sealed.slice(32).buffer,
    );
    return new Uint8Array(opened);
  } catch {
    throw new CryptoError("decrypt_failed", "HPKE");
  }
}
