"""The room-state rules of e2ee.state and the rotation rules of sender keys, one by one."""

from __future__ import annotations

import pytest

from e2ee import profile, shares, state
from e2ee.encoding import b64u
from e2ee.envelopes import decrypt_envelope, parse_envelope
from e2ee.errors import CryptoError, CryptoErrorCode
from e2ee.identity import IdentityKeyPair
from e2ee.keys import DeviceKeyPair
from tests.e2ee.helpers import DOCTOR, NURSE, PHARMACIST, make_room, session_pair

TEXT = {"type": "text", "text": "x"}


def refused(room, author, action, content) -> CryptoErrorCode:
    with pytest.raises(CryptoError) as error:
        room.apply(author, action, content)
    return error.value.code


def test_admin_rules():
    room = make_room()
    pharmacist = room.people.member(PHARMACIST, "member")
    assert refused(room, DOCTOR, "add_member", pharmacist) == CryptoErrorCode.NOT_AUTHORISED
    assert refused(room, DOCTOR, "set_role", {"national_id": DOCTOR[0], "role": "admin"}) == (
        CryptoErrorCode.NOT_AUTHORISED
    )
    room.apply(NURSE, "add_member", pharmacist)
    assert refused(room, NURSE, "add_member", pharmacist) == CryptoErrorCode.NOT_AUTHORISED
    # The last admin cannot leave others behind; after naming another admin, she can.
    assert refused(room, NURSE, "remove_member", {"national_id": NURSE[0]}) == (
        CryptoErrorCode.NOT_AUTHORISED
    )
    room.apply(NURSE, "set_role", {"national_id": DOCTOR[0], "role": "admin"})
    room.apply(NURSE, "remove_member", {"national_id": NURSE[0]})
    assert sorted(room.state.members) == sorted([DOCTOR[0], PHARMACIST[0]])
    # A former member's device can no longer sign anything.
    assert refused(room, NURSE, "set_policy", {"policy": room.state.policy.to_json()}) == (
        CryptoErrorCode.NOT_AUTHORISED
    )


def test_a_direct_room_keeps_its_two_people():
    room = make_room(kind="direct")
    member = room.people.member(PHARMACIST, "member")
    assert refused(room, NURSE, "add_member", member) == CryptoErrorCode.NOT_AUTHORISED


def test_members_manage_their_own_devices_only():
    room = make_room()
    tablet = room.people.device((DOCTOR[0], 42))
    entry = {"national_id": DOCTOR[0], "device": tablet.entry_json()}
    nurse_tablet = {
        "national_id": NURSE[0],
        "device": room.people.device((NURSE[0], 43)).entry_json(),
    }
    assert refused(room, DOCTOR, "add_device", nurse_tablet) == CryptoErrorCode.NOT_AUTHORISED
    room.apply(DOCTOR, "add_device", entry)
    assert room.state.current_device(DOCTOR[0], 42) == tablet.sign_key
    # A device number keeps its keys, even after leaving and coming back.
    room.apply(DOCTOR, "remove_device", {"national_id": DOCTOR[0], "device": 42})
    other = DeviceKeyPair.generate().public.sign_key
    identity = room.people.identity(DOCTOR[0])
    swapped = {
        "device": 42,
        "sign_key": b64u(other),
        "cross_sig": b64u(
            identity.certify(national_id=DOCTOR[0], device=42, kind="device", sign_key=other)
        ),
    }
    assert (
        refused(room, DOCTOR, "add_device", {"national_id": DOCTOR[0], "device": swapped})
        == CryptoErrorCode.BAD_CHAIN
    )


def test_a_device_needs_its_owners_identity_key_even_from_an_admin():
    """The server can make an admin's app sign anything it is shown; but a device that
    the member's identity key never vouched for is refused by everyone."""
    room = make_room()
    rogue = DeviceKeyPair.generate().public.sign_key
    operator_identity = IdentityKeyPair.generate()
    for signer in (operator_identity, room.people.identity(NURSE[0])):
        forged = {
            "device": 66,
            "sign_key": b64u(rogue),
            "cross_sig": b64u(
                signer.certify(national_id=DOCTOR[0], device=66, kind="device", sign_key=rogue)
            ),
        }
        content = {"national_id": DOCTOR[0], "device": forged}
        assert refused(room, NURSE, "add_device", content) == CryptoErrorCode.BAD_SIGNATURE
    # Nor can a member be created with a device certified as an archiver.
    archiver_sig = room.people.identity(DOCTOR[0]).certify(
        national_id=DOCTOR[0], device=67, kind="archiver", sign_key=rogue
    )
    content = {
        "national_id": DOCTOR[0],
        "device": {"device": 67, "sign_key": b64u(rogue), "cross_sig": b64u(archiver_sig)},
    }
    assert refused(room, NURSE, "add_device", content) == CryptoErrorCode.BAD_SIGNATURE


