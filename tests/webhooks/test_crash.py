"""kill -9 of a delivering process: the event is delivered after restart, same webhook-id."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable

from omnirelay.db import Database
from omnirelay.testing.receiver import Receiver, Reply
from omnirelay.webhooks.deliverer import Deliverer
from omnirelay.webhooks.models import WebhookEvent
from tests.webhooks.conftest import LOOPBACK, wait_for

CHILD = textwrap.dedent(
    """
    import sys, threading
    from omnirelay.db import Database
    from omnirelay.webhooks.deliverer import Deliverer
    from omnirelay.webhooks.ssrf import parse_networks
    d = Deliverer(Database(sys.argv[1]), allowed_networks=parse_networks("127.0.0.0/8"),
                  timeout=0.5, lease_seconds=1.0, poll_interval=0.2)
    d.start()
    threading.Event().wait()
    """
)


def test_killed_mid_delivery_is_delivered_again(
    db: Database,
    database_url: str,
    emit: Callable[..., str],
    event_state: Callable[[str], WebhookEvent],
) -> None:
    with Receiver(lambda r: Reply(200, delay=30)) as receiver:
        event_id = emit(receiver.url())
        child = subprocess.Popen([sys.executable, "-c", CHILD, database_url])
        try:
            wait_for(lambda: receiver.received(), timeout=30)  # the child is mid-delivery
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)
        assert event_state(event_id).status == "pending"
        receiver.script = lambda r: Reply(200)
        d = Deliverer(db, allowed_networks=LOOPBACK, timeout=1.0, poll_interval=0.2)
        d.start()
        try:
            wait_for(lambda: event_state(event_id).status == "delivered", timeout=30)
        finally:
            d.stop()
        ids = [r.headers["webhook-id"] for r in receiver.received()]
        assert ids == [event_id, event_id]
