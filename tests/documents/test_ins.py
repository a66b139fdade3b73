"""The patient identity: matricule INS and its key, OIDs, statuses, strict traits, the
rule that only a qualified identity carries its matricule, canonical JSON."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from documents.errors import DocumentError
from documents.ins import (
    IdentityStatus,
    InsOid,
    PatientIdentity,
    Sex,
    check_matricule,
    nir_key,
)

# Published vectors (domain-facts §5, §8): a Corsican NIR, a NIR, the ANS test patient.
VALID = ["186022A21532523", "295109912611193", "279035121518989"]


def qualified(**changes):
    identity = PatientIdentity(
        status=IdentityStatus.QUAL,
        birth_family_name="PAT-TROIS",
        birth_given_names=("DOMINIQUE", "MARIE-LOUISE"),
        birth_date=date(1979, 3, 28),
        sex=Sex.F,
        birthplace="51215",
        used_family_name="PAT-TROIS",
        used_given_name="DOMINIQUE",
        matricule="279035121518989",
        oid=InsOid.TEST,
    )
    return dataclasses.replace(identity, **changes)


def test_the_key_of_the_published_vectors():
    assert nir_key("2790351215189") == 89
    assert nir_key("186022A215325") == 23  # 2A counts as 19
    assert nir_key("186022B215325") != 23  # and 2B as 18
    for matricule in VALID:
        assert check_matricule(matricule) == matricule


@pytest.mark.parametrize(
    ("matricule", "code"),
    [
        ("279035121518988", "bad_matricule_key"),  # last digit mistyped
        ("279035121581989", "bad_matricule_key"),  # two digits swapped
        ("27903512151898", "bad_matricule"),  # 14 characters
        ("2790351215189899", "bad_matricule"),  # 16
        ("27903512151898X", "bad_matricule"),
        ("279032C21518989", "bad_matricule"),  # only 2A / 2B, and only there
        ("679035121518989", "bad_matricule"),  # no such first digit
    ],
)
def test_a_wrong_matricule_is_refused_with_its_reason(matricule, code):
    with pytest.raises(DocumentError) as refused:
        check_matricule(matricule)
    assert refused.value.code == code
    assert refused.value.message
    assert refused.value.message_fr


@given(st.text(alphabet="0123456789", min_size=13, max_size=13))
def test_every_body_has_exactly_one_key(body):
    key = nir_key(body)
    assert 1 <= key <= 97
    matricule = f"{body}{key:02d}"
    if matricule[0] in "1234578":
        assert check_matricule(matricule) == matricule
        wrong = f"{body}{(key % 97) + 1:02d}"
        with pytest.raises(DocumentError):
            check_matricule(wrong)


def test_the_oids_and_what_they_mean():
    assert InsOid.NIR.value == "1.2.250.1.213.1.4.8"
    assert InsOid.NIA.value == "1.2.250.1.213.1.4.9"
    assert InsOid.TEST.value == "1.2.250.1.213.1.4.10"
    assert InsOid.DEMO.value == "1.2.250.1.213.1.4.11"
    assert [oid.is_real for oid in InsOid] == [True, True, False, False]


def test_a_qualified_identity_and_its_derived_values():
    identity = qualified()
    assert identity.is_qualified
    assert identity.first_birth_given_name == "DOMINIQUE"
    assert identity.birth_given_names_text == "DOMINIQUE MARIE-LOUISE"
    assert identity.xds_patient_id() == "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"
    with pytest.raises(dataclasses.FrozenInstanceError):
        identity.matricule = "295109912611193"


@pytest.mark.parametrize("status", [IdentityStatus.PROV, IdentityStatus.RECUP, IdentityStatus.VALI])
def test_only_a_qualified_identity_carries_its_matricule(status):
    with pytest.raises(DocumentError) as refused:
        qualified(status=status)
    assert refused.value.code == "matricule_not_qualified"
    assert status in refused.value.message
    assert status in refused.value.message_fr
    traits_only = qualified(status=status, matricule=None, oid=None)
    assert not traits_only.is_qualified
    assert traits_only.xds_patient_id() is None


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"matricule": None}, "matricule_missing"),
        ({"oid": None}, "matricule_missing"),
        ({"matricule": "279035121518988"}, "bad_matricule_key"),
        ({"oid": "1.2.250.1.213.1.4.5"}, "bad_oid"),  # not an INS OID (domain-facts §4.5)
        ({"birthplace": None}, "bad_birthplace"),
        ({"birthplace": "6322"}, "bad_birthplace"),
        ({"birth_family_name": ""}, "bad_name"),
        ({"birth_family_name": " PAT"}, "bad_name"),
        ({"birth_family_name": "PAT  TROIS"}, "bad_name"),
        ({"birth_family_name": "PAT3"}, "bad_name"),
        ({"birth_family_name": "X" * 101}, "bad_name"),
        ({"birth_given_names": ()}, "bad_given_names"),
        ({"birth_given_names": ["DOMINIQUE"]}, "bad_given_names"),
        ({"birth_given_names": ("DOMINIQUE", "")}, "bad_name"),
        ({"used_given_name": "-DOMI"}, "bad_name"),
        ({"birth_date": date.today() + timedelta(days=1)}, "bad_birth_date"),
        ({"birth_date": date(1869, 12, 31)}, "bad_birth_date"),
        ({"sex": "X"}, "bad_sex"),
        ({"status": "QUALIFIEE"}, "bad_status"),
    ],
)
def test_invalid_traits_are_refused_with_a_stable_code(changes, code):
    with pytest.raises(DocumentError) as refused:
        qualified(**changes)
    assert refused.value.code == code
    assert refused.value.to_dict().keys() == {"code", "message", "message_fr"}


def test_names_may_carry_accents_apostrophes_and_hyphens():
    identity = qualified(
        status=IdentityStatus.PROV,
        matricule=None,
        oid=None,
        birth_family_name="N'DIAYE-LÉVÊQUE",
        birth_given_names=("ÉLODIE", "ANNE-SOPHIE"),
        birthplace="2A004",
    )
    assert identity.display_family_name == "PAT-TROIS"  # the used name wins for display


def test_the_canonical_json_round_trip():
    identity = qualified()
    text = identity.to_json()
    assert text.startswith('{"birth_date":"1979-03-28","birth_family_name":"PAT-TROIS"')
    assert " " not in text.replace("MARIE-LOUISE", "")  # no whitespace between tokens
    assert PatientIdentity.from_json(text) == identity
    assert PatientIdentity.from_json(text.encode("utf-8")) == identity
    minimal = qualified(
        status=IdentityStatus.PROV,
        matricule=None,
        oid=None,
        birthplace=None,
        used_family_name=None,
        used_given_name=None,
    )
    assert set(minimal.to_dict()) == {
        "v",
        "type",
        "status",
        "birth_family_name",
        "birth_given_names",
        "birth_date",
        "sex",
    }
    assert PatientIdentity.from_json(minimal.to_json()) == minimal


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda d: {**d, "extra": "x"}, "bad_identity_json"),
        (lambda d: {k: v for k, v in d.items() if k != "sex"}, "bad_identity_json"),
        (lambda d: {**d, "v": 2}, "bad_identity_json"),
        (lambda d: {**d, "birth_given_names": "DOMINIQUE"}, "bad_identity_json"),
        (lambda d: {**d, "birth_date": "28/03/1979"}, "bad_birth_date"),
        (lambda d: {**d, "status": "PROV"}, "matricule_not_qualified"),
        (lambda d: {**d, "oid": "1.2.3"}, "bad_oid"),
    ],
)
def test_json_that_is_not_an_identity_is_refused(mutate, code):
    import json

    text = json.dumps(mutate(qualified().to_dict()), sort_keys=True, separators=(",", ":"))
    with pytest.raises(DocumentError) as refused:
        PatientIdentity.from_json(text)
    assert refused.value.code == code


def test_only_the_canonical_form_is_accepted():
    import json

    loose = json.dumps(qualified().to_dict(), indent=1)
    with pytest.raises(DocumentError, match="canonical"):
        PatientIdentity.from_json(loose)
    with pytest.raises(DocumentError, match="4096 bytes"):
        PatientIdentity.from_json("{" + " " * 5000 + "}")
    with pytest.raises(DocumentError, match="not JSON"):
        PatientIdentity.from_json(b"\xff")
