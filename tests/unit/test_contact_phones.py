"""The importer's fast E.164 path gives what phonenumbers' full parse gives."""

from __future__ import annotations

import random

import pytest
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

from omnirelay.contacts.phones_fast import e164
from omnirelay.phones import InvalidPhone, parse_phone


def _full(raw: str) -> str | None:
    try:
        return parse_phone(raw).e164
    except InvalidPhone:
        return None


def _fast(raw: str) -> str | None:
    try:
        return e164(raw)
    except InvalidPhone:
        return None


def test_same_answer_as_the_full_parse_for_every_country_code() -> None:
    rnd = random.Random(14)
    samples = ["79161234567", "+79161234567", "89161234567", "78001234567", "0079161234567"]
    samples += ["4420712345678", "440712345678", "393123456789", "390612345678", "12125551234"]
    for code in COUNTRY_CODE_TO_REGION_CODE:
        for length in range(4, 15):
            digits = str(code) + "".join(rnd.choice("0123456789") for _ in range(length))
            samples += [digits, "+" + digits]
    valid = 0
    for raw in samples:
        assert _fast(raw) == _full(raw), raw
        valid += _full(raw) is not None
    assert valid > 200  # the sample reaches the fast path, not only the fallback


@pytest.mark.parametrize("raw", ["+7 916 123-45-67", "8 (916) 123 45 67", "", "abc", "+"])
def test_other_shapes_go_the_full_way(raw: str) -> None:
    assert _fast(raw) == _full(raw)
