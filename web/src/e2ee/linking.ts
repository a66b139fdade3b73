// Linking a new device (docs/protocol.md §10.4.4): the link request, its commitment,
// the codes shown from screen to screen, and the bundle sealed to the new device.
import { b64u, equal, randomBytes, unb64u, utf8 } from "./bytes";
import { canonicalJson, expectInt, expectObject, expectStr, type JsonObject, parseCanonical, signingInput } from "./canonical";
import { fromCode, toCode } from "./codes";
import { CryptoError } from "./errors";
import { HPKE_INFO_LINK, LINK_APPROVAL } from "./labels";
import { hpkeOpen, hpkeSeal, sha256 } from "./primitives";

const LINK_ID_BYTES = 5;
const SHORT_COMMITMENT_BYTES = 10;
const QR_PREFIX = "relais-link:2:";
const MAX_BUNDLE_BYTES = 64 * 1024;
const REQUEST_KEYS = ["v", "type", "national_id", "device", "sign_key", "kex_key", "nonce"];

export function linkRequest(nationalId: string, device: number, signKey: Uint8Array, kexKey: Uint8Array): JsonObject {
  return {
    v: 2,
    type: "link_request",
    national_id: nationalId,
    device,
    sign_key: b64u(signKey),
    kex_key: b64u(kexKey),
    nonce: b64u(randomBytes(16)),
  };
}

export function parseRequest(raw: Uint8Array): JsonObject {
  const body = expectObject(parseCanonical(raw, 2048), REQUEST_KEYS, "link request");
  if (body.v !== 2 || body.type !== "link_request") throw new CryptoError("bad_encoding", "not a version 2 link request");
  expectStr(body.national_id, "national_id", 32);
  expectInt(body.device, "device", 1);
  unb64u(body.sign_key, 32, "sign_key");
  unb64u(body.kex_key, 32, "kex_key");
  unb64u(body.nonce, 16, "nonce");
  return body;
}

export function commitment(request: JsonObject): Promise<Uint8Array> {
  return sha256(signingInput(LINK_APPROVAL, request));
}

export class LinkCode {
  constructor(
    readonly linkId: Uint8Array,
    readonly commitment: Uint8Array,
  ) {}

  get qrPayload(): string {
    return `${QR_PREFIX}${b64u(this.linkId)}:${b64u(this.commitment)}`;
  }

  get shortCode(): string {
    const data = new Uint8Array(LINK_ID_BYTES + SHORT_COMMITMENT_BYTES);
    data.set(this.linkId);
    data.set(this.commitment.slice(0, SHORT_COMMITMENT_BYTES), LINK_ID_BYTES);
    return toCode(data);
  }

  get linkIdText(): string {
    return b64u(this.linkId);
  }

  static parse(input: string): LinkCode {
    const text = input.trim();
    if (text.startsWith(QR_PREFIX)) {
      const parts = text.slice(QR_PREFIX.length).split(":");
      if (parts.length !== 2) throw new CryptoError("bad_encoding", "not a link code");
      return new LinkCode(unb64u(parts[0], LINK_ID_BYTES, "link id"), unb64u(parts[1], 32, "commitment"));
    }
    const data = fromCode(text, LINK_ID_BYTES + SHORT_COMMITMENT_BYTES);
    return new LinkCode(data.slice(0, LINK_ID_BYTES), data.slice(LINK_ID_BYTES));
  }

  async matches(request: JsonObject): Promise<boolean> {
    const full = await commitment(request);
    return equal(full.slice(0, this.commitment.length), this.commitment);
  }
}

export function sealBundle(request: JsonObject, bundle: JsonObject): Promise<Uint8Array> {
  return hpkeSeal(unb64u(request.kex_key, 32), utf8(HPKE_INFO_LINK), canonicalJson(bundle));
}

export async function openBundle(sealed: Uint8Array, kexPrivate: Uint8Array): Promise<JsonObject> {
  if (sealed.length > MAX_BUNDLE_BYTES) throw new CryptoError("bad_encoding", "link bundle too large");
  const bundle = parseCanonical(await hpkeOpen(kexPrivate, utf8(HPKE_INFO_LINK), sealed), MAX_BUNDLE_BYTES);
  if (bundle.v !== 2 || bundle.type !== "link_bundle") throw new CryptoError("bad_encoding", "not a version 2 link bundle");
  return bundle;
}
