// Padding a file before encryption (docs/protocol.md §11.2): zero bytes up to Padmé's
// length (Nikitin et al., PETS 2019, Algorithm 1) above a 512-byte floor, so that a
// blob's size tells the order of magnitude of the file and no more. Computed with exact
// integer arithmetic: bit lengths, not a floating-point log2; no 32-bit bitwise operator
// (sizes go past 2 GiB); every value stays below 2^53, where this is exact.
import { refusal, type AttachmentError } from "./errors";

export const MIN_PADDED_BYTES = 512;

/** floor(log2(n)) for an integer 1 ≤ n < 2^53, exactly. */
function exponentOf(n: number): number {
  let exponent = 0;
  let power = 1;
  while (power * 2 <= n) {
    power *= 2;
    exponent += 1;
  }
  return exponent;
}

/** bit length of a non-negative integer below 2^53. */
function bitLength(n: number): number {
  return n === 0 ? 0 : exponentOf(n) + 1;
}

export function paddedSize(size: number): number {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError("size must be an integer ≥ 0");
  const length = Math.max(size, MIN_PADDED_BYTES);
  const exponent = exponentOf(length); // E = floor(log2 M)
  const kept = bitLength(exponent); // S = bit length of E
  const step = 2 ** (exponent - kept); // 2^z, z = E − S
  return Math.ceil(length / step) * step;
}

/** The file followed by the zero bytes of its padding: the plaintext of its blob. */
export function pad(file: Uint8Array): Uint8Array {
  const out = new Uint8Array(paddedSize(file.length));
  out.set(file);
  return out;
}

/** The first ``size`` bytes of a decrypted blob, once its padding is checked: exactly
 * ``paddedSize(size)`` bytes, every one after the file zero (size_mismatch otherwise). */
export function unpad(plaintext: Uint8Array, size: number): Uint8Array {
  const expected = paddedSize(size);
  if (plaintext.length !== expected) throw sizeRefusal(size, expected, plaintext.length);
  for (let i = size; i < plaintext.length; i++) {
    if (plaintext[i] !== 0) {
      throw refusal(
        "size_mismatch",
        `The padding after the file's ${size} bytes is not all zero bytes.`,
        `Le bourrage après les ${size} octets du fichier n'est pas nul.`,
      );
    }
  }
  return plaintext.subarray(0, size);
}

function sizeRefusal(size: number, expected: number, found: number): AttachmentError {
  return refusal(
    "size_mismatch",
    `A file of ${size} bytes is padded to ${expected} bytes, the blob holds ${found}.`,
    `Un fichier de ${size} octets est complété à ${expected} octets, la pièce jointe en contient ${found}.`,
  );
}
