"""The Relais Python SDK: an async, typed end-to-end encrypted client, and a small CLI
(``python -m client chat``). The protocol itself lives in ``e2ee``."""
