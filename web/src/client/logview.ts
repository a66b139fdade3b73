// This device's view of the key-transparency log (docs/protocol.md §10.4.2, client
// rules), as the SDK's client/logview.py:
// - keys: the log key (and the VRF key it signs) and the witnesses' keys are pinned on
//   first use (development: no key shipped) and never change afterwards;
// - heads: accepted only when signed by the log, cosigned by every pinned witness, fresh,
//   and consistent with the largest head ever accepted; a smaller head is checked as a
//   prefix and never replaces the largest;
// - gossip: a head another device or member saw is checked against this view;
// - monitor: ``audit`` downloads every entry since the last audited head, recomputes
//   the root, and keeps the entries under this device's own label.
// Two heads that cannot both be true are a fork: it is kept in the vault and from then
// on this view accepts nothing, so nothing it would prove is used.
import { ApiError } from "../api/errors";
import type { Api } from "../api/http";
import { b64u, equal, unb64u } from "../e2ee/bytes";
import { CompactTree, type CompactTreeJson } from "../e2ee/compact_tree";
import { CryptoError } from "../e2ee/errors";
import type { DeviceKind } from "../e2ee/identity";
import { leafHash } from "../e2ee/merkle";
import { type CertifiedDevice, entryLabel, type LabelChain, type LogRecord, parseLogEntry, verifyChain, verifyKexRegistration, verifyLabel } from "../e2ee/transparency";
import { checkConsistency, checkInclusion, cosigners, parseTreeHead, type TreeHead, verifyVrfKey } from "../e2ee/tree_heads";

const MAX_AGE_MS = 3600_000;
const SKEW_MS = 300_000;
const PAGE = 1000;

export class KeyTransparencyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeyTransparencyError";
  }
}

/** Two heads of the log that cannot both be true: the log showed different histories
 * to different devices (or to this one at different times). */
export class ForkDetectedError extends KeyTransparencyError {
  constructor(message: string) {
    super(message);
    this.name = "ForkDetectedError";
  }
}

export interface LogData {
  logKey?: string;
  vrfKey?: string;
  witnesses?: string[]; // pinned with the log key: each must cosign every head
  head?: { size: number; root: string; timestamp: number; sig: string };
  fork?: string; // the inconsistency found: this view accepts nothing more
  monitor?: CompactTreeJson; // the audited prefix of the log
  ownLabel?: string;
  own?: [number, string][]; // entries under the own label (index, leaf), from the start
  reported?: string[]; // what the monitor already alerted about
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

export interface Audited {
  size: number;
  own: [number, Uint8Array][];
  refused: string; // why the log's current head was refused (audited up to ours)
}

interface HeadAnswer {
  tree_head: unknown;
  cosignatures?: unknown[];
}

export class LogView {
  /** Called when the largest accepted head grows (the monitor audits up to it). */
  onNewHead: (() => void) | null = null;
  private readonly gossipChecked = new Set<string>();

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

  get witnesses(): Uint8Array[] {
    return (this.data.witnesses ?? []).map((key) => unb64u(key, 32));
  }

  get forked(): string | null {
    return this.data.fork ?? null;
  }

  async start(): Promise<void> {
    const info = await this.api.get<HeadAnswer & { log_key: string; vrf_key: string; vrf_key_sig: string; witnesses?: unknown[] }>("keys/log");
    if (!this.data.logKey) {
      const logKey = unb64u(info.log_key, 32);
      await verifyVrfKey(logKey, unb64u(info.vrf_key, 32), unb64u(info.vrf_key_sig, 64));
      const witnesses = (info.witnesses ?? []).map((key) => b64u(unb64u(key, 32, "witness")));
      this.data.logKey = info.log_key;
      this.data.vrfKey = info.vrf_key;
      this.data.witnesses = witnesses;
    } else if (info.log_key !== this.data.logKey) {
      throw new KeyTransparencyError("the server's log key changed");
    }
    await this.accept(info.tree_head, info.cosignatures ?? []);
  }

  private largest(): TreeHead | null {
    const head = this.data.head;
    return head ? { size: head.size, root: unb64u(head.root, 32), timestamp: head.timestamp, signature: unb64u(head.sig, 64) } : null;
  }

  private parse(value: unknown): Promise<TreeHead> {
    return parseTreeHead(value, this.logPublic).catch((error: unknown) => {
      throw new KeyTransparencyError(`tree head refused: ${String(error)}`);
    });
  }

  private refuseIfForked(): void {
    if (this.data.fork) throw new ForkDetectedError(this.data.fork);
  }

  /** Keep the fork found, and raise it. */
  private fork(message: string): never {
    this.data.fork ??= message;
    throw new ForkDetectedError(message);
  }

