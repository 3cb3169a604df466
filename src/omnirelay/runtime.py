"""The background machinery of a process: the dispatch drain, job workers, the webhook
deliverer, the SMPP sessions, the Telegram bots and the housekeeping timer."""

from __future__ import annotations

import logging

from omnirelay.config import Settings
from omnirelay.db import Database
from omnirelay.net.ssrf import allowed_networks
from omnirelay.webhooks.deliverer import Deliverer

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, db: Database, settings: Settings) -> None:
        import omnirelay.tasks  # noqa: F401  (registers every domain's task handlers)
        from omnirelay.queue.registry import tasks
        from omnirelay.queue.worker import Worker

        self.worker = Worker(
            db,
            tasks,
            concurrency=settings.worker_concurrency,
            lease_seconds=settings.job_lease_seconds,
            poll_interval=settings.worker_poll_interval,
            idle_interval=settings.worker_idle_interval,
            backoff_base=settings.job_backoff_base_seconds,
            backoff_max=settings.job_backoff_max_seconds,
        )
        self.deliverer = Deliverer(
            db,
            allowed_networks=allowed_networks(settings),
            concurrency=settings.webhook_concurrency,
            per_url=settings.webhook_per_url_concurrency,
            timeout=settings.webhook_timeout_seconds,
            lease_seconds=settings.webhook_lease_seconds,
            # A drain step (ADR 26): it backs off when idle (drain.Idle, ADR 34) and wakes
            # on its channel's commits and on answers waiting to be recorded.
            poll_interval=max(settings.worker_poll_interval, settings.worker_idle_interval),
        )

        from omnirelay.smpp.manager import SessionManager

        self.sessions = SessionManager(
            db,
            idle_interval=settings.worker_idle_interval,
            lease=settings.smpp_session_lease_seconds,
            allowed_networks=allowed_networks(settings),
        )

        from omnirelay.drain import Drain
        from omnirelay.messaging.dispatch import DispatchStep

        # Messages are their own dispatch jobs (ADR 18): one drain claims them in batches.
        self.dispatcher = Drain(
            db,
            DispatchStep(lease_seconds=settings.dispatch_lease_seconds),
            batch=settings.dispatch_batch,
            poll_interval=settings.worker_poll_interval,
            idle_interval=settings.worker_idle_interval,
        )

        from omnirelay.messaging.expiry import ExpiryStep

        self.expiry = Drain(
            db,
            ExpiryStep(),
            batch=500,
            poll_interval=settings.worker_poll_interval,
            idle_interval=settings.worker_idle_interval,
        )

        from omnirelay.messaging.inbox import InboxStep

        # Provider events not applied where they came in (a sandbox report with a delay),
        # applied in batches (ADR 40).
        self.inbox = Drain(
            db,
            InboxStep(),
            batch=500,
            poll_interval=settings.worker_poll_interval,
            idle_interval=settings.worker_idle_interval,
        )

        from omnirelay.media.fetch import FetchStep

        # Inbound messages' files a provider only names, downloaded after they are stored.
        self.attachments = Drain(
            db, FetchStep(settings), batch=16, poll_interval=settings.worker_poll_interval
        )

        from omnirelay.telegram.runner import TelegramRunner

        # Connects Telegram bots (setWebhook) and long-polls those without a public URL.
        self.telegram = TelegramRunner(db)

        from omnirelay.housekeeping.tasks import Housekeeper

        self.housekeeper = Housekeeper(db, settings)

        # The email channel's inbound SMTP listener, only when configured.
        self.mail = None
        if settings.smtp_listen:
            from omnirelay.smtp.listener import MailListener

            self.mail = MailListener(db, settings)

    def start(self) -> None:
        self.dispatcher.start()
        self.expiry.start()
        self.inbox.start()
        self.attachments.start()
        self.worker.start()
        self.deliverer.start()
        self.sessions.start()
        self.telegram.start()
        self.housekeeper.start()
        if self.mail is not None:
            self.mail.start()
        log.info("workers and webhook deliverer started")

    def stop(self) -> None:
        if self.mail is not None:
            self.mail.stop()
        self.housekeeper.stop()
        self.telegram.stop()
        self.sessions.stop()  # unbinds; what was not answered is queued again
        self.deliverer.stop()
        self.worker.stop()
        self.attachments.stop()
        self.inbox.stop()
        self.expiry.stop()
        self.dispatcher.stop()
