"""Identity keys, rotating key-agreement keys, linking codes, the recovery code and
safety numbers (e2ee.identity, e2ee.kex, e2ee.linking, e2ee.recovery, e2ee.safety)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from e2ee import kex, linking, recovery, safety
from e2ee.encoding import b64u
from e2ee.errors import CryptoError, CryptoErrorCode
from e2ee.identity import IdentityKeyPair, verify_binding, verify_certificate
from e2ee.keys import DeviceKeyPair, raw_public
from tests.e2ee.helpers import DOCTOR, NOW_MS, NURSE

DAY = 24 * 3600 * 1000


def test_an_identity_key_vouches_for_its_own_devices_only():
    identity = IdentityKeyPair.generate()
    phone = DeviceKeyPair.generate().public.sign_key
    signature = identity.certify(national_id=NURSE[0], device=7, kind="device", sign_key=phone)
    verify_certificate(
        national_id=NURSE[0],
        device=7,
        kind="device",
        sign_key=phone,
        identity_key=identity.public,
        signature=signature,
    )
    for changed in (
        {"national_id": DOCTOR[0]},
        {"device": 8},
        {"kind": "archiver"},
        {"identity_key": IdentityKeyPair.generate().public},
    ):
        arguments: dict = {
            "national_id": NURSE[0],
            "device": 7,
            "kind": "device",
            "sign_key": phone,
            "identity_key": identity.public,
            "signature": signature,
            **changed,
        }
        with pytest.raises(CryptoError):
            verify_certificate(**arguments)
    verify_binding(
        national_id=NURSE[0], identity_key=identity.public, signature=identity.bind(NURSE[0])
    )
    with pytest.raises(CryptoError):
        verify_binding(
            national_id=DOCTOR[0], identity_key=identity.public, signature=identity.bind(NURSE[0])
        )


def published(keys: DeviceKeyPair, *, serial: int = 1, now: int = NOW_MS) -> bytes:
    return kex.publish(
        key_pair=keys,
        national_id=NURSE[0],
        device=NURSE[1],
        kex_private=keys.kex_private,
        serial=serial,
        now_ms=now,
    )


def test_a_key_agreement_key_is_signed_by_its_device_and_expires():
    keys = DeviceKeyPair.generate()
    raw = published(keys, serial=3)
    found = kex.verify_kex(
        raw, national_id=NURSE[0], device=NURSE[1], sign_key=keys.public.sign_key, now_ms=NOW_MS
    )
    assert (found.serial, found.kex_key) == (3, keys.public.kex_key)
    with pytest.raises(CryptoError) as error:  # another device's signing key
        kex.verify_kex(
            raw,
            national_id=NURSE[0],
            device=NURSE[1],
            sign_key=DeviceKeyPair.generate().public.sign_key,
            now_ms=NOW_MS,
        )
    assert error.value.code == CryptoErrorCode.BAD_SIGNATURE
    with pytest.raises(CryptoError) as error:  # presented as another device's
        kex.verify_kex(
            raw, national_id=NURSE[0], device=8, sign_key=keys.public.sign_key, now_ms=NOW_MS
        )
    assert error.value.code == CryptoErrorCode.WRONG_RECIPIENT
    with pytest.raises(CryptoError) as error:  # a server still serving it after expiry
        kex.verify_kex(
            raw,
            national_id=NURSE[0],
            device=NURSE[1],
            sign_key=keys.public.sign_key,
            now_ms=NOW_MS + kex.LIFETIME_MS,
        )
    assert error.value.code == CryptoErrorCode.EXPIRED_KEY
    forever = kex.publish(
        key_pair=keys,
        national_id=NURSE[0],
        device=NURSE[1],
        kex_private=keys.kex_private,
        serial=1,
        now_ms=NOW_MS,
        lifetime_ms=kex.LIFETIME_MS + DAY,
    )
    with pytest.raises(CryptoError) as error:  # no key may claim a longer life
        kex.verify_kex(
            forever,
            national_id=NURSE[0],
            device=NURSE[1],
            sign_key=keys.public.sign_key,
            now_ms=NOW_MS,
        )
    assert error.value.code == CryptoErrorCode.BAD_ENCODING


def test_a_link_code_binds_the_exact_request():
    keys = DeviceKeyPair.generate()
    request = linking.link_request(
        national_id=NURSE[0], device=21, sign_key=keys.public.sign_key, kex_key=keys.public.kex_key
    )
    full = linking.commitment(request)
    code = linking.LinkCode(link_id=b"\x01\x02\x03\x04\x05", commitment=full)
    scanned = linking.LinkCode.parse(code.qr_payload)
    typed = linking.LinkCode.parse(code.short_code.lower().replace("-", " "))
    assert len(code.short_code.replace("-", "")) == 24
    assert scanned.matches(request)
    assert typed.matches(request)
    assert typed.link_id == code.link_id
    # The server swaps in its own device: neither code matches.
    rogue = DeviceKeyPair.generate()
    swapped = {**request, "sign_key": b64u(rogue.public.sign_key)}
    assert not scanned.matches(swapped)
    assert not typed.matches(swapped)
    with pytest.raises(CryptoError):
        linking.LinkCode.parse("relais-link:2:nope")


def test_the_link_bundle_opens_only_on_the_new_device():
    new_device = DeviceKeyPair.generate()
    request = linking.link_request(
        national_id=NURSE[0],
        device=21,
        sign_key=new_device.public.sign_key,
        kex_key=new_device.public.kex_key,
    )
    bundle = {"v": 2, "type": "link_bundle", "identity_key": "x"}
    sealed = linking.seal_bundle(request=request, bundle=bundle)
    assert linking.open_bundle(sealed, new_device.kex_private) == bundle
    with pytest.raises(CryptoError) as error:
        linking.open_bundle(sealed, X25519PrivateKey.generate())
    assert error.value.code == CryptoErrorCode.DECRYPT_FAILED


def test_the_recovery_code_opens_the_backup_and_nothing_else_does():
    code = recovery.RecoveryCode.generate()
    identity = IdentityKeyPair.generate()
    secret = b"\x07" * 32
    sealed = recovery.seal(
        code.public_key(),
        recovery.identity_backup(
            national_id=NURSE[0],
            identity_private=identity.private_bytes(),
            account_secret=secret,
        ),
    )
    # Typed back from paper, with lower case, spaces and look-alike digits.
    typed = str(code).lower().replace("-", " ").replace("o", "0").replace("i", "1")
    restored = recovery.restore_identity(
        recovery.open_sealed(recovery.RecoveryCode.parse(typed), sealed), national_id=NURSE[0]
    )
    assert restored.identity_private == identity.private_bytes()
    assert restored.account_secret == secret
    with pytest.raises(CryptoError) as error:
        recovery.open_sealed(recovery.RecoveryCode.generate(), sealed)
    assert error.value.code == CryptoErrorCode.DECRYPT_FAILED
    with pytest.raises(CryptoError):  # another practitioner's backup
        recovery.restore_identity(recovery.open_sealed(code, sealed), national_id=DOCTOR[0])
    assert code.public_key() == raw_public(code.private_key())


def test_account_keys_are_the_same_on_every_device_and_differ_by_purpose():
    secret = b"\x09" * 32
    billing = recovery.account_key(secret, "billing-pseudonym")
    assert billing == recovery.account_key(bytes(secret), "billing-pseudonym")
    assert billing != recovery.account_key(secret, "billing-ledger")
    assert billing != recovery.account_key(b"\x0a" * 32, "billing-pseudonym")
    with pytest.raises(ValueError, match="purpose"):
        recovery.account_key(secret, "")


def test_safety_numbers_cover_identity_keys_only():
    nurse, doctor = IdentityKeyPair.generate(), IdentityKeyPair.generate()
    ours = safety.safety_number(NURSE[0], nurse.public, DOCTOR[0], doctor.public)
    theirs = safety.safety_number(DOCTOR[0], doctor.public, NURSE[0], nurse.public)
    assert ours == theirs
    assert len(ours.digits.replace(" ", "")) == 60
    assert safety.qr_matches(theirs.qr_payload, ours)
    swapped = safety.safety_number(
        NURSE[0], nurse.public, DOCTOR[0], IdentityKeyPair.generate().public
    )
    assert swapped.digits[:35] == ours.digits[:35] or swapped.digits[36:] == ours.digits[36:]
    assert swapped.digits != ours.digits
    assert not safety.qr_matches(swapped.qr_payload, ours)
    with pytest.raises(CryptoError):
        safety.qr_matches("https://example.com", ours)