  /** A head this device may accept on its own: signed, cosigned, fresh. */
  private async check(value: unknown, cosignatures: unknown[]): Promise<TreeHead> {
    const head = await this.parse(value);
    if (head.size === 0) return head; // the empty tree commits to nothing
    const required = this.witnesses;
    const signedBy = await cosigners(cosignatures, this.logPublic, required, head);
    if (signedBy.length < required.length) {
      throw new KeyTransparencyError(`tree head cosigned by ${signedBy.length} of the ${required.length} witnesses required`);
    }
    const now = this.now();
    if (head.timestamp > now + SKEW_MS) throw new KeyTransparencyError("tree head from the future");
    if (head.timestamp < now - MAX_AGE_MS) throw new KeyTransparencyError("tree head too old: the log may hide recent changes");
    return head;
  }

  /** A head signed by the pinned key, cosigned, fresh, and consistent with the largest
   * head; it becomes the largest when larger. */
  async accept(value: unknown, cosignatures: unknown[] = []): Promise<TreeHead> {
    this.refuseIfForked();
    const head = await this.check(value, cosignatures);
    const largest = this.largest();
    if (largest !== null) await this.link(head, largest);
    if (largest === null || head.size > largest.size) {
      this.data.head = { size: head.size, root: b64u(head.root), timestamp: head.timestamp, sig: b64u(head.signature) };
      this.onNewHead?.();
    }
    return head;
  }

  /** A head the log answered an append with (maybe not cosigned yet): it must be the
   * log's and consistent with this view; it becomes the view only if acceptable. */
  async note(value: unknown, cosignatures: unknown[] = []): Promise<TreeHead> {
    this.refuseIfForked();
    const head = await this.parse(value);
    const largest = this.largest();
    if (largest !== null) await this.link(head, largest);
    try {
      await this.accept(value, cosignatures);
    } catch (error) {
      if (error instanceof ForkDetectedError || !(error instanceof KeyTransparencyError)) throw error;
      // consistent; the monitor reaches it once the witnesses cosign a head
    }
    return head;
  }

  /** ForkDetectedError unless one of the two heads extends the other. */
  private async link(head: TreeHead, largest: TreeHead): Promise<void> {
    const [small, big] = head.size <= largest.size ? [head, largest] : [largest, head];
    if (small.size === big.size) {
      if (!equal(small.root, big.root)) this.fork(`two different trees of size ${small.size}`);
      return;
    }
    let proof: string[];
    try {
      proof = (await this.api.get<{ proof: string[] }>(`keys/log/consistency?first=${small.size}&second=${big.size}`)).proof;
    } catch (error) {
      // The log no longer has a head this device accepted: rewritten, or emptied.
      if (error instanceof ApiError && error.code === "not_found") this.fork(`the log no longer has the ${big.size} entries of a head it signed`);
      throw error;
    }
    try {
      await checkConsistency(small, big, proof);
    } catch (error) {
      if (error instanceof CryptoError) this.fork(`the heads of sizes ${small.size} and ${big.size} disagree`);
      throw error;
    }
  }

  gossip(): { size: number; root: string } | null {
    return this.data.head ? { size: this.data.head.size, root: this.data.head.root } : null;
  }

  /** A head another device or member saw (in an envelope or a room event), checked
   * against this view: ForkDetectedError if they cannot both be true. A larger head
   * that passes every check becomes the largest. Each head is checked once. */
  async observeGossip(size: number, root: string): Promise<void> {
    this.refuseIfForked();
    const key = `${size}:${root}`;
    if (this.gossipChecked.has(key)) return;
    const largest = this.largest();
    if (largest !== null && size === largest.size) {
      if (root !== this.data.head!.root) this.fork(`another device saw a different tree of size ${size}`);
      this.gossipChecked.add(key);
      return;
    }
    let answer: HeadAnswer;
    try {
      answer = await this.api.get<HeadAnswer>(`keys/log/tree-head?size=${size}`);
    } catch (error) {
      if (error instanceof ApiError && error.code === "not_found") this.fork(`the log denies the tree of size ${size} another device saw`);
      throw error;
    }
    const signed = await this.parse(answer.tree_head);
    if (signed.size !== size || b64u(signed.root) !== root) this.fork(`the log signs another tree of size ${size} than another device saw`);
    if (largest !== null) await this.link(signed, largest);
    if (largest === null || size > largest.size) {
      try {
        await this.accept(answer.tree_head, answer.cosignatures ?? []);
      } catch (error) {
        if (error instanceof ForkDetectedError || !(error instanceof KeyTransparencyError)) throw error;
        // consistent, but not fresh or cosigned enough to be this view
      }
    }
    this.gossipChecked.add(key);
  }

