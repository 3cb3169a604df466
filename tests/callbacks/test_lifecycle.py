"""The life of a call-back through /3.0, one test per status path, on the sandbox telephony
(ring 5 s, bridge 1 s, talk 120 s) and the jumping clock: SMS updates to opted-in callers
and the events sent to the organization's callback server."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from omnirelay.callbacks.models import Agent, Call
from omnirelay.config import Settings
from omnirelay.db import Database
from omnirelay.messaging.models import Message
from omnirelay.queue.models import Job
from omnirelay.testing.receiver import Receiver, Reply
from omnirelay.webhooks.deliverer import Deliverer
from omnirelay.webhooks.ssrf import parse_networks
from tests.callbacks.conftest import ANSWERS, BUSY, HANGS_UP, NO_ANSWER, Account

LOOPBACK = parse_networks("127.0.0.0/8,::1/128")
Api = Callable[..., Any]


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Loopback callback servers are allowed (the receiver of the events test)."""
    return Settings(
        database_url=database_url,
        rate_limit_requests=10_000,
        webhook_allowed_networks="127.0.0.0/8,::1/128",
    )


@pytest.fixture
def tick(db: Database, advance: Callable[[float], None], drain: Callable[[], int]) -> Any:
    """The clock jumps ``seconds`` for everything the engine stamped (calls, agents), as
    ``advance`` does for the jobs; then the due jobs run."""

    def jump(seconds: float) -> None:
        advance(seconds)
        back = timedelta(seconds=seconds)
        with db.transaction() as session:
            for call in session.scalars(select(Call)):
                for col in ("created_at", "queued_at", "connected_at", "ended_at", "updated_at"):
                    if getattr(call, col) is not None:
                        setattr(call, col, getattr(call, col) - back)
            for agent in session.scalars(select(Agent)):
                agent.joined_at = agent.joined_at - back
                if agent.busy_since is not None:
                    agent.busy_since = agent.busy_since - back
        drain()

    return jump


def start(api: Api, account: Account, number: str = ANSWERS, **fields: Any) -> str:
    r = api("POST", "/callback", data={"fc_number": number, "fc_option": account.option, **fields})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["head"]["status"] == 200
    sid = body["data"]["sid"]
    assert sid.startswith("CA") and len(sid) == 34
    return sid


def status(api: Api, sid: str) -> dict[str, Any]:
    r = api("GET", f"/callback/{sid}/status")
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert set(data) == {"sid", "start_date", "status", "duration", "details"}
    assert data["sid"] == sid
    return data


def join(admin: Api, account: Account, name: str = "Ann") -> str:
    r = admin("POST", f"/options/{account.option}/agents", json={"name": name})
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "available"
    return r.json()["sid"]


def agents_now(api: Api, account: Account) -> tuple[int, int]:
    """(available, busy) agents of the account's option, from /3.0/realtime."""
    r = api("GET", "/realtime")
    [row] = [o for o in r.json()["data"]["options"] if o["option_sid"] == account.option]
    return row["agents_available"], row["agents_busy"]


def sms_texts(db: Database, account: Account) -> list[tuple[str, str]]:
    """(phone, text) of the call-back SMS updates of the account, oldest first (the clock
    stands still: updates made in one instant come in no particular order)."""
    with db.transaction() as session:
        rows = session.scalars(
            select(Message)
            .where(Message.organization_id == account.org.id)
            .order_by(Message.created_at)
        ).all()
        assert all(m.method == "callback" for m in rows)  # nothing else sends here
        return [(m.phone, m.route[0]["text"]) for m in rows]


def dial_jobs(db: Database, sid: str) -> int:
    """Telephony events ever enqueued for a call (a dial enqueues at least one)."""
    with db.transaction() as session:
        jobs = session.scalars(select(Job).where(Job.kind == "callbacks.event")).all()
        return sum(1 for j in jobs if j.payload.get("call_sid") == sid)


