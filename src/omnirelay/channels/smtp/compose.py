"""One outbound email as MIME bytes (the standard library's ``email`` package), signed
with DKIM (dkimpy) when the connection has a key.

Shape: ``text/plain`` alone; ``multipart/alternative`` (text, HTML) when there is HTML
(the text part made from the HTML when no text was given); ``multipart/mixed`` around
it with the attachments. Message-ID is ``<message id without dashes@domain>``: the same
for every try of the message, so a receiver can tell a retry from a new message, and
the provider message id the pipeline matches bounces and replies by.
"""

from __future__ import annotations

import html as html_lib
import re
from dataclasses import dataclass
from email import charset
from email.encoders import encode_base64
from email.header import Header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import format_datetime, formataddr
from html.parser import HTMLParser
from typing import Any, cast
from urllib.parse import quote

import dkim

from omnirelay.channels.base import Outbound
from omnirelay.channels.smtp.config import SmtpConfig
from omnirelay.db import utcnow

WIRE = compat32.clone(linesep="\r\n", max_line_length=78)
UTF8_QP = charset.Charset("utf-8")
UTF8_QP.body_encoding = charset.QP

# Headers a DKIM signature covers (those present): what a forwarder must not change.
SIGNED_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"mime-version",
    b"content-type",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
)


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str  # "type/subtype"
    data: bytes


def provider_id(message_id: str, config: SmtpConfig) -> str:
    """The Message-ID without its angle brackets: what the attempt records."""
    return f"{message_id.replace('-', '').lower()}@{config.id_domain}"


def build(message: Outbound, config: SmtpConfig, attachments: list[Attachment], pid: str) -> bytes:
    # The compat32 classes (email.mime), not EmailMessage: the header registry of the
    # newer API parses every header it is given again and costs ~5x (10 ms a message).
    # Header values are checked one-line text before they get here (config, email_steps).
    extra = message.extra or {}
    sender = message.sender if message.sender and "@" in message.sender else config.from_address
    html = extra.get("html")
    text = message.text if message.text else (text_of(html) if html else "")
    body: Message = _text(text, "plain")
    if html:
        alternative = MIMEMultipart("alternative")
        alternative.attach(body)
        alternative.attach(_text(str(html), "html"))
        body = alternative
    if attachments:
        mixed = MIMEMultipart("mixed")
        mixed.attach(body)
        for item in attachments:
            mixed.attach(_attachment(item))
        body = mixed
    body["From"] = formataddr((config.from_name or "", sender), charset="utf-8")
    body["To"] = str(extra["email"])
    # compat32 takes a Header object where the types say str (RFC 2047 when not ASCII).
    body["Subject"] = cast(str, _header(str(extra.get("subject") or "")))
    body["Date"] = format_datetime(utcnow())
    body["Message-ID"] = f"<{pid}>"
    if config.reply_to:
        body["Reply-To"] = config.reply_to
    unsubscribe = _unsubscribe(extra.get("unsubscribe") or config.list_unsubscribe, message)
    if unsubscribe:
        body["List-Unsubscribe"] = ", ".join(f"<{u}>" for u in unsubscribe)
        if any(u.startswith("https://") for u in unsubscribe):
            # RFC 8058 one-click: a POST to the https URL unsubscribes, no page to visit.
            body["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    if "MIME-Version" not in body:
        body["MIME-Version"] = "1.0"
    data = body.as_bytes(policy=WIRE)
    return sign(data, config) if config.dkim_private_key else data


def _text(content: str, subtype: str) -> MIMEText:
    part = MIMEText("", subtype, None)
    part.set_payload(content, UTF8_QP)
    return part


def _attachment(item: Attachment) -> MIMEBase:
    maintype, _, subtype = item.content_type.partition("/")
    part = MIMEBase(maintype, subtype)
    part.set_payload(item.data)
    encode_base64(part)
    name: str | tuple[str, str, str] = item.filename
    if not item.filename.isascii():
        name = ("utf-8", "", item.filename)  # RFC 2231
    part.add_header("Content-Disposition", "attachment", filename=name)
    return part


def _header(value: str) -> str | Header:
    return value if value.isascii() else Header(value, "utf-8")


def sign(data: bytes, config: SmtpConfig) -> bytes:
    assert config.dkim_selector and config.dkim_private_key
    signature: bytes = dkim.sign(
        data,
        config.dkim_selector.encode(),
        config.signing_domain.encode(),
        config.dkim_private_key.encode(),
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[h for h in SIGNED_HEADERS if _has_header(data, h)],
    )
    return signature + data


def _has_header(data: bytes, name: bytes) -> bool:
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    return head.startswith(name + b":") or (b"\r\n" + name + b":") in head


def _unsubscribe(value: Any, message: Outbound) -> list[str]:
    if not value or not isinstance(value, str):
        return []
    email = str((message.extra or {}).get("email", ""))
    filled = value.replace("{message_id}", quote(message.message_id, safe="")).replace(
        "{email}", quote(email, safe="")
    )
    return [filled]


class _Text(HTMLParser):
    """Readable text of an HTML body: block elements on their own lines, links kept."""

    BLOCKS = frozenset(
        {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "hr"}
    )
    SKIP = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skip = 0
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skip += 1
        elif tag in self.BLOCKS:
            self.out.append("\n")
        elif tag == "a":
            self._href = dict(attrs).get("href")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in self.BLOCKS:
            self.out.append("\n")
        elif tag == "a" and self._href:
            if self._href.startswith(("http://", "https://", "mailto:")):
                self.out.append(f" ({self._href})")
            self._href = None

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.out.append(data)


def text_of(html: str) -> str:
    parser = _Text()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # a broken document still has text: fall back to stripping tags
        return html_lib.unescape(re.sub(r"<[^>]*>", " ", html))
    lines = (" ".join(line.split()) for line in "".join(parser.out).splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
