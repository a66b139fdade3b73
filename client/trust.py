"""Who this device trusts, and why: its own certification, its own practitioner's
other devices (monitored in the log), and contacts verified in person.

* ``register`` certifies fresh keys and checks that the log really contains them.
* ``check_my_devices`` audits the log for devices certified for our national id that
  we do not know (a device the server could have added): each one raises an alert.
* Safety numbers let two people compare keys in person; a verified contact whose keys
  change afterwards raises a ``key_changed`` alert.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from client.api import RestApi
from client.directory import KeyDirectory, KeyTransparencyError
from e2ee import safety, transparency
from e2ee.encoding import b64u
from e2ee.keys import DeviceKeyPair

Alert = Callable[[str, int | None, str], Awaitable[None]]


class Trust:
    def __init__(
        self, *, api: RestApi, directory: KeyDirectory, data: dict[str, Any], alert: Alert
    ) -> None:
        self.api = api
        self.directory = directory
        self.data = data
        self.alert = alert

    async def register(
        self,
        *,
        token: str,
        device: int,
        national_id: str,
        kind: transparency.DeviceKind = "device",
    ) -> None:
        """Generate this device's keys, have them certified, and check the certificate
        is in the log with the expected ``kind`` (``archiver`` for an organisation's
        archiver). Devices of that kind certified before this one are taken as the
        owner's own; any later unknown device is reported."""
        keys = DeviceKeyPair.generate()
        sign_private, kex_private = keys.private_bytes()
        self.data.update(
            token=token,
            device=device,
            national_id=national_id,
            keys={"sign": b64u(sign_private), "kex": b64u(kex_private)},
        )
        await self.directory.pin_log_key()
        signature = transparency.sign_registration(
            key_pair=keys, national_id=national_id, device=device
        )
        answer = await self.api.call(
            "POST", "devices/keys", json={**keys.public.to_json(), "signature": b64u(signature)}
        )
        head = await self.directory.accept_tree_head(answer["tree_head"])
        leaf = answer["entry"].encode("utf-8")
        transparency.check_inclusion(
            leaf=leaf, index=answer["index"], proof=answer["proof"], head=head
        )
        record = transparency.parse_log_entry(leaf, log_public=self.directory.log_public)
        if not isinstance(record, transparency.Certificate) or record.keys != keys.public:
            raise KeyTransparencyError("the log certified other keys than ours")
        if record.kind != kind:
            raise KeyTransparencyError(f"the log certified this device as {record.kind}")
        mine = await self.directory.devices_of(national_id, kind=kind)
        self.data["known_devices"] = sorted({device, *mine})
        await self.directory.monitor(
            national_id=national_id, known_devices=set(self.data["known_devices"])
        )

    async def check_my_devices(self, national_id: str) -> list[int]:
        known = set(self.data.get("known_devices", []))
        found = await self.directory.monitor(national_id=national_id, known_devices=known)
        for device in found:
            await self.alert(
                "unknown_device",
                None,
                f"a device you do not know ({device}) was certified for {national_id}",
            )
        self.data["unknown_devices"] = sorted(
            {*self.data.get("unknown_devices", []), *found} - known
        )
        return list(self.data["unknown_devices"])

    def approve_device(self, device: int) -> None:
        self.data["known_devices"] = sorted({*self.data.get("known_devices", []), device})
        self.data["unknown_devices"] = [
            d for d in self.data.get("unknown_devices", []) if d != device
        ]

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