# --- answered ---------------------------------------------------------------------------


def test_answered_full_life_cycle(
    api: Api,
    admin: Api,
    account: Account,
    drain: Callable[[], int],
    tick: Callable[[float], None],
    call_row: Callable[[str], Call],
) -> None:
    agent = join(admin, account)
    drain()
    began = time.monotonic()
    sid = start(api, account)

    def slack() -> int:
        return math.ceil(time.monotonic() - began)

    got = status(api, sid)
    assert got["status"] == "queued" and got["duration"] <= slack()
    assert call_row(sid).agent_sid is None

    drain()  # the assignment: the agent is free, the customer is dialled
    got = status(api, sid)
    assert got["status"] == "calling"
    assert call_row(sid).agent_sid == agent
    assert call_row(sid).attempts == 1
    assert agents_now(api, account) == (0, 1)

    tick(4)  # still ringing
    assert status(api, sid)["status"] == "calling"
    tick(1)  # ring_delay 5 s: answered, waiting for the (reserved) agent
    got = status(api, sid)
    assert got["status"] == "waiting"
    assert 5 <= got["duration"] <= 5 + slack()

    tick(1)  # bridge_delay 1 s
    got = status(api, sid)
    assert got["status"] == "connected"
    assert 6 <= got["duration"] <= 6 + slack()
    assert call_row(sid).connected_at is not None
    assert agents_now(api, account) == (0, 1)

    tick(119)  # the conversation lasts talk_time 120 s
    got = status(api, sid)
    assert got["status"] == "connected"
    assert 125 <= got["duration"] <= 125 + slack()
    tick(1)
    got = status(api, sid)
    assert got["status"] == "completed"
    assert 126 <= got["duration"] <= 126 + slack()
    ended = got["duration"]
    assert agents_now(api, account) == (1, 0)
    row = call_row(sid)
    assert row.agent_sid is None and row.ended_at is not None and row.attempts == 1

    tick(300)  # the timer stopped when the call-back ended
    assert status(api, sid)["duration"] == ended
    r = api("GET", f"/call/{sid}")
    assert r.json()["data"]["status"] == "completed"
    assert r.json()["data"]["attempts"] == 1


# --- no answer / busy: retries ----------------------------------------------------------


@pytest.mark.parametrize(("number", "reason"), [(NO_ANSWER, "no answer"), (BUSY, "busy")])
def test_unanswered_retries_then_no_answer(
    api: Api,
    admin: Api,
    account: Account,
    drain: Callable[[], int],
    tick: Callable[[float], None],
    call_row: Callable[[str], Call],
    number: str,
    reason: str,
) -> None:
    agent = join(admin, account)
    sid = start(api, account, number)
    drain()
    for attempt in (1, 2):
        got = status(api, sid)
        assert got["status"] == "calling"
        assert call_row(sid).attempts == attempt
        assert call_row(sid).agent_sid == agent
        tick(5)
        got = status(api, sid)
        assert got["status"] == "retrying"
        assert got["details"] == f"{reason}; retry {attempt} of 2"
        assert agents_now(api, account) == (1, 0)  # the agent is not held during the pause
        # While the caller waits for the retry, the only agent goes away: the call-back
        # comes back to the queue after retry_interval and waits there.
        r = admin("POST", f"/agents/{agent}/state", json={"state": "away"})
        assert r.status_code == 200, r.text
        tick(59)
        assert status(api, sid)["status"] == "retrying"
        tick(1)
        assert status(api, sid)["status"] == "queued"
        assert call_row(sid).attempts == attempt
        r = admin("POST", f"/agents/{agent}/state", json={"state": "available"})
        assert r.status_code == 200, r.text
        drain()
    got = status(api, sid)
    assert got["status"] == "calling"
    assert call_row(sid).attempts == 3
    tick(5)
    got = status(api, sid)
    assert got["status"] == "no_answer"
    assert got["details"] == f"{reason} after 3 attempts"
    row = call_row(sid)
    assert row.attempts == 3 and row.ended_at is not None and row.agent_sid is None
    assert agents_now(api, account) == (1, 0)
    tick(3600)  # nothing else happens: no fourth attempt
    assert call_row(sid).attempts == 3
    assert status(api, sid)["status"] == "no_answer"


