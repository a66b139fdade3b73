"""The room-state rules of e2ee.state and the rotation rules of sender keys, one by one."""

from __future__ import annotations

import pytest

from e2ee import shares, state
from e2ee.encoding import b64u
from e2ee.envelopes import decrypt_envelope, parse_envelope
from e2ee.errors import CryptoError, CryptoErrorCode
from e2ee.keys import DeviceKeyPair
from tests.e2ee.helpers import DOCTOR, NURSE, PHARMACIST, make_room, session_pair


def refused(room, author, action, content) -> CryptoErrorCode:
    with pytest.raises(CryptoError) as error:
        room.apply(author, action, content)
    return error.value.code


def test_admin_rules():
    room = make_room()
    pharmacist = state.member_content(PHARMACIST[0], "member", [room.device(PHARMACIST)])
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
    member = state.member_content(PHARMACIST[0], "member", [room.device(PHARMACIST)])
    assert refused(room, NURSE, "add_member", member) == CryptoErrorCode.NOT_AUTHORISED


def test_members_manage_their_own_devices_only():
    room = make_room()
    tablet = DeviceKeyPair.generate()
    device = {"device": 42, **tablet.public.to_json()}
    assert refused(room, DOCTOR, "add_device", {"national_id": NURSE[0], "device": device}) == (
        CryptoErrorCode.NOT_AUTHORISED
    )
    room.apply(DOCTOR, "add_device", {"national_id": DOCTOR[0], "device": device})
    assert room.state.current_device(DOCTOR[0], 42) == tablet.public
    # A device number keeps its keys, even after leaving and coming back.
    room.apply(DOCTOR, "remove_device", {"national_id": DOCTOR[0], "device": 42})
    other = {"device": 42, **DeviceKeyPair.generate().public.to_json()}
    assert refused(room, DOCTOR, "add_device", {"national_id": DOCTOR[0], "device": other}) == (
        CryptoErrorCode.BAD_CHAIN
    )


def test_the_chain_cannot_be_reordered_or_forked():
    room = make_room()
    first = state.sign_event(
        state=room.state,
        room=room.state.room,
        author=NURSE,
        key_pair=room.keys[NURSE],
        action="set_role",
        content={"national_id": DOCTOR[0], "role": "admin"},
        timestamp=1,
    )
    advanced, _ = state.apply_event(room.state, first)
    # The same event again, or any event signed for the old head, does not follow.
    for raw in (first, room.events[0]):
        with pytest.raises(CryptoError) as error:
            state.apply_event(advanced, raw)
        assert error.value.code == CryptoErrorCode.BAD_CHAIN
    with pytest.raises(CryptoError) as error:
        state.apply_event(None, first)
    assert error.value.code == CryptoErrorCode.BAD_CHAIN


def test_the_archiver_is_part_of_the_state_and_leaving_is_a_removal():
    room = make_room()
    archiver = state.RoomDevice(
        national_id="1750000001", device=99, keys=DeviceKeyPair.generate().public
    )
    room.apply(NURSE, "set_archiver", {"archiver": archiver.to_json()})
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
        state=room.state, key_pair=room.keys[NURSE], content={"type": "text", "text": "x"}
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
        recipient=room.device(DOCTOR),
    )
    with pytest.raises(CryptoError) as error:  # the doctor's key, but claimed by another
        shares.open_share(message=sealed, key_pair=room.keys[DOCTOR], me=PHARMACIST)
    assert error.value.code == CryptoErrorCode.WRONG_RECIPIENT
    # A share signed by someone outside the room is refused.
    outsider = DeviceKeyPair.generate()
    forged = shares.seal_share(
        session=outbound, epoch=room.state.epoch, key_pair=outsider, recipient=room.device(DOCTOR)
    )
    opened = shares.open_share(message=forged, key_pair=room.keys[DOCTOR], me=DOCTOR)
    with pytest.raises(CryptoError) as error:
        shares.accept_share(opened, state=room.state)
    assert error.value.code == CryptoErrorCode.BAD_SIGNATURE
    assert b64u(outbound.key_id) == opened.body["key_id"]
