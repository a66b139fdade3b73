"""The archiver in the signed room state (e2ee.state), as both the server and every
client apply it: it receives the room's keys, but it is never a member and never sends."""

from __future__ import annotations

import pytest

from e2ee import shares, state
from e2ee.envelopes import InboundSession, OutboundSession, decrypt_envelope, parse_envelope
from e2ee.errors import CryptoError, CryptoErrorCode
from tests.e2ee.helpers import DOCTOR, NURSE, Room, make_room, session_pair

ARCHIVER = ("org:1750000123", 99)


def with_archiver(room: Room) -> state.RoomDevice:
    archiver = room.people.device(ARCHIVER, kind="archiver")
    room.apply(NURSE, "set_archiver", {"archiver": archiver.archiver_json()})
    return archiver


def refused(room: Room, author, action: str, content: dict) -> CryptoError:
    with pytest.raises(CryptoError) as error:
        room.apply(author, action, content)
    return error.value


def test_the_archiver_receives_the_keys_of_the_room():
    room = make_room()
    archiver = with_archiver(room)
    assert room.state.devices()[-1] == archiver
    outbound, _ = session_pair(room)
    sealed = shares.seal_share(
        session=outbound,
        epoch=room.state.epoch,
        key_pair=room.keys[NURSE],
        recipient=archiver.ref,
        kex=room.people.kex_key(ARCHIVER),
    )
    opened = shares.open_share(
        message=sealed, kex_private=room.people.kex_private(ARCHIVER), me=ARCHIVER
    )
    inbound = shares.accept_share(opened, state=room.state)
    envelope = outbound.encrypt(
        state=room.state,
        key_pair=room.keys[NURSE],
        content={"type": "text", "text": "pansement"},
        seq=1,
        ts=1,
    )
    opened_envelope = decrypt_envelope(
        state=room.state,
        envelope=parse_envelope(envelope),
        sessions={(*inbound.sender, inbound.key_id): inbound},
    )
    assert opened_envelope.content["text"] == "pansement"


def test_the_archiver_is_never_a_member():
    room = make_room()
    # A member's own device cannot be named archiver.
    doctor_as_archiver = room.people.device((DOCTOR[0], 98), kind="archiver")
    error = refused(room, NURSE, "set_archiver", {"archiver": doctor_as_archiver.archiver_json()})
    assert (error.code, error.detail) == (
        CryptoErrorCode.NOT_AUTHORISED,
        "the archiver cannot be a member",
    )
    with_archiver(room)
    member = room.people.member(ARCHIVER, "member")
    assert refused(room, NURSE, "add_member", member).code == CryptoErrorCode.NOT_AUTHORISED
    # Not even once it no longer archives the room.
    room.apply(NURSE, "set_archiver", {"archiver": None})
    assert refused(room, NURSE, "add_member", member).code == CryptoErrorCode.NOT_AUTHORISED


def test_a_creation_naming_a_member_as_archiver_is_refused():
    room = make_room()
    nurse_as_archiver = room.people.device((NURSE[0], 97), kind="archiver")
    content = state.create_content(
        kind="care_team",
        members=[room.people.member(NURSE, "admin")],
        policy=state.default_policy("care_team"),
        archiver=nurse_as_archiver,
    )
    raw = state.sign_event(
        state=None,
        room=state.new_room_id(),
        author=NURSE,
        key_pair=room.keys[NURSE],
        action="create",
        content=content,
        timestamp=1,
    )
    with pytest.raises(CryptoError) as error:
        state.apply_event(None, raw)
    assert error.value.code == CryptoErrorCode.NOT_AUTHORISED


def test_nothing_signed_by_the_archiver_is_accepted():
    room = make_room()
    archiver = with_archiver(room)
    # An envelope, properly encrypted and signed with the archiver's own keys.
    outbound = OutboundSession.create(
        room=room.state.room, sender=ARCHIVER, epoch=room.state.epoch, now_ms=0
    )
    sealed = shares.seal_share(
        session=outbound,
        epoch=room.state.epoch,
        key_pair=room.keys[ARCHIVER],
        recipient=DOCTOR,
        kex=room.people.kex_key(DOCTOR),
    )
    opened = shares.open_share(
        message=sealed, kex_private=room.people.kex_private(DOCTOR), me=DOCTOR
    )
    with pytest.raises(CryptoError) as error:
        shares.accept_share(opened, state=room.state)
    assert error.value.code == CryptoErrorCode.NOT_AUTHORISED
    # Even holding that sender key (the check does not depend on how it was had), the
    # doctor refuses the archiver's envelope.
    twin = InboundSession(
        room=outbound.room,
        sender=outbound.sender,
        key_id=outbound.key_id,
        chain_key=outbound.chain_key,
        next_index=outbound.index,
        epoch=outbound.epoch,
    )
    doctor_sessions = {(*ARCHIVER, outbound.key_id): twin}
    envelope = outbound.encrypt(
        state=room.state,
        key_pair=room.keys[ARCHIVER],
        content={"type": "text", "text": "x"},
        seq=1,
        ts=1,
    )
    with pytest.raises(CryptoError) as error:
        decrypt_envelope(
            state=room.state, envelope=parse_envelope(envelope), sessions=doctor_sessions
        )
    assert (error.value.code, error.value.detail) == (
        CryptoErrorCode.NOT_AUTHORISED,
        "the archiver does not send",
    )
    # Nor can it sign a room-state event: it is not a member device.
    refusal = refused(room, ARCHIVER, "set_archiver", {"archiver": archiver.archiver_json()})
    assert refusal.code == CryptoErrorCode.NOT_AUTHORISED
