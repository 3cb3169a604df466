"""Kannel (Debian's ``kannel`` package) as a peer in the benchmarks: installed with apt-get
when missing, configured in a temporary directory (HTTP sendsms -> SMPP to one SMSC), its
bearerbox and smsbox started and stopped by process id. Loopback only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from omnirelay.testing.bench import free_port, proc_stats

SBIN = Path("/usr/sbin")
BOXES = ("bearerbox", "smsbox", "wapbox", "run_kannel_box")
USER, PASSWORD = "bench", "bench"


def _running(names: tuple[str, ...]) -> set[int]:
    """Pids of the processes with one of these command names."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() in names:
                    found.add(int(entry.name))
    return found


def _apt_install(packages: list[str]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    if subprocess.run(cmd, env=env, capture_output=True).returncode == 0:
        return
    # Not in the package lists (a fresh machine has none): read them, then again.
    for step in (["apt-get", "update", "-q"], cmd):
        done = subprocess.run(step, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(step)} failed:\n{done.stdout}\n{done.stderr}")


def _stop_new_boxes(before: set[int]) -> None:
    """Stop the boxes the package's own service started during the install: through its
    init script first (its run_kannel_box wrappers would restart a killed box), then any
    left, by pid, the wrappers first."""
    new = _running(BOXES) - before
    if not new:
        return
    init = Path("/etc/init.d/kannel")
    if init.exists():
        subprocess.run([str(init), "stop"], capture_output=True, timeout=60)
        time.sleep(1)
    left = _running(BOXES) - before
    wrappers = _running(("run_kannel_box",)) & left
    for pid in [*wrappers, *(left - wrappers)]:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)


def ensure_installed() -> None:
    """Kannel's boxes and wrk, from Debian, when missing. The kannel package starts its
    own service on install: a policy-rc.d (if the machine has none) denies that, and any
    box that still started during the install is stopped."""
    missing = []
    if not (SBIN / "bearerbox").exists() or not (SBIN / "smsbox").exists():
        missing.append("kannel")
    if shutil.which("wrk") is None:
        missing.append("wrk")
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemExit(f"missing {', '.join(missing)}: install the Debian packages (as root)")
    print(f"installing {', '.join(missing)} with apt-get", flush=True)
    before = _running(BOXES)
    policy = Path("/usr/sbin/policy-rc.d")
    ours = not policy.exists()
    if ours:
        policy.write_text("#!/bin/sh\n# bench/kannel.py: no service starts on install\nexit 101\n")
        policy.chmod(0o755)
    try:
        _apt_install(missing)
    finally:
        if ours:
            policy.unlink()
        _stop_new_boxes(before)


def config(
    tmp: Path, *, smsc_port: int, admin_port: int, box_port: int, http_port: int, window: int
) -> str:
    """bearerbox + smsbox: sendsms over HTTP, one SMPP transceiver to the SMSC, a file
    store (a message is written to it before smsbox answers, as omnirelay commits before
    answering), receipts asked for (dlr-mask=3) and matched in memory but posted nowhere
    (no dlr-url: omnirelay has no webhook either), logging at errors only."""
    return f"""
group = core
admin-port = {admin_port}
admin-interface = 127.0.0.1
admin-password = {PASSWORD}
status-password = {PASSWORD}
admin-allow-ip = 127.0.0.1
smsbox-port = {box_port}
smsbox-interface = 127.0.0.1
box-allow-ip = 127.0.0.1
log-file = "{tmp}/bearerbox.log"
log-level = 3
access-log = "/dev/null"
store-type = file
store-location = "{tmp}/kannel.store"
dlr-storage = internal
sms-incoming-queue-limit = -1
sms-outgoing-queue-limit = -1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {box_port}
sendsms-port = {http_port}
sendsms-interface = 127.0.0.1
log-file = "{tmp}/smsbox.log"
# 4 (panics only): every receipt reaching smsbox without a dlr-url logs two errors.
log-level = 4
access-log = "/dev/null"

group = sendsms-user
username = {USER}
password = {PASSWORD}
max-messages = 1

group = smsc
smsc = smpp
smsc-id = fast
host = 127.0.0.1
port = {smsc_port}
receive-port = 0
transceiver-mode = true
smsc-username = bench
smsc-password = bench
system-type = ""
source-addr-ton = 5
source-addr-npi = 0
dest-addr-ton = 1
dest-addr-npi = 1
max-pending-submits = {window}
enquire-link-interval = 30
msg-id-type = 0x00
"""


class Kannel:
    """bearerbox and smsbox with the configuration above; ``sendsms`` is the path a
    client GETs (add ``&text=...``), asking for receipts unless ``receipts`` is off.
    Stopped with SIGTERM (then SIGKILL) on exit."""

    def __init__(self, tmp: Path, *, smsc_port: int, window: int, receipts: bool = True) -> None:
        self.tmp = tmp
        self.admin_port, self.box_port, self.http_port = free_port(), free_port(), free_port()
        self.conf = tmp / "kannel.conf"
        self.conf.write_text(
            config(
                tmp,
                smsc_port=smsc_port,
                admin_port=self.admin_port,
                box_port=self.box_port,
                http_port=self.http_port,
                window=window,
            )
        )
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.sendsms = (
            f"/cgi-bin/sendsms?username={USER}&password={PASSWORD}&from=BENCH&to=79161234567"
        )
        if receipts:
            self.sendsms += "&dlr-mask=3"  # delivered or failed: registered_delivery 1

    def _start(self, name: str) -> None:
        out = open(self.tmp / f"{name}.out", "wb")  # noqa: SIM115 (the child keeps it)
        self.procs[name] = subprocess.Popen(
            [str(SBIN / name), "-v", "4", str(self.conf)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=self.tmp,
            start_new_session=True,
        )
        out.close()

    def __enter__(self) -> Kannel:
        try:
            self._start("bearerbox")
            self._wait(lambda: self._status() is not None, "bearerbox's admin port")
            self._start("smsbox")
            self._wait(self._online, "the SMPP link and smsbox")
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait(self, ready: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    log = (self.tmp / f"{name}.out").read_text(errors="replace")[-2000:]
                    raise SystemExit(f"Kannel's {name} exited:\n{log}")
            if time.monotonic() > deadline:
                raise SystemExit(f"Kannel: {what} not ready within {timeout:.0f} s")
            time.sleep(0.2)

    def _status(self) -> str | None:
        url = f"http://127.0.0.1:{self.admin_port}/status.txt?password={quote(PASSWORD)}"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                text: str = r.read().decode(errors="replace")
                return text
        except (OSError, urllib.error.URLError):
            return None

    def _online(self) -> bool:
        status = self._status() or ""
        # One box connected, and the SMSC's line says online (bound).
        smsc = [line for line in status.splitlines() if line.strip().startswith("fast")]
        box = "smsbox:" in status
        return box and any("online" in line for line in smsc) and self._http_up()

    def _http_up(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.http_port), timeout=0.5):
                return True
        except OSError:
            return False

    def peaks(self) -> dict[str, float]:
        """Peak RSS in MB of each box (while it runs)."""
        return {name: proc_stats(p.pid)[0] for name, p in self.procs.items()}

    def cpu(self) -> float:
        return sum(proc_stats(p.pid)[1] for p in self.procs.values())

    def __exit__(self, *exc: object) -> None:
        # smsbox first: it is bearerbox's client; then bearerbox, which closes the link.
        for name in ("smsbox", "bearerbox"):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
