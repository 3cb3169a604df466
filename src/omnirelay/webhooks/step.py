"""Webhook delivery as a step of the drain engine (omnirelay/drain.py, ADR 26).

- **claim**: one transaction leases a batch of due events (fair shares per organization,
  a bounded number per URL, ``SKIP LOCKED`` on PostgreSQL) and reads their signing
  secrets; each becomes a :class:`~omnirelay.webhooks.sender.Job`.
- **io**, no transaction open: the batch goes to the :class:`Sender`'s asyncio loop
  (keep-alive connections per host, net/http1.py, ADR 42); the
  step waits until half of it has an outcome (or a moment has passed) and hands over
  every outcome finished by then, this batch's or an earlier one's. A slow receiver's
  deliveries are recorded with a later batch and never hold up the others.
- **record**, one transaction: the delivered events in one UPDATE per claim and status
  code, the others' new states in one executemany UPDATE, both guarded by the claim;
  every attempt in one INSERT ... SELECT; endpoints a 410 disabled; the leases of what
  is still held renewed when past half.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from omnirelay import wakeup
from omnirelay.db import utcnow
from omnirelay.webhooks import bulk_repository as bulk
from omnirelay.webhooks import repository as repo
from omnirelay.webhooks import service, signing
from omnirelay.webhooks.delivery import schedule
from omnirelay.webhooks.sender import Job, Sender

# How long io waits for half of a batch's answers before recording what it has: a big
# batch (a backlog) waits longer, to record many per transaction; a small one (events
# trickling in) hardly at all, since a new event waits for this cycle before its claim.
IO_WAIT = 0.1
IO_WAIT_SMALL = 0.005
SMALL_BATCH = 128


@dataclass
class Batch:
    jobs: list[Job]
    outcomes: list[bulk.AttemptResult] = field(default_factory=list)


class DeliveryStep:
    name = "webhooks"
    channel: str | None = service.NOTIFY_CHANNEL

    def __init__(self, sender: Sender, *, lease_seconds: float, max_held: int) -> None:
        self.sender = sender
        self.lease_seconds = lease_seconds
        self.max_held = max_held  # claimed and not recorded yet, in this process

    # --- claim ------------------------------------------------------------------------

    def claim(self, session: Session, claim_id: str, limit: int, now: datetime) -> Batch | None:
        room = min(limit, self.max_held - self.sender.held())
        jobs: list[Job] = []
        if room > 0:
            url_room, full = self.sender.room_per_url()
            claimed = bulk.claim_due(
                session,
                claim_id,
                limit=room,
                now=now,
                until=now + timedelta(seconds=self.lease_seconds),
                per_url=self.sender.host_queue,
                url_room=url_room,
                exclude_urls=full,
            )
            jobs = self._jobs(session, claimed, claim_id, now)
        batch = Batch(jobs)
        # Nothing new, but answers are waiting to be recorded: a batch of those alone.
        if not jobs:
            batch.outcomes = self.sender.take(0, 0.0)
            if not batch.outcomes:
                return None
        return batch

    def _jobs(
        self, session: Session, claimed: list[bulk.Claimed], claim_id: str, now: datetime
    ) -> list[Job]:
        orgs = {c.organization_id for c in claimed}
        settings = repo.settings_for(session, list(orgs))
        for org_id in orgs - settings.keys():
            settings[org_id] = service.settings(session, org_id)
        per_org = {
            org_id: (
                schedule(st.retry_schedule),
                signing.macs(signing.keys(service.signing_secrets(st, now))),
            )
            for org_id, st in settings.items()
        }
        jobs = []
        for c in claimed:
            backoff, keys = per_org[c.organization_id]
            jobs.append(
                Job(
                    seq=c.seq,
                    id=c.id,
                    claim_id=claim_id,
                    endpoint_id=c.endpoint_id,
                    url=c.url,
                    body=c.body.encode(),
                    attempt=c.attempts + 1,
                    schedule_step=c.schedule_step,
                    backoff=backoff,
                    keys=keys,
                )
            )
        return jobs

    def size(self, batch: Batch) -> int:
        return len(batch.jobs) + len(batch.outcomes)

    # --- io ------------------------------------------------------------------------------

    def io(self, batch: Batch) -> list[bulk.AttemptResult] | None:
        self.sender.submit(batch.jobs)
        n = len(batch.jobs)
        wait = 0.0 if n == 0 else IO_WAIT if n >= SMALL_BATCH else IO_WAIT_SMALL
        batch.outcomes += self.sender.take(max(1, n // 2) if n else 0, wait)
        return batch.outcomes or None

    # --- record ----------------------------------------------------------------------------

    def record(
        self,
        session: Session,
        batch: Batch,
        outcomes: list[bulk.AttemptResult],
        claim_id: str,
    ) -> None:
        now = utcnow()
        bulk.record(session, outcomes, now)
        # What is still held (a slow receiver, a host's queue) keeps its lease.
        bulk.renew(session, self.sender.expiring(), now + timedelta(seconds=self.lease_seconds))
        # A recorded event may free the next of its ordering key, or a retry's slot, for
        # another process too.
        wakeup.notify(session, service.NOTIFY_CHANNEL)

    def next_due(self, session: Session) -> datetime | None:
        return bulk.next_due(session, utcnow())
