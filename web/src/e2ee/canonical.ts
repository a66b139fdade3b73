// Canonical JSON (docs/protocol.md §10.2): keys sorted by code point, no whitespace,
// strings escaped as JSON.stringify does, integers within ±(2^53−1), no floats. A
// received document must already be canonical, so every value has one encoding.
import { concat, fromUtf8, utf8 } from "./bytes";
import { CryptoError } from "./errors";

export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

const SURROGATE = /[\ud800-\udfff]/;

function compareCodePoints(a: string, b: string): number {
  // Without surrogates, UTF-16 code units sort as code points (every key of the protocol).
  if (!SURROGATE.test(a) && !SURROGATE.test(b)) return a < b ? -1 : a > b ? 1 : 0;
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

function encode(value: unknown, depth: number): string {
  if (depth > 16) throw new CryptoError("bad_encoding", "nested too deeply");
  if (value === null || typeof value === "boolean") return JSON.stringify(value);
  if (typeof value === "string") {
    if (SURROGATE.test(value) && /[\ud800-\udfff]/u.test(value.replace(/[\ud800-\udbff][\udc00-\udfff]/g, ""))) {
      throw new CryptoError("bad_encoding", "lone surrogate");
    }
    return JSON.stringify(value);
  }
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new CryptoError("bad_encoding", "integer out of range or a float");
    return Object.is(value, -0) ? "0" : String(value);
  }
  if (Array.isArray(value)) return `[${value.map((item) => encode(item, depth + 1)).join(",")}]`;
  if (typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => compareCodePoints(a, b));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${encode(v, depth + 1)}`).join(",")}}`;
  }
  throw new CryptoError("bad_encoding", `${typeof value} is not allowed`);
}

export function canonicalText(value: unknown): string {
  return encode(value, 0);
}

export function canonicalJson(value: unknown): Uint8Array {
  return utf8(encode(value, 0));
}

/** A JSON object that must already be canonical: re-encoding gives the same bytes. */
export function parseCanonical(data: Uint8Array, maxBytes = 256 * 1024): JsonObject {
  if (data.length > maxBytes) throw new CryptoError("bad_encoding", "too large");
  const text = fromUtf8(data);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new CryptoError("bad_encoding", "not JSON");
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new CryptoError("bad_encoding", "not a JSON object");
  }
  if (encode(value, 0) !== text) throw new CryptoError("bad_encoding", "not canonical JSON");
  return value as JsonObject;
}

/** ``label || 0x00 || canonical(value)``: what is signed or hashed. */
export function signingInput(label: string, value: unknown): Uint8Array {
  return concat(utf8(label), new Uint8Array([0]), canonicalJson(value));
}

export function expectObject(value: unknown, keys: string[], field = "object"): JsonObject {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new CryptoError("bad_encoding", `${field} must be an object`);
  }
  const present = Object.keys(value);
  if (present.length !== keys.length || !keys.every((k) => Object.hasOwn(value, k))) {
    throw new CryptoError("bad_encoding", `${field}: fields ${present.sort().join(",")}, expected ${[...keys].sort().join(",")}`);
  }
  return value as JsonObject;
}

export function expectInt(value: unknown, field: string, minimum = 0, maximum = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < minimum || value > maximum) {
    throw new CryptoError("bad_encoding", `${field} must be an integer in range`);
  }
  return value;
}

export function expectStr(value: unknown, field: string, maxLength = 256, allowEmpty = false): string {
  if (typeof value !== "string" || value.length > maxLength || (!value && !allowEmpty)) {
    throw new CryptoError("bad_encoding", `${field} must be a string`);
  }
  return value;
}
