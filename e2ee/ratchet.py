"""The sender-key hash ratchet (docs/protocol.md, "Sender keys").

A sender key is a 32-byte chain key. For message ``i`` the sender derives, from chain
key ``CK_i``::

    key || nonce = HKDF-SHA256(ikm=CK_i, salt=none, info="relais/v1/ratchet/message", L=44)
    CK_{i+1}     = HKDF-SHA256(ikm=CK_i, salt=none, info="relais/v1/ratchet/chain",   L=32)

and forgets ``CK_i``. HKDF is one-way, so whoever obtains ``CK_{i+1}`` (a device
compromised later, a member added later) cannot compute earlier message keys: forward
secrecy along the chain. Each message key is used for exactly one AES-256-GCM
encryption, so the derived nonce is never reused under the same key.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from e2ee import labels

CHAIN_KEY_BYTES = 32
MESSAGE_KEY_BYTES = 32
NONCE_BYTES = 12


@dataclass(frozen=True, slots=True)
class MessageKey:
    key: bytes
    nonce: bytes


def message_key(chain_key: bytes) -> MessageKey:
    material = HKDF(
        algorithm=SHA256(),
        length=MESSAGE_KEY_BYTES + NONCE_BYTES,
        salt=None,
        info=labels.RATCHET_MESSAGE,
    ).derive(chain_key)
    return MessageKey(key=material[:MESSAGE_KEY_BYTES], nonce=material[MESSAGE_KEY_BYTES:])


def next_chain_key(chain_key: bytes) -> bytes:
    return HKDF(
        algorithm=SHA256(), length=CHAIN_KEY_BYTES, salt=None, info=labels.RATCHET_CHAIN
    ).derive(chain_key)


def advance(chain_key: bytes, steps: int) -> bytes:
    for _ in range(steps):
        chain_key = next_chain_key(chain_key)
    return chain_key
