"""The server part of every local HTTP provider peer (testing/telegram.py, cloudapi.py,
viber.py, vk.py, twilio.py): a threaded HTTP server on 127.0.0.1, every request recorded,
a ``script`` that may answer instead of the provider (or ``DROP`` the connection, or
answer ``GARBAGE``), ``drop`` (the next n requests closed unanswered), ``delay`` (every
answer held back), ``chaos`` (random drops and 500s, for the chaos benchmark), an optional
rate limit the peer enforces as the provider would, and a lifetime after which it stops
by itself so that a test that forgets it leaves nothing behind."""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import random
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


@dataclass
class Chaos:
    """Random faults on the requests ``scripted`` names: a share dropped (the connection
    closed before the provider takes the request), a share answered 500. Seeded, so a
    run can be repeated; counted, so a benchmark can print what it did."""

    drop: float = 0.1
    error: float = 0.1
    seed: int = 0
    dropped: int = 0
    errors: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def roll(self) -> str | None:
        with self._lock:
            x = self._rng.random()
            if x < self.drop:
                self.dropped += 1
                return DROP
            if x < self.drop + self.error:
                self.errors += 1
                return "error"
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up leaves a broken pipe: not worth a trace


class HttpPeer:
    """Subclasses answer in ``route``; ``script(request, n)`` (n counts the requests
    ``scripted`` says it applies to, from 1) may answer first. A peer whose provider's
    tests script otherwise (the send's body, say) overrides ``intercept`` and calls its
    ``script`` itself; ``server_error`` and ``too_large`` are the provider's own 500 and
    413 answers."""

    max_body = MAX_BODY
    max_records = MAX_RECORDS
    handler_timeout = 30.0  # an idle keep-alive connection lets its thread go

    def __init__(self, *, lifetime: float = 300.0, rate_limit: float | None = None) -> None:
        # Script by default; a subclass may say another signature (see intercept).
        self.script: Any = None
        self.drop = 0  # the next n requests get their connection closed, no answer
        self.delay = 0.0  # seconds every answer is held back (a slow API)
        self.chaos: Chaos | None = None
        self.rate_limit = rate_limit  # requests a second the peer takes (None: any)
        self.requests: list[PeerRequest] = []
        self.refused_for_rate = 0
        self._closing = threading.Event()
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
            timeout = peer.handler_timeout

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
        self._closing.set()
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
        """Which requests the script (and ``chaos``) sees (default: all)."""
        return True

    def intercept(self, req: PeerRequest) -> Answer | str | None:
        """An answer before ``route``'s: the script's, by default."""
        script = self.script
        if script is None or not self.scripted(req):
            return None
        answer: Answer | str | None = script(req, next(self._counter))
        return answer

    def server_error(self) -> Answer:
        """The provider's answer to a request it failed on (the chaos 500)."""
        return 500, {"error": "Internal Server Error"}, {}

    def too_large(self) -> Answer:
        return 413, {"error": "body too large"}, {}

    def start_chaos(self, *, drop: float = 0.1, error: float = 0.1, seed: int = 0) -> Chaos:
        """Drop a share of the requests ``scripted`` names and answer 500 to another."""
        self.chaos = Chaos(drop, error, seed)
        return self.chaos

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
        if length > self.max_body:
            handler.close_connection = True
            self._answer(handler, self.too_large())
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
            del self.requests[: -self.max_records]
            dropped = self.drop > 0
            self.drop -= dropped
        answer: Answer | str | None = DROP if dropped else None
        chaos = self.chaos
        if answer is None and chaos is not None and self.scripted(req):
            fault = chaos.roll()
            answer = self.server_error() if fault == "error" else fault
        if answer is None:
            answer = self.intercept(req)
        if answer == DROP:
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.close()
            return
        if answer == GARBAGE:
            answer = (200, b"<html>gateway says hello</html>", {"Content-Type": "text/html"})
        if answer is None or isinstance(answer, str):
            answer = self.route(req)
        if self.delay and self._closing.wait(self.delay):
            return  # stopping: the client gets nothing, as from a hung server
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
