"""What an email that reached the listener says, read with the standard library's
``email`` package; pure functions, no database, never raising on a strange message.

- A delivery status notification (RFC 3464: ``multipart/report; report-type=
  delivery-status``) is a ``bounce`` (Action: failed), a ``delivered`` report, or a
  ``delayed`` one (nothing changes). The message it is about is found by the
  ``Original-Envelope-Id`` omnirelay sent as ENVID, then the returned message's
  ``Message-ID`` (``message/rfc822`` or ``text/rfc822-headers``), then the DSN's own
  ``In-Reply-To``/``References``.
- A non-standard bounce (null envelope sender, a returned message inside) is a bounce with
  an unknown status.
- Automatic answers (``Auto-Submitted`` other than ``no``, RFC 3834; ``Precedence: bulk``)
  are ``ignored``: an out-of-office is not the customer's reply.
- Everything else is a ``reply``: its sender, its new text (the quoted part cut), and the
  message ids it answers (``In-Reply-To`` first, then ``References`` newest first).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses
from typing import Any

from omnirelay.channels.smtp.compose import text_of
from omnirelay.channels.smtp.errors import code_for_status, enhanced

MAX_TEXT = 10_000  # characters of a reply kept (the rest is cut, marked)
_MSGID = re.compile(r"<([^<>\s]{1,250})>")
_WROTE = re.compile(r"^On .{1,300} wrote:$", re.I)
_ORIGINAL = re.compile(r"^-{2,} ?Original Message ?-{2,}$", re.I)


@dataclass(frozen=True)
class MailFile:
    """A reply's attached file, as the mail carried it (stored by the listener)."""

    filename: str | None
    content_type: str
    data: bytes


@dataclass(frozen=True)
class MailEvent:
    kind: str  # "bounce" | "delivered" | "delayed" | "reply" | "ignored"
    references: tuple[str, ...] = ()  # candidate provider message ids, best first
    sender: str | None = None  # a reply's From address
    subject: str | None = None
    text: str | None = None  # a reply's new text
    status: str | None = None  # a DSN's "5.1.1"
    code: int | None = None  # the seed 001 code of a bounce
    diagnostic: str | None = None  # what the reporting server said
    files: tuple[MailFile, ...] = ()  # a reply's attachments


def parse(data: bytes, envelope_sender: str | None = None) -> MailEvent:
    try:
        message = BytesParser(policy=policy.default).parsebytes(data)
        return _classify(message, envelope_sender)
    except Exception:  # a message the parser trips over: not ours to understand
        return MailEvent("ignored")


def _classify(message: Message, envelope_sender: str | None) -> MailEvent:
    subject = _header(message, "subject")
    if _is_dsn(message):
        return _dsn(message, subject)
    null_sender = envelope_sender is not None and envelope_sender.strip("<> ") == ""
    returned = _returned_ids(message)
    if null_sender and returned:
        refs = _unique([*returned, *_own_references(message)])
        return MailEvent(
            "bounce",
            refs,
            subject=subject,
            status="5.0.0",
            code=code_for_status(None),
            diagnostic=_first_text(message)[:500] or None,
        )
    auto = (_header(message, "auto-submitted") or "no").strip().lower()
    precedence = (_header(message, "precedence") or "").strip().lower()
    if auto != "no" or precedence in ("bulk", "junk", "list") or null_sender:
        return MailEvent("ignored", _own_references(message), subject=subject)
    senders = getaddresses([_header(message, "from") or ""])
    sender = senders[0][1].strip().lower() if senders and senders[0][1] else None
    return MailEvent(
        "reply",
        _own_references(message),
        sender=sender,
        subject=subject,
        text=_cut(new_text(_first_text(message))),
        files=_files(message),
    )


# --- DSN ------------------------------------------------------------------------------


def _is_dsn(message: Message) -> bool:
    return (
        message.get_content_type() == "multipart/report"
        and str(message.get_param("report-type", "")).lower() == "delivery-status"
    )


