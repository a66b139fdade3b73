"""Téléexpertise on the devices (docs/teleexpertise.md; protocol §12).

``TeleexpertiseClient`` (``sdk.py``) takes every step from an SDK session; the modules
beside it hold the encrypted events (``contents``), the consent (``consent``), the cases
a device verified (``cases``), the tariffs (``tariffs.toml``, ``tariffs``), billing keys
and ledger (``billing``, ``acts``), the report documents (``report``), the FHIR export
(``fhir``) and the room profile content (``profile``).
"""
