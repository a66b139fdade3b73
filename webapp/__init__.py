"""The web client: the installable app served at ``/`` (docs/web.md)."""
