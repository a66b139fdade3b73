"""Verifying identities and device keys against the key-transparency log before
trusting them (docs/protocol.md §10.4).

* ``identity_of(national_id)``: the server's lookup answer is checked completely — the
  head (``client.logview``: signed, cosigned, fresh, consistent with this device's
  view), the VRF proof of the label, every inclusion proof, the label's unbroken chain,
  the identity key's binding and each device's cross-signature (by the *newest*
  identity key) and self-signature. Only devices of the requested kind count: ``device``
  for a practitioner's, ``archiver`` for an organisation's.
* Registration: ``register_identity`` publishes an identity key (first device) and
  ``register_device`` a device cross-signed by it; both check the answer is in the log.
* ``monitor``: audits the log up to the largest head this device accepted and compares
  the FULL keys under its own label with the ones it knows.
* ``observe_gossip``: checks a head another device or member saw.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client.api import ApiError, RestApi
from client.logview import ForkDetectedError, KeyTransparencyError, LogConfig, LogView
from e2ee import transparency, tree_heads
from e2ee.encoding import b64u, unb64u
from e2ee.errors import CryptoError
from e2ee.keys import DeviceKeyPair, PublicDeviceKeys, raw_public
from e2ee.state import RoomDevice
from e2ee.tree_heads import TreeHead

__all__ = [
    "ForkDetectedError",
    "KeyDirectory",
    "KeyTransparencyError",
    "MonitorReport",
    "VerifiedDevice",
    "VerifiedIdentity",
]

LOOKUP_REUSE_SECONDS = 30.0
_ROLE: dict[str, str] = {"device": "a member's device", "archiver": "an archiver"}


def certified_role(kind: transparency.DeviceKind) -> str:
    """How a certificate kind reads in a message: "a member's device", "an archiver"."""
    return _ROLE[kind]


@dataclass(frozen=True, slots=True)
class VerifiedDevice:
    national_id: str
    device: int
    keys: PublicDeviceKeys
    index: int
    kind: transparency.DeviceKind = "device"
    cross_sig: bytes = b""  # the identity key's signature of the device (room states carry it)


@dataclass(frozen=True, slots=True)
class VerifiedIdentity:
    """A person's newest identity key and the devices it certifies (of one kind)."""

    national_id: str
    identity_key: bytes | None
    devices: dict[int, VerifiedDevice]
    index: int
    kind: transparency.IdentityKind | None = None


@dataclass(frozen=True, slots=True)
class MonitorReport:
    """What a monitor pass found under this device's own label, up to ``size``:
    identity keys and devices (number, full signing key) it does not know, and entries
    the log signed whose signatures do not verify."""

    size: int
    identity_keys: list[bytes]
    unknown_identity_keys: list[bytes]
    unknown_devices: list[tuple[int, bytes]]
    rejected: list[int] = field(default_factory=list)
    head_refused: str = ""


@dataclass(frozen=True, slots=True)
class RoomArchiver:
    """A room's archiver, proven in the log with kind ``archiver``. ``name`` is the
    organisation's name as the server's directory gives it (like practitioners' names);
    ``structure_id`` its IdNat_Struct, from its identity ``org:<IdNat_Struct>``."""

    national_id: str
    device: int
    structure_id: str
    name: str