def test_no_retries_when_the_profile_has_none(
    api: Api,
    admin: Api,
    account: Account,
    drain: Callable[[], int],
    tick: Callable[[float], None],
    call_row: Callable[[str], Call],
) -> None:
    r = admin("PATCH", f"/profiles/{account.profile}", json={"retry_attempts": 0})
    assert r.status_code == 200, r.text
    join(admin, account)
    sid = start(api, account, NO_ANSWER)
    drain()
    tick(5)
    got = status(api, sid)
    assert got["status"] == "no_answer"
    assert call_row(sid).attempts == 1


# --- hangs up while waiting -------------------------------------------------------------


def test_hangs_up_while_waiting_fails(
    api: Api,
    admin: Api,
    account: Account,
    drain: Callable[[], int],
    tick: Callable[[float], None],
    call_row: Callable[[str], Call],
) -> None:
    join(admin, account)
    sid = start(api, account, HANGS_UP)
    drain()
    assert status(api, sid)["status"] == "calling"
    tick(5)
    assert status(api, sid)["status"] == "waiting"
    tick(1)
    got = status(api, sid)
    assert got["status"] == "failed"
    assert got["details"] == "the customer hung up"
    row = call_row(sid)
    assert row.connected_at is None and row.ended_at is not None and row.agent_sid is None
    assert agents_now(api, account) == (1, 0)
    tick(600)
    assert status(api, sid)["status"] == "failed"


# --- cancelled --------------------------------------------------------------------------


def test_cancelled_while_queued_is_never_dialled(
    api: Api,
    admin: Api,
    account: Account,
    db: Database,
    drain: Callable[[], int],
    tick: Callable[[float], None],
    call_row: Callable[[str], Call],
) -> None:
    sid = start(api, account)
    drain()
    assert status(api, sid)["status"] == "queued"  # no agent yet
    r = api("POST", f"/callback/{sid}/cancel")
    assert r.status_code == 200, r.text
    assert r.json()["head"]["status"] == 200
    assert r.json()["data"] == {"sid": sid, "status": "cancelled"}
    got = status(api, sid)
    assert got["status"] == "cancelled"
    join(admin, account)  # an agent now: the cancelled call-back is not dialled
    tick(600)
    row = call_row(sid)
    assert row.status == "cancelled" and row.attempts == 0 and row.agent_sid is None
    assert dial_jobs(db, sid) == 0
    assert agents_now(api, account) == (1, 0)
    assert sid not in [c["sid"] for c in api("GET", "/pending").json()["data"]["calls"]]
    # Cancelled twice: the call-back has already ended.
    r = api("POST", f"/callback/{sid}/cancel")
    assert r.status_code == 500
    assert r.json()["head"]["status"] == 500
    assert "already ended" in r.json()["head"]["message"]


def test_cancelled_while_calling_frees_the_agent(
    api: Api,
    admin: Api,
    account: Account,
    drain: Callable[[], int],
    tick: Callable[[float], None],
    call_row: Callable[[str], Call],
) -> None:
    join(admin, account)
    sid = start(api, account)
    drain()
    assert status(api, sid)["status"] == "calling"
    r = api("POST", f"/callback/{sid}/cancel")
    assert r.status_code == 200, r.text
    assert agents_now(api, account) == (1, 0)
    tick(600)  # the telephony events of the cancelled attempt change nothing
    row = call_row(sid)
    assert row.status == "cancelled" and row.connected_at is None and row.attempts == 1


def tomorrow_noon(zone: str) -> str:
    local = datetime.now(ZoneInfo(zone)) + timedelta(days=1)
    return local.strftime("%Y-%m-%d") + " 12:00:00"


