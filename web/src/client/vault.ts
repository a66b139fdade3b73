// Where this device's keys live (docs/web.md, "Where keys live"): one record in
// IndexedDB, encrypted with AES-256-GCM under a key derived from the user's passphrase
// (PBKDF2-SHA256, 600,000 iterations, WebCrypto). The derived key is a non-extractable
// CryptoKey held in memory while the app is unlocked; logout deletes the record.
import { b64u, randomBytes, unb64u, utf8, fromUtf8 } from "../e2ee/bytes";
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

  async save(data: unknown): Promise<void> {
    const nonce = randomBytes(12);
    const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv: view(nonce), additionalData: view(AAD) }, this.key, view(utf8(JSON.stringify(data))));
    await db.put(RECORD, { salt: b64u(this.salt), iterations: this.iterations, nonce: b64u(nonce), ct: b64u(new Uint8Array(ct)) } satisfies SealedVault);
  }
}
