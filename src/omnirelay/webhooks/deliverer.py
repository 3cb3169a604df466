"""The webhook deliverer of a worker process: the delivery step (webhooks/step.py) on the
drain engine, its HTTP sender (webhooks/sender.py), started and stopped together."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from omnirelay.db import Database, utcnow
from omnirelay.drain import Drain
from omnirelay.net.ssrf import IPNetwork
from omnirelay.webhooks import bulk_repository as bulk
from omnirelay.webhooks.sender import Sender
from omnirelay.webhooks.step import DeliveryStep

log = logging.getLogger(__name__)


class Deliverer:
    def __init__(
        self,
        db: Database,
        *,
        allowed_networks: Sequence[IPNetwork] = (),
        concurrency: int = 256,
        per_url: int = 64,
        timeout: float = 15.0,
        lease_seconds: float = 60.0,
        poll_interval: float = 5.0,
        batch: int = 512,
        deliverer_id: str | None = None,
    ) -> None:
        """``concurrency``: deliveries in flight at most (connections); ``per_url``: in
        flight per receiver host (16 times as many wait in memory). A lease outlasts two
        timeouts, so no delivery outlives its claim."""
        self.db = db
        self.timeout = timeout
        self.sender = Sender(
            allowed_networks,
            concurrency=concurrency,
            per_host=per_url,
            timeout=timeout,
            lease_seconds=max(lease_seconds, timeout * 2),
        )
        self.step = DeliveryStep(
            self.sender, lease_seconds=self.sender.lease_seconds, max_held=4 * concurrency
        )
        self.drain = Drain(
            db, self.step, batch=batch, poll_interval=poll_interval, worker_id=deliverer_id
        )
        self.sender.on_ready = self.drain.wake  # wiring: answers waiting wake the drain

    def start(self) -> None:
        self.sender.start()
        self.drain.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop claiming; let what is in flight finish (a delivery's timeout at most),
        record it and give back what was never started."""
        self.drain.stop(timeout)
        done, rest = self.sender.stop(min(timeout, self.timeout + 1))
        try:
            with self.db.transaction() as session:
                bulk.record(session, done, utcnow())
                bulk.release(session, rest)
        except Exception:
            # The leases lapse and the events are delivered again (same webhook-id).
            log.exception("recording the last webhook attempts failed")

    def wake(self) -> None:
        self.drain.wake()
