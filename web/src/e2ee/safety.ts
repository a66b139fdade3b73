// Safety numbers (docs/protocol.md §10.8): over the identity keys only.
import { b64u, unb64u } from "./bytes";
import { canonicalJson, parseCanonical, signingInput } from "./canonical";
import { CryptoError } from "./errors";
import { SAFETY_NUMBER } from "./labels";
import { sha512 } from "./primitives";

const QR_PREFIX = "relais-safety:2:";

export function fingerprint(nationalId: string, identityKey: Uint8Array): Promise<Uint8Array> {
  return sha512(signingInput(SAFETY_NUMBER, { national_id: nationalId, identity_key: b64u(identityKey) }));
}

function digits(print: Uint8Array): string {
  const groups: string[] = [];
  for (let i = 0; i < 30; i += 5) {
    let value = 0;
    for (let j = i; j < i + 5; j++) value = (value * 256 + print[j]!) % 100_000;
    groups.push(String(value).padStart(5, "0"));
  }
  return groups.join(" ");
}

export interface SafetyNumber {
  digits: string;
  qrPayload: string;
}

function compareParties(a: [string, Uint8Array], b: [string, Uint8Array]): number {
  if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1;
  for (let i = 0; i < Math.min(a[1].length, b[1].length); i++) if (a[1][i] !== b[1][i]) return a[1][i]! - b[1][i]!;
  return a[1].length - b[1].length;
}

export async function safetyNumber(firstId: string, firstKey: Uint8Array, secondId: string, secondKey: Uint8Array): Promise<SafetyNumber> {
  const parties: [string, Uint8Array][] = [
    [firstId, firstKey],
    [secondId, secondKey],
  ];
  parties.sort(compareParties);
  const prints = await Promise.all(parties.map(([id, key]) => fingerprint(id, key)));
  const qr = canonicalJson({
    parties: parties.map(([id], i) => ({ national_id: id, fingerprint: b64u(prints[i]!.slice(0, 32)) })),
  });
  return { digits: prints.map(digits).join(" "), qrPayload: QR_PREFIX + b64u(qr) };
}

export function qrMatches(scanned: string, expected: SafetyNumber): boolean {
  if (!scanned.startsWith(QR_PREFIX)) throw new CryptoError("bad_encoding", "not a Relais safety-number code");
  parseCanonical(unb64u(scanned.slice(QR_PREFIX.length), undefined, "qr"));
  return scanned === expected.qrPayload;
}