  /** ``nationalId``'s identity key and devices of ``kind``, each proof checked. */
  async identityOf(nationalId: string, kind: DeviceKind = "device"): Promise<VerifiedIdentity> {
    if (!this.data.logKey) await this.start();
    const answer = await this.api.get<{
      national_id: string;
      label: string;
      vrf_proof: string;
      tree_head: unknown;
      cosignatures?: unknown[];
      entries: { index: number; entry: string; proof: string[] }[];
      kex_keys: { device: number; kex_key: string; signature: string }[];
    }>(`keys/practitioners/${encodeURIComponent(nationalId)}`);
    const head = await this.accept(answer.tree_head, answer.cosignatures ?? []);
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

  /** ``nationalId``'s label, proven by the VRF alone: no head is needed for it (the
   * monitor starts even while the witnesses have not cosigned a head yet). */
  async labelOf(nationalId: string): Promise<Uint8Array> {
    if (!this.data.logKey) await this.start();
    const answer = await this.api.get<{ national_id: string; label: string; vrf_proof: string }>(`keys/practitioners/${encodeURIComponent(nationalId)}`);
    try {
      const label = unb64u(answer.label, 32, "label");
      await verifyLabel(this.vrfPublic, nationalId, label, unb64u(answer.vrf_proof, 80, "vrf_proof"));
      return label;
    } catch (error) {
      if (error instanceof CryptoError) throw new KeyTransparencyError(`the label of ${nationalId} is not the VRF's: ${error.message}`);
      throw error;
    }
  }

  /** The answer of an append: included in a head of the log consistent with this view. */
  async checkAppended(answer: { index: number; entry: string; proof: string[]; tree_head: unknown; cosignatures?: unknown[] }): Promise<LogRecord> {
    const head = await this.note(answer.tree_head, answer.cosignatures ?? []);
    const leaf = new TextEncoder().encode(answer.entry);
    try {
      await checkInclusion(leaf, answer.index, answer.proof, head);
      return await parseLogEntry(leaf, this.logPublic);
    } catch (error) {
      throw new KeyTransparencyError(`the log's answer is invalid: ${String(error)}`);
    }
  }

  /** The monitor: refresh the head, then download every entry from the last audited
   * size up to the largest accepted head, recompute its root, and collect the entries
   * under ``ownLabel``. Entries that do not add up to the signed root are a fork. */
  async audit(ownLabel: Uint8Array): Promise<Audited> {
    this.refuseIfForked();
    let refused = "";
    const notify = this.onNewHead;
    this.onNewHead = null; // this pass audits up to the new head itself
    try {
      await this.start();
    } catch (error) {
      if (error instanceof ForkDetectedError || !(error instanceof KeyTransparencyError)) throw error;
      refused = error.message; // not acceptable: audit up to the largest we have
    } finally {
      this.onNewHead = notify;
    }
    const target = this.largest();
    if (target === null) return { size: 0, own: [], refused };
    const label = b64u(ownLabel);
    if (this.data.ownLabel !== label) Object.assign(this.data, { ownLabel: label, monitor: undefined, own: [] });
    const tree = CompactTree.fromJson(this.data.monitor);
    const own = (this.data.own ?? []).map(([index, leaf]) => [index, new TextEncoder().encode(leaf)] as [number, Uint8Array]);
    while (tree.size < target.size) {
      const end = Math.min(target.size, tree.size + PAGE);
      const page = await this.api.get<{ entries: { index: number; entry: string }[] }>(`keys/log/entries?start=${tree.size}&end=${end}`);
      if (!page.entries.length) throw new KeyTransparencyError("the log withholds entries of its own head");
      for (const item of page.entries) {
        if (item.index !== tree.size) throw new KeyTransparencyError("the log skipped an entry");
        const leaf = new TextEncoder().encode(item.entry);
        await tree.append(await leafHash(leaf));
        let entryOf: Uint8Array;
        try {
          entryOf = entryLabel(leaf);
        } catch {
          throw new KeyTransparencyError(`log entry ${item.index} has no label`);
        }
        if (equal(entryOf, ownLabel)) own.push([item.index, leaf]);
        if (tree.size === end) break;
      }
    }
    if (!equal(await tree.root(), target.root)) this.fork(`the log's ${target.size} entries do not add up to its signed head`);
    this.data.monitor = tree.toJson();
    this.data.own = own.map(([index, leaf]) => [index, new TextDecoder().decode(leaf)]);
    return { size: target.size, own, refused };
  }
}
