"""10,000 generated WebSocket frames against a real server process: every one gets
exactly the answer docs/protocol.md gives it (``protocol_oracle``), on one connection
that never drops.

Hypothesis generates frames of every type with valid and invalid fields (wrong types,
out of range, unknown fields, Unicode digits, non-canonical base64, bodies around the
size limit), arbitrary JSON values, deeply nested and malformed text. After each frame
the test sends two barriers: an ``auth`` frame (answered ``already_authenticated`` by the
worker that handles sends, after the frame's own answer) and a ``ping`` (answered by the
writer, after everything queued before it); what arrives before both barriers' answers
is the frame's answer, compared with the oracle's. The generation is derandomized: the
same 10,000 frames on every run.
"""

from __future__ import annotations

import base64
import json
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from tests.e2e.protocol_oracle import MAX_BODY_BYTES, MAX_FRAME_BYTES, Expected, Oracle
from tests.e2e.server import ServerProcess, production_env
from tests.signed_rooms import create_room

pytestmark = pytest.mark.e2e

FRAMES = int(os.environ.get("RELAIS_FUZZ_FRAMES", "10000"))


@pytest.fixture
def world(transactional_db, tmp_path) -> Iterator[dict[str, Any]]:
    """A real server (uvicorn, production settings, rate limits out of the way), a member
    room, a room of others, and an authenticated connection."""
    from chat.services.devices import do_issue_device_token
    from directory.demo import ensure_demo_practitioners

    nurse, doctor, pharmacist, _physio = ensure_demo_practitioners()
    mine = create_room(creator=nurse, kind="care_team", member_ids=[doctor.national_id])
    theirs = create_room(creator=doctor, kind="direct", member_ids=[pharmacist.national_id])
    _device, token = do_issue_device_token(practitioner=nurse, device_name="fuzz")
    server = ServerProcess(
        env=production_env(
            RELAIS_WS_RATE_PER_SECOND="1000000",
            RELAIS_WS_RATE_BURST="1000000",
            RELAIS_LOG_LEVEL="WARNING",
        ),
        log_path=tmp_path / "server.log",
    )
    server.start()
    try:
        with connect(
            server.ws_url,
            additional_headers={"Authorization": f"Bearer {token}"},
            origin=Origin("http://127.0.0.1"),
            max_size=256 * 1024,
            open_timeout=10,
            # No keepalive: its pings draw on the global random module mid-generation.
            ping_interval=None,
        ) as websocket:
            ready = json.loads(websocket.recv(timeout=10))
            assert ready["type"] == "ready"
            yield {
                "websocket": websocket,
                "oracle": Oracle(rooms={mine.pk: 0}),
                "mine": mine.pk,
                "theirs": theirs.pk,
                "seen": Counter(),
                "delivered": Counter(),
            }
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert "Traceback" not in log, log[-3000:]


# Strategies ---------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)
odd_digits = st.sampled_from(["\u00b2", "\u0661", "\uff11", "\u0967", "\U0001d7cf"])
ids = (
    st.from_regex(r"[A-Za-z0-9._:-]{1,64}", fullmatch=True)
    | st.sampled_from(["", "x" * 65, "bad id!", "abc\n", "é"])
    | st.text(max_size=8)
    | values
)


def b64(data: bytes, *, padded: bool = False) -> str:
    text = base64.urlsafe_b64encode(data).decode()
    return text if padded else text.rstrip("=")


bodies = (
    st.binary(max_size=40).flatmap(lambda d: st.sampled_from([b64(d), b64(d, padded=True)]))
    | st.from_regex(r"[A-Za-z0-9_=-]{0,12}", fullmatch=True)  # often not canonical
    | st.sampled_from(["AB", "AA=", "AAA==", "A", "AA\n", "AA AA", "+/+/", "AQ", "AAE"])
    | st.integers(min_value=MAX_BODY_BYTES - 2, max_value=MAX_BODY_BYTES + 2).map(
        lambda size: b64(b"\x07" * size)
    )
    | values
)


def rooms(world_rooms: tuple[int, int]) -> st.SearchStrategy[Any]:
    mine, theirs = world_rooms
    return (
        st.sampled_from([mine, mine, theirs, 0, -1, 2**63 - 1, 2**63, 999_999_999])
        | st.integers()
        | values
    )


