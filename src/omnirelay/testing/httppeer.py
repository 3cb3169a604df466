"""The server part of the local provider peers (testing/viber.py, testing/vk.py): a
threaded HTTP server on 127.0.0.1, every request recorded, a ``script`` that may answer
instead of the provider (or ``DROP`` the connection, or answer ``GARBAGE``), an optional
rate limit the peer enforces as the provider would, and a lifetime after which it stops
by itself so that a test that forgets it leaves nothing behind."""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, Any, dict[str, str]]  # status, JSON body (or bytes), headers
DROP = "drop"  # close the connection without answering
GARBAGE = "garbage"  # answer 200 with a body that is no JSON at all
Script = Callable[["PeerRequest", int], Answer | str | None]
MAX_BODY = 8 << 20
MAX_RECORDS = 100_000


@dataclass(frozen=True)
class PeerRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = 0.0  # time.monotonic() at arrival

    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up leaves a broken pipe: not worth a trace


class HttpPeer:
    """Subclasses answer in ``route``; ``script(request, n)`` (n counts the requests
    ``scripted`` says it applies to, from 1) may answer first."""

    def __init__(self, *, lifetime: float = 300.0, rate_limit: float | None = None) -> None:
        self.script: Script | None = None
        self.rate_limit = rate_limit  # requests a second the peer takes (None: any)
        self.requests: list[PeerRequest] = []
        self.refused_for_rate = 0
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self._window: collections.deque[float] = collections.deque()
        self._stopped = False
        self._started = False
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30

            def do_POST(self) -> None:
                peer._serve(self, "POST")

            def do_GET(self) -> None:
                peer._serve(self, "GET")

            def log_message(self, *args: object) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle --

    def start(self) -> HttpPeer:
        self._thread.start()
        self._started = True
        self._timer.start()
        return self

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._timer.cancel()
        if self._started:
            self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- for subclasses --

    def route(self, req: PeerRequest) -> Answer:
        raise NotImplementedError

    def scripted(self, req: PeerRequest) -> bool:
        """Which requests the script sees (default: all)."""
        return True

    def over_limit(self) -> bool:
        """One more request in the last second would pass ``rate_limit``: counted, and
        the caller answers the provider's "too many requests"."""
        if self.rate_limit is None:
            return False
        now = time.monotonic()
        with self._lock:
            while self._window and self._window[0] <= now - 1.0:
                self._window.popleft()
            # 5 % and one request of slack: a client pacing at exactly the limit sees its
            # requests arrive with a few milliseconds of jitter each.
            if len(self._window) >= self.rate_limit * 1.05 + 1:
                self.refused_for_rate += 1
                return True
            self._window.append(now)
        return False

    # -- serving --

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("content-length") or 0)
        if length > MAX_BODY:
            handler.close_connection = True
            self._answer(handler, (413, {"error": "body too large"}, {}))
            return
        raw = handler.rfile.read(length) if length else b""
        req = PeerRequest(
            method,
            handler.path,
            {k.lower(): v for k, v in handler.headers.items()},
            raw,
            time.monotonic(),
        )
        with self._lock:
            self.requests.append(req)
            del self.requests[:-MAX_RECORDS]
        answer: Answer | str | None = None
        script = self.script
        if script is not None and self.scripted(req):
            answer = script(req, next(self._counter))
        if answer == DROP:
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.close()
            return
        if answer == GARBAGE:
            answer = (200, b"<html>gateway says hello</html>", {"Content-Type": "text/html"})
        if answer is None or isinstance(answer, str):
            answer = self.route(req)
        self._answer(handler, answer)

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, answer: Answer) -> None:
        status, body, headers = answer
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            handler.send_response(status)
            if "Content-Type" not in headers:
                handler.send_header("Content-Type", "application/json; charset=UTF-8")
            for key, value in headers.items():
                handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:
            handler.close_connection = True


def post(
    url: str, body: bytes, headers: dict[str, str], timeout: float = 10.0
) -> tuple[int, bytes]:
    """POST a callback as the provider would (to a server listening on a port)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return int(answer.status), answer.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()
