"""The Twilio Programmable Voice REST API (and any API compatible with it) as call-back
telephony (docs/channels/twilio.md, ADR 33).

The customer is called first (``Calls.json`` with TwiML that holds the line), because the
engine's outcomes that drive retries (busy, no answer) are the customer's, and because a
customer may be dialled ahead of an agent predicted free. When the engine bridges, the
customer's live call is updated with TwiML that ``<Dial>``s the agent. Twilio reports
both legs by status callbacks to ``/hooks/twilio/<call sid>/<attempt>/<leg>``, signed with
``X-Twilio-Signature`` (surfaces/hooks/twilio.py).

This module speaks HTTP; callers run it with no transaction open (callbacks/remote.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from omnirelay.channels.base import PermanentError, RetriableError
from omnirelay.net.provider_http import ProviderHTTP

NAME = "twilio"
DEFAULT_BASE = "https://api.twilio.com"
TIMEOUT = 15.0  # seconds for one REST request
EVENTS = "initiated ringing answered completed"
HOLD = "Please hold: we are connecting you to an agent."
_NUMBER = re.compile(r"^\+?[0-9]{5,20}$")
_ACCOUNT = re.compile(r"^[A-Za-z0-9]{2,64}$")
SECRET = "auth_token"
MASK = "********"

http = ProviderHTTP(NAME, trusted=(DEFAULT_BASE,), settings_error_code=1000)
# The public base URL Twilio reaches /hooks at; None: OMNIRELAY_PUBLIC_URL, read when
# first needed (tests and apps with their own Settings assign it).
public_url: str | None = None


def base_url_of_server() -> str:
    global public_url
    if public_url is None:
        from omnirelay.config import get_settings

        public_url = get_settings().public_url
    return public_url.rstrip("/")


# --- settings ---------------------------------------------------------------------------


def validate_settings(settings: dict[str, Any], previous: Mapping[str, Any]) -> dict[str, Any]:
    """The profile's ``telephony`` for ``provider: twilio``; the masked (or left out)
    auth token keeps the one stored."""
    allowed = {"provider", "account_sid", SECRET, "from_number", "base_url", "ring_timeout"}
    allowed |= {"agent_numbers"}
    for key in settings:
        if key not in allowed:
            raise ValueError(f"unknown twilio setting {key!r}")
    out: dict[str, Any] = {"provider": NAME}
    account = settings.get("account_sid")
    if not isinstance(account, str) or not _ACCOUNT.match(account):
        raise ValueError("account_sid is required (letters and digits)")
    out["account_sid"] = account
    token = settings.get(SECRET)
    if token in (None, MASK) and previous.get("provider") == NAME:
        token = previous.get(SECRET)
    if not isinstance(token, str) or not 8 <= len(token) <= 256 or token == MASK:
        raise ValueError("auth_token is required (8..256 characters)")
    out[SECRET] = token
    number = settings.get("from_number")
    if not isinstance(number, str) or not _NUMBER.match(number):
        raise ValueError("from_number must be a phone number in E.164 (+ and digits)")
    out["from_number"] = number
    base = settings.get("base_url", DEFAULT_BASE)
    if not isinstance(base, str) or not base.startswith(("http://", "https://")):
        raise ValueError("base_url must be an http(s) URL")
    base = base.rstrip("/")
    http.validate_base_url(base)
    out["base_url"] = base
    timeout = settings.get("ring_timeout", 30)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 5 <= timeout <= 600:
        raise ValueError("ring_timeout must be 5..600 seconds")
    out["ring_timeout"] = timeout
    agents = settings.get("agent_numbers", {})
    if not isinstance(agents, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and _NUMBER.match(v) for k, v in agents.items()
    ):
        raise ValueError("agent_numbers maps agent SIDs to E.164 numbers")
    out["agent_numbers"] = dict(agents)
    if not base_url_of_server():
        raise ValueError("twilio needs OMNIRELAY_PUBLIC_URL (where Twilio reaches /hooks)")
    return out


def shown(settings: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(settings)
    if out.get(SECRET):
        out[SECRET] = MASK
    return out


def _e164(number: str) -> str:
    return number if number.startswith("+") else "+" + number


# --- the REST API -----------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    sid: str
    status: str


def _post(settings: Mapping[str, Any], path: str, form: dict[str, str]) -> Answer:
    account = str(settings["account_sid"])
    url = f"{settings.get('base_url', DEFAULT_BASE)}/2010-04-01/Accounts/{account}/{path}"
    raw = f"{account}:{settings[SECRET]}".encode()
    headers = {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    response = http.request("POST", url, headers=headers, data=form, timeout=TIMEOUT)
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code == 429 or response.status_code >= 500:
        delay = _retry_after(response.headers.get("retry-after"))
        raise RetriableError(f"twilio {response.status_code}: {_message(body)}", delay=delay)
    if response.status_code >= 400:
        code = body.get("code") if isinstance(body, dict) else None
        raise PermanentError(
            f"twilio {response.status_code}"
            + (f" (error {code})" if code is not None else "")
            + f": {_message(body)}",
            status="failed",
        )
    if not isinstance(body, dict) or not isinstance(body.get("sid"), str):
        # The call may exist: retrying could ring the customer twice, so it fails.
        raise PermanentError("twilio answered without a call sid (not Twilio's JSON)")
    return Answer(body["sid"], str(body.get("status") or ""))


def _message(body: Any) -> str:
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])[:300]
    return "no error message"


def _retry_after(value: str | None) -> float | None:
    try:
        return min(3600.0, max(0.0, float(value))) if value else None
    except ValueError:
        return None


def callback_url(call_sid: str, attempt: int, leg: str) -> str:
    return f"{base_url_of_server()}/hooks/twilio/{call_sid}/{attempt}/{leg}"


def originate(settings: Mapping[str, Any], call_sid: str, attempt: int, number: str) -> Answer:
    """Call the customer; TwiML holds the line until the bridge replaces it."""
    twiml = f'<Response><Say>{HOLD}</Say><Pause length="600"/></Response>'
    return _post(
        settings,
        "Calls.json",
        {
            "To": _e164(number),
            "From": str(settings["from_number"]),
            "Twiml": twiml,
            "Timeout": str(settings.get("ring_timeout", 30)),
            "StatusCallback": callback_url(call_sid, attempt, "customer"),
            "StatusCallbackMethod": "POST",
            "StatusCallbackEvent": EVENTS,
        },
    )


def bridge(
    settings: Mapping[str, Any], provider_sid: str, call_sid: str, attempt: int, agent: str
) -> Answer:
    """Redirect the customer's live call to TwiML that dials the agent."""
    number = escape(_e164(agent))
    status = quoteattr(callback_url(call_sid, attempt, "agent"))
    twiml = (
        f"<Response><Dial callerId={quoteattr(str(settings['from_number']))}>"
        f'<Number statusCallback={status} statusCallbackMethod="POST" '
        f'statusCallbackEvent="{EVENTS}">{number}</Number></Dial></Response>'
    )
    return _post(settings, f"Calls/{provider_sid}.json", {"Twiml": twiml})


def hangup(settings: Mapping[str, Any], provider_sid: str) -> Answer:
    return _post(settings, f"Calls/{provider_sid}.json", {"Status": "completed"})


# --- status callbacks -------------------------------------------------------------------


def signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """Twilio's ``X-Twilio-Signature``: base64 HMAC-SHA1, keyed by the auth token, of the
    full URL followed by every POST parameter's name and value, sorted by name."""
    data = url + "".join(k + params[k] for k in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def verify(auth_token: str, url: str, params: Mapping[str, str], header: str | None) -> bool:
    if not auth_token or not header:
        return False
    expected = signature(auth_token, url, params)
    return hmac.compare_digest(expected.encode(), header.strip().encode())


def event_of(leg: str, status: str) -> str | None:
    """The engine's event for a leg's ``CallStatus`` (None: nothing for the engine).
    ``ended``: the customer's call is over; the engine reads it as ``completed`` after a
    conversation and as ``hangup`` before one."""
    if leg == "customer":
        return {
            "in-progress": "answered",
            "busy": "busy",
            "no-answer": "no_answer",
            "failed": "failed",
            "completed": "ended",
        }.get(status)
    if leg == "agent":
        return "connected" if status == "in-progress" else None
    return None
