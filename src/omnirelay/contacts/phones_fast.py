"""A phone number's E.164 form without phonenumbers' parser, for the common case.

``phones.parse_phone`` first tries the digits as an international number: phonenumbers
normalises the text with a dozen regular expressions before it checks the number
against its region's patterns (~40 µs a number, most of a bulk import's parse time).
For plain digits that is the country code (the first 1-3 digits that are one) and the
national number. When the national number cannot start with the region's national
prefix (parsing would try to strip it) and has no leading zero (which E.164 keeps in a
separate flag), building the number directly and checking it with phonenumbers'
``is_valid_number`` is the same test; anything else goes the full way.
"""

from __future__ import annotations

import re
from functools import cache

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata
from phonenumbers.phonenumberutil import _is_number_matching_desc as _matches

from omnirelay.phones import MAX_DIGITS, parse_phone

_MIN_NSN, _MAX_NSN = 2, 17  # phonenumbers' bounds of a national number's length


@cache
def _prefix_for_parsing(country_code: int) -> re.Pattern[str] | bool | None:
    """The region's national prefix pattern; None when it has none; False when
    phonenumbers has no metadata for the code."""
    region = phonenumbers.region_code_for_country_code(country_code)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    if metadata is None:
        return False
    prefix = metadata.national_prefix_for_parsing
    return re.compile(prefix) if prefix else None


def _fast(digits: str) -> str | None:
    if not digits or digits[0] == "0" or len(digits) > MAX_DIGITS:
        return None
    for size in (1, 2, 3):
        code = int(digits[:size])
        if code in COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return None
    national = digits[size:]
    if not _MIN_NSN <= len(national) <= _MAX_NSN or national[0] == "0":
        return None
    prefix = _prefix_for_parsing(code)
    if prefix is False or (isinstance(prefix, re.Pattern) and prefix.match(national)):
        return None
    return "+" + digits if _valid(code, national) else None


@cache
def _metadata(code: int, region: str) -> PhoneMetadata | None:
    return PhoneMetadata.metadata_for_region_or_calling_code(code, region.upper())


def _has_type(national: str, metadata: PhoneMetadata) -> bool:
    """``_number_type_helper(national, metadata) != UNKNOWN``, stopping at the first type
    that matches, mobile and fixed line first (most numbers; phonenumbers tests eight
    rarer types before them): the same answer in a third of the regular expressions."""
    if not _matches(national, metadata.general_desc):
        return False
    if not metadata.same_mobile_and_fixed_line_pattern and _matches(national, metadata.mobile):
        return True
    return any(
        _matches(national, desc)
        for desc in (
            metadata.fixed_line,
            metadata.premium_rate,
            metadata.toll_free,
            metadata.shared_cost,
            metadata.voip,
            metadata.personal_number,
            metadata.pager,
            metadata.uan,
            metadata.voicemail,
        )
    )


def _valid(code: int, national: str) -> bool:
    """``is_valid_number`` without its second pass: for a code of several regions it
    finds the region by testing the number's type against each, then tests the type
    again for the region found; a region found by its type is valid already. (A region
    of the code's own list always has the code: ``is_valid_number_for_region``'s check
    of it is left out.)"""
    regions = COUNTRY_CODE_TO_REGION_CODE[code]
    if len(regions) == 1:
        metadata = _metadata(code, regions[0])
        return metadata is not None and _has_type(national, metadata)
    for region in regions:
        metadata = _metadata(code, region)
        if metadata is None:
            continue
        if metadata.leading_digits is not None:
            if re.match(metadata.leading_digits, national):
                return _has_type(national, metadata)
        elif _has_type(national, metadata):
            return True
    return False


def e164(raw: str) -> str:
    """``parse_phone(raw).e164``, faster for the common case; raises ``InvalidPhone``."""
    if raw.isascii() and raw.isdigit():
        found = _fast(raw)
    elif raw.startswith("+") and raw[1:].isascii() and raw[1:].isdigit():
        found = _fast(raw[1:])
    else:
        found = None
    return found if found is not None else parse_phone(raw).e164
