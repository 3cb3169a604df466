"""SMS segmentation as GSM 03.38 and SMPP define it.

Used to price a message by its number of parts now, and later to cut the parts that
SMPP submit_sm sends. A text goes out as GSM-7 when every character is in the GSM 03.38
default alphabet or its extension table, otherwise as UCS-2 (UTF-16).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

# The GSM 03.38 default alphabet, one row of 16 codes per line, in code order. 0x1B is the
# escape to the extension table, not a character: the placeholder there is skipped below.
_ESC = 0x1B
_DEFAULT_ALPHABET = (
    "@£$¥èéùìòÇ\nØø\rÅå"  # 0x00
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"  # 0x10
    " !\"#¤%&'()*+,-./"  # 0x20
    "0123456789:;<=>?"  # 0x30
    "¡ABCDEFGHIJKLMNO"  # 0x40
    "PQRSTUVWXYZÄÖÑÜ§"  # 0x50
    "¿abcdefghijklmno"  # 0x60
    "pqrstuvwxyzäöñüà"  # 0x70
)
_BASIC: dict[str, int] = {ch: code for code, ch in enumerate(_DEFAULT_ALPHABET) if code != _ESC}

# Extension table: each is sent as ESC followed by this code, so it costs two septets.
_EXTENSION: dict[str, int] = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}

# Limits in units (septets or UTF-16 code units) for a message that fits in one part.
_SINGLE_GSM7 = 160
_SINGLE_UCS2 = 70
_USER_DATA_BYTES = 140


@dataclass(frozen=True)
class Segmentation:
    encoding: Literal["gsm7", "ucs2"]
    data_coding: int  # SMPP data_coding: 0 for gsm7 (SMSC default), 8 for ucs2
    units: int  # septets for gsm7 (an extension char counts 2), UTF-16 code units for ucs2
    parts: tuple[str, ...]  # the text of each part

    @property
    def count(self) -> int:
        return len(self.parts)


def is_gsm7(text: str) -> bool:
    """True if every character is in the default alphabet or its extension table."""
    return all(ch in _BASIC or ch in _EXTENSION for ch in text)


def _gsm7_cost(ch: str) -> int:
    return 2 if ch in _EXTENSION else 1


def _ucs2_cost(ch: str) -> int:
    # Characters outside the BMP (most emoji) take a surrogate pair: two code units.
    return 2 if ord(ch) > 0xFFFF else 1


def gsm7_units(text: str) -> int:
    """Septets needed for text; extension characters count two. Assumes is_gsm7(text)."""
    return sum(_gsm7_cost(ch) for ch in text)


def segment(text: str, *, udh_bytes: int = 6) -> Segmentation:
    """Split text into SMS parts.

    udh_bytes is the size of the user data header on each part of a long message: 6 for
    concatenation with an 8-bit reference, 7 with a 16-bit one, 0 when SMPP SAR TLVs
    carry the concatenation instead.
    """
    # Below 4 bytes of room a two-unit character could not fit in any part.
    if not 0 <= udh_bytes <= _USER_DATA_BYTES - 4:
        raise ValueError(f"udh_bytes must be between 0 and {_USER_DATA_BYTES - 4}")
    room = _USER_DATA_BYTES - udh_bytes
    if is_gsm7(text):
        return _split(text, "gsm7", 0, _gsm7_cost, _SINGLE_GSM7, room * 8 // 7)
    return _split(text, "ucs2", 8, _ucs2_cost, _SINGLE_UCS2, room // 2)


def _split(
    text: str,
    encoding: Literal["gsm7", "ucs2"],
    data_coding: int,
    cost: Callable[[str], int],
    single: int,
    capacity: int,
) -> Segmentation:
    units = sum(cost(ch) for ch in text)
    if units <= single:
        return Segmentation(encoding, data_coding, units, (text,))
    # Greedy, but a character's units are never split across parts: an escape pair or a
    # surrogate pair that does not fit whole starts the next part.
    parts: list[str] = []
    start = used = 0
    for i, ch in enumerate(text):
        c = cost(ch)
        if used + c > capacity:
            parts.append(text[start:i])
            start, used = i, 0
        used += c
    parts.append(text[start:])
    return Segmentation(encoding, data_coding, units, tuple(parts))


def encode_gsm7(text: str) -> bytes:
    """Unpacked GSM-7: one byte per septet, extension characters as 0x1B then their code."""
    out = bytearray()
    for i, ch in enumerate(text):
        if ch in _BASIC:
            out.append(_BASIC[ch])
        elif ch in _EXTENSION:
            out += bytes((_ESC, _EXTENSION[ch]))
        else:
            raise ValueError(f"character {ch!r} at index {i} is not in the GSM 03.38 alphabet")
    return bytes(out)


_BASIC_BY_CODE = {code: ch for ch, code in _BASIC.items()}
_EXTENSION_BY_CODE = {code: ch for ch, code in _EXTENSION.items()}


def decode_gsm7(data: bytes) -> str:
    """Unpacked GSM-7 (one septet per byte) back to text; unknown codes become '?'."""
    out: list[str] = []
    escape = False
    for byte in data:
        if escape:
            out.append(_EXTENSION_BY_CODE.get(byte, "?"))
            escape = False
        elif byte == _ESC:
            escape = True
        else:
            out.append(_BASIC_BY_CODE.get(byte & 0x7F, "?"))
    return "".join(out)
