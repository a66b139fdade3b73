"""The téléexpertise lifecycle as a table: who may do what, in which state.

Pure Python, no Django: the server checks every transition with it before storing the
event that carries it, and every client checks the decrypted events with the same table
(docs/protocol.md §12). The server keeps only what it needs to route and remind
(docs/teleexpertise.md); the content of each step travels end to end encrypted.

::

    request ─► requested ─accept─► accepted ─report─► answered ─close─► closed
                   │  └─decline─► declined        │
                   ├──cancel──► cancelled ◄─cancel┘
                   └──expire──► expired  ◄─expire─┘

Clarifications (a question of the requis, the requérant's answer) leave the state as
it is; an answer needs an open question.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    ANSWERED = "answered"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Action(StrEnum):
    REQUEST = "request"
    ACCEPT = "accept"
    DECLINE = "decline"
    CLARIFICATION_REQUEST = "clarification_request"
    CLARIFICATION_ANSWER = "clarification_answer"
    REPORT = "report"
    CLOSE = "close"
    CANCEL = "cancel"
    EXPIRE = "expire"


class Role(StrEnum):
    REQUERANT = "requerant"  # the professional who asks (any health professional)
    REQUIS = "requis"  # the médecin, sage-femme or chirurgien-dentiste asked
    CLOCK = "clock"  # the server's clock: deadlines


ACTIVE = frozenset({State.REQUESTED, State.ACCEPTED})
FINISHED = frozenset({State.DECLINED, State.CLOSED, State.CANCELLED, State.EXPIRED})

# TRE_G15 profession codes that may be requis (domain facts §6: médecin, sage-femme;
# chirurgien-dentiste in defined cases). Any health professional may be requérant.
REQUIS_PROFESSIONS: dict[str, str] = {
    "10": "Médecin",
    "40": "Chirurgien-dentiste",
    "50": "Sage-femme",
}


@dataclass(frozen=True, slots=True)
class Rule:
    """``roles`` may take ``action`` from any of ``sources`` (None: no téléexpertise
    yet); the state becomes ``target`` (None: unchanged)."""

    roles: frozenset[Role]
    sources: frozenset[State | None]
    target: State | None


RULES: dict[Action, Rule] = {
    Action.REQUEST: Rule(frozenset({Role.REQUERANT}), frozenset({None}), State.REQUESTED),
    Action.ACCEPT: Rule(frozenset({Role.REQUIS}), frozenset({State.REQUESTED}), State.ACCEPTED),
    Action.DECLINE: Rule(frozenset({Role.REQUIS}), frozenset({State.REQUESTED}), State.DECLINED),
    Action.CLARIFICATION_REQUEST: Rule(frozenset({Role.REQUIS}), ACTIVE, None),
    Action.CLARIFICATION_ANSWER: Rule(frozenset({Role.REQUERANT}), ACTIVE, None),
    Action.REPORT: Rule(frozenset({Role.REQUIS}), frozenset({State.ACCEPTED}), State.ANSWERED),
    Action.CLOSE: Rule(
        frozenset({Role.REQUERANT, Role.REQUIS}), frozenset({State.ANSWERED}), State.CLOSED
    ),
    Action.CANCEL: Rule(frozenset({Role.REQUERANT}), ACTIVE, State.CANCELLED),
    Action.EXPIRE: Rule(frozenset({Role.CLOCK}), ACTIVE, State.EXPIRED),
}

# Actions a member's device takes (each carried by an end-to-end encrypted event).
MEMBER_ACTIONS = frozenset(RULES) - {Action.EXPIRE}

_ROLE_NAMES = {
    Role.REQUERANT: ("the requérant", "le requérant"),
    Role.REQUIS: ("the requis", "le requis"),
    Role.CLOCK: ("the server's clock", "l'horloge du serveur"),
}
_ACTION_NAMES = {
    Action.REQUEST: ("send the request", "envoyer la demande"),
    Action.ACCEPT: ("accept", "accepter"),
    Action.DECLINE: ("decline", "refuser"),
    Action.CLARIFICATION_REQUEST: ("ask for a clarification", "demander une précision"),
    Action.CLARIFICATION_ANSWER: ("answer a clarification", "répondre à une précision"),
    Action.REPORT: ("send the report", "envoyer le compte rendu"),
    Action.CLOSE: ("close", "clore"),
    Action.CANCEL: ("cancel", "annuler"),
    Action.EXPIRE: ("expire", "faire expirer"),
}
_STATE_NAMES = {
    None: ("does not exist yet", "n'existe pas encore"),
    State.REQUESTED: ("is waiting for an answer", "attend une réponse"),
    State.ACCEPTED: ("was accepted", "a été acceptée"),
    State.DECLINED: ("was declined", "a été refusée"),
    State.ANSWERED: ("was answered", "a reçu sa réponse"),
    State.CLOSED: ("is closed", "est close"),
    State.CANCELLED: ("was cancelled", "a été annulée"),
    State.EXPIRED: ("has expired", "a expiré"),
}


class TransitionError(Exception):
    """``kind`` is ``role`` (this role may never take this action) or ``order`` (not in
    this state); ``message`` in English, ``message_fr`` in French."""

    def __init__(self, kind: str, message: str, message_fr: str) -> None:
        self.kind = kind
        self.message = message
        self.message_fr = message_fr
        super().__init__(message)


def _de(verb: str) -> str:
    """French "de" before an infinitive, elided before a vowel."""
    return f"d'{verb}" if verb[:1] in "aeéiou" else f"de {verb}"


def next_state(
    *, state: State | None, action: Action, role: Role, open_questions: int = 0
) -> State | None:
    """The state after ``role`` takes ``action`` in ``state`` (None when the action
    leaves it unchanged); TransitionError otherwise. ``open_questions``: clarification
    questions not answered yet."""
    rule = RULES[action]
    what, what_fr = _ACTION_NAMES[action]
    if role not in rule.roles:
        who, who_fr = _ROLE_NAMES[role]
        raise TransitionError(
            "role",
            f"As {who} you cannot {what}.",
            f"En tant que {who_fr.removeprefix('le ')}, vous ne pouvez pas {what_fr}.",
        )
    if state not in rule.sources:
        now, now_fr = _STATE_NAMES[state]
        raise TransitionError(
            "order",
            f"Cannot {what}: the téléexpertise {now}.",
            f"Impossible {_de(what_fr)} : la téléexpertise {now_fr}.",
        )
    if action is Action.CLARIFICATION_ANSWER and open_questions < 1:
        raise TransitionError(
            "order",
            "There is no clarification question to answer.",
            "Aucune demande de précision n'attend de réponse.",
        )
    return rule.target


def questions_after(action: Action, open_questions: int) -> int:
    """How many clarification questions are open after ``action``."""
    if action is Action.CLARIFICATION_REQUEST:
        return open_questions + 1
    if action is Action.CLARIFICATION_ANSWER:
        return max(0, open_questions - 1)
    return open_questions
