"""Two transactions creating an organization's webhook rows at once (its settings, an
endpoint of a new URL): both commit, one row each, instead of a unique violation that
fails the second job or request."""

from __future__ import annotations

import threading
import time

from sqlalchemy import func, select

from omnirelay.db import Database
from omnirelay.webhooks import service
from omnirelay.webhooks.models import WebhookEndpoint, WebhookEvent, WebhookSettings
from tests.conftest import Org

URL = "https://8.8.8.8/new-receiver"


def _count(db: Database, model: type, org: Org) -> int:
    with db.transaction() as session:
        query = select(func.count()).select_from(model).where(model.organization_id == org.id)
        return int(session.scalar(query) or 0)


def test_two_writers_creating_the_same_rows_both_commit(db: Database, org: Org) -> None:
    assert _count(db, WebhookSettings, org) == 0  # the rows are made on first use
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with db.transaction() as session:
                service.settings(session, org.id)  # as a deliverer does
                service.emit(session, org.id, URL, "test.event", {"n": 2})
        except BaseException as exc:
            errors.append(exc)

    with db.transaction() as session:
        service.settings(session, org.id)
        service.emit(session, org.id, URL, "test.event", {"n": 1})  # rows made, not committed
        other = threading.Thread(target=second)
        other.start()
        # The second writer finds no row and waits on our uncommitted ones (PostgreSQL:
        # its INSERT waits on the unique key; SQLite: its BEGIN waits for the lock).
        time.sleep(1.0)
    other.join(30)
    assert errors == []
    assert _count(db, WebhookSettings, org) == 1
    assert _count(db, WebhookEndpoint, org) == 1
    assert _count(db, WebhookEvent, org) == 2
