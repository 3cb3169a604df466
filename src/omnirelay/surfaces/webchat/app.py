"""The web chat surface, mounted at /webchat: ``GET /widget.js`` (the embeddable widget,
one plain script) and ``/ws?key=<widget key>[&visitor=<signed id>]`` (its WebSocket).

The socket protocol is JSON text frames (docs/channels/webchat.md):

- server → widget: ``welcome`` {visitor, title, colour}; ``message`` {id, text};
  ``ack`` {id} (the visitor's message is stored); ``typing`` and ``read`` (the
  operator's, from /user/webchat/*); ``error`` {error}.
- widget → server: ``message`` {id, text}; ``typing``; ``received`` {id}; ``read`` {id}.

The Origin header must be one of the connection's allowed origins; a visitor id that is
not signed by this connection is refused (close 4401), so no one reads another visitor's
messages. Frames over MAX_FRAME close the socket (1009); more than RATE frames a second
(BURST at once) are answered with ``error: rate_limited`` and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from importlib import resources
from typing import Any

from fastapi import FastAPI, WebSocket
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect

from omnirelay import __version__
from omnirelay.contacts import unit
from omnirelay.context import AppContext
from omnirelay.webchat import hub, notices, service
from omnirelay.webchat.service import Widget

MAX_FRAME = 8192  # bytes of one frame from a widget
MAX_TEXT = 4096  # characters of a visitor's message
RATE, BURST = 5.0, 10  # frames a second per socket
REFUSED, FORGED, TOO_BIG = 4403, 4401, 1009


class Bucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.at = float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def widget_script() -> str:
    return (resources.files("omnirelay.surfaces.webchat") / "widget.js").read_text("utf-8")


def create_webchat_app(ctx: AppContext) -> FastAPI:
    app = FastAPI(
        title="omnirelay web chat",
        version=__version__,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    script = widget_script()
    # A safety net: sends reach sockets by notice (webchat/notices.py); the poll covers
    # a notice lost with a dropped LISTEN connection.
    poll_seconds = ctx.settings.webchat_poll_seconds

    @app.get("/widget.js")
    def widget_js() -> Response:
        # Public, the same for every site; the key is the <script> tag's data-key.
        return Response(
            script,
            media_type="application/javascript; charset=utf-8",
            headers={"Cache-Control": "public, max-age=300"},
        )

    def lookup(key: str) -> Widget | None:
        with ctx.db.read() as session:
            return service.widget(session, key)

    def pending(w: Widget, visitor: str) -> list[tuple[str, str]]:
        with ctx.db.read() as session:
            return service.pending(session, w, visitor)

    def receive(w: Widget, visitor: str, text: str) -> None:
        unit.run(ctx.db, lambda session: service.receive(session, w, visitor, text))

    def report(w: Widget, visitor: str, provider_id: str, status: str) -> bool:
        with ctx.db.transaction() as session:
            return service.report(session, w, visitor, provider_id, status)

    @app.websocket("/ws")
    async def socket(ws: WebSocket) -> None:
        key = ws.query_params.get("key", "")
        w = await run_in_threadpool(lookup, key) if 0 < len(key) <= 80 else None
        if w is None or not w.allows(ws.headers.get("origin")):
            await ws.close(code=REFUSED)  # before accept: the handshake gets a 403
            return
        token = ws.query_params.get("visitor")
        if token:
            visitor = service.read_visitor(w, token)
            if visitor is None:
                await ws.close(code=FORGED)
                return
        else:
            token = service.new_visitor(w)
            visitor = service.read_visitor(w, token)
            assert visitor is not None
        await ws.accept()
        await ws.send_json(
            {"type": "welcome", "visitor": token, "title": w.title, "colour": w.colour}
        )
        sink = hub.Sink(asyncio.get_running_loop())
        hub.HUB.join(w.key, visitor, sink)
        ear = await notices.attach(ctx.db)  # before the first read: nothing falls between
        sent: set[str] = set()  # ids this socket already carried

        async def deliver(frame: str) -> None:
            data = json.loads(frame)
            if data.get("type") == "message":
                if data["id"] in sent:
                    return
                sent.add(data["id"])
            await ws.send_text(frame)

        async def writer() -> None:
            while True:
                try:
                    frame = await asyncio.wait_for(sink.queue.get(), poll_seconds)
                except TimeoutError:
                    frame = hub.WAKE
                if frame == hub.WAKE:
                    sink.woken = False  # a notice from now on queues another read
                    for pid, text in await run_in_threadpool(pending, w, visitor):
                        await deliver(hub.outbound_frame(pid, text))
                    continue
                await deliver(frame)

        for pid, text in await run_in_threadpool(pending, w, visitor):
            await deliver(hub.outbound_frame(pid, text))
        task = asyncio.create_task(writer())
        try:
            await _read(ws, w, visitor, sink, receive, report)
        except WebSocketDisconnect:
            pass
        finally:
            hub.HUB.leave(w.key, visitor, sink)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            await notices.detach(ear)

    async def _read(
        ws: WebSocket, w: Widget, visitor: str, sink: hub.Sink, receive: Any, report: Any
    ) -> None:
        bucket = Bucket(RATE, BURST)
        while True:
            raw = await ws.receive_text()
            if len(raw.encode()) > MAX_FRAME:
                await ws.close(code=TOO_BIG)
                return
            if not bucket.take():
                await ws.send_json({"type": "error", "error": "rate_limited"})
                continue
            try:
                frame = json.loads(raw)
            except ValueError:
                frame = None
            if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
                await ws.send_json({"type": "error", "error": "bad_frame"})
                continue
            kind, fid = frame["type"], frame.get("id")
            if kind == "message":
                text = frame.get("text")
                if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
                    await ws.send_json({"type": "error", "error": "bad_text", "id": fid})
                    continue
                await run_in_threadpool(receive, w, visitor, text.strip())
                await ws.send_json({"type": "ack", "id": fid})
                # The visitor's other tabs show it too.
                hub.HUB.event(w.key, visitor, type="echo", text=text.strip(), skip=sink)
            elif kind == "typing":
                hub.HUB.typing(w.key, visitor)
            elif kind in ("received", "read") and isinstance(fid, str) and len(fid) <= 100:
                status = "delivered" if kind == "received" else "read"
                if not await run_in_threadpool(report, w, visitor, fid, status):
                    await ws.send_json({"type": "error", "error": "unknown_id", "id": fid})
            else:
                await ws.send_json({"type": "error", "error": "bad_frame"})

    return app
