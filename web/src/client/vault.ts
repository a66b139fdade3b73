// Where this device's keys live (docs/web.md, "Where keys live"): one record in
// IndexedDB, encrypted with AES-256-GCM under a key derived from the user's passphrase
// (PBKDF2-SHA256, 600,000 iterations, WebCrypto), and the decrypted history in records
// of its own sealed with the same key (client/history.ts), written in the same
// transaction. The derived key is a non-extractable CryptoKey held in memory while the
// app is unlocked; logout deletes the records.
import { b64u, equal, randomBytes, unb64u, utf8, fromUtf8 } from "../e2ee/bytes";
import { view } from "../e2ee/primitives";
import * as db from "../store/db";

const RECORD = "vault";
const ITERATIONS = 600_000;
const AAD = utf8("relais/web/vault");

interface SealedVault {
  salt: string;
  iterations: number;
  nonce: string;
  ct: string;
}

/** A record sealed with the vault's key besides the vault itself (client/history.ts). */
interface SealedRecord {
  nonce: Uint8Array;
  ct: ArrayBuffer;
}

export interface SealedWrite {
  key: string;
  nonce: Uint8Array;
  aad: Uint8Array;
  plaintext: Uint8Array;
}

export class WrongPassphrase extends Error {}

async function deriveKey(passphrase: string, salt: Uint8Array, iterations: number): Promise<CryptoKey> {
  const material = await crypto.subtle.importKey("raw", view(utf8(passphrase.normalize("NFC"))), "PBKDF2", false, ["deriveKey"]);
  return crypto.subtle.deriveKey({ name: "PBKDF2", hash: "SHA-256", salt: view(salt), iterations }, material, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
}

export class Vault {
  private constructor(
    private readonly key: CryptoKey,
    private readonly salt: Uint8Array,
    private readonly iterations: number,
  ) {}

  static async exists(): Promise<boolean> {
    return (await db.get<SealedVault>(RECORD)) !== undefined;
  }

  static async create(passphrase: string): Promise<Vault> {
    const salt = randomBytes(16);
    return new Vault(await deriveKey(passphrase, salt, ITERATIONS), salt, ITERATIONS);
  }

  /** The vault and what it holds; WrongPassphrase if the passphrase does not open it. */
  static async open<T>(passphrase: string): Promise<{ vault: Vault; data: T }> {
    const sealed = await db.get<SealedVault>(RECORD);
    if (!sealed) throw new WrongPassphrase("no vault");
    const salt = unb64u(sealed.salt);
    const vault = new Vault(await deriveKey(passphrase, salt, sealed.iterations), salt, sealed.iterations);
    try {
      const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: view(unb64u(sealed.nonce)), additionalData: view(AAD) }, vault.key, view(unb64u(sealed.ct)));
      return { vault, data: JSON.parse(fromUtf8(new Uint8Array(plain))) as T };
    } catch {
      throw new WrongPassphrase("wrong passphrase");
    }
  }

  /** The vault opened with a key the unlocked app handed over (the service worker's
   * notifications, push/worker.ts); null when there is no vault or the key is not its. */
  static async openWithKey<T>(key: CryptoKey): Promise<T | null> {
    const sealed = await db.get<SealedVault>(RECORD);
    if (!sealed) return null;
    try {
      const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: view(unb64u(sealed.nonce)), additionalData: view(AAD) }, key, view(unb64u(sealed.ct)));
      return JSON.parse(fromUtf8(new Uint8Array(plain))) as T;
    } catch {
      return null;
    }
  }

  /** Hand the (non-extractable) key to this origin's service worker, in memory only. */
  shareWith(worker: ServiceWorker): void {
    worker.postMessage({ type: "vault-unlocked", key: this.key });
  }

  /** The vault's record and, in the same transaction, other records sealed with its key
   * (``aad`` names each) and records deleted. */
  async save(data: unknown, records: SealedWrite[] = [], deletes: string[] = []): Promise<void> {
    const plaintext = utf8(JSON.stringify(data)); // the state as it is at the call
    const nonce = randomBytes(12);
    const [ct, ...sealed] = await Promise.all([
      crypto.subtle.encrypt({ name: "AES-GCM", iv: view(nonce), additionalData: view(AAD) }, this.key, view(plaintext)),
      ...records.map((r) => crypto.subtle.encrypt({ name: "AES-GCM", iv: view(r.nonce), additionalData: view(r.aad) }, this.key, view(r.plaintext))),
    ]);
    const puts: [string, unknown][] = [[RECORD, { salt: b64u(this.salt), iterations: this.iterations, nonce: b64u(nonce), ct: b64u(new Uint8Array(ct!)) } satisfies SealedVault]];
    records.forEach((r, i) => puts.push([r.key, { nonce: r.nonce, ct: sealed[i]! } satisfies SealedRecord]));
    await db.write(puts, deletes);
  }

  /** Records sealed by ``save``, opened; null for one that is missing, was sealed with
   * another nonce than ``nonce`` (an older copy) or does not authenticate. */
  async open(records: { key: string; nonce: Uint8Array; aad: Uint8Array }[]): Promise<(Uint8Array | null)[]> {
    const stored = await db.getMany<SealedRecord>(records.map((r) => r.key));
    return Promise.all(
      records.map(async (r, i) => {
        const found = stored[i];
        if (!found || !equal(new Uint8Array(found.nonce), r.nonce)) return null;
        try {
          return new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: view(r.nonce), additionalData: view(r.aad) }, this.key, found.ct));
        } catch {
          return null;
        }
      }),
    );
  }
}
