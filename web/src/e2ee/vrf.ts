// ECVRF-EDWARDS25519-SHA512-TAI (RFC 9381 §5, suite 0x03): the verifiable random
// function hiding who a key-transparency log entry is about (docs/protocol.md §10.4.2).
// The RFC's algorithms step by step over @noble/curves' audited Ed25519 group
// operations; hashes from WebCrypto. As e2ee/vrf.py: the public key and Gamma must be
// canonical points of the prime-order subgroup.
import { ed25519 } from "@noble/curves/ed25519.js";
import { concat, equal } from "./bytes";
import { CryptoError } from "./errors";
import { sha512 } from "./primitives";

type Point = ReturnType<typeof ed25519.Point.fromBytes>;
const Point = ed25519.Point;
const SUITE = 0x03;
const P = 2n ** 255n - 19n;
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const C_LEN = 16;

function invalid(reason: string): CryptoError {
  return new CryptoError("bad_proof", `VRF proof: ${reason}`);
}

function littleEndian(data: Uint8Array): bigint {
  let value = 0n;
  for (let i = data.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(data[i]!);
  return value;
}

function toLittleEndian(value: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    out[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return out;
}

/** A canonical point of the prime-order subgroup, not of small order. */
function subgroupPoint(data: Uint8Array, what: string): Point {
  let point: Point;
  try {
    point = Point.fromBytes(data);
  } catch {
    throw invalid(`${what} is not a point`);
  }
  if (!equal(point.toBytes(), data) || point.isSmallOrder() || !point.isTorsionFree()) {
    throw invalid(`${what} is not a point of the prime-order subgroup`);
  }
  return point;
}

/** §5.4.1.1 try-and-increment, encode_to_curve_salt = PK_string. */
async function encodeToCurve(publicKey: Uint8Array, alpha: Uint8Array): Promise<Point> {
  for (let counter = 0; counter < 256; counter++) {
    const digest = (await sha512(concat(new Uint8Array([SUITE, 0x01]), publicKey, alpha, new Uint8Array([counter, 0x00])))).slice(0, 32);
    if ((littleEndian(digest) & (2n ** 255n - 1n)) >= P) continue;
    try {
      const point = Point.fromBytes(digest).clearCofactor();
      if (!point.is0()) return point;
    } catch {
      // no x for this y: next counter
    }
  }
  throw invalid("no point found");
}

async function challenge(...points: Point[]): Promise<Uint8Array> {
  const digest = await sha512(concat(new Uint8Array([SUITE, 0x02]), ...points.map((p) => p.toBytes()), new Uint8Array([0])));
  return digest.slice(0, C_LEN);
}

async function expand(secret: Uint8Array): Promise<{ x: bigint; nonceHalf: Uint8Array; publicKey: Uint8Array }> {
  const digest = await sha512(secret);
  const clamped = digest.slice(0, 32);
  clamped[0]! &= 248;
  clamped[31]! &= 127;
  clamped[31]! |= 64;
  const x = littleEndian(clamped) % L;
  return { x, nonceHalf: digest.slice(32), publicKey: Point.BASE.multiply(x).toBytes() };
}

export async function vrfPublicKey(secret: Uint8Array): Promise<Uint8Array> {
  return (await expand(secret)).publicKey;
}

/** §5.1 ECVRF_prove (the log's side; here to reproduce the RFC's vectors). */
export async function vrfProve(secret: Uint8Array, alpha: Uint8Array): Promise<Uint8Array> {
  const { x, nonceHalf, publicKey } = await expand(secret);
  const h = await encodeToCurve(publicKey, alpha);
  const gamma = h.multiply(x);
  const k = littleEndian(await sha512(concat(nonceHalf, h.toBytes()))) % L;
  const c = await challenge(Point.fromBytes(publicKey), h, gamma, Point.BASE.multiply(k), h.multiply(k));
  const s = (k + littleEndian(c) * x) % L;
  return concat(gamma.toBytes(), c, toLittleEndian(s, 32));
}

function decodeProof(proof: Uint8Array): { gamma: Point; c: Uint8Array; s: bigint } {
  if (proof.length !== 80) throw invalid("wrong length");
  const gamma = subgroupPoint(proof.slice(0, 32), "Gamma");
  const s = littleEndian(proof.slice(48));
  if (s >= L) throw invalid("s out of range");
  return { gamma, c: proof.slice(32, 48), s };
}

/** §5.2 ECVRF_proof_to_hash: beta (64 bytes). */
export function vrfProofToHash(proof: Uint8Array): Promise<Uint8Array> {
  const { gamma } = decodeProof(proof);
  return sha512(concat(new Uint8Array([SUITE, 0x03]), gamma.clearCofactor().toBytes(), new Uint8Array([0])));
}

/** §5.3 ECVRF_verify: beta if ``proof`` is valid for ``alpha``; bad_proof otherwise. */
export async function vrfVerify(publicKey: Uint8Array, alpha: Uint8Array, proof: Uint8Array): Promise<Uint8Array> {
  if (publicKey.length !== 32) throw invalid("not a valid VRF public key");
  const y = subgroupPoint(publicKey, "the public key");
  const { gamma, c, s } = decodeProof(proof);
  const h = await encodeToCurve(publicKey, alpha);
  const cScalar = littleEndian(c);
  const u = Point.BASE.multiplyUnsafe(s).subtract(y.multiplyUnsafe(cScalar));
  const v = h.multiplyUnsafe(s).subtract(gamma.multiplyUnsafe(cScalar));
  if (!equal(await challenge(y, h, gamma, u, v), c)) throw invalid("does not verify");
  return vrfProofToHash(proof);
}
