// Key-transparency log entries (docs/protocol.md §10.4.2): labels hidden by the VRF,
// the identity, device and revocation entries, and the validity of one label's chain.
import { b64u, concat, equal, unb64u, utf8 } from "./bytes";
import { canonicalJson, expectInt, expectObject, expectStr, type JsonObject, parseCanonical } from "./canonical";
import { CryptoError } from "./errors";
import { certificateBody, type DeviceKind } from "./identity";
import * as labels from "./labels";
import { sha256, type SigningKey, verify } from "./primitives";
import { vrfProve, vrfProofToHash, vrfVerify } from "./vrf";

export type IdentityKind = "practitioner" | "organisation";
const REVOCATION_REASONS = ["lost", "logout", "replaced", "administrative", "identity_reset"];
const LABEL_BYTES = 32;

export async function logKeyId(logPublic: Uint8Array): Promise<string> {
  return b64u(await sha256(logPublic));
}

export function deviceKindFor(kind: IdentityKind): DeviceKind {
  return kind === "organisation" ? "archiver" : "device";
}

export function labelInput(nationalId: string): Uint8Array {
  return concat(utf8(labels.LOG_LABEL), new Uint8Array([0]), utf8(nationalId));
}

export async function labelFor(vrfSecret: Uint8Array, nationalId: string): Promise<{ label: Uint8Array; proof: Uint8Array }> {
  const proof = await vrfProve(vrfSecret, labelInput(nationalId));
  return { label: (await vrfProofToHash(proof)).slice(0, LABEL_BYTES), proof };
}

export async function verifyLabel(vrfPublic: Uint8Array, nationalId: string, label: Uint8Array, proof: Uint8Array): Promise<void> {
  const output = await vrfVerify(vrfPublic, labelInput(nationalId), proof);
  if (!equal(output.slice(0, LABEL_BYTES), label)) throw new CryptoError("bad_proof", "label is not the VRF output");
}

export function deviceBody(type: "device_certificate" | "device_registration", nationalId: string, device: number, kind: DeviceKind, signKey: Uint8Array, identityKey: Uint8Array): JsonObject {
  return { ...certificateBody(nationalId, device, kind, signKey, identityKey), type };
}

export function signDeviceRegistration(deviceKey: SigningKey, nationalId: string, device: number, kind: DeviceKind, identityKey: Uint8Array): Promise<Uint8Array> {
  return deviceKey.sign(labels.DEVICE_REGISTRATION, deviceBody("device_registration", nationalId, device, kind, deviceKey.publicKey, identityKey));
}

export function kexRegistrationBody(nationalId: string, device: number, signKey: Uint8Array, kexKey: Uint8Array): JsonObject {
  return { v: 2, type: "kex_registration", national_id: nationalId, device, sign_key: b64u(signKey), kex_key: b64u(kexKey) };
}

export function signKexRegistration(deviceKey: SigningKey, nationalId: string, device: number, kexKey: Uint8Array): Promise<Uint8Array> {
  return deviceKey.sign(labels.KEX_REGISTRATION, kexRegistrationBody(nationalId, device, deviceKey.publicKey, kexKey));
}

export function verifyKexRegistration(nationalId: string, device: number, signKey: Uint8Array, kexKey: Uint8Array, signature: Uint8Array): Promise<void> {
  return verify(signKey, signature, labels.KEX_REGISTRATION, kexRegistrationBody(nationalId, device, signKey, kexKey));
}

export interface IdentityEntry {
  type: "identity";
  label: Uint8Array;
  prev: number;
  identityKey: Uint8Array;
  kind: IdentityKind;
  binding: Uint8Array;
  issuedAt: number;
}

export interface DeviceEntry {
  type: "device";
  label: Uint8Array;
  prev: number;
  device: number;
  kind: DeviceKind;
  identityKey: Uint8Array;
  signKey: Uint8Array;
  crossSig: Uint8Array;
  selfSig: Uint8Array;
  issuedAt: number;
}

export interface RevocationEntry {
  type: "revocation";
  label: Uint8Array;
  prev: number;
  device: number;
  signKey: Uint8Array;
  reason: string;
  revokedAt: number;
}

