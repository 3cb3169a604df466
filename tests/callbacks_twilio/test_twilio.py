"""Call-back telephony through Twilio's Programmable Voice API, end to end: /3.0 places
the call-back, omnirelay calls the customer at the local Twilio peer, the peer's signed
status callbacks come back through /hooks/twilio, the engine bridges the agent with TwiML,
and the call ends; busy and no-answer retries, cancel (hang-up), refused signatures,
provider errors and faults."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from omnirelay.callbacks.models import Call, Profile
from omnirelay.db import Database
from omnirelay.queue.models import Job
from omnirelay.testing.httppeer import DROP, PeerRequest
from omnirelay.testing.twilio import Deliver, TwilioPeer, error
from tests.callbacks.conftest import ANSWERS, Account
from tests.callbacks.test_lifecycle import agents_now, join, start, status
from tests.callbacks_twilio.conftest import AGENT_LINE, PUBLIC_URL

Api = Callable[..., Any]
CUSTOMER = "+" + ANSWERS


@pytest.fixture
def settle(
    peer: TwilioPeer,
    deliver: Deliver,
    drain: Callable[[], int],
    advance: Callable[[float], None],
) -> Callable[[], None]:
    """Jobs run and the peer's callbacks are delivered until neither has anything left;
    a retry's short backoff is let pass by one small jump of the clock."""

    def run() -> None:
        jumped = False
        while True:
            moved = drain() + peer.drive(deliver)
            if moved:
                jumped = False
                continue
            if jumped:
                return
            advance(2)
            jumped = True

    return run


def event_jobs(db: Database) -> int:
    with db.transaction() as session:
        q = select(func.count()).select_from(Job).where(Job.kind == "callbacks.event")
        return int(session.scalar(q) or 0)


