"""The queue of a call option: FIFO service by its agents, estimated waits from recent
handle times, agents away, and the pre-dial ahead of an agent about to be free."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from omnirelay.callbacks import engine
from omnirelay.callbacks.models import Agent, Call
from omnirelay.db import Database
from omnirelay.messaging.models import Message
from omnirelay.queue.registry import tasks
from omnirelay.queue.worker import Worker
from tests.callbacks.conftest import ANSWERS, Account

Api = Callable[..., Any]
DEFAULT_HANDLE = 180  # seconds: an option without completed calls of its own
LEAD = 20  # seconds: dial ahead of an agent predicted to be free this soon


def number(i: int) -> str:
    """Distinct answering numbers (none ends in a sandbox magic 0001-0003)."""
    return f"7916123{4500 + i}"


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


def start(api: Api, account: Account, phone: str = ANSWERS, **fields: Any) -> str:
    r = api("POST", "/callback", data={"fc_number": phone, "fc_option": account.option, **fields})
    assert r.status_code == 200, r.text
    return r.json()["data"]["sid"]


def status(api: Api, sid: str) -> str:
    r = api("GET", f"/callback/{sid}/status")
    assert r.status_code == 200, r.text
    return r.json()["data"]["status"]


def join(admin: Api, account: Account, name: str) -> str:
    r = admin("POST", f"/options/{account.option}/agents", json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()["sid"]


def set_state(admin: Api, agent: str, state: str) -> dict[str, Any]:
    r = admin("POST", f"/agents/{agent}/state", json={"state": state})
    assert r.status_code == 200, r.text
    return r.json()


def realtime(api: Api, account: Account) -> dict[str, Any]:
    r = api("GET", "/realtime.json")
    assert r.status_code == 200, r.text
    [row] = [o for o in r.json()["data"]["options"] if o["option_sid"] == account.option]
    return row


def option_waits(api: Api, account: Account) -> set[int]:
    """The option's estimated wait as every read of /3.0 shows it (they must agree)."""
    r = api("GET", f"/profile/{account.profile}/options")
    [listed] = r.json()["data"]["options"]
    r = api("GET", f"/profile/{account.profile}/option/{account.option}")
    single = r.json()["data"]
    return {
        realtime(api, account)["estimated_wait"],
        listed["estimated_wait"],
        single["estimated_wait"],
    }


def expected_wait(ahead: int, free: int, agents: int, handle: float) -> int:
    """The documented estimate: the calls ahead spread over the agents who are not away,
    a round each of the average handle time; nothing when a free agent will take it."""
    if ahead < free:
        return 0
    return int((math.floor((ahead - free) / max(1, agents)) + 1) * handle)


def agent_of(call_row: Callable[[str], Call], sid: str) -> str | None:
    return call_row(sid).agent_sid


# --- FIFO -------------------------------------------------------------------------------


def test_fifo_with_two_agents(
    api: Api,
    admin: Api,
    account: Account,
    drain: Callable[[], int],
    tick: Callable[[float], None],
    call_row: Callable[[str], Call],
) -> None:
    first_agent = join(admin, account, "Ann")
    second_agent = join(admin, account, "Bob")
    drain()
    calls = [start(api, account, number(i)) for i in range(3)]
    drain()
    assert [status(api, c) for c in calls] == ["calling", "calling", "queued"]
    assert agent_of(call_row, calls[0]) == first_agent
    assert agent_of(call_row, calls[1]) == second_agent
    assert agent_of(call_row, calls[2]) is None
    row = realtime(api, account)
    assert (row["queued"], row["calling"], row["agents_available"], row["agents_busy"]) == (
        1,
        2,
        0,
        2,
    )
    pending = [c["sid"] for c in api("GET", "/pending").json()["data"]["calls"]]
    assert sorted(pending) == sorted(calls)

    tick(5)
    tick(1)
    assert [status(api, c) for c in calls] == ["connected", "connected", "queued"]
    tick(119)
    assert status(api, calls[2]) == "queued"  # nobody free yet
    tick(1)  # both conversations end: the third call-back takes the first agent free
    assert [status(api, c) for c in calls] == ["completed", "completed", "calling"]
    assert agent_of(call_row, calls[2]) == first_agent
    row = realtime(api, account)
    assert (row["queued"], row["calling"], row["agents_available"], row["agents_busy"]) == (
        0,
        1,
        1,
        1,
    )


