"""REST users for the archiver tests: practitioners logged in with the development
login (``tests.mobile_api.users``), and an organisation's archiver made as the operator
makes it, certifying its own keys over REST."""

from __future__ import annotations

from chat.models import Envelope, Room
from chat.services.organisations import do_create_archiver
from e2ee import state as chain
from e2ee.keys import DeviceKeyPair
from tests.mobile_api import users
from tests.mobile_api.users import User, authenticated, login

ORGANISATION = "org:1750000123"
__all__ = ["ORGANISATION", "User", "archiver", "creation", "login", "store_envelopes"]


def archiver(*, certify: bool = True, structure_id: str = "1750000123") -> User:
    """A new archiver device of the organisation, as ``manage.py create_archiver`` makes
    it, with its keys certified by the archiver itself over REST."""
    created = do_create_archiver(
        structure_id=structure_id, name="Centre de santé des Pentes", device_name="archiver"
    )
    user = User(
        client=authenticated(created.token),
        national_id=created.organisation.national_id,
        device=created.device.pk,
        keys=DeviceKeyPair.generate(),
        token=created.token,
    )
    if certify:
        assert user.certify().status_code == 201
    return user


def creation(creator: User, others: list[User], *, archiver: chain.RoomDevice | None) -> str:
    """A care-team room's creation event naming ``archiver``."""
    return users.creation(
        creator,
        "care_team",
        [(user, "member") for user in others],
        archiver=archiver.archiver_json() if archiver else None,
    )


def store_envelopes(room_id: int, sender: User, seqs: range) -> None:
    """Envelopes as the message store keeps them (opaque bodies)."""
    room = Room.objects.get(pk=room_id)
    Envelope.objects.bulk_create(
        Envelope(
            room=room,
            seq=seq,
            sender_device_id=sender.device,
            sender_practitioner_id=sender.national_id,
            client_id=f"c{seq}",
            body=f"b{seq}".encode(),
            size=2,
            created_at_ms=seq,
        )
        for seq in seqs
    )
    room.last_seq = seqs[-1]
    room.save(update_fields=["last_seq"])
