"""A /v3 route step on the ``email`` channel (docs/api/notifications.md, "Email steps"):
checked without the database, like every step (messaging/validation.py).

    {"channel": "email", "email": "ann@example.com", "subject": "Your order",
     "text": "...", "html": "<p>...</p>",
     "attachments": [{"url": "https://.../invoice.pdf", "filename": "invoice.pdf"}],
     "unsubscribe": "https://example.com/u/123", "sender": "news@shop.example"}

``email`` and ``subject`` are required, and ``text`` or ``html`` (or both); ``phone`` is
optional (a later SMS step takes the body's). ``sender`` picks the email connection that
has it among its senders, and is the From address. What the adapter needs goes into the
step's ``extra``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from omnirelay.channels.smtp.addresses import BadAddress, normalize
from omnirelay.messaging import errors as e
from omnirelay.net.ssrf import UnsafeURL, precheck

if TYPE_CHECKING:
    from omnirelay.messaging.validation import Rules, StepDraft

MAX_SUBJECT = 998  # RFC 5322's line limit
MAX_HTML = 200_000
MAX_ATTACHMENTS = 10


def email_step(step: dict[str, Any], out: StepDraft, rules: Rules, prefix: str = "") -> None:
    raw = step.get("email")
    if raw is None or raw == "":
        raise e.no_field("email")
    try:
        address = normalize(raw)
    except BadAddress as exc:
        raise e.invalid(f"email: {exc}", prefix + "email") from None
    subject = step.get("subject")
    if subject is None or subject == "":
        raise e.no_field("subject")
    if not isinstance(subject, str) or len(subject) > MAX_SUBJECT or _control(subject):
        raise e.invalid(
            f"subject must be one line of at most {MAX_SUBJECT} characters", prefix + "subject"
        )
    html = step.get("html")
    if html in (None, ""):
        html = None
    elif not isinstance(html, str) or len(html) > MAX_HTML:
        raise e.bad_text(f"html must be a string of at most {MAX_HTML} characters", prefix + "html")
    if out.text is None and html is None:
        raise e.bad_text("an email needs text or html", prefix + "text")
    sender = step.get("sender")
    if sender not in (None, ""):
        try:
            out.sender = normalize(sender)
        except BadAddress as exc:
            raise e.bad_sender(prefix + "sender") from exc
    extra: dict[str, Any] = {"email": address, "subject": subject.strip()}
    if html is not None:
        extra["html"] = html
    attachments = _attachments(step.get("attachments"), rules, prefix + "attachments")
    if attachments:
        extra["attachments"] = attachments
    unsubscribe = _unsubscribe(step.get("unsubscribe"), prefix + "unsubscribe")
    if unsubscribe:
        extra["unsubscribe"] = unsubscribe
    out.extra = extra


def _attachments(value: Any, rules: Rules, field: str) -> list[dict[str, str]]:
    if value in (None, ""):
        return []
    if not isinstance(value, list) or len(value) > MAX_ATTACHMENTS:
        raise e.invalid(f"attachments must be an array of at most {MAX_ATTACHMENTS}", field)
    out: list[dict[str, str]] = []
    for i, item in enumerate(value):
        where = f"{field}[{i}]"
        if isinstance(item, str):
            item = {"url": item}
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            raise e.invalid("an attachment is a URL or {url, filename}", where)
        url = item["url"].strip()
        if len(url) > 2000:
            raise e.SendError(1036, "Wrong image URL: an attachment URL is too long", field=where)
        try:
            precheck(url, rules.allowed_networks, where + ".url")
        except UnsafeURL as exc:
            raise e.SendError(1036, f"Wrong image URL: {exc.message}", field=where) from None
        entry = {"url": url}
        filename = item.get("filename")
        if filename not in (None, ""):
            if not isinstance(filename, str) or len(filename) > 200 or _control(filename):
                raise e.invalid("filename must be a file name of at most 200 characters", where)
            entry["filename"] = filename.strip()
        unknown = sorted(set(item) - {"url", "filename"})
        if unknown:
            raise e.invalid(f"unknown attachment field {unknown[0]!r}", where)
        out.append(entry)
    return out


def _unsubscribe(value: Any, field: str) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or len(value) > 2000 or _control(value):
        raise e.invalid("unsubscribe must be an https URL or a mailto: address", field)
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme == "mailto":
        try:
            normalize(parts.path)
        except BadAddress as exc:
            raise e.invalid(f"unsubscribe: {exc}", field) from None
    elif parts.scheme not in ("https", "http") or not parts.netloc:
        raise e.invalid("unsubscribe must be an https URL or a mailto: address", field)
    if any(c in text for c in "<>, "):
        raise e.invalid("unsubscribe must not contain <, >, commas or spaces", field)
    return text


def _control(text: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)
