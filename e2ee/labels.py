"""Every domain-separation label of protocol v1 (docs/protocol.md, "Labels").

A signature, hash or key derivation made under one label can never be taken for one
made under another. Changing any of these strings is a new protocol version.
"""

from __future__ import annotations

from typing import Final

DEVICE_KEYS: Final = "relais/v1/device-keys"  # device self-signature of its keys
CERTIFICATE: Final = "relais/v1/certificate"  # log signature of a device certificate
REVOCATION: Final = "relais/v1/revocation"  # log signature of a revocation
TREE_HEAD: Final = "relais/v1/tree-head"  # log signature of a tree head
ROOM_STATE: Final = "relais/v1/room-state"  # admin device signature of a state event
ROOM_STATE_HASH: Final = "relais/v1/room-state-hash"  # hash chaining state events
ENVELOPE: Final = "relais/v1/envelope"  # sender device signature of an envelope
ENVELOPE_AAD: Final = "relais/v1/envelope-aad"  # AEAD associated data of an envelope
SENDER_KEY_SHARE: Final = "relais/v1/sender-key-share"  # signature of a key share
HPKE_INFO_SENDER_KEY: Final = b"relais/v1/hpke/sender-key-share"  # HPKE info
RATCHET_MESSAGE: Final = b"relais/v1/ratchet/message"  # HKDF info: message key + nonce
RATCHET_CHAIN: Final = b"relais/v1/ratchet/chain"  # HKDF info: next chain key
SAFETY_NUMBER: Final = "relais/v1/safety-number"  # safety number fingerprints
LOG_KEY_DERIVATION: Final = b"relais/v1/keylog/signing-key"  # server: log key from secret
CLIENT_STORE: Final = b"relais/v1/client-store"  # SDK: AAD of the local key store