def test_one_agent_serves_the_queue_in_arrival_order(
    api: Api,
    admin: Api,
    account: Account,
    drain: Callable[[], int],
    tick: Callable[[float], None],
    call_row: Callable[[str], Call],
) -> None:
    calls = [start(api, account, number(i)) for i in range(4)]  # no agent yet
    drain()
    assert [status(api, c) for c in calls] == ["queued"] * 4
    join(admin, account, "Ann")
    drain()
    served: list[str] = []
    for _ in range(4):
        now_calling = [c for c in calls if status(api, c) == "calling"]
        assert len(now_calling) == 1
        served.append(now_calling[0])
        tick(5)
        tick(1)
        tick(120)
    assert served == calls
    assert [status(api, c) for c in calls] == ["completed"] * 4
    assert [call_row(c).attempts for c in calls] == [1, 1, 1, 1]


def test_a_paused_option_takes_no_calls_and_resumes_the_queue(
    api: Api,
    admin: Api,
    account: Account,
    drain: Callable[[], int],
) -> None:
    sid = start(api, account)
    r = admin("PATCH", f"/options/{account.option}", json={"status": "paused"})
    assert r.status_code == 200, r.text
    r = api("POST", "/callback", data={"fc_number": ANSWERS, "fc_option": account.option})
    assert r.status_code == 500
    assert r.json()["head"]["message"] == "This call option is paused; please choose another."
    r = admin("PATCH", f"/options/{account.option}", json={"status": "active"})
    assert r.status_code == 200, r.text
    join(admin, account, "Ann")
    drain()
    assert status(api, sid) == "calling"


# --- estimated waits --------------------------------------------------------------------


