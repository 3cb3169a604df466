"""Media storage uploads: 10 MB files posted to local upload slots of a running
`omnirelay serve`, as a client following seed 004 does (slot, then the form POST).

Prints uploads/s and MB/s, p50/p99 of one upload, the server's peak RSS and, the figure
that counts, the peak RSS increase during one 10 MB upload (target: under 20 MB: the file
is streamed to disk, never held whole). Also posts a file over the limit, streamed
without a Content-Length, and checks it is refused.

    python bench/media.py [--db sqlite|postgresql] [-n UPLOADS] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from omnirelay.media.storage import MAX_SIZE
from omnirelay.tenancy import service as tenancy
from omnirelay.testing.bench import Omnirelay, database, percentile, proc_stats

CHUNK = 64 * 1024
TARGET_MB = 20.0


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def reset_peak(pid: int) -> None:
    """Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def form(fields: dict[str, str], size: int, boundary: str = "omnirelaybench") -> Iterator[bytes]:
    """The multipart body, generated as it is sent: the client holds one chunk at a time."""
    for name, value in fields.items():
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="bench.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    block = os.urandom(CHUNK)
    sent = 0
    while sent < size:
        part = block[: min(CHUNK, size - sent)]
        sent += len(part)
        yield part
    yield f"\r\n--{boundary}--\r\n".encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("-n", type=int, default=20, help="10 MB uploads")
    parser.add_argument("--smoke", action="store_true", help="a small run for CI")
    args = parser.parse_args()
    if args.smoke:
        args.n = 3

    with tempfile.TemporaryDirectory() as media, database(args.db) as db:
        with db.transaction() as session:
            created = tenancy.create_organization(
                session, "Bench", admin_email="bench@bench.test", admin_name="B", created_via="cli"
            )
        token = {"Authorization": f"Token {created.api_token}"}
        env = {"OMNIRELAY_MEDIA_DIR": media, "OMNIRELAY_RATE_LIMIT_REQUESTS": "100000"}
        with Omnirelay(db.url, **env) as server, httpx.Client(timeout=120) as http:
            pid = server.procs["serve"].pid
            headers = {"Content-Type": "multipart/form-data; boundary=omnirelaybench"}

            def slot() -> dict[str, str]:
                answer = http.post(
                    f"{server.base}/user/media/upload", json={"filename": "b.bin"}, headers=token
                ).json()
                return dict(answer)

            def upload(size: int) -> httpx.Response:
                s = slot()
                fields = dict(s["fields"])  # type: ignore[arg-type]
                return http.post(str(s["url"]), content=form(fields, size), headers=headers)

            warm = upload(1024 * 1024)  # first use: imports, pools, the threadpool
            assert warm.status_code == 204, warm.text

            reset_peak(pid)
            baseline = rss_mb(pid)
            first = upload(MAX_SIZE)
            assert first.status_code == 204, first.text
            increase = proc_stats(pid)[0] - baseline

            times: list[float] = []
            started = time.perf_counter()
            for _ in range(args.n):
                t = time.perf_counter()
                answer = upload(MAX_SIZE)
                times.append(time.perf_counter() - t)
                assert answer.status_code == 204, answer.text
            elapsed = time.perf_counter() - started

            reset_peak(pid)
            baseline_big = rss_mb(pid)
            try:
                big = upload(3 * MAX_SIZE)  # chunked: no Content-Length to refuse it by
                refused = f"HTTP {big.status_code} {big.json().get('code')}"
            except httpx.HTTPError as exc:  # the server stopped reading and closed
                refused = f"connection closed ({type(exc).__name__})"
            increase_big = proc_stats(pid)[0] - baseline_big
            stored = sum(p.stat().st_size for p in Path(media).rglob("*") if p.is_file())
            peak = proc_stats(pid)[0]

    mb = MAX_SIZE / 1024 / 1024
    print(f"== bench/media.py  db={args.db}  {args.n} uploads of {mb:.0f} MB (local disk)")
    print(f"{'uploads/s':<44} {args.n / elapsed:>12.2f}")
    print(f"{'MB/s':<44} {args.n * mb / elapsed:>12.1f}")
    print(f"{'one upload p50':<44} {percentile(times, 50) * 1000:>12.1f} ms")
    print(f"{'one upload p99':<44} {percentile(times, 99) * 1000:>12.1f} ms")
    print(f"{'peak RSS serve':<44} {peak:>12.1f} MB")
    target = f"(target < {TARGET_MB:.0f})"
    print(f"{'peak RSS increase, one 10 MB upload':<44} {increase:>12.1f} MB {target}")
    print(f"{'peak RSS increase, a 30 MB file refused':<44} {increase_big:>12.1f} MB")
    print(f"{'the 30 MB file':<44} {refused:>12}")
    print(f"{'bytes on disk':<44} {stored:>12}")
    expected = (args.n + 1) * MAX_SIZE + 1024 * 1024  # the warm-up's 1 MB, not the refused
    if increase >= TARGET_MB or increase_big >= TARGET_MB or stored != expected:
        sys.exit("media upload memory or storage is off target")


if __name__ == "__main__":
    main()
