"""A local peer of Twilio's Programmable Voice REST API, for the call-back tests.

It answers ``Calls.json`` (create) and ``Calls/{Sid}.json`` (update: ``Twiml``, or
``Status=completed`` to hang up) as Twilio documents: HTTP Basic with the account SID and
auth token, form-encoded bodies, call resources ``{sid, status, to, from, ...}`` and
errors ``{code, message, more_info, status}``. Each call's life is scripted by the
customer's number (``outcomes``) and played by :meth:`drive`, which POSTs the status
callbacks Twilio would send, signed with ``X-Twilio-Signature``, through ``deliver``.
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from omnirelay.callbacks.twilio import signature
from omnirelay.testing.httppeer import Answer, HttpPeer, PeerRequest

# deliver(url, form body, headers) -> the HTTP status omnirelay answered
Deliver = Callable[[str, bytes, dict[str, str]], int]
_CALLS = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Calls(?:/([^/]+))?\.json$")
_NUMBER_TAG = re.compile(r'<Number statusCallback="([^"]+)"[^>]*>([^<]+)</Number>')
OUTCOMES = ("answer", "busy", "no-answer", "failed", "hangs-up")


def error(status: int, code: int, message: str) -> Answer:
    more = f"https://www.twilio.com/docs/errors/{code}"
    body = {"code": code, "message": message, "more_info": more, "status": status}
    return status, body, {}


@dataclass
class PeerCall:
    sid: str
    to: str
    from_: str
    status_callback: str
    events: str
    status: str = "queued"
    twiml: list[str] = field(default_factory=list)
    agent_sid: str = ""
    agent_callback: str = ""
    agent_number: str = ""


class TwilioPeer(HttpPeer):
    def __init__(self, *, lifetime: float = 120.0, **kw: Any) -> None:
        super().__init__(lifetime=lifetime, **kw)
        self.account_sid = "AC" + secrets.token_hex(16)
        self.auth_token = secrets.token_hex(16)
        self.from_number = "+74950000000"
        self.calls: dict[str, PeerCall] = {}
        self.outcomes: dict[str, str] = {}  # customer number (E.164) -> one of OUTCOMES
        self.pending: list[tuple[str, dict[str, str]]] = []  # callbacks not yet sent
        self.delivered: list[tuple[str, dict[str, str], int]] = []
        self._calls_lock = threading.Lock()

    def settings(self, **overrides: Any) -> dict[str, Any]:
        return {
            "provider": "twilio",
            "account_sid": self.account_sid,
            "auth_token": self.auth_token,
            "from_number": self.from_number,
            "base_url": self.base_url,
            **overrides,
        }

    def scripted(self, req: PeerRequest) -> bool:
        return _CALLS.match(req.path) is not None

    # -- the REST API --

    def route(self, req: PeerRequest) -> Answer:
        match = _CALLS.match(req.path)
        if match is None or req.method != "POST":
            return error(404, 20404, "The requested resource was not found")
        expected = f"{self.account_sid}:{self.auth_token}".encode()
        if req.headers.get("authorization") != "Basic " + base64.b64encode(expected).decode():
            return error(401, 20003, "Authentication Error - invalid username")
        if match.group(1) != self.account_sid:
            return error(404, 20404, "The requested resource was not found")
        form = dict(parse_qsl(req.body.decode()))
        if match.group(2) is None:
            return self._create(form)
        return self._update(match.group(2), form)

    def _create(self, form: dict[str, str]) -> Answer:
        to = form.get("To", "")
        if not re.fullmatch(r"\+[0-9]{6,15}", to) or self.outcomes.get(to) == "invalid":
            return error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not (form.get("Twiml") or form.get("Url")):
            return error(400, 21205, "Url or Twiml parameter is required.")
        call = PeerCall(
            "CA" + secrets.token_hex(16),
            to,
            form.get("From", ""),
            form.get("StatusCallback", ""),
            form.get("StatusCallbackEvent", ""),
        )
        with self._calls_lock:
            self.calls[call.sid] = call
            self._customer(call, "initiated")
            self._customer(call, "ringing")
            outcome = self.outcomes.get(to, "answer")
            if outcome in ("answer", "hangs-up"):
                self._customer(call, "in-progress")
                if outcome == "hangs-up":
                    self._customer(call, "completed")
            else:
                self._customer(call, outcome)
        return 201, self._resource(call, "queued"), {}

    def _update(self, sid: str, form: dict[str, str]) -> Answer:
        with self._calls_lock:
            call = self.calls.get(sid)
            if call is None:
                return error(404, 20404, f"The requested resource Calls/{sid}.json was not found")
            if form.get("Status") == "completed":
                if call.status in ("queued", "initiated", "ringing", "in-progress"):
                    self._end(call)
                return 200, self._resource(call, call.status), {}
            twiml = form.get("Twiml", "")
            if not twiml:
                return error(400, 21218, "Invalid ApplicationSid / no Twiml or Url")
            if call.status != "in-progress":
                return error(400, 21220, "Call is not in-progress. Cannot redirect.")
            call.twiml.append(twiml)
            dial = _NUMBER_TAG.search(twiml)
            if dial is not None:
                call.agent_sid = "CA" + secrets.token_hex(16)
                call.agent_callback = dial.group(1).replace("&amp;", "&")
                call.agent_number = dial.group(2)
                self._agent(call, "initiated")
                self._agent(call, "ringing")
                self._agent(call, "in-progress")
            return 200, self._resource(call, call.status), {}

    def _resource(self, call: PeerCall, status: str) -> dict[str, Any]:
        return {
            "sid": call.sid,
            "account_sid": self.account_sid,
            "to": call.to,
            "from": call.from_,
            "status": status,
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Calls/{call.sid}.json",
        }

    # -- the call's life, as status callbacks --

    def _params(self, sid: str, status: str, to: str, **more: str) -> dict[str, str]:
        return {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": sid,
            "CallStatus": status,
            "CallbackSource": "call-progress-events",
            "Direction": "outbound-api",
            "From": self.from_number,
            "To": to,
            **more,
        }

    def _customer(self, call: PeerCall, status: str) -> None:
        call.status = status
        self.pending.append((call.status_callback, self._params(call.sid, status, call.to)))

    def _agent(self, call: PeerCall, status: str) -> None:
        params = self._params(call.agent_sid, status, call.agent_number, ParentCallSid=call.sid)
        self.pending.append((call.agent_callback, params))

    def _end(self, call: PeerCall) -> None:
        if call.agent_sid:
            self._agent(call, "completed")
        self._customer(call, "completed")

    def finish(self, sid: str) -> None:
        """The conversation is over: the agent hangs up, then the customer's call ends."""
        with self._calls_lock:
            self._end(self.calls[sid])

    def sign(self, url: str, params: dict[str, str], token: str | None = None) -> str:
        return signature(token or self.auth_token, url, params)

    def drive(self, deliver: Deliver) -> int:
        """POST every pending status callback, signed, in order; how many were sent."""
        sent = 0
        while True:
            with self._calls_lock:
                if not self.pending:
                    return sent
                url, params = self.pending.pop(0)
            headers = {
                "X-Twilio-Signature": self.sign(url, params),
                "Content-Type": "application/x-www-form-urlencoded",
            }
            status = deliver(url, urlencode(params).encode(), headers)
            self.delivered.append((url, params, status))
            sent += 1

    def creates(self) -> list[PeerCall]:
        with self._calls_lock:
            return list(self.calls.values())
