"""SMPP receipts and encodings, without a network."""

from __future__ import annotations

import pytest

from omnirelay.channels.smpp import receipts
from omnirelay.channels.smpp.config import SmppConfig
from omnirelay.channels.smpp.encoding import decode_text, parts


@pytest.mark.parametrize(
    ("text", "tlv_id", "state", "expected"),
    [
        ("id:0a1b sub:001 dlvrd:001 submit date:2611230000 stat:DELIVRD err:000 text:hi",
         None, None, ("0a1b", "delivered", None)),
        ("id:7 stat:UNDELIV err:011", None, None, ("7", "undelivered", "011")),
        ("id:7 stat:EXPIRED err:000", None, None, ("7", "expired", None)),
        ("id:7 stat:REJECTD err:000", None, None, ("7", "rejected", None)),
        ("id:7 stat:ENROUTE", None, None, ("7", None, None)),
        ("", "abc", 2, ("abc", "delivered", None)),  # TLVs only
        ("id:1 stat:UNDELIV", "abc", 2, ("abc", "delivered", None)),  # the TLVs win
        ("", "abc", 8, ("abc", "rejected", None)),
    ],
)  # fmt: skip
def test_receipts(text, tlv_id, state, expected):
    r = receipts.parse(text, tlv_id, state)
    assert r is not None
    assert (r.message_id, r.status, r.error) == expected


def test_not_a_receipt():
    assert receipts.parse("hello there", None, None) is None


def test_hex_and_decimal_candidates():
    assert receipts.candidates("1f") == ["1f", "31"]
    assert "ff" in receipts.candidates("255")


def test_parts_round_trip_and_headers():
    long = "é" * 200  # GSM-7 (é is in the alphabet): two parts
    ps = parts(long, reference=0x1234)
    assert [p.data_coding for p in ps] == [0, 0]
    assert "".join(decode_text(p.short_message, 0, p.esm_class) for p in ps) == long
    assert ps[0].short_message[3] == 0x34  # the 8-bit reference: the low byte
    uc = parts("ж" * 100, concat="udh16", reference=0x1234)
    assert uc[0].short_message[:7] == bytes([6, 8, 4, 0x12, 0x34, 2, 1])
    assert "".join(decode_text(p.short_message, 8, p.esm_class) for p in uc) == "ж" * 100


@pytest.mark.parametrize(
    "settings",
    [
        {"port": 2775, "system_id": "a", "password": "b"},  # no host
        {"host": "h", "port": 0, "system_id": "a", "password": "b"},
        {"host": "h", "port": 1, "system_id": "a" * 16, "password": "b"},
        {"host": "h", "port": 1, "system_id": "a", "password": "b", "bind": "both"},
        {"host": "h", "port": 1, "system_id": "a", "password": "b", "window": 0},
        {"host": "h", "port": 1, "system_id": "a", "password": "b", "colour": "red"},
    ],
)
def test_bad_settings_are_refused(settings):
    with pytest.raises(ValueError):
        SmppConfig.from_settings(settings)