def frames(world_rooms: tuple[int, int]) -> st.SearchStrategy[str]:
    mine, theirs = world_rooms
    room = rooms(world_rooms)
    room_key = (
        st.sampled_from([str(mine), str(theirs), "0", f"00{mine}", "9" * 19, "1" * 20])
        | st.integers(min_value=0, max_value=2**64).map(str)
        | odd_digits
        | st.text(max_size=4)
    )
    seq = st.integers(min_value=-3, max_value=60) | st.integers() | values
    typed = st.one_of(
        st.fixed_dictionaries(
            {}, optional={"type": st.just("send"), "room": room, "id": ids, "body": bodies}
        ),
        st.fixed_dictionaries(
            {"type": st.just("send"), "room": room, "id": ids, "body": bodies},
            optional={"extra": values},
        ),
        st.fixed_dictionaries(
            {"type": st.just("sync")},
            optional={"rooms": st.dictionaries(room_key, seq, max_size=4) | values},
        ),
        st.fixed_dictionaries(
            {"type": st.just("receipt"), "room": room, "seq": seq},
            optional={"kind": st.sampled_from(["delivered", "read", "seen"]) | values},
        ),
        st.fixed_dictionaries(
            {"type": st.just("typing"), "room": room}, optional={"active": st.booleans() | values}
        ),
        st.fixed_dictionaries(
            {"type": st.just("ping")},
            optional={"nonce": st.text(max_size=70) | st.none() | values, "other": values},
        ),
        st.fixed_dictionaries({"type": st.just("auth"), "token": st.text(max_size=130) | values}),
        st.dictionaries(st.sampled_from(["type", "room", "id", "x"]), values, max_size=4),
        st.dictionaries(st.just("type"), st.text(max_size=10), min_size=1),
    )
    member_or_not = st.sampled_from([mine, mine, mine, theirs])
    near_limit = st.integers(min_value=MAX_BODY_BYTES - 1, max_value=MAX_BODY_BYTES + 1).map(
        lambda size: b64(b"\x07" * size)
    )
    valid = st.one_of(
        st.fixed_dictionaries(
            {
                "type": st.just("send"),
                "room": member_or_not,
                "id": st.from_regex(r"[A-Za-z0-9._:-]{1,12}", fullmatch=True),
                "body": st.binary(max_size=30).map(b64) | near_limit,
            }
        ),
        st.fixed_dictionaries(
            {"type": st.just("sync")},
            optional={
                "rooms": st.dictionaries(
                    st.sampled_from([str(mine), str(theirs), "0", "424242"]),
                    st.integers(min_value=-2, max_value=60),
                    max_size=3,
                )
            },
        ),
        st.fixed_dictionaries(
            {
                "type": st.just("receipt"),
                "room": member_or_not,
                "seq": st.integers(min_value=1, max_value=60),
                "kind": st.sampled_from(["delivered", "read"]),
            }
        ),
        st.fixed_dictionaries(
            {"type": st.just("typing"), "room": member_or_not, "active": st.booleans()}
        ),
        st.fixed_dictionaries({"type": st.just("ping")}, optional={"nonce": st.text(max_size=20)}),
        st.fixed_dictionaries({"type": st.just("auth"), "token": st.text(min_size=1, max_size=20)}),
    )
    as_text = st.one_of(valid, valid, typed).flatmap(
        lambda frame: st.sampled_from(
            [json.dumps(frame), json.dumps(frame, ensure_ascii=False, separators=(",", ":"))]
        )
    )
    nested = st.tuples(st.integers(min_value=1, max_value=10_000), st.sampled_from("[{")).map(
        lambda pair: (
            '{"type": "ping", "nonce": ' + pair[1] * pair[0]
            if pair[1] == "["
            else '{"x": ' + '{"a": ' * pair[0] + "1" + "}" * pair[0] + ', "type": "send"}'
        )
    )
    malformed = (
        as_text.flatmap(lambda text: st.integers(0, max(0, len(text) - 1)).map(lambda n: text[:n]))
        | st.text(max_size=40)
        | values.map(json.dumps)
        | st.sampled_from(
            [
                '{"type": "ping", "nonce": "\\ud800"}',
                '{"type": "ping", "nonce": NaN}',
                '{"type": "sync", "rooms": {"1": 1e400}}',
                '{"type": "teleport", "x": 1e400}',
                ' \n\t{"type": "ping"} \n',
                '\ufeff{"type": "ping"}',
                '{"x": "[[[[[[[[[[", "type": "teleport"}',
                '{"x": "' + "[" * 20,
                '{"a": "' + '\\"' * 2_000,
            ]
        )
    )
    return st.one_of(as_text, as_text, as_text, nested, malformed).filter(
        lambda text: len(text.encode("utf-8", "surrogatepass")) <= MAX_FRAME_BYTES
    )


