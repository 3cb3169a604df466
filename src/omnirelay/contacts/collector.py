"""The cyclic garbage collector paused around a bulk import's batches (ADR 39)."""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator


class PausedCollector:
    """The cyclic garbage collector paused while a batch is parsed or written.

    A batch allocates ~20 objects a row and keeps them to the end of the batch, so the
    collector ran its young generations over and over and its oldest one over the whole
    process (SQLAlchemy's, phonenumbers' objects): ~10 us of CPU a contact, half of the
    parse (measured, ADR 39). A batch makes no reference cycles worth collecting before
    it ends; the collector runs as usual after it. Shared by threads: on while any holds it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._was_enabled = False

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._holders == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._holders += 1
        try:
            yield
        finally:
            with self._lock:
                self._holders -= 1
                if self._holders == 0 and self._was_enabled:
                    gc.enable()


paused_collector = PausedCollector()
