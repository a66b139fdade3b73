"""Persistence of envelopes on the hot path. See docs/architecture.md, "Message path"."""
