// This device's view of the key-transparency log (docs/protocol.md §10.4.2, client
// rules): the log key pinned on first use (development: no key shipped), heads accepted
// only when signed, fresh and consistent with the largest head ever accepted, and
// lookups used only when every proof holds.
import type { Api } from "../api/http";
import { b64u, equal, unb64u } from "../e2ee/bytes";
import { CryptoError } from "../e2ee/errors";
import { type CertifiedDevice, type LabelChain, type LogRecord, parseLogEntry, verifyChain, verifyKexRegistration, verifyLabel } from "../e2ee/transparency";
import type { DeviceKind } from "../e2ee/identity";
import { checkConsistency, checkInclusion, parseTreeHead, type TreeHead, verifyVrfKey } from "../e2ee/tree_heads";

const MAX_AGE_MS = 3600_000;
const SKEW_MS = 300_000;

export class KeyTransparencyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeyTransparencyError";
  }
}

export interface LogData {
  logKey?: string;
  vrfKey?: string;
  head?: { size: number; root: string; timestamp: number; sig: string };
}

export interface VerifiedDevice {
  nationalId: string;
  device: number;
  signKey: Uint8Array;
  kexKey: Uint8Array;
  crossSig: Uint8Array;
  index: number;
}

export interface VerifiedIdentity {
  nationalId: string;
  identityKey: Uint8Array | null;
  devices: Map<number, VerifiedDevice>;
  chain: LabelChain;
}

export class LogView {
  constructor(
    private readonly api: Api,
    readonly data: LogData,
    private readonly now: () => number = Date.now,
  ) {}

  get logPublic(): Uint8Array {
    if (!this.data.logKey) throw new KeyTransparencyError("the log key is not pinned");
    return unb64u(this.data.logKey, 32);
  }

  get vrfPublic(): Uint8Array {
    return unb64u(this.data.vrfKey, 32);
  }

  async start(): Promise<void> {
    const info = await this.api.get<{ log_key: string; vrf_key: string; vrf_key_sig: string; tree_head: unknown; cosignatures: unknown[] }>("keys/log");
    if (!this.data.logKey) {
      const logKey = unb64u(info.log_key, 32);
      await verifyVrfKey(logKey, unb64u(info.vrf_key, 32), unb64u(info.vrf_key_sig, 64));
      this.data.logKey = info.log_key;
      this.data.vrfKey = info.vrf_key;
    } else if (info.log_key !== this.data.logKey) {
      throw new KeyTransparencyError("the server's log key changed");
    }
    await this.accept(info.tree_head);
  }

  private largest(): TreeHead | null {
    const head = this.data.head;
    return head ? { size: head.size, root: unb64u(head.root, 32), timestamp: head.timestamp, signature: unb64u(head.sig, 64) } : null;
  }

  /** A head signed by the pinned key, fresh, and consistent with the largest head. */
  async accept(value: unknown): Promise<TreeHead> {
    let head: TreeHead;
    try {
      head = await parseTreeHead(value, this.logPublic);
    } catch (error) {
      throw new KeyTransparencyError(`tree head refused: ${String(error)}`);
    }
    const now = this.now();
    if (head.timestamp > now + SKEW_MS || (head.size > 0 && head.timestamp < now - MAX_AGE_MS)) {
      throw new KeyTransparencyError("tree head too old or in the future");
    }
    const largest = this.largest();
    try {
      if (largest === null) {
        // first head this device sees
      } else if (head.size === largest.size) {
        if (!equal(head.root, largest.root)) throw new CryptoError("bad_proof", "two roots for one size");
      } else {
        const [small, big] = head.size < largest.size ? [head, largest] : [largest, head];
        const answer = await this.api.get<{ proof: string[] }>(`keys/log/consistency?first=${small.size}&second=${big.size}`);
        await checkConsistency(small, big, answer.proof);
      }
    } catch (error) {
      if (error instanceof CryptoError) throw new KeyTransparencyError(`the log forked: ${error.message}`);
      throw error;
    }
    if (largest === null || head.size > largest.size) {
      this.data.head = { size: head.size, root: b64u(head.root), timestamp: head.timestamp, sig: b64u(head.signature) };
    }
    return head;
  }

  gossip(): { size: number; root: string } | null {
    return this.data.head ? { size: this.data.head.size, root: this.data.head.root } : null;
  }

  /** ``nationalId``'s identity key and devices of ``kind``, each proof checked. */
  async identityOf(nationalId: string, kind: DeviceKind = "device"): Promise<VerifiedIdentity> {
    if (!this.data.logKey) await this.start();
    const answer = await this.api.get<{
      national_id: string;
      label: string;
      vrf_proof: string;
      tree_head: unknown;
      entries: { index: number; entry: string; proof: string[] }[];
      kex_keys: { device: number; kex_key: string; signature: string }[];
    }>(`keys/practitioners/${encodeURIComponent(nationalId)}`);
    const head = await this.accept(answer.tree_head);
    let chain: LabelChain;
    try {
      if (answer.national_id !== nationalId) throw new KeyTransparencyError("the lookup answered for someone else");
      const label = unb64u(answer.label, 32, "label");
      await verifyLabel(this.vrfPublic, nationalId, label, unb64u(answer.vrf_proof, 80, "vrf_proof"));
      const records: [number, LogRecord][] = [];
      for (const item of answer.entries) {
        const leaf = new TextEncoder().encode(item.entry);
        await checkInclusion(leaf, item.index, item.proof, head);
        records.push([item.index, await parseLogEntry(leaf, this.logPublic)]);
      }
      chain = await verifyChain(nationalId, label, records);
    } catch (error) {
      if (error instanceof CryptoError) throw new KeyTransparencyError(`lookup of ${nationalId} refused: ${error.message}`);
      throw error;
    }
    const devices = new Map<number, VerifiedDevice>();
    const kexKeys = new Map(answer.kex_keys.map((k) => [k.device, k]));
    for (const [number, certified] of chain.devices as Map<number, CertifiedDevice>) {
      const signed = kexKeys.get(number);
      if (certified.kind !== kind || !signed) continue;
      try {
        const kexKey = unb64u(signed.kex_key, 32);
        await verifyKexRegistration(nationalId, number, certified.signKey, kexKey, unb64u(signed.signature, 64));
        devices.set(number, { nationalId, device: number, signKey: certified.signKey, kexKey, crossSig: certified.crossSig, index: certified.index });
      } catch {
        // not a key that device signed: nothing can be sealed to it
      }
    }
    return { nationalId, identityKey: chain.identityKey, devices, chain };
  }

  /** The answer of an append: included in a head this view accepts. */
  async checkAppended(answer: { index: number; entry: string; proof: string[]; tree_head: unknown }): Promise<LogRecord> {
    const head = await this.accept(answer.tree_head);
    const leaf = new TextEncoder().encode(answer.entry);
    try {
      await checkInclusion(leaf, answer.index, answer.proof, head);
      return await parseLogEntry(leaf, this.logPublic);
    } catch (error) {
      throw new KeyTransparencyError(`the log's answer is invalid: ${String(error)}`);
    }
  }
}
