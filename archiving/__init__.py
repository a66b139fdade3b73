"""The server's side of the organisation's archiver: the per-room status metadata it
reports, for the operator (docs/archive.md, "Operator view")."""
