// The shared test vectors' runner (tests/vectors/*.json), loaded by the browser tests'
// own page; never shipped with the app. Each runner recomputes the vector's outputs from
// its inputs, as tests/e2ee/test_vectors.py and tests/keylog/test_vectors.py do.
import { runners } from "./vector_runners";

export interface CaseResult {
  name: string;
  ok: boolean;
  error?: string;
}

async function run(file: string, data: unknown, context: Record<string, unknown>): Promise<CaseResult[]> {
  const runner = runners[file];
  if (!runner) return [{ name: file, ok: false, error: "no runner for this file" }];
  const results: CaseResult[] = [];
  const check = async (name: string, body: () => Promise<void> | void): Promise<void> => {
    try {
      await body();
      results.push({ name, ok: true });
    } catch (error) {
      results.push({ name, ok: false, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) });
    }
  };
  await runner(data as never, check, context);
  return results;
}

(globalThis as unknown as { relaisVectors: unknown }).relaisVectors = { run, files: Object.keys(runners) };
