// Identity keys and the devices they vouch for (docs/protocol.md §10.4.1).
import { b64u } from "./bytes";
import type { JsonObject } from "./canonical";
import { CryptoError } from "./errors";
import { DEVICE_CERTIFICATE, IDENTITY_BINDING } from "./labels";
import { type SigningKey, verify } from "./primitives";

export type DeviceKind = "device" | "archiver";

export function bindingBody(nationalId: string, identityKey: Uint8Array): JsonObject {
  return { v: 2, type: "identity_binding", national_id: nationalId, identity_key: b64u(identityKey) };
}

export function certificateBody(nationalId: string, device: number, kind: DeviceKind, signKey: Uint8Array, identityKey: Uint8Array): JsonObject {
  return {
    v: 2,
    type: "device_certificate",
    national_id: nationalId,
    device,
    kind,
    sign_key: b64u(signKey),
    identity_key: b64u(identityKey),
  };
}

export function bind(identity: SigningKey, nationalId: string): Promise<Uint8Array> {
  return identity.sign(IDENTITY_BINDING, bindingBody(nationalId, identity.publicKey));
}

export function certify(identity: SigningKey, nationalId: string, device: number, kind: DeviceKind, signKey: Uint8Array): Promise<Uint8Array> {
  return identity.sign(DEVICE_CERTIFICATE, certificateBody(nationalId, device, kind, signKey, identity.publicKey));
}

export function verifyBinding(nationalId: string, identityKey: Uint8Array, signature: Uint8Array): Promise<void> {
  return verify(identityKey, signature, IDENTITY_BINDING, bindingBody(nationalId, identityKey));
}

export async function verifyCertificate(nationalId: string, device: number, kind: DeviceKind, signKey: Uint8Array, identityKey: Uint8Array, signature: Uint8Array): Promise<void> {
  if (identityKey.length !== 32 || signKey.length !== 32) throw new CryptoError("bad_encoding", "keys are 32 bytes");
  await verify(identityKey, signature, DEVICE_CERTIFICATE, certificateBody(nationalId, device, kind, signKey, identityKey));
}
