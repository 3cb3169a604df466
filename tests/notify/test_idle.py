"""An idle drain sleeps (its polls back off to the idle interval) and a commit that makes
work due wakes it at once (ADR 34). The drain's wait is replaced by a fake clock that
counts the seconds it was asked to sleep: no timing in the assertions."""

from __future__ import annotations

import threading
from collections.abc import Callable

from fastapi.testclient import TestClient

from omnirelay.db import Database
from omnirelay.drain import Drain
from omnirelay.messaging.dispatch import DISPATCH_CHANNEL, DispatchStep
from omnirelay.wakeup import Listener
from tests.conftest import Org
from tests.notify.conftest import DELIVERED


def test_an_idle_drain_polls_less_and_a_commit_wakes_it(
    client: TestClient, org: Org, db: Database
) -> None:
    woke = threading.Event()  # the dispatch channel was notified (after a commit)
    listener = Listener(db, DISPATCH_CHANNEL, woke.set).start()
    slept: list[float] = []
    during_sleep: list[Callable[[], None]] = []  # what happens while the drain sleeps next

    def fake_wait(timeout: float) -> bool:
        slept.append(timeout)  # the fake clock: asked to sleep this long
        for action in during_sleep:
            action()
        during_sleep.clear()
        was = woke.is_set()
        woke.clear()
        return was

    def accept_a_message() -> None:
        sent = client.post(
            "/v3/message/sendSMS",
            json={"sender": "SANDBOX", "phone": DELIVERED, "text": "hi"},
            headers=org.token,
        )
        assert sent.status_code == 200, sent.text
        assert woke.wait(10)  # the notification (in-process on SQLite, NOTIFY on PostgreSQL)

    try:
        if db.is_postgresql:
            assert woke.wait(10)  # LISTEN is in place (it calls back once on connect)
            woke.clear()
        drain = Drain(db, DispatchStep(), poll_interval=0.5, idle_interval=2.0, wait=fake_wait)

        # An idle minute on the fake clock: the polls back off to one every 2 s.
        while sum(slept) < 60:
            drain.step_loop()
        assert drain.rows == 0
        assert slept[:4] == [0.5, 1.0, 2.0, 2.0]
        assert max(slept) == 2.0
        assert drain.claims <= 60 / 2.0 + 2  # polling every 0.5 s would have been 120

        # A message accepted while the drain sleeps: the commit ends the sleep, the next
        # turn claims it, and the drain polls at the short interval again.
        during_sleep.append(accept_a_message)
        drain.step_loop()
        assert slept[-1] == 2.0 and drain.rows == 0  # it was asleep when the commit came
        claims = drain.claims
        drain.step_loop()
        assert drain.rows == 1 and drain.claims == claims + 1
        assert slept[-1] == 0.5
    finally:
        listener.stop()
