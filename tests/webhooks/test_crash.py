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
    _kill_mid_delivery_then_redeliver(
        db, emit, event_state, [sys.executable, "-c", CHILD, database_url], dict(os.environ)
    )


def _kill_mid_delivery_then_redeliver(
    db: Database,
    emit: Callable[..., str],
    event_state: Callable[[str], WebhookEvent],
    command: list[str],
    env: dict[str, str],
) -> None:
    """``command`` delivers to a receiver that answers slowly and is killed -9 mid-way; a
    deliverer here then delivers the event again, with the same webhook-id."""
    with Receiver(lambda r: Reply(200, delay=30)) as receiver:
        event_id = emit(receiver.url())
        child = subprocess.Popen(command, env=env)
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


def test_a_killed_worker_s_deliveries_wait_only_the_configured_lease(
    db: Database,
    database_url: str,
    emit: Callable[..., str],
    event_state: Callable[[str], WebhookEvent],
) -> None:
    """``omnirelay worker`` with OMNIRELAY_WEBHOOK_LEASE_SECONDS=10 is killed mid-delivery:
    another deliverer takes the event after those 10 s (the default would be 60 s, past
    this test's patience). The delivery timeout (5 s) outlasts the kill, so the killed
    worker never records an attempt of its own."""
    env = {
        **os.environ,
        "OMNIRELAY_DATABASE_URL": database_url,
        "OMNIRELAY_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "OMNIRELAY_WEBHOOK_TIMEOUT_SECONDS": "5",
        "OMNIRELAY_WEBHOOK_LEASE_SECONDS": "10",
        "OMNIRELAY_WORKER_POLL_INTERVAL": "0.2",
    }
    command = [sys.executable, "-m", "omnirelay", "worker"]
    _kill_mid_delivery_then_redeliver(db, emit, event_state, command, env)
