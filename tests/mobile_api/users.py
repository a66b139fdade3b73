"""REST users for the API tests: each logs in over REST (development login), certifies
its device keys over REST and signs its own room-state events."""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework.test import APIClient

from e2ee import state as chain
from e2ee.encoding import b64u
from e2ee.keys import DeviceKeyPair
from e2ee.transparency import sign_registration


@dataclass
class User:
    client: APIClient
    national_id: str
    device: int
    keys: DeviceKeyPair

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


def login(national_id: str, *, certify: bool = True) -> User:
    client = APIClient()
    response = client.post("/api/v1/auth/dev-login", {"national_id": national_id}, format="json")
    assert response.status_code == 201, response.content
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['token']}")
    device = response.json()["device"]
    keys = DeviceKeyPair.generate()
    if certify:
        signature = sign_registration(key_pair=keys, national_id=national_id, device=device)
        certified = client.post(
            "/api/v1/devices/keys",
            {**keys.public.to_json(), "signature": b64u(signature)},
            format="json",
        )
        assert certified.status_code == 201, certified.content
    return User(client=client, national_id=national_id, device=device, keys=keys)


def creation(creator: User, kind: str, others: list[tuple[User, str]], **overrides) -> str:
    content = chain.create_content(
        kind=kind,
        members=[creator.member("admin"), *(user.member(role) for user, role in others)],
        policy=chain.default_policy(kind if kind in chain.KINDS else "care_team"),
    )
    content.update(overrides)
    return chain.sign_event(
        state=None,
        room=chain.new_room_id(),
        author=(creator.national_id, creator.device),
        key_pair=creator.keys,
        action="create",
        content=content,
        timestamp=1,
    ).decode()
