"""REST users for the archiver tests: practitioners logged in with the development
login, and an organisation's archiver made as the operator makes it; each certifies its
keys over REST and signs its own room-state events."""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework.test import APIClient

from chat.models import Envelope, Room
from chat.services.organisations import do_create_archiver
from e2ee import state as chain
from e2ee.encoding import b64u
from e2ee.keys import DeviceKeyPair
from e2ee.transparency import sign_registration

ORGANISATION = "org:1750000123"


@dataclass
class User:
    client: APIClient
    national_id: str
    device: int
    keys: DeviceKeyPair
    token: str

    @property
    def room_device(self) -> chain.RoomDevice:
        return chain.RoomDevice(
            national_id=self.national_id, device=self.device, keys=self.keys.public
        )

    def member(self, role: str) -> dict:
        return chain.member_content(self.national_id, role, [self.room_device])

    def state(self, room_id: int) -> chain.RoomState:
        response = self.client.get(f"/api/v1/rooms/{room_id}/state")
        assert response.status_code == 200, response.content
        return chain.replay_chain([e["event"].encode() for e in response.json()["events"]])

    def sign(self, current: chain.RoomState, action: str, content: dict) -> str:
        return chain.sign_event(
            state=current,
            room=current.room,
            author=(self.national_id, self.device),
            key_pair=self.keys,
            action=action,
            content=content,
            timestamp=1,
        ).decode()

    def post_event(self, room_id: int, action: str, content: dict):
        event = self.sign(self.state(room_id), action, content)
        return self.client.post(f"/api/v1/rooms/{room_id}/state", {"event": event}, format="json")

    def certify(self):
        signature = sign_registration(
            key_pair=self.keys, national_id=self.national_id, device=self.device
        )
        return self.client.post(
            "/api/v1/devices/keys",
            {**self.keys.public.to_json(), "signature": b64u(signature)},
            format="json",
        )


def _authenticated(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def login(national_id: str, *, certify: bool = True) -> User:
    response = APIClient().post(
        "/api/v1/auth/dev-login", {"national_id": national_id}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    user = User(
        client=_authenticated(body["token"]),
        national_id=national_id,
        device=body["device"],
        keys=DeviceKeyPair.generate(),
        token=body["token"],
    )
    if certify:
        assert user.certify().status_code == 201
    return user


def archiver(*, certify: bool = True, structure_id: str = "1750000123") -> User:
    """A new archiver device of the organisation, as ``manage.py create_archiver`` makes
    it, with its keys certified by the archiver itself over REST."""
    created = do_create_archiver(
        structure_id=structure_id, name="Centre de santé des Pentes", device_name="archiver"
    )
    user = User(
        client=_authenticated(created.token),
        national_id=created.organisation.national_id,
        device=created.device.pk,
        keys=DeviceKeyPair.generate(),
        token=created.token,
    )
    if certify:
        assert user.certify().status_code == 201
    return user


def creation(creator: User, others: list[User], *, archiver: chain.RoomDevice | None) -> str:
    content = chain.create_content(
        kind="care_team",
        members=[creator.member("admin"), *(user.member("member") for user in others)],
        policy=chain.default_policy("care_team"),
        archiver=archiver,
    )
    return chain.sign_event(
        state=None,
        room=chain.new_room_id(),
        author=(creator.national_id, creator.device),
        key_pair=creator.keys,
        action="create",
        content=content,
        timestamp=1,
    ).decode()


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
