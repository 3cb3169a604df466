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
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote

import dkim

from omnirelay.channels.base import Outbound
from omnirelay.channels.smtp.config import SmtpConfig
from omnirelay.db import utcnow

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
    extra = message.extra or {}
    msg = EmailMessage(policy=SMTP)
    sender = message.sender if message.sender and "@" in message.sender else config.from_address
    msg["From"] = _address(config.from_name, sender)
    msg["To"] = _address(None, str(extra["email"]))
    msg["Subject"] = str(extra.get("subject") or "")
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = f"<{pid}>"
    if config.reply_to:
        msg["Reply-To"] = config.reply_to
    unsubscribe = _unsubscribe(extra.get("unsubscribe") or config.list_unsubscribe, message)
    if unsubscribe:
        msg["List-Unsubscribe"] = ", ".join(f"<{u}>" for u in unsubscribe)
        if any(u.startswith("https://") for u in unsubscribe):
            # RFC 8058 one-click: a POST to the https URL unsubscribes, no page to visit.
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    html = extra.get("html")
    text = message.text if message.text else (text_of(html) if html else "")
    msg.set_content(text, subtype="plain", cte="quoted-printable")
    if html:
        msg.add_alternative(html, subtype="html", cte="quoted-printable")
    for item in attachments:
        maintype, _, subtype = item.content_type.partition("/")
        msg.add_attachment(item.data, maintype=maintype, subtype=subtype, filename=item.filename)
    data = msg.as_bytes(policy=SMTP)
    return sign(data, config) if config.dkim_private_key else data


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


def _address(name: str | None, address: str) -> Address:
    local, _, domain = address.rpartition("@")
    return Address(display_name=name or "", username=local, domain=domain)


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
