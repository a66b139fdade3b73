"""The key-transparency log: device certificates and revocations in an append-only
Merkle tree with signed tree heads (docs/e2ee.md, docs/protocol.md)."""
