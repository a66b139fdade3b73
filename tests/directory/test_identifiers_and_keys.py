"""National identifiers, check digits, search keys and the synthetic generator."""

from __future__ import annotations

import pytest

from directory.extracts.columns import HeaderError, column_positions, split_line
from directory.extracts.reader import check_national_id
from directory.extracts.synthetic import luhn_check_digit, synthetic_adeli, synthetic_rpps
from directory.identifiers import luhn_is_valid
from directory.normalise import name_keys, search_key


@pytest.mark.parametrize(
    "number", ["10001045367", "99700366240", "10104335319", "012600631", "759124159"]
)
def test_real_rpps_and_adeli_numbers_pass_luhn(number):
    assert luhn_is_valid(number)


@pytest.mark.parametrize("number", ["10000000001", "10002673899", "99700366241"])
def test_fictive_numbers_of_the_specs_fail_luhn(number):
    assert not luhn_is_valid(number)


def test_synthetic_numbers_are_valid_and_distinct():
    numbers = [synthetic_rpps(i) for i in range(2000)] + [synthetic_adeli(i) for i in range(2000)]
    assert all(luhn_is_valid(n) for n in numbers)
    assert len(set(numbers)) == 4000
    assert {len(synthetic_rpps(5)), len(synthetic_adeli(5))} == {11, 9}
    assert luhn_check_digit("1000104536") == "7"


def test_national_id_columns_must_agree():
    assert check_national_id(id_type="8", number="10001045367", national_id="810001045367") == (
        None,
        True,
    )
    assert check_national_id(id_type="0", number="012600631", national_id="0012600631") == (
        None,
        True,
    )
    error, _ = check_national_id(id_type="8", number="10001045367", national_id="810001045368")
    assert error is not None
    assert "is not 8+RPPS" in error
    error, _ = check_national_id(id_type="8", number="1000104536", national_id="81000104536")
    assert error is not None
    assert "11 digits" in error
    error, _ = check_national_id(id_type="3", number="1", national_id="31")
    assert error is not None
    assert "unknown identifier type" in error
    assert check_national_id(id_type="8", number="10000000001", national_id="810000000001") == (
        None,
        False,
    )


def test_search_keys_fold_accents_case_and_punctuation():
    assert search_key("Élodie  LEFÈVRE-Saint") == "elodie lefevre saint"
    assert search_key("D'ŒUVRE") == "d oeuvre"
    assert name_keys(first_name="Zoë", last_name="Müller") == ("muller zoe", "zoe muller")


def test_lines_lose_their_trailing_pipe_and_headers_match_without_case():
    assert split_line("a|b||\n") == ["a", "b", ""]
    header = ["Code postal (coord. Structure)", "CODE DÉPARTEMENT (STRUCTURE)"]
    positions = column_positions(
        header, ["Code postal (coord. structure)", "Code Département (structure)"]
    )
    assert positions == {"Code postal (coord. structure)": 0, "Code Département (structure)": 1}
    with pytest.raises(HeaderError, match="Nom d'exercice"):
        column_positions(header, ["Nom d'exercice"])


def test_identifiers_are_ascii_digits_only():
    from directory.extracts.reader import check_national_id
    from directory.identifiers import luhn_is_valid, national_id_for_number

    arabic = "\u0661\u0660\u0660\u0660\u0661\u0660\u0664\u0665\u0663\u0666\u0667"  # 10001045367
    assert luhn_is_valid("10001045367")
    assert not luhn_is_valid(arabic)
    assert national_id_for_number(arabic) is None
    error, _ok = check_national_id(id_type="8", number=arabic, national_id="8" + arabic)
    assert error is not None