# The run ------------------------------------------------------------------------------


def exchange(
    websocket: ClientConnection, text: str, number: int, *, answers_auth: bool
) -> list[dict[str, Any]]:
    """Send ``text`` then the two barriers; return what answered ``text``.
    ``answers_auth``: ``text`` is itself an ``auth`` frame (answered like the barrier)."""
    websocket.send(text)
    websocket.send(json.dumps({"type": "auth", "token": "barrier"}))
    nonce = f"barrier-{number}"
    websocket.send(json.dumps({"type": "ping", "nonce": nonce}))
    answers: list[dict[str, Any]] = []
    pong = False
    worker_answers = 0  # already_authenticated: the frame's (if an auth), the barrier's
    while not (pong and worker_answers == 1 + answers_auth):
        try:
            frame = json.loads(websocket.recv(timeout=10))
        except TimeoutError:
            raise AssertionError(f"no answer to {text[:200]!r}: {answers}, {pong}") from None
        if frame == {"type": "pong", "nonce": nonce}:
            pong = True
            continue
        if frame.get("code") == "already_authenticated":
            worker_answers += 1
            if worker_answers > answers_auth:
                continue  # the barrier's
        answers.append(frame)
    return answers


def compare(expected: Expected, answers: list[dict[str, Any]], world: dict[str, Any]) -> None:
    errors = [(a["code"], a["ref"]) for a in answers if a["type"] == "error"]
    for answer in answers:
        if answer["type"] == "error":
            assert answer["message"], answer
            assert answer["message_fr"], answer
    assert errors == expected.errors, (errors, expected)
    acks = [a for a in answers if a["type"] == "ack"]
    if expected.ack is None:
        assert acks == []
    else:
        assert len(acks) == 1
        assert {k: acks[0][k] for k in ("id", "room", "seq", "duplicate")} == expected.ack
    pongs = [a for a in answers if a["type"] == "pong"]
    if expected.pong is False:
        assert pongs == []
    else:
        assert pongs == [{"type": "pong", "nonce": expected.pong}]
    synced = [a for a in answers if a["type"] == "synced"]
    backlogs = [a for a in answers if a["type"] == "backlog"]
    if expected.synced is None:
        assert synced == []
        assert backlogs == []
    else:
        assert synced == [{"type": "synced", "rooms": expected.synced}]
        for page in backlogs:  # each envelope reaches the connection once
            for message in page["messages"]:
                world["delivered"][(message["room"], message["seq"])] += 1
                assert world["delivered"][(message["room"], message["seq"])] == 1
    kinds = {"error", "ack", "pong", "synced", "backlog"}
    assert {a["type"] for a in answers} <= kinds, answers


def test_ten_thousand_generated_frames_get_their_documented_answers(world):
    seen: Counter[str] = world["seen"]
    counter = iter(range(10**9))

    @settings(
        max_examples=FRAMES // 5,
        derandomize=True,
        deadline=None,
        database=None,
        # The server's state moves on with every frame: an example cannot be replayed,
        # so no shrinking; a failure names its frame itself.
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(texts=st.lists(frames((world["mine"], world["theirs"])), min_size=5, max_size=5))
    def five_frames(texts: list[str]) -> None:
        for text in texts:
            expected = world["oracle"].expect(text)
            answers_auth = ("already_authenticated", None) in expected.errors
            answers = exchange(world["websocket"], text, next(counter), answers_auth=answers_auth)
            seen["frames"] += 1
            for code, _ref in expected.errors:
                seen[code] += 1
            seen["ack"] += expected.ack is not None
            seen["synced"] += expected.synced is not None
            compare(expected, answers, world)

    five_frames()
    print("fuzz:", dict(seen))
    assert seen["frames"] >= FRAMES
    # The generation reached every kind of answer.
    for kind in (
        "bad_json",
        "bad_frame",
        "unknown_type",
        "not_member",
        "bad_sequence",
        "body_too_large",
        "already_authenticated",
        "ack",
        "synced",
    ):
        assert seen[kind] > 20, (kind, seen)
