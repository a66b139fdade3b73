// The monitor of this practitioner's own label (client/trust.py: check_my_devices, and
// client/directory.py: monitor): every entry of the log is downloaded once (LogView's
// audit), the ones under the practitioner's label are checked as one chain, and each
// identity key or device (number and full signing key) this device does not know is
// reported once. A lookup alone would not do: the server may leave the newest entries
// of a label out of a lookup answer, never out of the log it signs.
import { b64u, unb64u } from "../e2ee/bytes";
import { CryptoError } from "../e2ee/errors";
import { type LogRecord, parseLogEntry, verifyChain } from "../e2ee/transparency";
import { KeyTransparencyError, type LogView } from "./logview";

export interface MonitorFinding {
  kind: "unknown_identity_key" | "unknown_device";
  subject: string; // the identity key (b64u), or the device number
  detail: string;
}

export interface MonitorReport {
  size: number;
  findings: MonitorFinding[]; // new ones only: each is reported once
  refused: string;
}

/** Audit the log and read the entries under ``label`` (``nationalId``'s), checked as
 * one chain: a ``CryptoError`` when they are not one. */
export async function auditOwnChain(log: LogView, nationalId: string, label: Uint8Array): Promise<{ size: number; refused: string; records: [number, LogRecord][] }> {
  const audited = await log.audit(label);
  const records: [number, LogRecord][] = [];
  for (const [index, leaf] of audited.own) records.push([index, await parseLogEntry(leaf, log.logPublic)]);
  await verifyChain(nationalId, label, records);
  return { size: audited.size, refused: audited.refused, records };
}

/** Audit the log and compare the entries under ``nationalId``'s label with the
 * identity key and devices this device knows. */
export async function monitorOwnLabel(log: LogView, nationalId: string, identityKey: Uint8Array, knownDevices: Record<string, string>): Promise<MonitorReport> {
  const label = log.data.ownLabel ? unb64u(log.data.ownLabel, 32) : await log.labelOf(nationalId);
  let audited;
  try {
    audited = await auditOwnChain(log, nationalId, label);
  } catch (error) {
    if (error instanceof CryptoError) throw new KeyTransparencyError(`my own entries in the log are invalid: ${error.message}`);
    throw error;
  }
  const records = audited.records;
  const reported = new Set(log.data.reported ?? []);
  const findings: MonitorFinding[] = [];
  for (const [index, record] of records) {
    if (record.type === "identity" && b64u(record.identityKey) !== b64u(identityKey)) {
      const key = `identity:${b64u(record.identityKey)}`;
      if (reported.has(key)) continue;
      reported.add(key);
      findings.push({ kind: "unknown_identity_key", subject: b64u(record.identityKey), detail: `an identity key you do not hold was published for you (log entry ${index})` });
    } else if (record.type === "device" && knownDevices[String(record.device)] !== b64u(record.signKey)) {
      const key = `device:${record.device}:${b64u(record.signKey)}`;
      if (reported.has(key)) continue;
      reported.add(key);
      findings.push({ kind: "unknown_device", subject: String(record.device), detail: `device ${record.device} (log entry ${index}) is certified for you` });
    }
  }
  log.data.reported = [...reported].sort();
  return { size: audited.size, findings, refused: audited.refused };
}

/** The signing key the audited log certifies for one of this practitioner's devices
 * (the newest entry naming it), to remember it once the user says it is theirs. */
export function auditedSignKey(log: LogView, device: number): string | null {
  let found: string | null = null;
  for (const [, leaf] of log.data.own ?? []) {
    const entry = (JSON.parse(leaf) as { entry: { type: string; device?: number; sign_key?: string } }).entry;
    if (entry.type === "device" && entry.device === device && typeof entry.sign_key === "string") found = entry.sign_key;
  }
  return found;
}
