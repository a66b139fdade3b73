"""Identity keys for tests: one per national id, derived from it, shared by every
helper of this process — as a practitioner's linked devices share it (linking brings
the identity key to a new device). Server-side helpers certify through the services,
REST helpers over the API, SDK helpers put it in the device's key store."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rest_framework.test import APIClient

from chat.services.devices import DeviceIdentity
from client.account import Account
from e2ee import transparency
from e2ee.encoding import b64u, unb64u
from e2ee.keys import DeviceKeyPair, raw_private, raw_public
from e2ee.recovery import RecoveryCode
from e2ee.state import RoomDevice, member_content


def identity_key(national_id: str) -> Ed25519PrivateKey:
    seed = hashlib.sha256(b"relais test identity key\x00" + national_id.encode()).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def kind_of(national_id: str) -> transparency.DeviceKind:
    return "archiver" if national_id.startswith("org:") else "device"


def registration(national_id: str, device: int, keys: DeviceKeyPair) -> dict[str, str]:
    """The body of ``POST /devices/keys`` for these keys, cross-signed by the identity."""
    identity = identity_key(national_id)
    kind = kind_of(national_id)
    return {
        **keys.public.to_json(),
        "signature": b64u(
            transparency.sign_device_registration(
                keys.sign_private,
                national_id=national_id,
                device=device,
                kind=kind,
                identity_key=raw_public(identity),
            )
        ),
        "cross_signature": b64u(
            transparency.sign_device_certificate(
                identity,
                national_id=national_id,
                device=device,
                kind=kind,
                sign_key=keys.public.sign_key,
            )
        ),
        "kex_signature": b64u(
            transparency.sign_kex_key(
                keys.sign_private,
                national_id=national_id,
                device=device,
                kex_key=keys.public.kex_key,
            )
        ),
    }


def identity_body(national_id: str) -> dict[str, str]:
    identity = identity_key(national_id)
    return {
        "identity_key": b64u(raw_public(identity)),
        "binding": b64u(transparency.sign_identity_binding(identity, national_id)),
    }


def certify_over_rest(client: APIClient, national_id: str, device: int, keys: DeviceKeyPair):
    """Publish the identity key if the log has none, then certify the device (the
    response of the certification)."""
    published = client.post("/api/v1/identity", identity_body(national_id), format="json")
    assert published.status_code in (201, 409), published.content
    return client.post(
        "/api/v1/devices/keys", registration(national_id, device, keys), format="json"
    )


def certify_with_services(identity: DeviceIdentity, keys: DeviceKeyPair) -> int:
    """The same through the services (server-side tests); the entry's index."""
    from keylog.services import chain_of, do_certify_device, do_create_identity

    national_id = identity.practitioner_id
    if chain_of(national_id).identity_key is None:
        body = identity_body(national_id)
        do_create_identity(
            identity=identity,
            identity_key=raw_public(identity_key(national_id)),
            binding=unb64u(body["binding"]),
        )
    body = registration(national_id, identity.device_id, keys)
    appended = do_certify_device(
        identity=identity,
        keys=keys.public,
        signature=unb64u(body["signature"]),
        cross_signature=unb64u(body["cross_signature"]),
        kex_signature=unb64u(body["kex_signature"]),
    )
    return appended.index


def recovery_code(national_id: str) -> RecoveryCode:
    """The recovery code of a test practitioner's identity (derived, like the key)."""
    seed = hashlib.sha256(b"relais test recovery code\x00" + national_id.encode()).digest()
    return RecoveryCode(seed[:20])


def account_store_entry(national_id: str) -> dict[str, str | None]:
    """What the SDK keeps in ``store.data["account"]`` on a device holding the identity
    of a test practitioner (the identity key above, a derived account secret, and the
    public half of ``recovery_code``)."""
    secret = hashlib.sha256(b"relais test account secret\x00" + national_id.encode()).digest()
    return Account.from_parts(
        identity_private=raw_private(identity_key(national_id)),
        account_secret=secret,
        recovery_key=recovery_code(national_id).public_key(),
    ).data


def room_device(national_id: str, device: int, keys: DeviceKeyPair) -> RoomDevice:
    """A device of a test practitioner as a room state lists it: vouched for by their
    test identity key."""
    identity = identity_key(national_id)
    return RoomDevice(
        national_id=national_id,
        device=device,
        sign_key=keys.public.sign_key,
        cross_sig=transparency.sign_device_certificate(
            identity,
            national_id=national_id,
            device=device,
            kind=kind_of(national_id),
            sign_key=keys.public.sign_key,
        ),
        identity_key=raw_public(identity),
    )


def member(national_id: str, role: str, devices: list[RoomDevice]) -> dict[str, object]:
    """A member as a room state lists them, with their test identity key."""
    return member_content(national_id, role, raw_public(identity_key(national_id)), devices)
