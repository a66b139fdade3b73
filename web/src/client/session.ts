// When the server stops accepting this browser's device token (docs/web.md, "When the
// session ends"): why, read from the key-transparency log, and what may follow.
//
// A token that merely expired (RELAIS_TOKEN_IDLE_DAYS without use) leaves no trace in
// the log; a revocation does: DELETE devices/{id} from another device ("lost", ...),
// "log out everywhere else" and the end of a Pro Santé Connect session ("logout").
// After a session that ended (expired, or revoked with "logout"), a new login gives a
// new device number, which this browser certifies with the identity key it holds
// (docs/protocol.md §10.4.5). A device revoked for any other reason was removed by its
// practitioner: it keeps its history readable here and sends nothing more.
import { equal, unb64u } from "../e2ee/bytes";
import { CryptoError } from "../e2ee/errors";
import type { LogRecord, RevocationEntry } from "../e2ee/transparency";
import type { LogView } from "./logview";
import { auditOwnChain } from "./monitor";

/** ``active``: the token works (as far as this browser knows); ``checking``: refused,
 * finding out why; ``ended``: log in again to go on; ``removed``: revoked for good. */
export type SessionState = "active" | "checking" | "ended" | "removed";

/** Revocation reasons after which a new login may go on with this browser's keys. */
const SESSION_END_REASONS = new Set(["logout"]);

/** The state a refused token leaves, given the revocation of this device the log holds
 * (null: none, the token expired). */
export function stateAfter(revocation: RevocationEntry | null): "ended" | "removed" {
  return revocation === null || SESSION_END_REASONS.has(revocation.reason) ? "ended" : "removed";
}

/** The revocation of ``device`` (with ``signKey``) among a label's records, if any. */
export function revocationOf(records: [number, LogRecord][], device: number, signKey: Uint8Array): RevocationEntry | null {
  for (const [, record] of records) {
    if (record.type === "revocation" && record.device === device && equal(record.signKey, signKey)) return record;
  }
  return null;
}

/** Read the log without a token (its reads are public): the revocation of this device
 * under the practitioner's own label, whose entries are checked as one chain. Null when
 * the log holds none, or when the label was never proven on this browser. */
export async function revocationInLog(log: LogView, nationalId: string, device: number, signKey: Uint8Array): Promise<RevocationEntry | null> {
  if (!log.data.ownLabel) return null;
  await log.start();
  try {
    const audited = await auditOwnChain(log, nationalId, unb64u(log.data.ownLabel, 32));
    return revocationOf(audited.records, device, signKey);
  } catch (error) {
    if (error instanceof CryptoError) return null; // the monitor reports a bad chain
    throw error;
  }
}
