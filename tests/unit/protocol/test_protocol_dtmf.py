"""softphone.protocol.dtmf.check_digits: the one DTMF check (same messages as the command table's)."""

from __future__ import annotations

import pytest

from softphone.errors import CommandError
from softphone.protocol.dtmf import DTMF_DIGITS, check_digits


def test_valid_digits_are_upper_cased() -> None:
    assert check_digits("dtmf", "123#*abcd") == "123#*ABCD"
    assert check_digits("dtmf", "0") == "0"


def test_every_dtmf_digit_is_accepted() -> None:
    assert check_digits("dtmf", "".join(sorted(DTMF_DIGITS))) == "".join(sorted(DTMF_DIGITS))


def test_empty_digits_name_the_command() -> None:
    with pytest.raises(CommandError, match=r"^expect: no DTMF digits given; use 0-9 \* # A-D$"):
        check_digits("expect", "")


def test_bad_digits_are_named_sorted_and_deduplicated() -> None:
    with pytest.raises(CommandError) as info:
        check_digits("dtmf", "1zx2xE")
    assert str(info.value) == "dtmf: invalid digit(s) 'EXZ'; use 0-9 * # A-D"


@pytest.mark.parametrize("digits", ["1 2", "1\n", "é", "+1"])
def test_whitespace_and_other_characters_are_rejected(digits: str) -> None:
    with pytest.raises(CommandError, match="invalid digit"):
        check_digits("dtmf", digits)
