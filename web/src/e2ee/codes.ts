// Codes people read aloud or type: RFC 4648 base32 in groups of four (§10.2). Typing is
// forgiving: lower case, spaces and dashes, 0 for O, 1 for I, 8 for B.
import { CryptoError } from "./errors";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

export function toCode(data: Uint8Array): string {
  if (data.length % 5) throw new Error("a code is made of 5-byte blocks");
  let text = "";
  let bits = 0;
  let value = 0;
  for (const byte of data) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      text += ALPHABET[(value >> bits) & 31]!;
    }
  }
  return text.match(/.{1,4}/g)!.join("-");
}

export function fromCode(code: string, length: number): Uint8Array {
  const text = code.replace(/[\s-]/g, "").toUpperCase().replace(/0/g, "O").replace(/1/g, "I").replace(/8/g, "B");
  if (text.length % 8) throw new CryptoError("bad_encoding", "not a valid code");
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const char of text) {
    const digit = ALPHABET.indexOf(char);
    if (digit < 0) throw new CryptoError("bad_encoding", "not a valid code");
    value = ((value << 5) | digit) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >> bits) & 0xff);
    }
  }
  if (out.length !== length) throw new CryptoError("bad_encoding", "the code is too short or too long");
  return new Uint8Array(out);
}
