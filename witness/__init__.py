"""An independent witness of the Relais key-transparency log (docs/witness.md)."""
