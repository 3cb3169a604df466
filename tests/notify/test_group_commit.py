"""Group commit of the single send methods (messaging/batcher.py): concurrent requests
share one transaction, and each still gets its own answer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.exc import DataError

from omnirelay.app import create_app
from omnirelay.config import Settings
from omnirelay.db import Database, utcnow
from omnirelay.messaging import accept_insert, service
from omnirelay.messaging import repository as messaging_repo
from omnirelay.messaging.batcher import AcceptBatcher
from omnirelay.messaging.errors import SendError
from omnirelay.messaging.models import Message
from omnirelay.messaging.validation import Draft, Rules, single
from tests.conftest import Org
from tests.notify.conftest import DELIVERED

SMS = {"sender": "SANDBOX", "phone": DELIVERED, "text": "x"}


def make_client(db: Database, settings: Settings, **changes: Any) -> TestClient:
    return TestClient(create_app(settings.model_copy(update=changes), db=db))


def batcher_of(client: TestClient) -> AcceptBatcher:
    accepts: AcceptBatcher = client.app.state.ctx.accepts
    return accepts


def send_all(client: TestClient, org: Org, bodies: list[dict[str, Any]]) -> list[Any]:
    """Every body as its own sendSMS, all at once; the answers in order."""

    def post(body: dict[str, Any]) -> Any:
        return client.post("/v3/message/sendSMS", json=body, headers=org.token)

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(post, bodies))


def balance(client: TestClient, org: Org) -> str:
    return str(client.post("/v3/balance", headers=org.token).json()["balance"])


def messages_of(db: Database, organization_id: str) -> dict[str, str | None]:
    with db.transaction() as session:
        rows = session.execute(
            select(Message.id, Message.custom_id).where(Message.organization_id == organization_id)
        )
        return {mid: custom_id for mid, custom_id in rows}


def dispatch_jobs(db: Database) -> list[str]:
    """The messages due for dispatch (each message is its own dispatch job, ADR 18)."""
    with db.transaction() as session:
        return list(session.scalars(select(Message.id).where(Message.due_at.is_not(None))))


def top_up(client: TestClient, org: Org, amount: str) -> None:
    r = client.post("/api/billing/top-up", json={"amount": amount}, headers=org.headers())
    assert r.status_code == 200, r.text


# --- through HTTP ---------------------------------------------------------------------


def test_concurrent_sends_get_distinct_ids_messages_jobs_and_exact_debits(db, settings, org):
    # A long wait makes sure that requests do share transactions, even on a slow runner.
    with make_client(db, settings, accept_batch_wait_ms=50) as client:
        bodies = [{**SMS, "text": f"m{i}"} for i in range(120)]
        answers = send_all(client, org, bodies[:40]) + send_all(client, org, bodies[40:])
        assert {r.status_code for r in answers} == {200}
        ids = [r.json()["id"] for r in answers]
        assert len(set(ids)) == 120
        assert set(messages_of(db, org.id)) == set(ids)
        assert sorted(dispatch_jobs(db)) == sorted(ids)
        assert balance(client, org) == "994.00"  # 120 x 0.05
        accepts = batcher_of(client)
        assert accepts.items == 120 and accepts.batches < 120


def test_one_batch_answers_each_item_on_its_own(db, settings, org):
    with make_client(db, settings) as client:
        taken = client.post("/v3/message/sendSMS", json={**SMS, "custom_id": "taken"},
                            headers=org.token)  # fmt: skip
        assert taken.status_code == 200
        top_up(client, org, "-999.83")
        assert balance(client, org) == "0.12"
    # Six requests, one transaction: the writer waits until all six are queued.
    with make_client(db, settings, accept_batch_max=6, accept_batch_wait_ms=10_000) as client:
        bodies = [
            {**SMS, "text": "cheap"},
            {**SMS, "custom_id": "twin"},
            {**SMS, "custom_id": "twin"},
            {**SMS, "text": "a" * 307},  # three parts, 0.15: more than the whole balance
            {**SMS, "custom_id": "taken"},  # already in the database
            {**SMS, "sender": "NOT-OURS"},
        ]
        answers = send_all(client, org, bodies)
        assert batcher_of(client).batches == 1
        codes = [(r.status_code, r.json().get("code")) for r in answers]
        assert codes[0] == (200, None)
        assert sorted(codes[1:3], key=str) == [(200, None), (409, 1018)]
        assert codes[3:] == [(402, 1015), (409, 1018), (400, 1011)]
        assert answers[4].json()["field"] == "custom_id"
        accepted = {r.json()["id"] for r in answers if r.status_code == 200}
        assert accepted | {taken.json()["id"]} == set(messages_of(db, org.id))
        assert sorted(messages_of(db, org.id).values(), key=str) == [None, "taken", "twin"]
        assert len(dispatch_jobs(db)) == 3
        assert balance(client, org) == "0.02"  # only the two cheap ones were debited


def test_two_organizations_in_one_batch_stay_apart(db, settings, org, make_org):
    other = make_org("Other", "admin@other.test")
    with make_client(db, settings) as client:
        top_up(client, org, "-999.95")  # one SMS left
    with make_client(db, settings, accept_batch_max=4, accept_batch_wait_ms=10_000) as client:
        bodies = [{**SMS, "custom_id": "c1"}, {**SMS, "custom_id": "c2"}] * 2
        owners = [org, org, other, other]

        def post(i: int) -> Any:
            return client.post("/v3/message/sendSMS", json=bodies[i], headers=owners[i].token)

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(post, range(4)))
        assert batcher_of(client).batches == 1
        mine = sorted(r.status_code for r in answers[:2])
        assert mine == [200, 402]  # whichever came first got the last 0.05
        assert [r.status_code for r in answers[2:]] == [200, 200]  # same custom_ids: fine
        assert balance(client, org) == "0.00"
        assert balance(client, other) == "999.90"
        assert set(messages_of(db, other.id).values()) == {"c1", "c2"}
        assert len(messages_of(db, org.id)) == 1
        ours = {r.json()["id"] for r in answers if r.status_code == 200}
        assert ours == set(messages_of(db, org.id)) | set(messages_of(db, other.id))


def test_sends_with_an_idempotency_key_still_work_next_to_the_batcher(v3, db):
    r = v3("message/sendSMS", SMS, headers={"Idempotency-Key": "k"})
    plain = v3("message/sendSMS", SMS)
    assert r.status_code == plain.status_code == 200
    assert r.json()["id"] != plain.json()["id"]
    assert len(dispatch_jobs(db)) == 2


# --- the batcher itself ---------------------------------------------------------------


@pytest.fixture
def draft() -> Callable[..., Draft]:
    def make(**extra: Any) -> Draft:
        return single("sendSMS", "sms", {**SMS, **extra}, Rules("RU"), utcnow())

    return make


@pytest.fixture
def batcher(db: Database) -> Iterator[AcceptBatcher]:
    b = AcceptBatcher(db, wait=0.0, timeout=10.0)
    try:
        yield b.start()
    finally:
        b.stop()


def failure(future: Any) -> SendError:
    with pytest.raises(SendError) as caught:
        future.result(timeout=15)
    return caught.value


def test_a_failing_transaction_answers_every_item_with_an_error(
    batcher, org, draft, db, monkeypatch
):
    def broken(*_: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(service, "prepare", broken)
    futures = [batcher.submit(org.id, draft()) for _ in range(5)]
    errors = [failure(f) for f in futures]
    assert {(x.number, x.status) for x in errors} == {(1001, 500)}
    monkeypatch.undo()
    assert batcher.submit(org.id, draft()).result(timeout=15)  # the writer lives on
    assert len(dispatch_jobs(db)) == 1


def test_a_database_without_tables_answers_errors_not_hangs(org, draft, tmp_path: Path):
    empty = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    b = AcceptBatcher(empty, wait=0.0).start()
    try:
        errors = [failure(b.submit(org.id, draft())) for _ in range(3)]
        assert {x.number for x in errors} == {1001}
    finally:
        b.stop()
        empty.dispose()


def test_a_custom_id_taken_behind_the_check_gets_1018_and_nothing_else(
    batcher, org, draft, db, monkeypatch
):
    """Another process commits a custom_id between the batch's check and its INSERT: the
    batch is redone item by item, and only that item is refused."""
    assert batcher.submit(org.id, draft(custom_id="x")).result(timeout=15)
    monkeypatch.setattr(messaging_repo, "existing_custom_ids", lambda *_: set())
    items = [(org.id, draft(custom_id="y")), (org.id, draft(custom_id="x")), (org.id, draft())]
    outcomes = batcher.commit(items)
    assert outcomes[1].error is not None and outcomes[1].error.number == 1018
    assert outcomes[0].id and outcomes[2].id
    assert sorted(messages_of(db, org.id).values(), key=str) == [None, "x", "y"]
    assert len(dispatch_jobs(db)) == 3
    with db.transaction() as session:
        assert messaging_repo.lock_balance_amount(session, org.id) == 9_998_500  # 3 x 0.05


def test_a_value_the_database_refuses_fails_its_item_alone(batcher, org, draft, db, monkeypatch):
    """The database refuses one row of a batch (a data error: a value too long, a byte it
    cannot store): the batch is redone item by item and only that item fails."""
    insert = accept_insert.insert_prepared

    def refusing(session: Any, rows: Any, params: Any) -> None:
        if any(step.get("text") == "refused" for row in rows for step in row["route"]):
            raise DataError("INSERT INTO messages ...", {}, ValueError("value refused"))
        insert(session, rows, params)

    monkeypatch.setattr(accept_insert, "insert_prepared", refusing)
    items = [(org.id, draft(text="one")), (org.id, draft(text="refused")), (org.id, draft())]
    outcomes = batcher.commit(items)
    assert outcomes[1].error is not None and outcomes[1].error.number == 1001
    assert outcomes[0].id and outcomes[2].id and outcomes[0].error is None
    assert set(messages_of(db, org.id)) == {outcomes[0].id, outcomes[2].id}
    assert sorted(dispatch_jobs(db)) == sorted([outcomes[0].id, outcomes[2].id])
    with db.transaction() as session:  # only the two accepted were debited
        assert messaging_repo.lock_balance_amount(session, org.id) == 9_999_000


def test_a_waiter_that_gives_up_is_answered_and_its_item_dropped(
    batcher, org, draft, db, monkeypatch
):
    entered, release = threading.Event(), threading.Event()
    real = service.write

    def slow(session: Any, batches: Any, out: Any) -> Any:
        entered.set()
        release.wait(15)
        return real(session, batches, out)

    monkeypatch.setattr(service, "write", slow)
    first = batcher.submit(org.id, draft(text="first"))
    assert entered.wait(15)  # the writer is held in the transaction of the first alone
    batcher.timeout = 0.2
    loop_answer: list[SendError] = []

    async def wait_for_second() -> None:
        try:
            await batcher.accept(org.id, draft(text="second"))
        except SendError as exc:
            loop_answer.append(exc)

    asyncio.run(wait_for_second())
    assert [(x.number, x.status) for x in loop_answer] == [(1001, 503)]
    release.set()
    assert first.result(timeout=15)
    batcher.stop()  # drains the queue: the cancelled item must not be written
    assert len(dispatch_jobs(db)) == 1
    late = batcher.submit(org.id, draft())
    assert failure(late).status == 503


def test_two_processes_racing_for_one_custom_id_exactly_one_wins(db, org, draft):
    """Two writers with their own connections, as two `serve` processes have."""
    other_db = Database(db.url)
    writers = [AcceptBatcher(db, wait=0.0).start(), AcceptBatcher(other_db, wait=0.0).start()]
    try:
        futures = [w.submit(org.id, draft(custom_id="race")) for _ in range(8) for w in writers]
        won, lost = 0, 0
        for f in futures:
            try:
                f.result(timeout=15)
                won += 1
            except SendError as exc:
                assert exc.number == 1018
                lost += 1
        assert (won, lost) == (1, 15)
        assert list(messages_of(db, org.id).values()) == ["race"]
        with db.transaction() as session:
            assert messaging_repo.lock_balance_amount(session, org.id) == 9_999_500
    finally:
        for w in writers:
            w.stop()
        other_db.dispose()


def test_a_stopped_batcher_starts_again(db, org, draft):
    b = AcceptBatcher(db, wait=0.0).start()
    try:
        assert b.submit(org.id, draft()).result(timeout=15)
        b.stop()
        assert failure(b.submit(org.id, draft())).status == 503
        b.start()
        assert b.submit(org.id, draft()).result(timeout=15)
    finally:
        b.stop()
    assert len(dispatch_jobs(db)) == 2
