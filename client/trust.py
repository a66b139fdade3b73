"""Who this device trusts, and why: its own practitioner's identity key and devices
(monitored in the log), and its contacts' identity keys.

* ``check_my_devices`` audits the log for entries under our own label that we do not
  know — an identity key or a device the server added behind the practitioner's back —
  comparing full keys; each raises an alert.
* Contacts: the first identity key seen for a person is remembered; a different one
  later (they lost every device, or the server is lying) raises ``identity_changed``.
  For a contact verified in person (safety numbers compared), it is *blocking*: nothing
  is shared with them until the user accepts the change and compares numbers again.
* Safety numbers cover identity keys only, and each side computes both halves from what
  it holds: its own identity key from its store, the contact's from the log as this
  device verified it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from client.directory import KeyDirectory
from client.events import SecurityError
from e2ee import safety
from e2ee.encoding import b64u, unb64u

Alert = Callable[[str, int | None, str], Awaitable[None]]


class Trust:
    """The part of the key store under ``data["trust"]``: ``contacts`` (first identity
    key seen, per person), ``verified`` (identity key compared in person), and
    ``known_devices`` (this practitioner's devices this device knows: number → signing
    key)."""

    def __init__(self, *, directory: KeyDirectory, data: dict[str, Any], alert: Alert) -> None:
        self.directory = directory
        self.data = data
        self.alert = alert
        for part in ("contacts", "verified", "known_devices"):
            self.data.setdefault(part, {})

    # This practitioner's own devices ------------------------------------------------

    def know_device(self, device: int, sign_key: bytes) -> None:
        self.data["known_devices"][str(device)] = b64u(sign_key)

    def known_devices(self) -> dict[int, bytes]:
        return {int(d): unb64u(k) for d, k in self.data["known_devices"].items()}

    async def check_my_devices(
        self, *, national_id: str, identity_key: bytes
    ) -> tuple[list[bytes], list[int]]:
        """Audit the log; identity keys and devices under our label that we do not know,
        each reported once as an alert."""
        report = await self.directory.monitor(
            national_id=national_id,
            known_identity_keys={identity_key},
            known_devices=self.known_devices(),
        )
        reported = set(self.data.setdefault("reported", []))
        for key in report.unknown_identity_keys:
            if f"identity:{b64u(key)}" not in reported:
                await self.alert(
                    "unknown_identity_key",
                    None,
                    f"an identity key you do not hold was published for {national_id}: "
                    "someone may be impersonating you",
                )
                reported.add(f"identity:{b64u(key)}")
        unknown: list[int] = []
        for device, sign_key in report.unknown_devices:
            unknown.append(device)
            if f"device:{device}:{b64u(sign_key)}" not in reported:
                await self.alert(
                    "unknown_device",
                    None,
                    f"a device you do not know ({device}) was certified for {national_id}",
                )
                reported.add(f"device:{device}:{b64u(sign_key)}")
        self.data["reported"] = sorted(reported)
        return report.unknown_identity_keys, unknown

    # Contacts -------------------------------------------------------------------------

    async def check_identity(self, national_id: str, identity_key: bytes) -> None:
        """Remember a contact's identity key on first sight; alert when it changes, and
        refuse (SecurityError) when the contact was verified in person."""
        seen = self.data["contacts"].get(national_id)
        if seen is None:
            self.data["contacts"][national_id] = b64u(identity_key)
            return
        if unb64u(seen) == identity_key:
            return
        verified = national_id in self.data["verified"]
        await self.alert(
            "identity_changed" if not verified else "key_changed",
            None,
            f"{national_id}'s identity key changed (a new phone after losing every device, "
            "or an attack): compare safety numbers again"
            + (" — blocked until you accept it" if verified else ""),
        )
        if verified:
            raise SecurityError(f"{national_id}'s identity key changed since you verified it")
        self.data["contacts"][national_id] = b64u(identity_key)

    async def accept_identity(self, national_id: str, identity_key: bytes) -> None:
        """The user accepted a contact's new identity key (they are no longer verified:
        compare safety numbers again to verify them)."""
        self.data["contacts"][national_id] = b64u(identity_key)
        self.data["verified"].pop(national_id, None)

    async def contact_key(self, national_id: str) -> bytes:
        identity = await self.directory.identity_of(national_id)
        if identity.identity_key is None:
            raise SecurityError(f"{national_id} has no identity key yet")
        await self.check_identity(national_id, identity.identity_key)
        return identity.identity_key

    async def safety_number(
        self, *, me: str, my_identity_key: bytes, peer: str
    ) -> safety.SafetyNumber:
        theirs = await self.contact_key(peer)
        return safety.safety_number(me, my_identity_key, peer, theirs)

    async def mark_verified(self, national_id: str) -> None:
        self.data["verified"][national_id] = b64u(await self.contact_key(national_id))

    async def check_verified_contact(self, national_id: str) -> bool:
        """True if a verified contact still has the identity key compared in person."""
        expected = self.data["verified"].get(national_id)
        if expected is None:
            return False
        try:
            return await self.contact_key(national_id) == unb64u(expected)
        except SecurityError:
            return False

    # Linking --------------------------------------------------------------------------

    def bundle_part(self) -> dict[str, Any]:
        """What a newly linked device takes over: contacts, verified contacts, and this
        practitioner's known devices."""
        return {
            "contacts": dict(self.data["contacts"]),
            "verified": dict(self.data["verified"]),
            "known_devices": dict(self.data["known_devices"]),
        }

    def adopt(self, part: dict[str, Any]) -> None:
        for name in ("contacts", "verified", "known_devices"):
            value = part.get(name, {})
            if isinstance(value, dict):
                self.data[name].update(
                    {str(k): str(v) for k, v in value.items() if isinstance(v, str)}
                )