def test_estimated_waits_with_several_agents(
    api: Api,
    admin: Api,
    account: Account,
    db: Database,
    drain: Callable[[], int],
    tick: Callable[[float], None],
    call_row: Callable[[str], Call],
) -> None:
    # Nobody serves the option yet: a new call-back waits one (default) handle time.
    assert option_waits(api, account) == {expected_wait(0, 0, 0, DEFAULT_HANDLE)} == {180}
    join(admin, account, "Ann")
    join(admin, account, "Bob")
    drain()
    assert option_waits(api, account) == {0}  # two agents free
    busy = [start(api, account, number(i)) for i in range(2)]
    drain()
    assert [status(api, c) for c in busy] == ["calling", "calling"]
    assert option_waits(api, account) == {expected_wait(0, 0, 2, DEFAULT_HANDLE)} == {180}

    # Three callers queue behind them; each learns its own wait by SMS.
    queued = [start(api, account, number(10 + i), fc_sms="1") for i in range(3)]
    with db.transaction() as session:
        rows = session.scalars(select(Message).order_by(Message.created_at)).all()
        texts = [m.route[0]["text"] for m in rows]
    minutes = [expected_wait(k, 0, 2, DEFAULT_HANDLE) // 60 for k in range(3)]
    assert minutes == [3, 3, 6]
    assert texts == [
        f"Your call-back request is in the queue. Estimated wait: {m} min. We will call you."
        for m in minutes
    ]
    # A new call-back would be fourth in line: two rounds of 180 s.
    assert option_waits(api, account) == {expected_wait(3, 0, 2, DEFAULT_HANDLE)} == {360}

    # The first two conversations last 120 s: the average handle time is now 120 s.
    tick(5)
    tick(1)
    tick(120)
    assert [status(api, c) for c in busy] == ["completed", "completed"]
    assert [status(api, c) for c in queued] == ["calling", "calling", "queued"]
    for sid in busy:
        row = call_row(sid)
        assert row.ended_at is not None and row.connected_at is not None
        assert 120 <= (row.ended_at - row.connected_at).total_seconds() < 121
    assert option_waits(api, account) == {expected_wait(1, 0, 2, 120)} == {120}

    # Two more callers; the next conversations last 60 s (average of 120, 120, 60, 60).
    queued += [start(api, account, number(20 + i)) for i in range(2)]
    assert option_waits(api, account) == {expected_wait(3, 0, 2, 120)} == {240}
    r = admin(
        "PATCH",
        f"/profiles/{account.profile}",
        json={"telephony": {"ring_delay": 5, "bridge_delay": 1, "talk_time": 60}},
    )
    assert r.status_code == 200, r.text
    tick(5)
    tick(1)
    tick(60)
    assert [status(api, c) for c in queued] == [
        "completed",
        "completed",
        "calling",
        "calling",
        "queued",
    ]
    assert option_waits(api, account) == {expected_wait(1, 0, 2, 90)} == {90}


def test_an_agent_away_is_out_of_service(
    api: Api,
    admin: Api,
    account: Account,
    drain: Callable[[], int],
    tick: Callable[[float], None],
    call_row: Callable[[str], Call],
) -> None:
    ann = join(admin, account, "Ann")
    bob = join(admin, account, "Bob")
    assert set_state(admin, bob, "away")["state"] == "away"
    drain()
    calls = [start(api, account, number(i)) for i in range(3)]
    drain()
    assert [status(api, c) for c in calls] == ["calling", "queued", "queued"]
    assert agent_of(call_row, calls[0]) == ann
    row = realtime(api, account)
    assert (row["agents_available"], row["agents_busy"]) == (0, 1)
    # The estimate counts only the agent in service: three rounds for a new call-back.
    assert option_waits(api, account) == {expected_wait(2, 0, 1, DEFAULT_HANDLE)} == {540}

    # An agent on a call-back cannot step away: the call ends by itself.
    r = admin("POST", f"/agents/{ann}/state", json={"state": "away"})
    assert r.status_code == 400, r.text
    r = admin("DELETE", f"/agents/{ann}")
    assert r.status_code == 400, r.text

    assert set_state(admin, bob, "available")["state"] == "available"
    drain()
    assert [status(api, c) for c in calls] == ["calling", "calling", "queued"]
    assert agent_of(call_row, calls[1]) == bob
    assert option_waits(api, account) == {expected_wait(1, 0, 2, DEFAULT_HANDLE)} == {180}

    # Busy on other work: no call-back either, until available again.
    tick(5)
    tick(1)
    tick(120)
    assert status(api, calls[2]) == "calling"
    free = next(a for a in (ann, bob) if a != agent_of(call_row, calls[2]))
    assert set_state(admin, free, "busy")["state"] == "busy"
    late = start(api, account, number(9))
    drain()
    assert status(api, late) == "queued"
    assert set_state(admin, free, "available")["state"] == "available"
    drain()
    assert status(api, late) == "calling"
    assert agent_of(call_row, late) == free

    # An agent who left serves no more.
    tick(5)
    tick(1)
    tick(120)
    r = admin("DELETE", f"/agents/{free}")
    assert r.status_code == 204, r.text
    after = [start(api, account, number(30 + i)) for i in range(2)]
    drain()
    assert [status(api, c) for c in after] == ["calling", "queued"]
    assert agent_of(call_row, after[0]) != free


# --- pre-dial ---------------------------------------------------------------------------


def talk(admin: Api, account: Account, seconds: int) -> None:
    r = admin(
        "PATCH",
        f"/profiles/{account.profile}",
        json={"telephony": {"ring_delay": 5, "bridge_delay": 1, "talk_time": seconds}},
    )
    assert r.status_code == 200, r.text


def test_pre_dial_when_an_agent_is_about_to_be_free(
    api: Api,
    admin: Api,
    account: Account,
    drain: Callable[[], int],
    tick: Callable[[float], None],
    call_row: Callable[[str], Call],
) -> None:
    """A conversation lasts the default handle time (180 s); a caller who comes 170 s
    after the agent took the first call-back is dialled at once, without an agent, and
    bridged to the agent when the first conversation ends."""
    talk(admin, account, 180)
    ann = join(admin, account, "Ann")
    drain()
    first = start(api, account)
    drain()
    tick(5)
    tick(1)
    assert status(api, first) == "connected"
    tick(164)  # the agent took the call 170 s ago: predicted free in 10 s < LEAD
    second = start(api, account, number(1))
    drain()
    assert status(api, second) == "calling"
    row = call_row(second)
    assert row.agent_sid is None and row.attempts == 1
    assert agent_of(call_row, first) == ann
    tick(5)  # the customer answers before the agent is free: waiting for an agent
    assert status(api, second) == "waiting"
    assert agent_of(call_row, second) is None
    tick(10)
    assert status(api, first) == "connected"
    assert (status(api, second), agent_of(call_row, second)) == ("waiting", None)
    tick(1)  # the first conversation ends at 186 s: the agent goes to the waiting caller
    assert status(api, first) == "completed"
    assert (status(api, second), agent_of(call_row, second)) == ("waiting", ann)
    tick(1)
    assert status(api, second) == "connected"
    tick(180)
    assert status(api, second) == "completed"
    assert realtime(api, account)["agents_available"] == 1


def test_no_pre_dial_while_the_agent_is_not_about_to_be_free(
    api: Api,
    admin: Api,
    account: Account,
    drain: Callable[[], int],
    tick: Callable[[float], None],
    call_row: Callable[[str], Call],
) -> None:
    talk(admin, account, 180)
    join(admin, account, "Ann")
    drain()
    first = start(api, account)
    drain()
    tick(5)
    tick(1)
    tick(100)  # predicted free in 74 s: more than LEAD
    second = start(api, account, number(1))
    drain()
    assert status(api, second) == "queued"
    assert call_row(second).attempts == 0
    assert status(api, first) == "connected"


def test_pre_dial_for_a_caller_already_waiting_in_the_queue(
    api: Api,
    admin: Api,
    account: Account,
    drain: Callable[[], int],
    tick: Callable[[float], None],
    call_row: Callable[[str], Call],
) -> None:
    """The pre-dial is the engine's promise for every queued caller: one who came while
    the agent was far from free is dialled once the agent is predicted free within LEAD
    seconds, without waiting for some other event of the option."""
    talk(admin, account, 180)
    join(admin, account, "Ann")
    drain()
    first = start(api, account)
    drain()
    tick(5)
    tick(1)
    second = start(api, account, number(1))
    drain()
    assert status(api, second) == "queued"  # predicted free in 174 s
    tick(164)  # now predicted free in 10 s
    assert status(api, first) == "connected"
    assert status(api, second) == "calling"
    assert call_row(second).agent_sid is None


# --- concurrent wake-ups ----------------------------------------------------------------


def test_a_call_back_started_while_an_assignment_runs_is_not_stranded(
    api: Api,
    admin: Api,
    account: Account,
    db: Database,
    drain: Callable[[], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker runs the option's assignment (an agent just joined; the queue is empty)
    while a caller's request commits: the caller must still be dialled, by that
    assignment or by a new one."""
    join(admin, account, "Ann")  # enqueues the assignment
    looked = threading.Event()
    go = threading.Event()
    real_assign = engine.assign

    def assign(session: Any, option_sid: str) -> None:
        real_assign(session, option_sid)
        looked.set()  # the queue has been read
        go.wait(2.0)  # SQLite serializes writers: a request waits for this commit

    monkeypatch.setattr(engine, "assign", assign)
    worker = Worker(db, tasks, backoff_base=0.01, backoff_max=0.01, lease_seconds=30)
    thread = threading.Thread(target=worker.run_until_idle, kwargs={"max_jobs": 1})
    thread.start()
    try:
        assert looked.wait(10.0)
        sid = start(api, account)
    finally:
        go.set()
        thread.join(10.0)
    monkeypatch.setattr(engine, "assign", real_assign)
    drain()
    assert status(api, sid) == "calling"
