"""The Relais end-to-end encryption protocol, version 1, as pure Python.

No Django here: the server (``chat``, ``keylog``), the Python SDK (``client``) and the
test-vector generator all use these functions, so there is one implementation of every
rule. The normative text is ``docs/protocol.md`` (section "End-to-end encryption"); the
reasons are in ``docs/e2ee.md``. Every primitive comes from ``cryptography``:
Ed25519, X25519, HKDF-SHA256, AES-256-GCM and HPKE (RFC 9180, base mode).
"""

PROTOCOL_VERSION = 1
