// The shared test vectors' runner (tests/vectors/*.json), loaded by the browser tests'
// own page; never shipped with the app.
export interface CaseResult {
  name: string;
  ok: boolean;
  error?: string;
}

export type VectorRunner = (data: unknown) => Promise<CaseResult[]>;

const runners: Record<string, VectorRunner> = {};

async function run(file: string, data: unknown): Promise<CaseResult[]> {
  const runner = runners[file];
  if (!runner) return [{ name: file, ok: false, error: "no runner for this file" }];
  return runner(data);
}

(globalThis as unknown as { relaisVectors: unknown }).relaisVectors = { run, files: Object.keys(runners) };
