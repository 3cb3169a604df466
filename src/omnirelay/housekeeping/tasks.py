"""The timer that runs a sweep every ``housekeeping_interval_seconds`` in a process that
runs workers. A timer, not a queued job: a sweep is idempotent, so processes need not
agree on who runs it, and the queue holds only business work."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from omnirelay.config import Settings
from omnirelay.db import Database, utcnow
from omnirelay.housekeeping import service

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Swept:
    idempotency_keys: int
    files: int
    media_slots: int = 0  # expired unused upload slots (and stalled partial uploads)


def run_once(db: Database, settings: Settings) -> Swept:
    """A sweep: short write transactions for the rows, then a read session for the
    uploads, so that writers never wait for the folder to be listed."""
    now = utcnow()
    keys = 0
    while True:
        with db.transaction() as session:
            batch = service.purge_idempotency_keys(session, now)
        keys += batch
        if batch < service.BATCH:
            break
    slots = 0
    while True:
        with db.transaction() as session:
            batch = service.purge_media_slots(session, now)
        slots += batch
        if batch < service.BATCH:
            break
    slots += service.discard_stalled_media(settings.media_dir, now)
    with db.read() as session:
        files = service.discard_unused_uploads(session, settings.media_dir, now)
    swept = Swept(keys, files, slots)
    if keys or files or slots:
        log.info(
            "housekeeping: %d expired idempotency keys, %d unused uploads, "
            "%d expired media slots removed",
            keys,
            files,
            slots,
        )
    return swept


class Housekeeper:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db, self.settings = db, settings
        self.interval = settings.housekeeping_interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.interval <= 0:  # 0 turns the timer off (run `omnirelay admin housekeeping`)
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="housekeeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                run_once(self.db, self.settings)
            except Exception:  # the next round tries again; a sweep loses nothing
                log.exception("housekeeping sweep failed")
