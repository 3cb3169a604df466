"""Delivery receipts in deliver_sm: the receipt text of SMPP 3.4 appendix B
(``id:... sub:... dlvrd:... submit date:... done date:... stat:DELIVRD err:... text:...``)
and the ``receipted_message_id`` / ``message_state`` TLVs, which win when both are there."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

RECEIPT_FLAG = 0x04  # esm_class: SMSC delivery receipt
FIELD = re.compile(r"(\w+(?: date)?):(\S*)", re.IGNORECASE)

# receipt stat / message_state -> omnirelay status (None: not final, nothing to apply)
STAT = {
    "DELIVRD": "delivered",
    "EXPIRED": "expired",
    "DELETED": "undelivered",
    "UNDELIV": "undelivered",
    "REJECTD": "rejected",
    "ACCEPTD": None,
    "ENROUTE": None,
    "UNKNOWN": None,
}
STATE = {
    1: None,
    2: "delivered",
    3: "expired",
    4: "undelivered",
    5: "undelivered",
    6: None,
    7: None,
    8: "rejected",
}


@dataclass(frozen=True)
class Receipt:
    message_id: str
    status: str | None
    stat: str
    error: str | None


def is_receipt(esm_class: int) -> bool:
    return bool(esm_class & RECEIPT_FLAG)


def parse(text: str, receipted_message_id: str | None, message_state: int | None) -> Receipt | None:
    fields = {k.lower(): v for k, v in FIELD.findall(text)}
    message_id = receipted_message_id or fields.get("id")
    if not message_id:
        return None
    stat = fields.get("stat", "").upper()
    status = STATE.get(message_state) if message_state is not None else STAT.get(stat)
    if message_state is not None and not stat:
        stat = {v: k for k, v in STAT.items() if v}.get(status or "", "UNKNOWN")
    err = fields.get("err")
    return Receipt(message_id.strip(), status, stat, err if err and err.strip("0") else None)


def candidates(message_id: str) -> list[str]:
    """Ids to look a receipt up by: some SMSCs answer submit_sm in hex and write receipts
    in decimal, or the other way round."""
    out = [message_id]
    with contextlib.suppress(ValueError):
        out.append(str(int(message_id, 16)))
    if message_id.isdigit():
        out.append(format(int(message_id), "x"))
    return list(dict.fromkeys(out))
