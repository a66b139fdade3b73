"""The Relais Python SDK: what runs on a practitioner's device, never on the server."""