def test_a_linked_device_adds_itself_and_nobody_else():
    room = make_room()
    laptop_ref = (DOCTOR[0], 50)
    laptop = room.people.device(laptop_ref)
    room.apply(laptop_ref, "add_device", {"national_id": DOCTOR[0], "device": laptop.entry_json()})
    assert room.state.current_device(*laptop_ref) == laptop.sign_key
    # A device not yet in the room may add only itself.
    stranger_ref = (DOCTOR[0], 51)
    stranger = room.people.device(stranger_ref)
    other = room.people.device((DOCTOR[0], 52))
    content = {"national_id": DOCTOR[0], "device": other.entry_json()}
    assert refused(room, stranger_ref, "add_device", content) == CryptoErrorCode.NOT_AUTHORISED
    assert stranger.sign_key not in {d.sign_key for d in room.state.devices()}


def test_a_new_identity_key_is_signed_in_by_another_admin_and_ends_the_old_devices():
    room = make_room(members=(NURSE, DOCTOR, PHARMACIST))
    epoch = room.state.epoch
    new_identity = IdentityKeyPair.generate()
    room.people.identities[DOCTOR[0]] = new_identity
    new_phone = room.people.device((DOCTOR[0], 60))
    content = {
        "national_id": DOCTOR[0],
        "identity_key": b64u(new_identity.public),
        "devices": [new_phone.entry_json()],
    }
    # The member cannot vouch for themselves (they have no device in the room any more),
    # nor can a plain member.
    assert refused(room, PHARMACIST, "set_identity", content) == CryptoErrorCode.NOT_AUTHORISED
    room.apply(NURSE, "set_identity", content)
    assert room.state.members[DOCTOR[0]].identity_key == new_identity.public
    assert room.state.current_device(*DOCTOR) is None
    assert room.state.current_device(DOCTOR[0], 60) == new_phone.sign_key
    assert room.state.removed_between(epoch, room.state.epoch)  # senders rotate


def test_the_profile_is_versioned_and_set_by_admins():
    room = make_room()
    key = profile.ProfileKey.generate()
    ciphertext = profile.encrypt_profile(
        room=room.state.room, version=1, key=key, profile={"title": "M. D., plaie talon"}
    )
    content = {"version": 1, "key_id": b64u(key.key_id), "ct": b64u(ciphertext)}
    assert refused(room, DOCTOR, "set_profile", content) == CryptoErrorCode.NOT_AUTHORISED
    assert refused(room, NURSE, "set_profile", {**content, "version": 2}) == (
        CryptoErrorCode.BAD_CHAIN
    )
    room.apply(NURSE, "set_profile", content)
    stored = room.state.profile
    assert stored is not None
    assert stored.version == 1
    assert profile.decrypt_profile(
        room=room.state.room, version=1, key=key, ciphertext=stored.ciphertext
    ) == {"title": "M. D., plaie talon"}
    # Replayed as version 2 (or in another room), the ciphertext does not open.
    with pytest.raises(CryptoError):
        profile.decrypt_profile(room=room.state.room, version=2, key=key, ciphertext=ciphertext)


def test_the_chain_cannot_be_reordered_or_forked():
    room = make_room()
    first = room.sign(NURSE, "set_role", {"national_id": DOCTOR[0], "role": "admin"})
    advanced, _ = state.apply_event(room.state, first)
    # The same event again, or any event signed for the old head, does not follow.
    for raw in (first, room.events[0]):
        with pytest.raises(CryptoError) as error:
            state.apply_event(advanced, raw)
        assert error.value.code == CryptoErrorCode.BAD_CHAIN
    with pytest.raises(CryptoError) as error:
        state.apply_event(None, first)
    assert error.value.code == CryptoErrorCode.BAD_CHAIN


