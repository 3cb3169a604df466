"""What an SMTP answer or a failure to talk means for the message (docs/channels/email.md,
"Errors", keeps the same table).

4xx is "try again later" in SMTP itself (RFC 5321 4.2.1): retried with the dispatch
backoff. 5xx is final: the step ends, with a status and a seed 001 code chosen by the
stage that refused (greeting, AUTH, MAIL FROM, RCPT TO, DATA) and the enhanced status
code (RFC 3463) where the server gives one. The server's text stays in the error.
"""

from __future__ import annotations

import re
import ssl

from omnirelay.channels.base import PermanentError, RetriableError

AUTH_ERROR = 1003  # Authorization error
RECIPIENT_ERROR = 1010  # Tel.number error: the address
SENDER_ERROR = 1011  # Sender ID error: the from address / envelope sender
TEXT_ERROR = 1012  # Message text error: too large
SETTINGS_ERROR = 1016  # Delivery failure (routing is not configured)
ROUTING_ERROR = 1030
CONTENT_ERROR = 1031  # Invalid content type
UNKNOWN_ERROR = 1000

# Where in the conversation the server refused, as the error text names it.
STAGES = {
    "connect": "greeting",
    "auth": "AUTH",
    "mail": "MAIL FROM",
    "rcpt": "RCPT TO",
    "data": "DATA",
}
_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")

# Enhanced status code subjects (RFC 3463 "X.Y.Z", by Y) of a final refusal.
SUBJECT_CODES = {
    1: RECIPIENT_ERROR,  # addressing: bad mailbox, bad domain
    2: RECIPIENT_ERROR,  # mailbox: disabled, full, ...
    3: UNKNOWN_ERROR,  # the mail system
    4: ROUTING_ERROR,  # network and routing
    5: UNKNOWN_ERROR,  # protocol
    6: CONTENT_ERROR,  # content or media
    7: UNKNOWN_ERROR,  # security or policy (spam, DMARC): the text says which
}


def enhanced(text: str) -> tuple[int, int, int] | None:
    """The RFC 3463 status code an answer or a DSN starts with (``5.1.1 ...``)."""
    match = _ENHANCED.match(text or "")
    if match is None:
        return None
    return int(match[1]), int(match[2]), int(match[3])


def code_for_status(status: tuple[int, int, int] | None) -> int:
    """The seed 001 code of a final enhanced status (also what a DSN bounce reports)."""
    if status is None:
        return UNKNOWN_ERROR
    if status[1:] in ((3, 4), (2, 3)):  # message too big for the system / the mailbox
        return TEXT_ERROR
    return SUBJECT_CODES.get(status[1], UNKNOWN_ERROR)


def for_reply(code: int, text: str, stage: str) -> RetriableError | PermanentError:
    """An SMTP reply that refused the message at ``stage``."""
    text = " ".join((text or "").split())[:500]
    where = STAGES.get(stage, stage)
    message = f"SMTP {code} at {where}: {text}" if text else f"SMTP {code} at {where}"
    if 400 <= code < 500 or code < 200:
        # 421 closing, 450/451 try later, 452 too many / no space, 454 TLS/AUTH for now.
        return RetriableError(message)
    status = enhanced(text)
    if stage == "connect":
        return PermanentError(message, status="error", code=SETTINGS_ERROR)
    if stage == "auth" or code in (530, 534, 535, 538):
        return PermanentError(message, status="error", code=AUTH_ERROR)
    if code == 552 or (status is not None and status[1:] in ((3, 4), (2, 3))):
        return PermanentError(message, status="rejected", code=TEXT_ERROR)
    if stage == "mail":
        return PermanentError(message, status="error", code=SENDER_ERROR)
    if stage == "rcpt":
        # The receiving side says the address does not take mail: undelivered, and the
        # code of its enhanced status (5.1.1 no such user -> 1010, ...).
        return PermanentError(message, status="undelivered", code=code_for_status(status))
    return PermanentError(message, status="rejected", code=code_for_status(status))


def for_tls(exc: ssl.SSLError) -> PermanentError | RetriableError:
    """A TLS failure: a certificate that does not verify is a setting to fix (the next
    route step takes the message); a handshake cut short is retried."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or str(exc)
        return PermanentError(
            f"SMTP TLS certificate not trusted: {reason}", status="error", code=SETTINGS_ERROR
        )
    return RetriableError(f"SMTP TLS handshake failed: {exc}")


def unsupported(what: str) -> PermanentError:
    """The server lacks what the settings require (STARTTLS, AUTH)."""
    return PermanentError(f"SMTP server: {what}", status="error", code=SETTINGS_ERROR)
