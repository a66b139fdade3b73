"""The transcript's type code per room kind: defaults with their reasons, an
organisation's own choice checked against J07 and the class table, no CDA without a
patient, and 85208-7 kept for the téléexpertise report."""

from __future__ import annotations

import pytest

from archive.errors import ArchiveError
from archive.policy import (
    CLASS_CODES,
    DEFAULT_POLICY,
    DEFAULT_TYPE_CODES,
    REASONS,
    TypeChoice,
    TypeCodePolicy,
    class_code,
)
from documents import codes
from tests.archive.builders import content


def test_every_room_kind_has_a_default_type_from_j07_with_a_reason():
    for kind, code in DEFAULT_TYPE_CODES.items():
        assert code is not None
        assert codes.document_type(code).system == codes.LOINC
        assert REASONS[kind]
        assert class_code(code).code == "10"  # "Compte rendu"


def code_of(choice: TypeChoice) -> str:
    assert choice.code is not None
    return choice.code.code


def test_the_defaults():
    assert code_of(DEFAULT_POLICY.choose(content(room_kind="care_team"))) == "11506-3"
    assert code_of(DEFAULT_POLICY.choose(content(room_kind="direct"))) == "11488-4"
    choice = DEFAULT_POLICY.choose(content(room_kind="teleexpertise"))
    assert code_of(choice) == "11488-4"
    assert "85208-7" in choice.reason


def test_an_organisation_chooses_per_kind_and_may_choose_no_cda():
    policy = TypeCodePolicy(by_kind={"care_team": "34133-9", "direct": None})
    chosen = policy.choose(content(room_kind="care_team"))
    assert code_of(chosen) == "34133-9"
    assert chosen.reason == "choix de l'organisation"
    assert policy.choose(content(room_kind="direct")).code is None
    assert code_of(policy.choose(content(room_kind="teleexpertise"))) == "11488-4"


def test_a_room_without_a_patient_or_without_messages_has_no_cda():
    assert DEFAULT_POLICY.choose(content(patient=None)).code is None
    assert DEFAULT_POLICY.choose(content(messages=())).code is None


@pytest.mark.parametrize(
    ("by_kind", "code"),
    [
        ({"care_team": "85208-7"}, "reserved_type_code"),
        ({"care_team": "99999-9"}, "unknown_code"),
        ({"care_team": "57833-6"}, "unknown_class_code"),  # in J07, class not listed
        ({"group": "11488-4"}, "bad_room_kind"),
    ],
)
def test_a_wrong_configuration_fails_when_the_policy_is_made(by_kind, code):
    with pytest.raises(ArchiveError) as caught:
        TypeCodePolicy(by_kind=by_kind)
    assert caught.value.code == code


def test_the_report_type_has_its_class():
    assert CLASS_CODES["85208-7"].code == "10"
    with pytest.raises(ArchiveError):
        class_code("57833-6")