export type LogRecord = IdentityEntry | DeviceEntry | RevocationEntry;

const LOG_LABELS: Record<LogRecord["type"], string> = {
  identity: labels.LOG_IDENTITY,
  device: labels.LOG_DEVICE,
  revocation: labels.LOG_REVOCATION,
};
const FIELDS: Record<LogRecord["type"], string[]> = {
  identity: ["identity_key", "kind", "binding", "issued_at"],
  device: ["device", "kind", "identity_key", "sign_key", "cross_sig", "self_sig", "issued_at"],
  revocation: ["device", "sign_key", "reason", "revoked_at"],
};
const COMMON = ["v", "type", "log", "label", "prev"];

/** The leaf of ``record``, signed by the log (the log's side; reproduces the vectors). */
export async function issueEntry(logKey: SigningKey, record: LogRecord): Promise<Uint8Array> {
  const common: JsonObject = { v: 2, type: record.type, log: await logKeyId(logKey.publicKey), label: b64u(record.label), prev: record.prev };
  let body: JsonObject;
  if (record.type === "identity") {
    body = { ...common, identity_key: b64u(record.identityKey), kind: record.kind, binding: b64u(record.binding), issued_at: record.issuedAt };
  } else if (record.type === "device") {
    body = {
      ...common,
      device: record.device,
      kind: record.kind,
      identity_key: b64u(record.identityKey),
      sign_key: b64u(record.signKey),
      cross_sig: b64u(record.crossSig),
      self_sig: b64u(record.selfSig),
      issued_at: record.issuedAt,
    };
  } else {
    body = { ...common, device: record.device, sign_key: b64u(record.signKey), reason: record.reason, revoked_at: record.revokedAt };
  }
  return canonicalJson({ entry: body, sig: b64u(await logKey.sign(LOG_LABELS[record.type], body)) });
}

/** A leaf's encoding and log signature checked; what it says. */
export async function parseLogEntry(leaf: Uint8Array, logPublic: Uint8Array): Promise<LogRecord> {
  const outer = expectObject(parseCanonical(leaf), ["entry", "sig"], "log entry");
  const body = outer.entry as JsonObject;
  const signature = unb64u(outer.sig, 64, "sig");
  if (body === null || typeof body !== "object" || !(typeof body.type === "string" && body.type in FIELDS)) {
    throw new CryptoError("bad_encoding", "unknown log entry type");
  }
  const type = body.type as LogRecord["type"];
  expectObject(body, [...COMMON, ...FIELDS[type]], type);
  if (body.v !== 2 || body.log !== (await logKeyId(logPublic))) throw new CryptoError("bad_encoding", "log entry from another log or version");
  await verify(logPublic, signature, LOG_LABELS[type], body);
  const label = unb64u(body.label, LABEL_BYTES, "label");
  const prev = expectInt(body.prev, "prev", -1);
  if (type === "identity") {
    if (body.kind !== "practitioner" && body.kind !== "organisation") throw new CryptoError("bad_encoding", "unknown identity kind");
    return {
      type,
      label,
      prev,
      identityKey: unb64u(body.identity_key, 32, "identity_key"),
      kind: body.kind,
      binding: unb64u(body.binding, 64, "binding"),
      issuedAt: expectInt(body.issued_at, "issued_at"),
    };
  }
  const device = expectInt(body.device, "device", 1);
  const signKey = unb64u(body.sign_key, 32, "sign_key");
  if (type === "revocation") {
    const reason = expectStr(body.reason, "reason", 32);
    if (!REVOCATION_REASONS.includes(reason)) throw new CryptoError("bad_encoding", "unknown revocation reason");
    return { type, label, prev, device, signKey, reason, revokedAt: expectInt(body.revoked_at, "revoked_at") };
  }
  if (body.kind !== "device" && body.kind !== "archiver") throw new CryptoError("bad_encoding", "unknown device kind");
  return {
    type,
    label,
    prev,
    device,
    kind: body.kind,
    identityKey: unb64u(body.identity_key, 32, "identity_key"),
    signKey,
    crossSig: unb64u(body.cross_sig, 64, "cross_sig"),
    selfSig: unb64u(body.self_sig, 64, "self_sig"),
    issuedAt: expectInt(body.issued_at, "issued_at"),
  };
}

