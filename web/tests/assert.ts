// Assertions of the vectors runner: a failure names what differed.
import { canonicalText } from "../src/e2ee/canonical";
import { CryptoError } from "../src/e2ee/errors";

function text(value: unknown): string {
  try {
    return canonicalText(value); // object keys in one order
  } catch {
    return JSON.stringify(value);
  }
}

export function assertEqual(actual: unknown, expected: unknown, what: string): void {
  const a = text(actual);
  const e = text(expected);
  if (a !== e) throw new Error(`${what}: got ${a?.slice(0, 300)}, expected ${e?.slice(0, 300)}`);
}

export function assertTrue(condition: boolean, what: string): void {
  if (!condition) throw new Error(what);
}

export async function assertRefused(body: () => Promise<unknown> | unknown, what: string, code?: string): Promise<void> {
  try {
    await body();
  } catch (error) {
    if (!(error instanceof CryptoError)) throw new Error(`${what}: not a CryptoError: ${String(error)}`);
    if (code !== undefined && error.code !== code) throw new Error(`${what}: refused with ${error.code}, expected ${code}`);
    return;
  }
  throw new Error(`${what}: accepted`);
}