def test_answered_call_end_to_end(
    api: Api,
    admin: Api,
    account: Account,
    peer: TwilioPeer,
    settle: Callable[[], None],
    call_row: Callable[[str], Call],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    join(admin, account)
    sid = start(api, account)
    settle()
    [call] = peer.creates()
    assert (call.to, call.from_) == (CUSTOMER, peer.from_number)
    assert call.status_callback == f"{PUBLIC_URL}/hooks/twilio/{sid}/1/customer"
    assert call.events == "initiated ringing answered completed"
    # The customer answered: the live call was redirected to TwiML that dials the agent.
    [twiml] = call.twiml
    assert "<Dial" in twiml and f">{AGENT_LINE}</Number>" in twiml
    assert call.agent_callback == f"{PUBLIC_URL}/hooks/twilio/{sid}/1/agent"
    assert status(api, sid)["status"] == "connected"
    assert agents_now(api, account) == (0, 1)
    assert call_row(sid).provider_call_sid == call.sid

    peer.finish(call.sid)
    settle()
    assert status(api, sid)["status"] == "completed"
    assert agents_now(api, account) == (1, 0)
    assert {code for _, _, code in peer.delivered} == {204}
    assert peer.auth_token not in caplog.text  # the secret is never logged


@pytest.mark.parametrize("outcome", ["busy", "no-answer"])
def test_busy_and_no_answer_retry_then_give_up(
    outcome: str,
    api: Api,
    admin: Api,
    account: Account,
    peer: TwilioPeer,
    settle: Callable[[], None],
    advance: Callable[[float], None],
) -> None:
    join(admin, account)
    peer.outcomes[CUSTOMER] = outcome
    sid = start(api, account)
    settle()
    reason = "busy" if outcome == "busy" else "no answer"
    assert status(api, sid)["status"] == "retrying"
    assert status(api, sid)["details"] == f"{reason}; retry 1 of 2"
    assert agents_now(api, account) == (1, 0)  # the agent is free during the interval
    for attempt in (2, 3):
        advance(60)  # the profile's retry_interval
        settle()
        assert len(peer.creates()) == attempt
        assert peer.creates()[-1].status_callback.endswith(f"/{sid}/{attempt}/customer")
    assert status(api, sid)["status"] == "no_answer"
    assert status(api, sid)["details"] == f"{reason} after 3 attempts"


def test_cancel_hangs_up_the_providers_call(
    api: Api,
    admin: Api,
    account: Account,
    peer: TwilioPeer,
    drain: Callable[[], int],
    deliver: Deliver,
) -> None:
    join(admin, account)
    sid = start(api, account)
    drain()  # the call is placed; its status callbacks are not delivered yet
    [call] = peer.creates()
    assert status(api, sid)["status"] == "calling"
    r = api("POST", f"/callback/{sid}/cancel")
    assert r.status_code == 200, r.text
    drain()
    hangups = [r for r in peer.requests if r.path.endswith(f"/Calls/{call.sid}.json")]
    assert [h.body for h in hangups] == [b"Status=completed"]
    peer.drive(deliver)
    drain()
    assert status(api, sid)["status"] == "cancelled"  # late callbacks change nothing
    assert agents_now(api, account) == (1, 0)


def test_bad_signature_is_refused_and_nothing_applied(
    api: Api,
    admin: Api,
    account: Account,
    peer: TwilioPeer,
    drain: Callable[[], int],
    deliver: Deliver,
    client: Any,
    db: Database,
) -> None:
    join(admin, account)
    sid = start(api, account)
    drain()
    url, params = peer.pending[2]  # the customer answered
    assert params["CallStatus"] == "in-progress"
    path = url[len(PUBLIC_URL) :]
    body = "&".join(f"{k}={v}" for k, v in params.items()).replace("+", "%2B").encode()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    before = event_jobs(db)
    for signature in (
        peer.sign(url, params, token="another-token-entirely"),
        peer.sign(url.replace("/1/customer", "/2/customer"), params),  # another URL's
        peer.sign(url, {**params, "CallStatus": "busy"}),  # another body's
        "",
    ):
        headers = {**form, "X-Twilio-Signature": signature} if signature else form
        r = client.post(path, content=body, headers=headers)
        assert r.status_code == 403, r.text
        assert r.json() == {"ok": False, "error": "invalid signature"}
    other = client.post(path.replace(sid, "CA" + "0" * 32), content=body, headers=form)
    assert other.status_code == 404
    drain()
    assert event_jobs(db) == before
    assert status(api, sid)["status"] == "calling"
    peer.drive(deliver)  # the genuine callbacks still apply
    drain()
    peer.drive(deliver)
    drain()
    assert status(api, sid)["status"] == "connected"


def test_peer_faults_are_retried_and_the_call_placed_once(
    api: Api,
    admin: Api,
    account: Account,
    peer: TwilioPeer,
    settle: Callable[[], None],
) -> None:
    def faults(req: PeerRequest, n: int) -> Any:
        if n == 1:
            return error(500, 20500, "Internal Server Error")
        if n == 2:
            return DROP
        return None

    peer.script = faults
    join(admin, account)
    sid = start(api, account)
    settle()
    assert len(peer.creates()) == 1  # 500 and the dropped connection created nothing
    assert len([r for r in peer.requests if r.path.endswith("/Calls.json")]) == 3
    assert status(api, sid)["status"] == "connected"


def test_429_waits_for_retry_after(
    api: Api,
    admin: Api,
    account: Account,
    peer: TwilioPeer,
    drain: Callable[[], int],
    advance: Callable[[float], None],
) -> None:
    def throttled(req: PeerRequest, n: int) -> Any:
        if n == 1:
            status, body, _ = error(429, 20429, "Too Many Requests")
            return status, body, {"Retry-After": "30"}
        return None

    peer.script = throttled
    join(admin, account)
    sid = start(api, account)
    drain()
    advance(20)
    drain()
    assert peer.creates() == []  # still waiting for Retry-After
    advance(15)
    drain()
    assert len(peer.creates()) == 1
    assert status(api, sid)["status"] == "calling"


def test_a_refused_call_fails_with_twilios_reason(
    api: Api,
    admin: Api,
    account: Account,
    peer: TwilioPeer,
    settle: Callable[[], None],
) -> None:
    peer.outcomes[CUSTOMER] = "invalid"
    join(admin, account)
    sid = start(api, account)
    settle()
    got = status(api, sid)
    assert got["status"] == "failed"
    assert "twilio 400 (error 21211)" in got["details"]
    assert "is not a valid phone number" in got["details"]
    assert agents_now(api, account) == (1, 0)


def test_customer_hangs_up_while_waiting(
    api: Api,
    admin: Api,
    account: Account,
    peer: TwilioPeer,
    settle: Callable[[], None],
) -> None:
    peer.outcomes[CUSTOMER] = "hangs-up"
    join(admin, account)
    sid = start(api, account)
    settle()
    got = status(api, sid)
    assert (got["status"], got["details"]) == ("failed", "the customer hung up")
    assert agents_now(api, account) == (1, 0)


def test_settings_are_validated_and_the_token_masked(
    admin: Api, account: Account, peer: TwilioPeer, db: Database
) -> None:
    r = admin("GET", f"/profiles/{account.profile}")
    assert r.status_code == 200, r.text
    shown = r.json()["telephony"]
    assert shown["auth_token"] == "********" and peer.auth_token not in r.text
    assert shown["account_sid"] == peer.account_sid
    # Sending back what was shown keeps the stored token.
    r = admin("PATCH", f"/profiles/{account.profile}", json={"telephony": shown})
    assert r.status_code == 200, r.text
    with db.transaction() as session:
        profile = session.get(Profile, account.profile)
        assert profile is not None and profile.telephony["auth_token"] == peer.auth_token
    for bad, word in (
        ({**shown, "base_url": "http://10.1.2.3"}, "base_url"),
        ({**shown, "from_number": "not a number"}, "from_number"),
        ({**shown, "ring_delay": 5}, "ring_delay"),
        ({"provider": "nosuch"}, "nosuch"),
    ):
        r = admin("PATCH", f"/profiles/{account.profile}", json={"telephony": bad})
        assert r.status_code in (400, 422), r.text
        assert word in r.text
