"""The session's acknowledgement of a deliver_sm, against the scriptable SMSC: it goes
back on the connection the deliver_sm came in on, never on a newer one."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from omnirelay.channels.smpp.config import SmppConfig
from omnirelay.channels.smpp.encoding import parts
from omnirelay.channels.smpp.session import Inbound, SmppSession, Submission
from omnirelay.testing.fakesmsc import DELIVER, RESP, FakeSmsc


class Events:
    def __init__(self) -> None:
        self.acks: list[Callable[[], None]] = []
        self.states: list[str] = []
        self.changed = threading.Condition()

    def submitted(self, sub: Submission, message_id: str) -> None:
        pass

    def refused(self, sub: Submission, status: int, reason: str) -> None:
        pass

    def received(self, inbound: Inbound, ack: Callable[[], None]) -> None:
        with self.changed:
            self.acks.append(ack)  # acknowledged later, as after the owner's commit
            self.changed.notify_all()

    def state(self, state: str, error: str | None) -> None:
        with self.changed:
            self.states.append(state)
            self.changed.notify_all()


def until(events: Events, predicate: Callable[[], Any], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    with events.changed:
        while not predicate():
            left = deadline - time.monotonic()
            assert left > 0, "condition not met in time"
            events.changed.wait(min(left, 0.1))


def sub(n: int) -> Submission:
    return Submission(key=n, part_no=1, destination="79161234567", source="ACME",
                      part=parts("hi")[0])  # fmt: skip


def test_an_ack_is_not_sent_on_a_newer_connection() -> None:
    with FakeSmsc() as smsc:
        config = SmppConfig(
            host="127.0.0.1", port=smsc.port, system_id="acme", password="secret",
            response_timeout=5.0, reconnect_max=0.3,
        )  # fmt: skip
        events = Events()
        session = SmppSession(config, events).start()
        try:
            session.submit([sub(1), sub(2)])
            until(events, lambda: len(events.acks) == 2)  # two receipts on connection 1
            events.acks[0]()  # acknowledged at once: it goes back on connection 1
            deliver_resp = DELIVER | RESP
            until(events, lambda: (1, deliver_resp, 1) in smsc.responses)
            smsc.drop()  # the link fails before the second one is acknowledged
            until(events, lambda: smsc.binds == 2 and events.states[-1] == "bound")
            events.acks[1]()  # its sequence number means nothing on connection 2
            session.submit([sub(3)])  # a round trip on connection 2 after the ack
            until(events, lambda: len(events.acks) == 3)
            assert [r for r in smsc.responses if r[1] == deliver_resp] == [(1, deliver_resp, 1)]
        finally:
            session.stop()
