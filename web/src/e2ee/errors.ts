// Why a cryptographic check failed, as a stable code (docs/protocol.md §10.10).
export type CryptoErrorCode =
  | "bad_encoding"
  | "bad_signature"
  | "bad_proof"
  | "bad_chain"
  | "not_authorised"
  | "unknown_device"
  | "unknown_key"
  | "stale_key"
  | "replay"
  | "too_far_ahead"
  | "decrypt_failed"
  | "revoked"
  | "wrong_recipient"
  | "future_epoch"
  | "expired_key"
  | "stale_state"
  | "rollback";

export class CryptoError extends Error {
  constructor(
    readonly code: CryptoErrorCode,
    readonly detail = "",
  ) {
    super(detail ? `${code}: ${detail}` : code);
    this.name = "CryptoError";
  }
}
