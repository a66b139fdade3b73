// Signed tree heads, witness cosignatures, and the proofs tying entries and heads
// together (docs/protocol.md §10.4.2).
import { b64u, unb64u } from "./bytes";
import { expectInt, expectObject, type JsonObject } from "./canonical";
import { CryptoError } from "./errors";
import * as labels from "./labels";
import { leafHash, verifyConsistency, verifyInclusion } from "./merkle";
import { sha256, type SigningKey, verify } from "./primitives";
import { logKeyId } from "./transparency";

export interface TreeHead {
  size: number;
  root: Uint8Array;
  timestamp: number;
  signature: Uint8Array;
}

export async function headBody(logPublic: Uint8Array, size: number, root: Uint8Array, timestamp: number): Promise<JsonObject> {
  return { v: 2, type: "tree_head", log: await logKeyId(logPublic), size, root: b64u(root), timestamp };
}

export async function headJson(logPublic: Uint8Array, head: TreeHead): Promise<JsonObject> {
  return { head: await headBody(logPublic, head.size, head.root, head.timestamp), sig: b64u(head.signature) };
}

export async function signTreeHead(logKey: SigningKey, size: number, root: Uint8Array, timestamp: number): Promise<TreeHead> {
  const body = await headBody(logKey.publicKey, size, root, timestamp);
  return { size, root, timestamp, signature: await logKey.sign(labels.TREE_HEAD, body) };
}

export async function parseTreeHead(value: unknown, logPublic: Uint8Array): Promise<TreeHead> {
  const outer = expectObject(value, ["head", "sig"], "tree head");
  const body = expectObject(outer.head, ["v", "type", "log", "size", "root", "timestamp"], "tree head");
  if (body.v !== 2 || body.type !== "tree_head" || body.log !== (await logKeyId(logPublic))) {
    throw new CryptoError("bad_encoding", "tree head from another log or version");
  }
  const signature = unb64u(outer.sig, 64, "sig");
  await verify(logPublic, signature, labels.TREE_HEAD, body);
  return { size: expectInt(body.size, "size"), root: unb64u(body.root, 32, "root"), timestamp: expectInt(body.timestamp, "timestamp"), signature };
}

export async function verifyVrfKey(logPublic: Uint8Array, vrfPublic: Uint8Array, signature: Uint8Array): Promise<void> {
  await verify(logPublic, signature, labels.LOG_KEYS, { v: 2, type: "log_keys", log: await logKeyId(logPublic), vrf_key: b64u(vrfPublic) });
}

export async function witnessId(witnessPublic: Uint8Array): Promise<string> {
  return b64u(await sha256(witnessPublic));
}

async function cosignatureBody(logPublic: Uint8Array, witnessPublic: Uint8Array, head: TreeHead): Promise<JsonObject> {
  return {
    v: 2,
    type: "cosignature",
    log: await logKeyId(logPublic),
    witness: await witnessId(witnessPublic),
    size: head.size,
    root: b64u(head.root),
    timestamp: head.timestamp,
  };
}

export async function cosign(witnessKey: SigningKey, logPublic: Uint8Array, head: TreeHead): Promise<JsonObject> {
  const body = await cosignatureBody(logPublic, witnessKey.publicKey, head);
  return { witness: await witnessId(witnessKey.publicKey), sig: b64u(await witnessKey.sign(labels.COSIGNATURE, body)) };
}

export async function verifyCosignature(value: unknown, logPublic: Uint8Array, witnessPublic: Uint8Array, head: TreeHead): Promise<void> {
  const item = expectObject(value, ["witness", "sig"], "cosignature");
  if (item.witness !== (await witnessId(witnessPublic))) throw new CryptoError("bad_signature", "cosignature of another witness");
  await verify(witnessPublic, unb64u(item.sig, 64, "sig"), labels.COSIGNATURE, await cosignatureBody(logPublic, witnessPublic, head));
}

export async function checkInclusion(leaf: Uint8Array, index: number, proof: unknown[], head: TreeHead): Promise<void> {
  await verifyInclusion(await leafHash(leaf), index, head.size, proof.map((node) => unb64u(node, 32, "proof")), head.root);
}

export async function checkConsistency(old: TreeHead, next: TreeHead, proof: unknown[]): Promise<void> {
  await verifyConsistency(old.size, next.size, old.root, next.root, proof.map((node) => unb64u(node, 32, "proof")));
}

/** The witnesses among ``witnesses`` (public keys) whose cosignature of ``head`` is in
 * ``values`` and verifies; malformed or unknown cosignatures are ignored. */
export async function cosigners(values: unknown[], logPublic: Uint8Array, witnesses: Uint8Array[], head: TreeHead): Promise<Uint8Array[]> {
  const byId = new Map<string, Uint8Array>();
  for (const key of witnesses) byId.set(await witnessId(key), key);
  const found = new Map<string, Uint8Array>();
  for (const value of values) {
    if (value === null || typeof value !== "object") continue;
    const id = (value as { witness?: unknown }).witness;
    const key = typeof id === "string" ? byId.get(id) : undefined;
    if (!key || found.has(id as string)) continue;
    try {
      await verifyCosignature(value, logPublic, key, head);
      found.set(id as string, key);
    } catch (error) {
      if (!(error instanceof CryptoError)) throw error;
    }
  }
  return [...found.values()];
}
