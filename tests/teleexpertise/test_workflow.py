"""The lifecycle table: every action by every role from every state."""

from __future__ import annotations

import itertools

import pytest

from teleexpertise.workflow import (
    RULES,
    Action,
    Role,
    State,
    TransitionError,
    next_state,
    questions_after,
)

STATES: list[State | None] = [None, *State]

# (action, role, from state) → state after (None: unchanged); every other combination
# is refused.
ALLOWED = {
    (Action.REQUEST, Role.REQUERANT, None): State.REQUESTED,
    (Action.ACCEPT, Role.REQUIS, State.REQUESTED): State.ACCEPTED,
    (Action.DECLINE, Role.REQUIS, State.REQUESTED): State.DECLINED,
    (Action.CLARIFICATION_REQUEST, Role.REQUIS, State.REQUESTED): None,
    (Action.CLARIFICATION_REQUEST, Role.REQUIS, State.ACCEPTED): None,
    (Action.CLARIFICATION_ANSWER, Role.REQUERANT, State.REQUESTED): None,
    (Action.CLARIFICATION_ANSWER, Role.REQUERANT, State.ACCEPTED): None,
    (Action.REPORT, Role.REQUIS, State.ACCEPTED): State.ANSWERED,
    (Action.CLOSE, Role.REQUERANT, State.ANSWERED): State.CLOSED,
    (Action.CLOSE, Role.REQUIS, State.ANSWERED): State.CLOSED,
    (Action.CANCEL, Role.REQUERANT, State.REQUESTED): State.CANCELLED,
    (Action.CANCEL, Role.REQUERANT, State.ACCEPTED): State.CANCELLED,
    (Action.EXPIRE, Role.CLOCK, State.REQUESTED): State.EXPIRED,
    (Action.EXPIRE, Role.CLOCK, State.ACCEPTED): State.EXPIRED,
}


@pytest.mark.parametrize(("action", "role", "state"), list(itertools.product(Action, Role, STATES)))
def test_the_table(action, role, state):
    key = (action, role, state)
    if key in ALLOWED:
        assert next_state(state=state, action=action, role=role, open_questions=1) == ALLOWED[key]
        return
    with pytest.raises(TransitionError) as refused:
        next_state(state=state, action=action, role=role, open_questions=1)
    allowed_roles = RULES[action].roles
    assert refused.value.kind == ("order" if role in allowed_roles else "role")
    assert refused.value.message
    assert refused.value.message_fr


def test_refusals_say_why_in_english_and_french():
    with pytest.raises(TransitionError) as as_requerant:
        next_state(state=State.REQUESTED, action=Action.ACCEPT, role=Role.REQUERANT)
    assert as_requerant.value.message == "As the requérant you cannot accept."
    assert as_requerant.value.message_fr == ("En tant que requérant, vous ne pouvez pas accepter.")
    with pytest.raises(TransitionError) as too_early:
        next_state(state=State.REQUESTED, action=Action.REPORT, role=Role.REQUIS)
    assert too_early.value.message == (
        "Cannot send the report: the téléexpertise is waiting for an answer."
    )
    assert too_early.value.message_fr == (
        "Impossible d'envoyer le compte rendu : la téléexpertise attend une réponse."
    )


def test_an_answer_needs_an_open_question():
    with pytest.raises(TransitionError) as refused:
        next_state(
            state=State.ACCEPTED,
            action=Action.CLARIFICATION_ANSWER,
            role=Role.REQUERANT,
            open_questions=0,
        )
    assert refused.value.kind == "order"
    assert questions_after(Action.CLARIFICATION_REQUEST, 0) == 1
    assert questions_after(Action.CLARIFICATION_ANSWER, 1) == 0
    assert questions_after(Action.ACCEPT, 2) == 2