class KeyDirectory:
    """Per-device view of the log. ``data`` is the part of the key store it keeps."""

    def __init__(self, api: RestApi, data: dict[str, Any], config: LogConfig | None = None) -> None:
        self.api = api
        self.data = data
        self.log = LogView(api, data, config or LogConfig())
        self._lookups: dict[tuple[str, str], tuple[float, VerifiedIdentity]] = {}

    @property
    def log_public(self) -> bytes:
        return self.log.log_public

    async def pin_log_key(self) -> None:
        """Pin the log's keys (the configured one, or on first use) and accept its head."""
        await self.log.start()

    async def accept_tree_head(self, value: Any, cosignatures: Any = ()) -> TreeHead:
        return await self.log.accept(value, list(cosignatures))

    async def observe_gossip(self, size: int, root: bytes) -> None:
        await self.log.observe_gossip(size, root)

    # Lookups ----------------------------------------------------------------------

    async def chain_of(self, national_id: str) -> transparency.LabelChain:
        """The verified chain of ``national_id``'s label in an accepted head."""
        return (await self._lookup(national_id))[0]

    async def _lookup(
        self, national_id: str
    ) -> tuple[transparency.LabelChain, dict[int, dict[str, Any]]]:
        if "log_key" not in self.data:
            await self.pin_log_key()
        answer = await self.api.call("GET", f"keys/practitioners/{national_id}")
        head = await self.log.accept(answer["tree_head"], answer.get("cosignatures", []))
        try:
            if answer["national_id"] != national_id:
                raise KeyTransparencyError("the lookup answered for someone else")
            label = unb64u(answer["label"], length=transparency.LABEL_BYTES, field="label")
            transparency.verify_label(
                vrf_public=self.log.vrf_public,
                national_id=national_id,
                label=label,
                proof=unb64u(answer["vrf_proof"], field="vrf_proof"),
            )
            records = []
            for item in answer["entries"]:
                leaf = item["entry"].encode("utf-8")
                tree_heads.check_inclusion(
                    leaf=leaf, index=item["index"], proof=item["proof"], head=head
                )
                records.append(
                    (item["index"], transparency.parse_log_entry(leaf, log_public=self.log_public))
                )
            chain = transparency.verify_chain(national_id=national_id, label=label, entries=records)
        except CryptoError as error:
            raise KeyTransparencyError(f"lookup of {national_id} refused: {error}") from None
        self.data.setdefault("labels", {})[national_id] = b64u(label)
        return chain, {int(k["device"]): k for k in answer.get("kex_keys", [])}

    async def identity_of(
        self,
        national_id: str,
        *,
        kind: transparency.DeviceKind = "device",
        reuse_seconds: float = 0.0,
    ) -> VerifiedIdentity:
        """``national_id``'s newest identity key and its valid devices of ``kind``, each
        with a key-agreement key the device signed. With ``reuse_seconds``, a lookup that
        recent is reused (sharing keys in many rooms at once asks once per person);
        ``forget`` drops it at once (a revocation notice)."""
        cached = self._lookups.get((national_id, kind))
        if cached is not None and time.monotonic() - cached[0] < reuse_seconds:
            return cached[1]
        found = await self._identity_of(national_id, kind)
        self._lookups[(national_id, kind)] = (time.monotonic(), found)
        return found

    def forget(self, national_id: str) -> None:
        """Look ``national_id`` up again next time."""
        for key in [k for k in self._lookups if k[0] == national_id]:
            del self._lookups[key]

    async def _identity_of(
        self, national_id: str, kind: transparency.DeviceKind
    ) -> VerifiedIdentity:
        chain, kex_keys = await self._lookup(national_id)
        devices: dict[int, VerifiedDevice] = {}
        for number, certified in chain.devices.items():
            signed = kex_keys.get(number)
            if certified.kind != kind or signed is None:
                continue
            try:
                kex_key = unb64u(signed["kex_key"], length=32, field="kex_key")
                transparency.verify_kex_key(
                    national_id=national_id,
                    device=number,
                    sign_key=certified.sign_key,
                    kex_key=kex_key,
                    signature=unb64u(signed["signature"], length=64, field="signature"),
                )
            except (CryptoError, KeyError):
                continue  # not a key that device signed: nothing can be sealed to it
            devices[number] = VerifiedDevice(
                national_id=national_id,
                device=number,
                keys=PublicDeviceKeys(sign_key=certified.sign_key, kex_key=kex_key),
                index=certified.index,
                kind=certified.kind,
                cross_sig=certified.cross_sig,
            )
        return VerifiedIdentity(
            national_id=national_id,
            identity_key=chain.identity_key,
            devices=devices,
            index=chain.identity_index,
            kind=chain.identity_kind,
        )

    async def devices_of(
        self, national_id: str, *, kind: transparency.DeviceKind = "device"
    ) -> dict[int, VerifiedDevice]:
        """The valid devices of ``kind`` of a practitioner (or of an organisation, for
        ``archiver``), each proven in the log."""
        return (await self.identity_of(national_id, kind=kind)).devices

    async def label_of(self, national_id: str) -> bytes:
        """``national_id``'s label, proven by the log's VRF (looked up once)."""
        known = self.data.get("labels", {}).get(national_id)
        if known is None:
            # The VRF proof alone proves the label: no tree head is needed for it (so a
            # device registers even while the witnesses have not cosigned a head yet).
            if "log_key" not in self.data:
                await self.pin_log_key()
            answer = await self.api.call("GET", f"keys/practitioners/{national_id}")
            try:
                label = unb64u(answer["label"], length=transparency.LABEL_BYTES, field="label")
                transparency.verify_label(
                    vrf_public=self.log.vrf_public,
                    national_id=national_id,
                    label=label,
                    proof=unb64u(answer["vrf_proof"], field="vrf_proof"),
                )
            except CryptoError as error:
                raise KeyTransparencyError(f"label of {national_id} refused: {error}") from None
            self.data.setdefault("labels", {})[national_id] = b64u(label)
            known = b64u(label)
        return unb64u(known, length=transparency.LABEL_BYTES)

    async def was_revoked(self, national_id: str, device: int, sign_key: bytes) -> bool:
        """Whether the log holds a revocation of this device and signing key."""
        chain = await self.chain_of(national_id)
        return (device, sign_key) in chain.revoked

    async def archiver_device(self, organisation: str) -> RoomDevice:
        """The organisation's archiver device to name in a room: its newest certified,
        unrevoked archiver, vouched for by the organisation's identity key."""
        identity = await self.identity_of(organisation, kind="archiver")
        if identity.identity_key is None or not identity.devices:
            raise KeyTransparencyError(f"{organisation} has no certified archiver")
        newest = max(identity.devices.values(), key=lambda d: d.index)
        return RoomDevice(
            national_id=organisation,
            device=newest.device,
            sign_key=newest.keys.sign_key,
            cross_sig=newest.cross_sig,
            identity_key=identity.identity_key,
        )

    async def archiver_of(self, archiver: RoomDevice) -> RoomArchiver:
        """Prove that a room's archiver is an organisation's archiver in the log (raise
        KeyTransparencyError otherwise, e.g. a practitioner's device passed off as one)
        and name it."""
        identity = await self.identity_of(archiver.national_id, kind="archiver")
        found = identity.devices.get(archiver.device)
        if (
            identity.identity_key != archiver.identity_key
            or found is None
            or found.keys.sign_key != archiver.sign_key
        ):
            raise KeyTransparencyError(
                f"device {archiver.device} of {archiver.national_id} is not certified as "
                f"{certified_role('archiver')}"
            )
        try:
            entry = await self.api.call("GET", f"directory/practitioners/{archiver.national_id}")
            name = str(entry["last_name"]) or archiver.national_id
        except ApiError:
            name = archiver.national_id
        return RoomArchiver(
            national_id=archiver.national_id,
            device=archiver.device,
            structure_id=archiver.national_id.removeprefix("org:"),
            name=name,
        )

    # Registration -----------------------------------------------------------------

    async def _check_appended(self, answer: Any, national_id: str) -> transparency.LogRecord:
        """The answer of an append: its head is the log's and consistent with this
        view, the entry is included and sits under ``national_id``'s label."""
        head = await self.log.note(answer["tree_head"], answer.get("cosignatures", []))
        leaf = answer["entry"].encode("utf-8")
        try:
            tree_heads.check_inclusion(
                leaf=leaf, index=answer["index"], proof=answer["proof"], head=head
            )
            record = transparency.parse_log_entry(leaf, log_public=self.log_public)
        except CryptoError as error:
            raise KeyTransparencyError(f"the log's answer is invalid: {error}") from None
        if record.label != await self.label_of(national_id):
            raise KeyTransparencyError("the log filed the entry under another label")
        return record

    async def register_identity(
        self, *, identity: Ed25519PrivateKey, national_id: str, reset: bool = False
    ) -> int:
        """Publish ``identity``'s public key for ``national_id``; its log index."""
        binding = transparency.sign_identity_binding(identity, national_id)
        answer = await self.api.call(
            "POST",
            "identity",
            json={
                "identity_key": b64u(raw_public(identity)),
                "binding": b64u(binding),
                "reset": reset,
            },
        )
        record = await self._check_appended(answer, national_id)
        if (
            not isinstance(record, transparency.IdentityEntry)
            or record.identity_key != raw_public(identity)
            or record.binding != binding
        ):
            raise KeyTransparencyError("the log published another identity key than ours")
        return int(answer["index"])

    async def register_device(
        self,
        *,
        identity: Ed25519PrivateKey,
        key_pair: DeviceKeyPair,
        national_id: str,
        device: int,
        kind: transparency.DeviceKind = "device",
    ) -> int:
        """Certify ``key_pair`` as device ``device`` of ``national_id``, cross-signed by
        ``identity``; its log index."""
        identity_key = raw_public(identity)
        sign_key = key_pair.public.sign_key
        answer = await self.api.call(
            "POST",
            "devices/keys",
            json={
                **key_pair.public.to_json(),
                "signature": b64u(
                    transparency.sign_device_registration(
                        key_pair.sign_private,
                        national_id=national_id,
                        device=device,
                        kind=kind,
                        identity_key=identity_key,
                    )
                ),
                "cross_signature": b64u(
                    transparency.sign_device_certificate(
                        identity,
                        national_id=national_id,
                        device=device,
                        kind=kind,
                        sign_key=sign_key,
                    )
                ),
                "kex_signature": b64u(
                    transparency.sign_kex_key(
                        key_pair.sign_private,
                        national_id=national_id,
                        device=device,
                        kex_key=key_pair.public.kex_key,
                    )
                ),
            },
        )
        record = await self._check_appended(answer, national_id)
        if not isinstance(record, transparency.DeviceEntry) or (
            record.device,
            record.sign_key,
            record.identity_key,
        ) != (device, sign_key, identity_key):
            raise KeyTransparencyError("the log certified other keys than ours")
        if record.kind != kind:
            raise KeyTransparencyError(f"the log certified this device as {record.kind}")
        return int(answer["index"])

    # Monitoring -------------------------------------------------------------------

    async def monitor(
        self,
        *,
        national_id: str,
        known_identity_keys: set[bytes],
        known_devices: dict[int, bytes],
    ) -> MonitorReport:
        """Audit the log up to the largest head accepted and report identity keys and
        devices under ``national_id``'s label that are not the known ones."""
        label = await self.label_of(national_id)
        audited = await self.log.audit({label})
        try:
            records = [
                (index, transparency.parse_log_entry(leaf, log_public=self.log_public))
                for index, leaf in audited.own
            ]
            chain = transparency.verify_chain(national_id=national_id, label=label, entries=records)
        except CryptoError as error:
            raise KeyTransparencyError(f"my own entries are invalid: {error}") from None
        identity_keys = [
            r.identity_key for _, r in records if isinstance(r, transparency.IdentityEntry)
        ]
        devices = [
            (r.device, r.sign_key) for _, r in records if isinstance(r, transparency.DeviceEntry)
        ]
        return MonitorReport(
            size=audited.size,
            identity_keys=identity_keys,
            unknown_identity_keys=[k for k in identity_keys if k not in known_identity_keys],
            unknown_devices=[(d, k) for d, k in devices if known_devices.get(d) != k],
            rejected=chain.rejected,
            head_refused=audited.refused,
        )