def test_an_event_gossips_its_authors_log_head():
    room = make_room()
    log = state.log_gossip(12, bytes(range(32)))
    raw = state.sign_event(
        state=room.state,
        room=room.state.room,
        author=NURSE,
        key_pair=room.keys[NURSE],
        action="set_role",
        content={"national_id": DOCTOR[0], "role": "admin"},
        timestamp=1,
        log=log,
    )
    _, event = state.apply_event(room.state, raw)
    assert event.log == log


def test_the_archiver_is_part_of_the_state_and_leaving_is_a_removal():
    room = make_room()
    archiver = room.people.device(("org:1750000001", 99), kind="archiver")
    room.apply(NURSE, "set_archiver", {"archiver": archiver.archiver_json()})
    assert archiver in room.state.devices()
    assert not room.state.archiver_missing
    epoch = room.state.epoch
    room.apply(NURSE, "set_archiver", {"archiver": None})
    assert room.state.archiver_missing  # care-team rooms require one by default
    assert room.state.removed_between(epoch, room.state.epoch)


def test_a_removal_forces_rotation_and_receivers_refuse_a_stale_key():
    room = make_room(members=(NURSE, DOCTOR, PHARMACIST))
    outbound, sessions = session_pair(room)
    assert not outbound.needs_rotation(state=room.state, now_ms=0)
    room.apply(NURSE, "remove_member", {"national_id": PHARMACIST[0]})
    assert outbound.needs_rotation(state=room.state, now_ms=0)
    # A careless sender who keeps the old key anyway: the doctor refuses the envelope.
    envelope = outbound.encrypt(
        state=room.state, key_pair=room.keys[NURSE], content=TEXT, seq=1, ts=1
    )
    with pytest.raises(CryptoError) as error:
        decrypt_envelope(state=room.state, envelope=parse_envelope(envelope), sessions=sessions)
    assert error.value.code == CryptoErrorCode.STALE_KEY


def test_rotation_by_count_and_age():
    room = make_room()
    outbound, _ = session_pair(room)
    policy = room.state.policy
    assert outbound.needs_rotation(state=room.state, now_ms=policy.rotate_after_seconds * 1000)
    outbound.index = policy.rotate_after_messages
    assert outbound.needs_rotation(state=room.state, now_ms=0)


def test_a_share_is_only_for_its_recipient_and_only_from_a_room_device():
    room = make_room(members=(NURSE, DOCTOR, PHARMACIST))
    outbound, _ = session_pair(room)
    sealed = shares.seal_share(
        session=outbound,
        epoch=room.state.epoch,
        key_pair=room.keys[NURSE],
        recipient=DOCTOR,
        kex=room.people.kex_key(DOCTOR),
    )
    with pytest.raises(CryptoError) as error:  # the doctor's key, but claimed by another
        shares.open_share(
            message=sealed, kex_private=room.people.kex_private(DOCTOR), me=PHARMACIST
        )
    assert error.value.code == CryptoErrorCode.WRONG_RECIPIENT
    # Another device's key-agreement key does not open it.
    with pytest.raises(CryptoError) as error:
        shares.open_share(
            message=sealed, kex_private=room.people.kex_private(PHARMACIST), me=DOCTOR
        )
    assert error.value.code == CryptoErrorCode.DECRYPT_FAILED
    # A share signed by someone outside the room is refused.
    outsider = DeviceKeyPair.generate()
    forged = shares.seal_share(
        session=outbound,
        epoch=room.state.epoch,
        key_pair=outsider,
        recipient=DOCTOR,
        kex=room.people.kex_key(DOCTOR),
    )
    opened = shares.open_share(
        message=forged, kex_private=room.people.kex_private(DOCTOR), me=DOCTOR
    )
    with pytest.raises(CryptoError) as error:
        shares.accept_share(opened, state=room.state)
    assert error.value.code == CryptoErrorCode.BAD_SIGNATURE
    assert b64u(outbound.key_id) == opened.body["key_id"]
    assert shares.share_kex_serial(sealed) == 1


def test_a_share_carries_the_profile_key():
    room = make_room()
    outbound, _ = session_pair(room)
    key = profile.ProfileKey.generate()
    sealed = shares.seal_share(
        session=outbound,
        epoch=room.state.epoch,
        key_pair=room.keys[NURSE],
        recipient=DOCTOR,
        kex=room.people.kex_key(DOCTOR),
        profile_key=key,
    )
    opened = shares.open_share(
        message=sealed, kex_private=room.people.kex_private(DOCTOR), me=DOCTOR
    )
    assert opened.profile_key == key
