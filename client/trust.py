"""Who this device trusts, and why: its own identity key and certification, its own
practitioner's other devices (monitored in the log), and contacts verified in person.

* ``register`` publishes the practitioner's identity key from their first device
  (kept in the key store as ``identity``) and certifies this device's keys,
  cross-signed by it. A later device needs the identity key brought to it by linking
  (docs/protocol.md §10.4): without it, it cannot be certified.
* ``check_my_devices`` audits the log up to the largest head this device accepted and
  compares the full keys under our label with the ones we know: an identity key or a
  device key we do not know (one the server could have added) raises an alert.
* Safety numbers let two people compare keys in person; a verified contact whose keys
  change afterwards raises a ``key_changed`` alert.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client.api import RestApi
from client.directory import KeyDirectory, KeyTransparencyError, MonitorReport
from e2ee import safety, transparency
from e2ee.encoding import b64u, unb64u
from e2ee.keys import DeviceKeyPair, raw_private, raw_public

Alert = Callable[[str, int | None, str], Awaitable[None]]


class IdentityKeyMissingError(KeyTransparencyError):
    """This practitioner already has an identity key, and this device does not hold it:
    link the device from one that does."""


class Trust:
    def __init__(
        self, *, api: RestApi, directory: KeyDirectory, data: dict[str, Any], alert: Alert
    ) -> None:
        self.api = api
        self.directory = directory
        self.data = data
        self.alert = alert

    @property
    def identity_key(self) -> Ed25519PrivateKey | None:
        """The practitioner's identity key, if this device holds it."""
        stored = self.data.get("identity")
        if stored is None:
            return None
        return Ed25519PrivateKey.from_private_bytes(unb64u(stored["sign"], length=32))

    async def register(
        self,
        *,
        token: str,
        device: int,
        national_id: str,
        kind: transparency.DeviceKind = "device",
    ) -> None:
        """Generate this device's keys and have them certified under the identity key,
        publishing a new identity key first if the log has none for ``national_id``.
        Devices already valid under our identity key are ours (only a holder of the
        key can cross-sign); any other key under our label is reported later."""
        keys = DeviceKeyPair.generate()
        sign_private, kex_private = keys.private_bytes()
        self.data.update(
            token=token,
            device=device,
            national_id=national_id,
            keys={"sign": b64u(sign_private), "kex": b64u(kex_private)},
        )
        await self.directory.pin_log_key()
        chain = await self.directory.chain_of(national_id)
        identity = self.identity_key
        if chain.identity_key is None:
            if identity is None:
                identity = Ed25519PrivateKey.generate()
                self.data["identity"] = {"sign": b64u(raw_private(identity))}
            await self.directory.register_identity(identity=identity, national_id=national_id)
        elif identity is None or raw_public(identity) != chain.identity_key:
            raise IdentityKeyMissingError(
                f"{national_id} already has an identity key: link this device from one of "
                "your devices / cet identifiant a déjà une clé : liez cet appareil depuis un "
                "de vos appareils"
            )
        await self.directory.register_device(
            identity=identity, key_pair=keys, national_id=national_id, device=device, kind=kind
        )
        self.data["known_identity_keys"] = [b64u(raw_public(identity))]
        known = {str(d.device): b64u(d.sign_key) for d in chain.devices.values()}
        known[str(device)] = b64u(keys.public.sign_key)
        self.data["known_device_keys"] = known
        await self.check_my_devices(national_id)

    def _known(self) -> tuple[set[bytes], dict[int, bytes]]:
        identity_keys = {unb64u(k) for k in self.data.get("known_identity_keys", [])}
        devices = {int(d): unb64u(k) for d, k in self.data.get("known_device_keys", {}).items()}
        return identity_keys, devices

    async def audit(self, national_id: str) -> MonitorReport:
        identity_keys, devices = self._known()
        return await self.directory.monitor(
            national_id=national_id, known_identity_keys=identity_keys, known_devices=devices
        )

    async def check_my_devices(self, national_id: str) -> list[int]:
        """Audit the log; alert about every identity key and device key under our label
        that we do not know. The device numbers not yet approved."""
        report = await self.audit(national_id)
        if report.head_refused:
            await self.alert("log_head_refused", None, report.head_refused)
        alerted = set(self.data.get("alerted_identity_keys", []))
        for key in report.unknown_identity_keys:
            if b64u(key) in alerted:
                continue
            alerted.add(b64u(key))
            await self.alert(
                "unknown_identity_key",
                None,
                f"an identity key you do not know ({b64u(key)[:12]}…) was published for "
                f"{national_id}",
            )
        self.data["alerted_identity_keys"] = sorted(alerted)
        pending = dict(self.data.get("unknown_devices", {}))
        for device, key in report.unknown_devices:
            if pending.get(str(device)) != b64u(key):
                await self.alert(
                    "unknown_device",
                    None,
                    f"a device you do not know ({device}) was certified for {national_id}",
                )
            pending[str(device)] = b64u(key)
        self.data["unknown_devices"] = pending
        return sorted(int(d) for d in pending)

    def approve_device(self, device: int) -> None:
        """The user confirmed a new device of theirs (with the key the monitor saw)."""
        pending = dict(self.data.get("unknown_devices", {}))
        key = pending.pop(str(device), None)
        if key is not None:
            self.data.setdefault("known_device_keys", {})[str(device)] = key
        self.data["unknown_devices"] = pending

    async def _fingerprint(self, national_id: str) -> str:
        theirs = await self.directory.devices_of(national_id)
        return b64u(safety.fingerprint(national_id, [d.keys.sign_key for d in theirs.values()]))

    async def safety_number(self, me: str, peer: str) -> safety.SafetyNumber:
        mine = await self.directory.devices_of(me)
        theirs = await self.directory.devices_of(peer)
        return safety.safety_number(
            me,
            [d.keys.sign_key for d in mine.values()],
            peer,
            [d.keys.sign_key for d in theirs.values()],
        )

    async def mark_verified(self, national_id: str) -> None:
        self.data.setdefault("verified", {})[national_id] = await self._fingerprint(national_id)

    async def check_verified_contact(self, national_id: str) -> bool:
        expected = self.data.get("verified", {}).get(national_id)
        if expected is None:
            return False
        if await self._fingerprint(national_id) != expected:
            await self.alert(
                "key_changed",
                None,
                f"{national_id}'s keys changed since you verified them: "
                "compare safety numbers again",
            )
            return False
        return True