def _dsn(message: Message, subject: str | None) -> MailEvent:
    fields: list[Message] = []
    for part in message.walk():
        if part.get_content_type() == "message/delivery-status":
            payload = part.get_payload()
            if isinstance(payload, list):
                fields = [p for p in payload if isinstance(p, Message)]
            break
    envid = None
    if fields:
        envid = _header(fields[0], "original-envelope-id")
    recipient = next((f for f in fields if _header(f, "action")), None)
    action = (_header(recipient, "action") or "failed").strip().lower() if recipient else "failed"
    status_text = (_header(recipient, "status") or "").strip() if recipient else ""
    diagnostic = (_header(recipient, "diagnostic-code") or "").strip() if recipient else ""
    refs = _unique(
        [
            *([_xtext_decode(envid.strip())] if envid else []),
            *_returned_ids(message),
            *_own_references(message),
        ]
    )
    parsed = enhanced(status_text)
    if action == "delivered":
        return MailEvent("delivered", refs, subject=subject, status=status_text or None)
    if action in ("delayed", "relayed", "expanded") or (parsed is not None and parsed[0] == 4):
        return MailEvent("delayed", refs, subject=subject, status=status_text or None)
    diag = diagnostic.split(";", 1)[-1].strip() if diagnostic else ""
    return MailEvent(
        "bounce",
        refs,
        subject=subject,
        status=status_text or "5.0.0",
        code=code_for_status(parsed),
        diagnostic=" ".join(diag.split())[:500] or None,
    )


def _returned_ids(message: Message) -> list[str]:
    """Message-IDs of a returned original (``message/rfc822`` or ``text/rfc822-headers``)."""
    found: list[str] = []
    for part in message.walk():
        kind = part.get_content_type()
        if kind in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message):
                found += _ids(_header(inner, "message-id"))
        elif kind in ("text/rfc822-headers", "message/global-headers"):
            content = part.get_payload(decode=True)
            if isinstance(content, bytes):
                headers = BytesParser(policy=policy.default).parsebytes(content, headersonly=True)
                found += _ids(_header(headers, "message-id"))
    return found


# --- replies --------------------------------------------------------------------------


def _own_references(message: Message) -> tuple[str, ...]:
    refs = _ids(_header(message, "in-reply-to"))
    refs += list(reversed(_ids(_header(message, "references"))))  # newest first
    return _unique(refs)


def _first_text(message: Message) -> str:
    if isinstance(message, EmailMessage):
        body = message.get_body(preferencelist=("plain", "html"))
        if body is not None:
            content = _content(body)
            return text_of(content) if body.get_content_type() == "text/html" else content
    for part in message.walk():
        attached = str(part.get("content-disposition", "")).lower().startswith("attachment")
        if part.get_content_maintype() == "text" and not attached:
            return _content(part)
    return ""


def _files(message: Message) -> tuple[MailFile, ...]:
    """The attachments (``Content-Disposition: attachment``, or a named non-text part
    shown inline, such as a pasted image), decoded; a part that does not decode is left
    out."""
    if not isinstance(message, EmailMessage):
        return ()
    found: list[MailFile] = []
    for part in message.walk():
        if part.is_multipart() or part is message:  # a single-part mail is its text
            continue
        disposition = part.get_content_disposition()
        named = part.get_filename() is not None
        if disposition != "attachment" and not (named and part.get_content_maintype() != "text"):
            continue
        data = part.get_payload(decode=True)
        if isinstance(data, bytes):
            found.append(MailFile(part.get_filename(), part.get_content_type(), data))
    return tuple(found)


def _content(part: Message) -> str:
    try:
        value: Any = part.get_content()  # type: ignore[attr-defined]
    except Exception:
        raw = part.get_payload(decode=True)
        value = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
    return value if isinstance(value, str) else ""


def new_text(text: str) -> str:
    """The reply's own text: the quoted message it answers (``> ...`` lines at the end,
    and the ``On ... wrote:`` line before them; or all after ``-----Original
    Message-----``) cut off."""
    lines = text.replace("\r\n", "\n").split("\n")
    for i, line in enumerate(lines):
        if _ORIGINAL.match(line.strip()):
            lines = lines[:i]
            break
    end = len(lines)
    while end and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith(">")):
        end -= 1
    kept = lines[:end]
    if end < len(lines) and kept and _WROTE.match(kept[-1].strip()):
        kept = kept[:-1]
    return "\n".join(kept).strip()


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


# --- helpers --------------------------------------------------------------------------


def _header(message: Message | None, name: str) -> str | None:
    if message is None:
        return None
    try:
        value = message.get(name)
    except Exception:  # a header the policy cannot parse
        return None
    return str(value) if value is not None else None


def _ids(value: str | None) -> list[str]:
    return [m.lower() for m in _MSGID.findall(value or "")]


def _unique(items: list[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for item in items:
        item = item.strip().strip("<>").lower()
        if item and len(item) <= 100:
            seen.setdefault(item, None)
    return tuple(seen)


def _xtext_decode(value: str) -> str:
    return re.sub(r"\+([0-9A-Fa-f]{2})", lambda m: chr(int(m[1], 16)), value)
