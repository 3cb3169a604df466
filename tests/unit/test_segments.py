"""SMS segmentation: encoding choice, unit counting and where parts are cut."""

from __future__ import annotations

import pytest

from omnirelay.messaging.segments import (
    Segmentation,
    encode_gsm7,
    gsm7_units,
    is_gsm7,
    segment,
)

EMOJI = "😀"  # U+1F600: outside the BMP, a surrogate pair in UTF-16
EXTENSION = "^{}\\[~]|€\f"


def part_units(seg: Segmentation) -> list[int]:
    if seg.encoding == "gsm7":
        return [gsm7_units(p) for p in seg.parts]
    return [len(p.encode("utf-16-le")) // 2 for p in seg.parts]


@pytest.mark.parametrize(
    ("text", "encoding", "units", "sizes"),
    [
        ("", "gsm7", 0, [0]),
        ("a" * 160, "gsm7", 160, [160]),
        ("a" * 161, "gsm7", 161, [153, 8]),
        ("a" * 306, "gsm7", 306, [153, 153]),
        ("a" * 307, "gsm7", 307, [153, 153, 1]),
        ("ж" * 70, "ucs2", 70, [70]),
        ("ж" * 71, "ucs2", 71, [67, 4]),
        ("€" * 80, "gsm7", 160, [160]),
        ("€" * 81, "gsm7", 162, [152, 10]),
        (EMOJI * 35, "ucs2", 70, [70]),
        (EMOJI * 36, "ucs2", 72, [66, 6]),
    ],
)
def test_parts_and_units(text: str, encoding: str, units: int, sizes: list[int]) -> None:
    seg = segment(text)
    assert seg.encoding == encoding
    assert seg.data_coding == (0 if encoding == "gsm7" else 8)
    assert seg.units == units
    assert part_units(seg) == sizes
    assert seg.count == len(sizes)


def test_empty_text_is_one_empty_part() -> None:
    assert segment("").parts == ("",)


@pytest.mark.parametrize("ch", list(EXTENSION))
def test_extension_chars_count_two(ch: str) -> None:
    assert is_gsm7(ch)
    assert gsm7_units(ch) == 2
    assert gsm7_units("a" + ch) == 3


def test_escape_pair_is_not_split_at_boundary() -> None:
    # 152 septets + a 2-septet char = 154 > 153: the € moves whole to part two.
    seg = segment("a" * 152 + "€" + "b" * 10)
    assert seg.parts == ("a" * 152, "€" + "b" * 10)
    assert part_units(seg) == [152, 12]


def test_escape_pair_fills_part_exactly_when_it_fits() -> None:
    seg = segment("a" * 151 + "€" + "b" * 10)
    assert seg.parts == ("a" * 151 + "€", "b" * 10)


def test_surrogate_pair_is_not_split_at_boundary() -> None:
    # 66 units + a 2-unit emoji = 68 > 67: the emoji moves whole to part two.
    seg = segment("ж" * 66 + EMOJI + "ж" * 5)
    assert seg.encoding == "ucs2"
    assert seg.units == 66 + 2 + 5
    assert seg.parts == ("ж" * 66, EMOJI + "ж" * 5)
    assert part_units(seg) == [66, 7]


def test_emoji_counts_two_units() -> None:
    assert segment(EMOJI).units == 2
    assert segment("ж" * 68 + EMOJI).count == 1
    assert segment("ж" * 69 + EMOJI).count == 2


@pytest.mark.parametrize("odd", ["ж", "`", "ç", EMOJI, "\t", "\x1b"])
def test_one_non_gsm_char_switches_whole_text_to_ucs2(odd: str) -> None:
    text = "a" * 100 + odd
    assert not is_gsm7(text)
    seg = segment(text)
    assert seg.encoding == "ucs2"
    assert seg.data_coding == 8
    assert seg.count == 2  # 101+ UTF-16 units, where as GSM-7 it would have been one part


@pytest.mark.parametrize(
    ("udh_bytes", "gsm7_capacity", "ucs2_capacity"),
    [(6, 153, 67), (7, 152, 66), (0, 160, 70)],
)
def test_capacity_follows_udh_size(udh_bytes: int, gsm7_capacity: int, ucs2_capacity: int) -> None:
    gsm = segment("a" * 400, udh_bytes=udh_bytes)
    assert part_units(gsm)[0] == gsm7_capacity
    assert all(u <= gsm7_capacity for u in part_units(gsm))
    ucs = segment("ж" * 200, udh_bytes=udh_bytes)
    assert part_units(ucs)[0] == ucs2_capacity
    assert all(u <= ucs2_capacity for u in part_units(ucs))


def test_udh_bytes_out_of_range() -> None:
    with pytest.raises(ValueError):
        segment("a", udh_bytes=-1)
    with pytest.raises(ValueError):
        segment("a", udh_bytes=140)


def test_gsm7_alphabet() -> None:
    alphabet = (
        "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
        "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
    )
    assert len(alphabet) == 127
    assert is_gsm7(alphabet)
    assert gsm7_units(alphabet) == 127
    assert not is_gsm7("`")


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        ("@", b"\x00"),
        ("€", b"\x1be"),
        ("", b""),
        ("Hi!", b"Hi!"),
        ("£$¥", b"\x01\x02\x03"),
        ("\n\r", b"\x0a\x0d"),
        ("Δ_", b"\x10\x11"),
        ("¤", b"\x24"),
        ("¡§¿à", b"\x40\x5f\x60\x7f"),
        (
            "^{}\\[~]|\f",
            b"\x1b\x14\x1b\x28\x1b\x29\x1b\x2f\x1b\x3c\x1b\x3d\x1b\x3e\x1b\x40\x1b\x0a",
        ),
    ],
)
def test_encode_gsm7(text: str, encoded: bytes) -> None:
    assert encode_gsm7(text) == encoded
    assert len(encode_gsm7(text)) == gsm7_units(text)


@pytest.mark.parametrize("bad", ["ж", "`", "a\tb", EMOJI])
def test_encode_gsm7_rejects_non_gsm(bad: str) -> None:
    with pytest.raises(ValueError):
        encode_gsm7(bad)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a" * 161,
        "€" * 81,
        "a" * 152 + "€" * 5,
        "ж" * 66 + EMOJI * 40,
        (EMOJI + "x") * 100,
        "Hello [world] ~ {€} | " * 30,
        "Привет, мир! 🌍 " * 20,
    ],
)
@pytest.mark.parametrize("udh_bytes", [0, 6, 7])
def test_parts_join_back_to_text(text: str, udh_bytes: int) -> None:
    seg = segment(text, udh_bytes=udh_bytes)
    assert "".join(seg.parts) == text
    assert sum(part_units(seg)) == seg.units
    assert all(p for p in seg.parts) or text == ""


@pytest.mark.parametrize("text", ["Hello @ £ 123", "€ [x] ~ ^ {y} \\ |", "ÄÖÜ äöü ñ", ""])
def test_decode_gsm7_reverses_encode(text: str) -> None:
    from omnirelay.messaging.segments import decode_gsm7

    assert decode_gsm7(encode_gsm7(text)) == text
