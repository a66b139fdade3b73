"""Canonical JSON and base64url: the only two encodings of the protocol.

Canonical JSON (docs/protocol.md, "Encodings"): UTF-8, object keys sorted by code
point, no insignificant whitespace, no floats, integers in [-(2**53-1), 2**53-1], byte
strings as unpadded base64url text. Every signature and hash covers
``label || 0x00 || canonical_json(value)`` so that a signature made for one purpose can
never be replayed for another (domain separation).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from e2ee.errors import CryptoError, CryptoErrorCode

MAX_SAFE_INTEGER = 2**53 - 1

JsonObject = dict[str, Any]


def b64u(data: bytes) -> str:
    """Unpadded base64url text of ``data``."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64u(text: object, *, length: int | None = None, field: str = "value") -> bytes:
    """Decode unpadded base64url, refusing padding, other alphabets and non-canonical
    trailing bits; with ``length``, the decoded size must match."""
    if not isinstance(text, str) or "=" in text or len(text) % 4 == 1:
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, f"{field} is not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, f"{field} is not base64url") from None
    if b64u(data) != text:
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, f"{field} is not canonical base64url")
    if length is not None and len(data) != length:
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, f"{field} must be {length} bytes")
    return data


def _check(value: object, depth: int = 0) -> None:
    if depth > 16:
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "nested too deeply")
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise CryptoError(CryptoErrorCode.BAD_ENCODING, "integer out of range")
        return
    if isinstance(value, list):
        for item in value:
            _check(item, depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CryptoError(CryptoErrorCode.BAD_ENCODING, "object keys must be strings")
            _check(item, depth + 1)
        return
    raise CryptoError(CryptoErrorCode.BAD_ENCODING, f"{type(value).__name__} is not allowed")


def canonical_json(value: object) -> bytes:
    """The canonical UTF-8 JSON bytes of ``value`` (objects, lists, str, int, bool, null)."""
    _check(value)
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def parse_canonical(data: bytes, *, max_bytes: int = 256 * 1024) -> JsonObject:
    """Parse a JSON object that must already be in canonical form (re-encoding it gives
    the same bytes): one value has exactly one encoding, so signatures and hashes over
    the received bytes and over the parsed value agree."""
    if len(data) > max_bytes:
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "too large")
    try:
        value = json.loads(data.decode("utf-8"), parse_float=_refuse_float)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError):
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "not JSON") from None
    if not isinstance(value, dict):
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "not a JSON object")
    if canonical_json(value) != data:
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "not canonical JSON")
    return value


def _refuse_float(text: str) -> float:
    raise ValueError("floats are not allowed")


def signing_input(label: str, value: object) -> bytes:
    """``label || 0x00 || canonical_json(value)``: what is signed or hashed."""
    return label.encode("ascii") + b"\x00" + canonical_json(value)


def expect_object(value: object, keys: set[str], *, field: str = "object") -> JsonObject:
    """``value`` as a dict with exactly ``keys`` (no missing, no unknown field)."""
    if not isinstance(value, dict):
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, f"{field} must be an object")
    if set(value) != keys:
        missing = sorted(keys - set(value))
        unknown = sorted(set(value) - keys)
        raise CryptoError(
            CryptoErrorCode.BAD_ENCODING, f"{field}: missing {missing}, unknown {unknown}"
        )
    return value


def expect_int(
    value: object, *, field: str, minimum: int = 0, maximum: int = MAX_SAFE_INTEGER
) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, f"{field} must be an integer in range")
    return value


def expect_str(
    value: object, *, field: str, max_length: int = 256, allow_empty: bool = False
) -> str:
    if not isinstance(value, str) or len(value) > max_length or (not value and not allow_empty):
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, f"{field} must be a string")
    return value