def test_cancelled_while_scheduled_never_starts(
    api: Api,
    admin: Api,
    account: Account,
    db: Database,
    drain: Callable[[], int],
    tick: Callable[[float], None],
    call_row: Callable[[str], Call],
) -> None:
    join(admin, account)
    drain()
    when = tomorrow_noon("Europe/Moscow")
    r = api(
        "POST",
        "/callback",
        data={
            "fc_number": ANSWERS,
            "fc_option": account.option,
            "fc_start_date": when,
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["head"]["message"] == "Call-back scheduled successfully."
    sid = r.json()["data"]["sid"]
    drain()
    got = status(api, sid)
    assert got["status"] == "scheduled"
    assert got["start_date"] == when
    assert got["duration"] == 0
    r = api("POST", f"/callback/{sid}/cancel")
    assert r.status_code == 200, r.text
    assert status(api, sid)["status"] == "cancelled"
    assert api("GET", "/scheduled").json()["data"]["calls"] == []
    tick(3 * 86400)  # the start job comes due and does nothing
    row = call_row(sid)
    assert row.status == "cancelled" and row.attempts == 0 and row.queued_at is None
    assert dial_jobs(db, sid) == 0
    with db.transaction() as session:
        assert session.scalars(select(Job).where(Job.kind == "callbacks.start")).all() == []


def test_a_connected_or_completed_call_cannot_be_cancelled(
    api: Api,
    admin: Api,
    account: Account,
    drain: Callable[[], int],
    tick: Callable[[float], None],
) -> None:
    join(admin, account)
    sid = start(api, account)
    drain()
    tick(5)
    tick(1)
    assert status(api, sid)["status"] == "connected"
    r = api("POST", f"/callback/{sid}/cancel")
    assert r.status_code == 500
    assert r.json() == {
        "head": {
            "status": 500,
            "message": f"Call-back {sid} is connected to an agent and cannot be cancelled.",
        },
        "data": None,
    }
    assert status(api, sid)["status"] == "connected"
    tick(120)
    assert status(api, sid)["status"] == "completed"
    r = api("POST", f"/callback/{sid}/cancel.json")
    assert r.status_code == 500
    assert r.json()["head"] == {
        "status": 500,
        "message": f"Call-back {sid} has already ended (completed).",
    }
    assert r.json()["data"] is None
    assert status(api, sid)["status"] == "completed"


def test_cancel_of_an_unknown_call_back(api: Api) -> None:
    r = api("POST", "/callback/CA" + "0" * 32 + "/cancel")
    assert r.status_code == 500
    assert r.json()["head"]["status"] == 500
    assert "not found" in r.json()["head"]["message"]


# --- SMS updates ------------------------------------------------------------------------


def test_sms_updates_to_an_opted_in_caller(
    api: Api,
    admin: Api,
    account: Account,
    db: Database,
    drain: Callable[[], int],
    tick: Callable[[float], None],
) -> None:
    sid = start(api, account, fc_sms="1")
    texts = sms_texts(db, account)
    assert len(texts) == 1
    assert texts[0][0] == ANSWERS
    assert "in the queue" in texts[0][1]
    join(admin, account)
    drain()
    texts = sms_texts(db, account)
    assert len(texts) == 2
    assert texts[1] == (ANSWERS, "We are calling you now about your call-back request.")
    r = api("POST", f"/callback/{sid}/cancel")
    assert r.status_code == 200, r.text
    texts = sms_texts(db, account)
    assert len(texts) == 3
    assert texts[2] == (ANSWERS, "Your call-back request has been cancelled.")
    tick(600)
    assert len(sms_texts(db, account)) == 3


def test_sms_queued_text_carries_the_estimated_wait(
    api: Api, admin: Api, account: Account, db: Database, drain: Callable[[], int]
) -> None:
    # One agent busy on a call-back, the next caller waits one handle time (180 s).
    join(admin, account)
    start(api, account)
    drain()
    start(api, account, "79161234568", fc_sms="1")
    [(phone, text)] = sms_texts(db, account)
    assert phone == "79161234568"
    assert text == (
        "Your call-back request is in the queue. Estimated wait: 3 min. We will call you."
    )


def test_sms_calling_is_sent_once_across_retries(
    api: Api,
    admin: Api,
    account: Account,
    db: Database,
    drain: Callable[[], int],
    tick: Callable[[float], None],
) -> None:
    join(admin, account)
    sid = start(api, account, NO_ANSWER, fc_sms="yes")
    drain()
    for _ in range(3):
        tick(5)
        tick(60)
    assert status(api, sid)["status"] == "no_answer"
    texts = [t for _, t in sms_texts(db, account)]
    assert len(texts) == 2  # queued and calling were one instant: each once, in any order
    assert sum("in the queue" in t for t in texts) == 1
    assert texts.count("We are calling you now about your call-back request.") == 1


def test_no_sms_without_opt_in(
    api: Api,
    admin: Api,
    account: Account,
    db: Database,
    drain: Callable[[], int],
    tick: Callable[[float], None],
) -> None:
    first = start(api, account)
    second = start(api, account, "79161234568", fc_sms="0")
    join(admin, account)
    drain()
    tick(5)
    tick(1)
    assert status(api, first)["status"] == "connected"
    r = api("POST", f"/callback/{second}/cancel")
    assert r.status_code == 200, r.text
    tick(120)
    assert status(api, first)["status"] == "completed"
    assert sms_texts(db, account) == []


def test_sms_opt_in_refused_when_the_profile_has_no_sms(
    make_account: Callable[..., Account],
    client: Any,
    db: Database,
) -> None:
    other = make_account("Quiet", "admin@quiet.test", sms=False)
    r = client.post(
        "/3.0/callback",
        data={"fc_number": ANSWERS, "fc_option": other.option, "fc_sms": "1"},
        headers=other.basic,
    )
    assert r.status_code == 500
    assert r.json() == {
        "head": {"status": 500, "message": "SMS updates are not enabled for this profile."},
        "data": None,
    }
    with db.transaction() as session:
        assert session.scalars(select(Call)).all() == []
        assert session.scalars(select(Message)).all() == []
    # Without the opt-in the same call-back starts, and no SMS follows.
    r = client.post(
        "/3.0/callback",
        data={"fc_number": ANSWERS, "fc_option": other.option},
        headers=other.basic,
    )
    assert r.status_code == 200, r.text
    with db.transaction() as session:
        assert session.scalars(select(Message)).all() == []


# --- events to the callback server ------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def deliverer(db: Database, account: Account) -> Iterator[Deliverer]:
    d = Deliverer(db, allowed_networks=LOOPBACK, timeout=2.0, poll_interval=0.2)
    d.start()
    try:
        yield d
    finally:
        d.stop()


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")


def test_status_events_reach_the_callback_server(
    api: Api,
    admin: Api,
    account: Account,
    client: Any,
    receiver: Receiver,
    deliverer: Deliverer,
    drain: Callable[[], int],
    tick: Callable[[float], None],
) -> None:
    r = client.post(
        "/user/callback/set",
        headers=account.org.token,
        json={"callbackUrl": receiver.url("/events"), "secret": "s3cret"},
    )
    assert r.status_code == 200 and r.json() == {"result": "success"}, r.text

    def bodies() -> list[dict[str, Any]]:
        return [json.loads(req.body) for req in list(receiver.requests)]

    def step(expected: int) -> None:
        # Wait for each event before the next step: their order is then the engine's.
        wait_for(lambda: len(receiver.requests) >= expected)

    join(admin, account)
    drain()
    sid = start(api, account)
    step(1)
    drain()
    step(2)
    tick(5)
    step(3)
    tick(1)
    step(4)
    tick(120)
    step(5)
    other = start(api, account, NO_ANSWER)  # no agent free: it waits in the queue
    step(6)
    r = api("POST", f"/callback/{other}/cancel")
    assert r.status_code == 200
    step(7)

    got = bodies()
    assert len(got) == 7
    assert {req.path for req in receiver.requests} == {"/events"}
    assert all(b["name"] == "callback.status" and b["secret"] == "s3cret" for b in got)
    assert [(b["data"]["sid"], b["data"]["status"]) for b in got] == [
        (sid, "queued"),
        (sid, "calling"),
        (sid, "waiting"),
        (sid, "connected"),
        (sid, "completed"),
        (other, "queued"),
        (other, "cancelled"),
    ]
    assert all(b["data"]["option_sid"] == account.option for b in got)
    assert got[2]["data"]["details"] == "customer answered; waiting for an agent"
    assert got[6]["data"]["details"] == "cancelled by request"


def test_retry_events_reach_the_callback_server(
    api: Api,
    admin: Api,
    account: Account,
    client: Any,
    receiver: Receiver,
    deliverer: Deliverer,
    drain: Callable[[], int],
    tick: Callable[[float], None],
) -> None:
    r = client.post(
        "/user/callback/set", headers=account.org.token, json={"callbackUrl": receiver.url()}
    )
    assert r.status_code == 200, r.text
    agent = join(admin, account)
    drain()
    seen: list[str] = []

    def expect(status: str) -> None:
        seen.append(status)
        wait_for(lambda: len(receiver.requests) >= len(seen))

    sid = start(api, account, BUSY)
    expect("queued")
    drain()
    expect("calling")
    for _ in range(2):
        tick(5)
        expect("retrying")
        # The agent steps away: the requeue and the next dial are two separate steps.
        r = admin("POST", f"/agents/{agent}/state", json={"state": "away"})
        assert r.status_code == 200, r.text
        tick(60)
        expect("queued")
        r = admin("POST", f"/agents/{agent}/state", json={"state": "available"})
        assert r.status_code == 200, r.text
        drain()
        expect("calling")
    tick(5)
    expect("no_answer")
    got = [json.loads(req.body) for req in receiver.requests]
    assert [b["data"]["status"] for b in got] == seen
    assert all(b["data"]["sid"] == sid for b in got)
    assert [b["data"]["details"] for b in got if b["data"]["status"] == "retrying"] == [
        "busy; retry 1 of 2",
        "busy; retry 2 of 2",
    ]
    assert got[-1]["data"]["details"] == "busy after 3 attempts"
    assert "secret" not in got[0]


def test_statuses_of_one_call_back_arrive_in_order_despite_a_retry(
    api: Api,
    admin: Api,
    account: Account,
    client: Any,
    deliverer: Deliverer,
    drain: Callable[[], int],
) -> None:
    """The statuses of one call-back reach the callback server in the order they
    happened, as the status reports of one message do (an ordering key per call-back):
    when the delivery of "queued" fails once, "calling" waits for its retry."""
    failed: list[bytes] = []

    def script(req: Any) -> Reply:
        if not failed:
            failed.append(req.body)
            return Reply(status=503)
        return Reply()

    with Receiver(script) as receiver:
        r = client.patch(
            "/api/webhooks/settings",
            headers=account.org.headers(),
            json={"retrySchedule": [2.0]},
        )
        assert r.status_code == 200, r.text
        r = client.post(
            "/user/callback/set", headers=account.org.token, json={"callbackUrl": receiver.url()}
        )
        assert r.status_code == 200, r.text
        join(admin, account)
        drain()
        start(api, account)
        wait_for(lambda: len(receiver.requests) >= 1)  # "queued", refused once
        drain()  # "calling"
        wait_for(lambda: len(receiver.requests) >= 3)
        answered = [json.loads(req.body)["data"]["status"] for req in receiver.requests[1:]]
    assert json.loads(failed[0])["data"]["status"] == "queued"
    assert answered == ["queued", "calling"]
