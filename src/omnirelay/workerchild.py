"""``omnirelay serve --processes 2``: the workers (dispatch, SMPP sessions, jobs, webhook
deliveries) in a child ``omnirelay worker`` process, so that HTTP and the drains each
have a core and a GIL of their own (ADR 34). The child is started again when it exits by
itself (a crash, kill -9) and dies with its parent (PR_SET_PDEATHSIG)."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def exit_with_parent(parent: int) -> None:
    """In the child: be sent SIGTERM when the parent dies, even by kill -9 (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        log.warning("cannot follow the parent process; stop this worker with it")
    if os.getppid() != parent:  # it died before the call above took effect
        os.kill(os.getpid(), signal.SIGTERM)


class WorkerChild:
    def __init__(self, restart_delay: float = 1.0) -> None:
        self.restart_delay = restart_delay
        self._stop = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._run, name="worker-child", daemon=True)

    def start(self) -> WorkerChild:
        self._thread.start()
        return self

    def _run(self) -> None:
        argv = [sys.executable, "-m", "omnirelay", "worker", "--exit-with-parent", str(os.getpid())]
        while not self._stop.is_set():
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
            code = self._proc.wait()
            if self._stop.is_set():
                return
            log.warning("the worker process exited (%s); starting it again", code)
            self._stop.wait(self.restart_delay)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()  # it unbinds its SMPP sessions and finishes its batches
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
        self._thread.join(5)
