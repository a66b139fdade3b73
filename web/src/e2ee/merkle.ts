// The key-transparency log's Merkle tree, as RFC 9162 §2.1 defines it: leaf hash
// SHA-256(0x00 || leaf), node SHA-256(0x01 || left || right), proofs verified with the
// algorithms of §2.1.3.2 and §2.1.4.2.
import { concat, equal } from "./bytes";
import { CryptoError } from "./errors";
import { sha256 } from "./primitives";

export function leafHash(leaf: Uint8Array): Promise<Uint8Array> {
  return sha256(concat(new Uint8Array([0]), leaf));
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Promise<Uint8Array> {
  return sha256(concat(new Uint8Array([1]), left, right));
}

export function emptyRoot(): Promise<Uint8Array> {
  return sha256(new Uint8Array(0));
}

/** MTH(D[n]) from the leaf hashes. */
export async function root(leafHashes: Uint8Array[]): Promise<Uint8Array> {
  if (leafHashes.length === 0) return emptyRoot();
  let level = [...leafHashes];
  while (level.length > 1) {
    const paired: Uint8Array[] = [];
    for (let i = 0; i + 1 < level.length; i += 2) paired.push(await nodeHash(level[i]!, level[i + 1]!));
    if (level.length % 2) paired.push(level[level.length - 1]!);
    level = paired;
  }
  return level[0]!;
}

// Sizes fit in 2^53: shifts are done with division to stay exact beyond 2^31.
const half = (n: number): number => Math.floor(n / 2);
const odd = (n: number): boolean => n % 2 === 1;

export async function verifyInclusion(leaf: Uint8Array, index: number, size: number, proof: Uint8Array[], expectedRoot: Uint8Array): Promise<void> {
  if (!(index >= 0 && index < size)) throw new CryptoError("bad_proof", "leaf index out of range");
  let fn = index;
  let sn = size - 1;
  let result = leaf;
  for (const sibling of proof) {
    if (sn === 0) throw new CryptoError("bad_proof", "inclusion proof too long");
    if (odd(fn) || fn === sn) {
      result = await nodeHash(sibling, result);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      result = await nodeHash(result, sibling);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0 || !equal(result, expectedRoot)) throw new CryptoError("bad_proof", "inclusion proof does not match the root");
}

export async function verifyConsistency(oldSize: number, newSize: number, oldRoot: Uint8Array, newRoot: Uint8Array, proof: Uint8Array[]): Promise<void> {
  if (!(oldSize >= 0 && oldSize <= newSize)) throw new CryptoError("bad_proof", "sizes out of order");
  if (oldSize === 0) {
    if (proof.length || !equal(oldRoot, await emptyRoot())) throw new CryptoError("bad_proof", "bad proof from the empty tree");
    return;
  }
  if (oldSize === newSize) {
    if (proof.length || !equal(oldRoot, newRoot)) throw new CryptoError("bad_proof", "same size, different trees");
    return;
  }
  const path = [...proof];
  const powerOfTwo = Number.isInteger(Math.log2(oldSize)) && 2 ** Math.log2(oldSize) === oldSize;
  if (powerOfTwo) path.unshift(oldRoot);
  if (!path.length) throw new CryptoError("bad_proof", "empty consistency proof");
  let fn = oldSize - 1;
  let sn = newSize - 1;
  while (odd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let first = path[0]!;
  let second = path[0]!;
  for (const node of path.slice(1)) {
    if (sn === 0) throw new CryptoError("bad_proof", "consistency proof too long");
    if (odd(fn) || fn === sn) {
      first = await nodeHash(node, first);
      second = await nodeHash(node, second);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      second = await nodeHash(second, node);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0 || !equal(first, oldRoot) || !equal(second, newRoot)) {
    throw new CryptoError("bad_proof", "consistency proof does not match");
  }
}