export interface CertifiedDevice {
  device: number;
  kind: DeviceKind;
  signKey: Uint8Array;
  index: number;
  crossSig: Uint8Array;
}

export interface LabelChain {
  nationalId: string;
  label: Uint8Array;
  identityKey: Uint8Array | null;
  identityKind: IdentityKind | null;
  devices: Map<number, CertifiedDevice>;
  identityKeys: Uint8Array[];
  history: [number, LogRecord][];
  rejected: number[];
  revoked: { device: number; signKey: Uint8Array }[];
}

async function signaturesHold(record: LogRecord, nationalId: string): Promise<boolean> {
  try {
    if (record.type === "identity") {
      await verify(record.identityKey, record.binding, labels.IDENTITY_BINDING, {
        v: 2,
        type: "identity_binding",
        national_id: nationalId,
        identity_key: b64u(record.identityKey),
      });
    } else if (record.type === "device") {
      await verify(record.identityKey, record.crossSig, labels.DEVICE_CERTIFICATE, deviceBody("device_certificate", nationalId, record.device, record.kind, record.signKey, record.identityKey));
      await verify(record.signKey, record.selfSig, labels.DEVICE_REGISTRATION, deviceBody("device_registration", nationalId, record.device, record.kind, record.signKey, record.identityKey));
    }
    return true;
  } catch (error) {
    if (error instanceof CryptoError) return false;
    throw error;
  }
}

/** ``entries`` (index, record) in index order must be one unbroken chain of ``label``;
 * which identity key and devices are valid for ``nationalId``. */
export async function verifyChain(nationalId: string, label: Uint8Array, entries: [number, LogRecord][]): Promise<LabelChain> {
  const chain: LabelChain = { nationalId, label, identityKey: null, identityKind: null, devices: new Map(), identityKeys: [], history: [], rejected: [], revoked: [] };
  let previous = -1;
  const deviceEntries: [number, DeviceEntry][] = [];
  for (const [index, record] of entries) {
    if (!equal(record.label, label)) throw new CryptoError("bad_chain", `entry ${index} has another label`);
    if (record.prev !== previous || index <= previous) throw new CryptoError("bad_chain", `entry ${index} breaks the chain`);
    previous = index;
    chain.history.push([index, record]);
    if (!(await signaturesHold(record, nationalId))) {
      chain.rejected.push(index);
      continue;
    }
    if (record.type === "identity") {
      chain.identityKey = record.identityKey;
      chain.identityKind = record.kind;
      chain.identityKeys.push(record.identityKey);
    } else if (record.type === "device") {
      deviceEntries.push([index, record]);
    } else {
      chain.revoked.push({ device: record.device, signKey: record.signKey });
    }
  }
  for (const [index, entry] of deviceEntries) {
    const revoked = chain.revoked.some((r) => r.device === entry.device && equal(r.signKey, entry.signKey));
    if (!chain.identityKey || !equal(entry.identityKey, chain.identityKey) || revoked || !chain.identityKind || entry.kind !== deviceKindFor(chain.identityKind)) continue;
    chain.devices.set(entry.device, { device: entry.device, kind: entry.kind, signKey: entry.signKey, index, crossSig: entry.crossSig });
  }
  return chain;
}

/** The label of a leaf, without checking anything else: a monitor's quick look at
 * entries that are not its own (e2ee/transparency.py: entry_label). */
export function entryLabel(leaf: Uint8Array): Uint8Array {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(leaf));
  } catch {
    throw new CryptoError("bad_encoding", "log entry without a label");
  }
  const label = (value as { entry?: { label?: unknown } } | null)?.entry?.label;
  if (typeof label !== "string") throw new CryptoError("bad_encoding", "log entry without a label");
  return unb64u(label, LABEL_BYTES, "label");
}
