// The téléexpertise billing vectors' runner (tests/vectors/teleexpertise.json,
// docs/protocol.md §12.7), loaded by the attachments test page; never shipped with the
// app. The browser's pseudonym and ledger entry must match the Python SDK's byte for byte.
import { b64u, unb64u } from "../src/e2ee/bytes";
import { canonicalText, type JsonObject } from "../src/e2ee/canonical";
import { billingTraits, openEntryWithKey, pseudonymWithKey } from "../src/teleexpertise/ledger";
import { assertEqual } from "./assert";

interface CaseResult {
  name: string;
  ok: boolean;
  error?: string;
}

interface Vectors {
  pseudonym: { key: string; cases: { patient: JsonObject; year: number; traits: JsonObject; pseudonym: string }[] };
  ledger_entry: { key: string; national_id: string; room: number; code: string; plaintext: string; sealed: string };
}

async function attempt(name: string, body: () => Promise<void>): Promise<CaseResult> {
  try {
    await body();
    return { name, ok: true };
  } catch (error) {
    return { name, ok: false, error: String(error) };
  }
}

async function run(data: Vectors): Promise<CaseResult[]> {
  const results: CaseResult[] = [];
  for (const [index, vector] of data.pseudonym.cases.entries()) {
    results.push(
      await attempt(`pseudonym ${index}`, async () => {
        assertEqual(canonicalText(billingTraits(vector.patient)), canonicalText(vector.traits), "traits");
        assertEqual(await pseudonymWithKey(unb64u(data.pseudonym.key), vector.year, vector.patient), vector.pseudonym, "pseudonym");
      }),
    );
  }
  const ledger = data.ledger_entry;
  const act = { id: 1, room: ledger.room, code: ledger.code, entry: ledger.sealed };
  results.push(
    await attempt("ledger entry opens", async () => {
      const entry = await openEntryWithKey(unb64u(ledger.key), ledger.national_id, act);
      assertEqual(canonicalText(entry as unknown as JsonObject), ledger.plaintext, "plaintext");
    }),
  );
  results.push(
    await attempt("ledger entry of another room is refused", async () => {
      const refused = await openEntryWithKey(unb64u(ledger.key), ledger.national_id, { ...act, room: ledger.room + 1 }).then(
        () => false,
        (error: { code?: string }) => error.code === "bad_ledger_entry",
      );
      assertEqual(refused, true, "refused");
      assertEqual(b64u(unb64u(ledger.sealed)), ledger.sealed, "encoding");
    }),
  );
  return results;
}

(globalThis as unknown as { relaisTeleexpertiseVectors: unknown }).relaisTeleexpertiseVectors = { run };
