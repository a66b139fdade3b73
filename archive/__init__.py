"""Archiving rooms to MSSanté (docs/archive.md)."""
