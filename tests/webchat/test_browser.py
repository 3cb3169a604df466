"""The widget in a real browser: Playwright drives Debian's Chromium (headless, the
system binary: no browser is downloaded) on a test page that embeds /webchat/widget.js
from a live ``omnirelay serve --no-workers`` on 127.0.0.1, while the pipeline runs in
the test's process: two processes on one database, so a /v3 send dispatched here
reaches the visitor's socket there by notice (NOTIFY on PostgreSQL, a datagram on
SQLite; the server's safety-net poll is an hour, far past every wait below). A
visitor's typed message reaches a local reply receiver; the operator's typing and read
(/user/webchat/*) show in the page. Chromium missing is a failure, not a skip (.ci/run
installs it: scripts/ensure-chromium.sh)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import select

from omnirelay.db import Database
from omnirelay.messaging.models import Message
from omnirelay.testing.receiver import Receiver
from tests.conftest import Org
from tests.notify.conftest import wait_for
from tests.webchat.conftest import PHONE

CHROMIUM = os.environ.get("OMNIRELAY_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


POLL_SECONDS = 3600  # the server's safety-net poll: never what delivers in this test
WAIT = 20  # seconds any condition below may take, on a loaded machine


@pytest.fixture
def server(database_url: str, org: Org) -> Iterator[str]:
    """``omnirelay serve --no-workers`` (HTTP only) on the test's database."""
    port = _port()
    env = {
        **os.environ,
        "OMNIRELAY_DATABASE_URL": database_url,
        "OMNIRELAY_WEBCHAT_POLL_SECONDS": str(POLL_SECONDS),
        "OMNIRELAY_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
        "OMNIRELAY_RATE_LIMIT_REQUESTS": "10000",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
    }
    cmd = [sys.executable, "-m", "omnirelay", "serve", "--no-workers"]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read().decode() if proc.stderr else "exited")
        try:
            return httpx.get(base + "/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(up, timeout=60)  # a loaded machine starts it slowly
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def page_site() -> Iterator[tuple[str, dict[str, str]]]:
    """A shop's page on its own origin; ``html["/"]`` is set by the test."""
    html: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.get(self.path, "").encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", html
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_visitor_chats_in_chromium(
    server: str,
    page_site: tuple[str, dict[str, str]],
    org: Org,
    link: Callable[[str], None],
    receiver: Receiver,
    deliverer: Any,
    drain: Callable[[], int],
    db: Database,
) -> None:
    assert Path(CHROMIUM).exists(), f"Chromium not found at {CHROMIUM}: apt-get install chromium"
    assert POLL_SECONDS > 10 * WAIT  # what reaches the page below came by notice
    site, html = page_site
    api = httpx.Client(base_url=server, timeout=10)
    body: dict[str, Any] = {
        "channel": "webchat",
        "provider": "webchat",
        "name": "Shop chat",
        "senders": ["shop"],
        "settings": {"allowed_origins": [site], "title": "Ask the shop", "colour": "#117733"},
    }
    r = api.post("/api/connections", json=body, headers=org.headers())
    assert r.status_code == 201, r.text
    key = r.json()["settings"]["widget_key"]
    html["/"] = (
        "<!doctype html><html><head><title>Shop</title></head><body><h1>Shop</h1>"
        f'<script src="{server}/webchat/widget.js" data-key="{key}" data-open="true"></script>'
        "</body></html>"
    )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page()
            page.goto(site + "/")
            expect(page.locator(".omnirelay-webchat-title")).to_have_text("Ask the shop")
            token = page.evaluate(f"localStorage.getItem('omnirelay-webchat:{key}')")
            assert isinstance(token, str) and token.startswith("v")
            link(token)

            route = [{"channel": "webchat", "phone": PHONE, "text": "Hello! How can we help?"}]
            r = api.post(
                "/v3/message/send",
                json={"route": route, "reply": receiver.url("/reply")},
                headers=org.token,
            )
            assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
            mid = r.json()["id"]
            assert drain() >= 1  # dispatched in this process; the socket is the server's
            expect(page.locator(".omnirelay-webchat-agent")).to_have_text(
                "Hello! How can we help?", timeout=WAIT * 1000
            )

            def status() -> str:
                drain()  # the widget's receipts are provider events for this pipeline
                with db.read() as session:
                    return str(
                        session.scalars(select(Message.status).where(Message.id == mid)).one()
                    )

            assert wait_for(lambda: status() == "read", timeout=WAIT)  # the panel is open

            page.locator(".omnirelay-webchat-input").fill("Do you ship to Oslo?")
            page.locator(".omnirelay-webchat-input").press("Enter")
            mine = page.locator(".omnirelay-webchat-visitor")
            expect(mine).to_have_attribute("data-state", "stored")
            (got,) = wait_for(lambda: drain() >= 0 and receiver.received("/reply"), timeout=WAIT)
            reply = json.loads(got.body)
            assert (reply["id"], reply["text"]) == (mid, "Do you ship to Oslo?")

            # The operator (an API user) types, then reads: through the server's /user.
            contact = api.post(
                "/user/contacts/list", json={"filter": None}, headers=org.token
            ).json()["data"][0]
            for action in ("typing", "read"):
                r = api.post(
                    f"/user/webchat/{action}", json={"contactId": contact["id"]}, headers=org.token
                )
                assert r.status_code == 200 and r.json()["connections"] == 1, r.text
            expect(page.locator(".omnirelay-webchat-typing")).to_have_text("typing\u2026")
            expect(mine).to_have_attribute("data-read", "true")
        finally:
            browser.close()
