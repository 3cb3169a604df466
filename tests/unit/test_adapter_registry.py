"""The adapter registry loads every built-in adapter before any lookup answers, even when
many threads ask at once in a fresh process (a restarted worker with a backlog does)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import threading, time
from omnirelay.channels import base
missing = []
def ask():
    for name in ("smpp", "sandbox", "wa_sandbox", "whatsapp_cloud"):
        if base.get_adapter(name) is None:
            missing.append(name)
threads = [threading.Thread(target=ask) for _ in range(100)]
for t in threads:
    t.start()
    time.sleep(0.0002)
for t in threads:
    t.join()
print(len(missing))
"""


def test_concurrent_first_lookups_find_every_adapter() -> None:
    for _ in range(3):  # a fresh interpreter each time: the race is at first load
        out = subprocess.run(
            [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "0"


def test_importing_one_adapter_first_hides_none() -> None:
    code = (
        "import omnirelay.channels.whatsapp_cloud\n"
        "from omnirelay.channels import base\n"
        "print(base.providers())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert all(p in out.stdout for p in ("sandbox", "smpp", "wa_sandbox", "whatsapp_cloud"))
