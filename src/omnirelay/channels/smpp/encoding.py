"""A text -> the short_message parts of its submit_sm PDUs.

GSM-7 (data_coding 0, unpacked septets, one byte each) or UCS-2 (data_coding 8, UTF-16
big-endian), split as ``messaging.segments`` splits it for pricing, so the parts sent are
the parts paid for. Concatenation: a user data header with an 8-bit (default) or 16-bit
reference, or the SAR TLVs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from omnirelay.messaging.segments import encode_gsm7, segment

UDH_INDICATOR = 0x40  # esm_class bit: short_message starts with a user data header
UDH_BYTES = {"udh8": 6, "udh16": 7, "sar": 0}


@dataclass(frozen=True)
class Part:
    data_coding: int
    short_message: bytes
    esm_class: int = 0
    tlvs: dict[str, Any] = field(default_factory=dict)


def encode_text(text: str, data_coding: int) -> bytes:
    return encode_gsm7(text) if data_coding == 0 else text.encode("utf-16-be")


def parts(text: str, *, concat: str = "udh8", reference: int = 0) -> list[Part]:
    """The PDUs' payloads; ``reference`` identifies the concatenated message."""
    seg = segment(text, udh_bytes=UDH_BYTES[concat])
    if seg.count == 1:
        return [Part(seg.data_coding, encode_text(seg.parts[0], seg.data_coding))]
    out: list[Part] = []
    total = seg.count
    for number, chunk in enumerate(seg.parts, start=1):
        body = encode_text(chunk, seg.data_coding)
        if concat == "sar":
            tlvs = {
                "sar_msg_ref_num": reference & 0xFFFF,
                "sar_total_segments": total,
                "sar_segment_seqnum": number,
            }
            out.append(Part(seg.data_coding, body, 0, tlvs))
        elif concat == "udh16":
            udh = struct.pack(">BBBHBB", 6, 0x08, 4, reference & 0xFFFF, total, number)
            out.append(Part(seg.data_coding, udh + body, UDH_INDICATOR))
        else:
            udh = struct.pack(">BBBBBB", 5, 0x00, 3, reference & 0xFF, total, number)
            out.append(Part(seg.data_coding, udh + body, UDH_INDICATOR))
    return out


def decode_text(short_message: bytes, data_coding: int, esm_class: int = 0) -> str:
    """An inbound deliver_sm's text (MO), without its user data header."""
    if esm_class & UDH_INDICATOR and short_message:
        short_message = short_message[1 + short_message[0] :]
    if data_coding == 8:
        return short_message.decode("utf-16-be", errors="replace")
    if data_coding == 0:
        from omnirelay.messaging.segments import decode_gsm7

        return decode_gsm7(short_message)
    return short_message.decode("latin-1")
