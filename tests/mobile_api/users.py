"""REST users for the API tests: each logs in over REST (development login), certifies
its device keys over REST and signs its own room-state events."""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework.test import APIClient

from e2ee import state as chain
from e2ee.keys import DeviceKeyPair
from tests import identities
from tests.identities import certify_over_rest


@dataclass
class User:
    client: APIClient
    national_id: str
    device: int
    keys: DeviceKeyPair
    token: str = ""

    @property
    def room_device(self) -> chain.RoomDevice:
        return identities.room_device(self.national_id, self.device, self.keys)

    def member(self, role: str) -> dict:
        return identities.member(self.national_id, role, [self.room_device])

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
        """Sign the next event on the room's current state and post it."""
        event = self.sign(self.state(room_id), action, content)
        return self.client.post(f"/api/v1/rooms/{room_id}/state", {"event": event}, format="json")

    def certify(self):
        """Certify this device's keys over REST, cross-signed by the practitioner's
        identity key (published first if the log has none): the response."""
        return certify_over_rest(self.client, self.national_id, self.device, self.keys)


def authenticated(token: str) -> APIClient:
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
        client=authenticated(body["token"]),
        national_id=national_id,
        device=body["device"],
        keys=DeviceKeyPair.generate(),
        token=body["token"],
    )
    if certify:
        certified = user.certify()
        assert certified.status_code == 201, certified.content
    return user


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
