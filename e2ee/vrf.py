"""ECVRF-EDWARDS25519-SHA512-TAI, the verifiable random function of RFC 9381 (§5, suite
string 0x03), used to hide who a key-transparency log entry is about (docs/protocol.md
§10.4, "Labels").

The log's owner alone can compute ``beta`` (the VRF output) for an input; anyone holding
the VRF public key can check, from the 80-byte proof ``pi``, that ``beta`` is the one
output for that input. So the log can publish entries under ``beta``-derived labels
without publishing national ids, and still cannot give one practitioner two labels.

No maintained Python package implements RFC 9381, so this module follows its §5
algorithms step by step over libsodium's audited Ed25519 group and scalar operations
(``crypto_core_ed25519_*``, ``crypto_scalarmult_ed25519_*``, exposed by PyNaCl): no
field arithmetic is written here. It reproduces the RFC's test vectors (Appendix B.3,
``tests/vectors/vrf_rfc9381.json``).

Two checks are stricter than the RFC's ``ECVRF_validate_key`` and ``string_to_point``
(libsodium's scalar multiplication accepts only points of the prime-order subgroup):
the public key and ``Gamma`` must be canonical points of that subgroup. Every key this
module generates and every honest proof satisfies both.
"""

from __future__ import annotations

import hashlib
import hmac

from nacl import bindings as sodium
from nacl.exceptions import CryptoError as SodiumError

from e2ee.errors import CryptoError, CryptoErrorCode

SUITE = b"\x03"  # ECVRF-EDWARDS25519-SHA512-TAI
PROOF_BYTES = 80  # Gamma (32) || c (16) || s (32)
OUTPUT_BYTES = 64  # beta: SHA-512
KEY_BYTES = 32
_C_LEN = 16
_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493  # order of the prime subgroup


def _invalid(reason: str) -> CryptoError:
    return CryptoError(CryptoErrorCode.BAD_PROOF, f"VRF proof: {reason}")


def _times_cofactor(point: bytes) -> bytes:
    """8 * point, by three doublings (libsodium adds any points on the curve)."""
    for _ in range(3):
        point = sodium.crypto_core_ed25519_add(point, point)
    return point


def _scalar(data: bytes) -> bytes:
    """A little-endian integer of up to 64 bytes, reduced modulo L (32 bytes)."""
    return sodium.crypto_core_ed25519_scalar_reduce(data.ljust(64, b"\x00"))


def _encode_to_curve(public: bytes, alpha: bytes) -> bytes:
    """§5.4.1.1, try-and-increment, with encode_to_curve_salt = PK_string."""
    for counter in range(256):
        digest = hashlib.sha512(
            SUITE + b"\x01" + public + alpha + bytes([counter]) + b"\x00"
        ).digest()[:32]
        # string_to_point (RFC 8032 §5.1.3): y must be canonical (below p) ...
        if int.from_bytes(digest, "little") & (2**255 - 1) >= _P:
            continue
        try:  # ... and x must exist; libsodium refuses to add a point that does not.
            return _times_cofactor(digest)
        except SodiumError:
            continue
    raise _invalid("no point found")  # probability 2**-256


def _challenge(*points: bytes) -> bytes:
    """§5.4.3: the first cLen bytes of SHA-512 over the five points."""
    return hashlib.sha512(SUITE + b"\x02" + b"".join(points) + b"\x00").digest()[:_C_LEN]


def _expand(secret: bytes) -> tuple[bytes, bytes, bytes]:
    """RFC 8032 §5.1.5: (x reduced mod L, the nonce half of SHA-512(SK), Y)."""
    if len(secret) != KEY_BYTES:
        raise ValueError("a VRF secret key is 32 bytes")
    digest = hashlib.sha512(secret).digest()
    clamped = bytearray(digest[:32])
    clamped[0] &= 248
    clamped[31] &= 127
    clamped[31] |= 64
    x = _scalar(bytes(clamped))
    return x, digest[32:], sodium.crypto_scalarmult_ed25519_base_noclamp(x)


def public_key(secret: bytes) -> bytes:
    """Y = x * B: the same public key as Ed25519's for this 32-byte secret."""
    return _expand(secret)[2]


def prove(secret: bytes, alpha: bytes) -> bytes:
    """§5.1 ECVRF_prove: the 80-byte proof pi for input ``alpha``."""
    x, nonce_half, public = _expand(secret)
    point_h = _encode_to_curve(public, alpha)
    gamma = sodium.crypto_scalarmult_ed25519_noclamp(x, point_h)
    k = _scalar(hashlib.sha512(nonce_half + point_h).digest())  # §5.4.2.2
    u = sodium.crypto_scalarmult_ed25519_base_noclamp(k)
    v = sodium.crypto_scalarmult_ed25519_noclamp(k, point_h)
    c = _challenge(public, point_h, gamma, u, v)
    s = sodium.crypto_core_ed25519_scalar_add(
        k, sodium.crypto_core_ed25519_scalar_mul(_scalar(c), x)
    )
    return gamma + c + s


def proof_to_hash(proof: bytes) -> bytes:
    """§5.2 ECVRF_proof_to_hash: beta (64 bytes). Only meaningful for a verified proof."""
    gamma = _decode_proof(proof)[0]
    return hashlib.sha512(SUITE + b"\x03" + _times_cofactor(gamma) + b"\x00").digest()


def _decode_proof(proof: bytes) -> tuple[bytes, bytes, bytes]:
    """§5.4.4: Gamma, c, s; s must be below L."""
    if len(proof) != PROOF_BYTES:
        raise _invalid("wrong length")
    gamma, c, s = proof[:32], proof[32:48], proof[48:]
    if not sodium.crypto_core_ed25519_is_valid_point(gamma):
        raise _invalid("Gamma is not a point of the prime-order subgroup")
    if int.from_bytes(s, "little") >= _L:
        raise _invalid("s out of range")
    return gamma, c, s


def verify(public: bytes, alpha: bytes, proof: bytes) -> bytes:
    """§5.3 ECVRF_verify: beta if ``proof`` is valid for ``alpha`` under ``public``;
    raise CryptoError (BAD_PROOF) otherwise."""
    if len(public) != KEY_BYTES or not sodium.crypto_core_ed25519_is_valid_point(public):
        raise _invalid("not a valid VRF public key")
    gamma, c, s = _decode_proof(proof)
    point_h = _encode_to_curve(public, alpha)
    c_scalar = _scalar(c)
    try:
        u = sodium.crypto_core_ed25519_sub(
            sodium.crypto_scalarmult_ed25519_base_noclamp(s),
            sodium.crypto_scalarmult_ed25519_noclamp(c_scalar, public),
        )
        v = sodium.crypto_core_ed25519_sub(
            sodium.crypto_scalarmult_ed25519_noclamp(s, point_h),
            sodium.crypto_scalarmult_ed25519_noclamp(c_scalar, gamma),
        )
    except SodiumError:  # a zero scalar or a product at infinity: not an honest proof
        raise _invalid("degenerate proof") from None
    if not hmac.compare_digest(_challenge(public, point_h, gamma, u, v), c):
        raise _invalid("does not verify")
    return proof_to_hash(proof)
