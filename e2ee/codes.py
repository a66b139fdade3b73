"""Codes people read aloud or type: RFC 4648 base32 in groups of four characters.

Typing is forgiving: lower case, spaces and dashes are accepted, and the digits that
look like letters the alphabet has (0 for O, 1 for I, 8 for B) are read as those
letters, so a code read from a screen or a sheet of paper goes in as printed.
"""

from __future__ import annotations

import base64
import binascii

from e2ee.errors import CryptoError, CryptoErrorCode

_LOOKALIKES = str.maketrans({"0": "O", "1": "I", "8": "B"})


def to_code(data: bytes) -> str:
    """``data`` (a multiple of 5 bytes) as groups of four base32 characters."""
    if len(data) % 5:
        raise ValueError("a code is made of 5-byte blocks")
    text = base64.b32encode(data).decode("ascii")
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def from_code(code: str, *, length: int) -> bytes:
    """The ``length`` bytes a typed code stands for. Raises CryptoError(bad_encoding)."""
    text = "".join(code.split()).replace("-", "").upper().translate(_LOOKALIKES)
    try:
        data = base64.b32decode(text)
    except (binascii.Error, ValueError):
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "not a valid code") from None
    if len(data) != length:
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "the code is too short or too long")
    return data
