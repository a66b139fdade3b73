"""Every domain-separation label of the protocol (docs/protocol.md §10.3).

A signature, hash or key derivation made under one label can never be taken for one
made under another. Changing any of these strings is a new protocol version: version 2
renamed the labels of every structure whose content changed, and kept the v1 labels of
what did not change (the ratchet, the local key store).
"""

from __future__ import annotations

from typing import Final

# Version 1 labels still in use (their structures did not change).
RATCHET_MESSAGE: Final = b"relais/v1/ratchet/message"  # HKDF info: message key + nonce
RATCHET_CHAIN: Final = b"relais/v1/ratchet/chain"  # HKDF info: next chain key
CLIENT_STORE: Final = b"relais/v1/client-store"  # SDK: AAD of the local key store

# The key-transparency log, version 2 (docs/protocol.md §10.4).
IDENTITY_BINDING: Final = "relais/v2/identity-binding"  # identity key over its national id
DEVICE_CERTIFICATE: Final = "relais/v2/device-certificate"  # identity key over a device
DEVICE_REGISTRATION: Final = "relais/v2/device-registration"  # device key over itself
KEX_REGISTRATION: Final = "relais/v2/kex-registration"  # device key over its first kex key
LOG_IDENTITY: Final = "relais/v2/identity"  # log signature of an identity entry
LOG_DEVICE: Final = "relais/v2/device"  # log signature of a device entry
LOG_REVOCATION: Final = "relais/v2/revocation"  # log signature of a revocation entry
TREE_HEAD: Final = "relais/v2/tree-head"  # log signature of a tree head
COSIGNATURE: Final = "relais/v2/cosignature"  # a witness's signature of a tree head
LOG_KEYS: Final = "relais/v2/log-keys"  # log signature binding its VRF key to it
LOG_LABEL: Final = b"relais/v2/log-label"  # VRF input prefix: alpha = LOG_LABEL 0x00 id
LOG_SIGNING_KEY: Final = b"relais/v2/keylog/signing-key"  # HKDF info: log key from seed
LOG_VRF_KEY: Final = b"relais/v2/keylog/vrf-key"  # HKDF info: VRF key from seed

# Version 2: devices of one practitioner, recovery.
KEX_KEY: Final = "relais/v2/kex-key"  # a device signs its current key-agreement key
LINK_APPROVAL: Final = "relais/v2/link-approval"  # commitment of a link request
HPKE_INFO_LINK: Final = b"relais/v2/hpke/link-bundle"  # HPKE info: identity to a new device
HPKE_INFO_RECOVERY: Final = b"relais/v2/hpke/recovery"  # HPKE info: backups to the recovery key
HISTORY: Final = "relais/v2/history-keys"  # a device signs history keys for a linked device
HPKE_INFO_HISTORY: Final = b"relais/v2/hpke/history-keys"  # HPKE info: history keys
RECOVERY_KEY: Final = b"relais/v2/recovery-key"  # HKDF info: recovery code to X25519 key
ACCOUNT_KEY: Final = b"relais/v2/account-key/"  # HKDF info prefix: account_key(purpose)

# Version 2: rooms and messages.
ROOM_STATE: Final = "relais/v2/room-state"  # a device's signature of a state event
ROOM_STATE_HASH: Final = "relais/v2/room-state-hash"  # hash chaining state events
ENVELOPE: Final = "relais/v2/envelope"  # sender device signature of an envelope
ENVELOPE_AAD: Final = "relais/v2/envelope-aad"  # AEAD associated data of an envelope
SENDER_KEY_SHARE: Final = "relais/v2/sender-key-share"  # signature of a key share
HPKE_INFO_SENDER_KEY: Final = b"relais/v2/hpke/sender-key-share"  # HPKE info
PROFILE_AAD: Final = "relais/v2/room-profile"  # AEAD associated data of a room profile
SAFETY_NUMBER: Final = "relais/v2/safety-number"  # safety number fingerprints
