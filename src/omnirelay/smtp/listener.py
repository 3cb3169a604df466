"""The inbound SMTP listener (aiosmtpd) of the email channel: takes mail for the
organizations' email addresses only, reads it (channels/smtp/inbound.py) and applies it
(smtp/service.py) in one transaction, answering 250 only after the commit (a crash
before it makes the sender try again: nothing is lost, a repeat changes nothing).

Started explicitly by the process runtime when ``OMNIRELAY_SMTP_LISTEN`` is set; it runs
its own event loop in a thread, and its database work in that loop's executor. Several
processes may listen on one port (SO_REUSEPORT): the kernel shares the connections.

Refusals: an address that is no organization's, 550 5.1.1; more than
``smtp_max_recipients`` recipients, 452; over ``smtp_max_message_bytes``, 552 (aiosmtpd's
SIZE check, before and during DATA); a database failure, 451 (try later).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections import Counter
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from omnirelay.channels.smtp.addresses import BadAddress, mailbox_key, normalize
from omnirelay.channels.smtp.inbound import parse
from omnirelay.config import Settings
from omnirelay.db import Database, utcnow
from omnirelay.media import inbound as media
from omnirelay.media.storage import LocalStorage, from_settings
from omnirelay.smtp import service
from omnirelay.smtp.service import Mailbox

log = logging.getLogger(__name__)
CACHE_SECONDS = 30.0  # how long a known address is trusted before reading it again


def parse_listen(value: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) of OMNIRELAY_SMTP_LISTEN."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"OMNIRELAY_SMTP_LISTEN must be host:port, not {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


class MailListener:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        listen_host, listen_port = (
            parse_listen(settings.smtp_listen) if settings.smtp_listen else ("127.0.0.1", 0)
        )
        self.db = db
        self.settings = settings
        self.host = host if host is not None else listen_host
        self.port = port if port is not None else listen_port
        self.hostname = settings.smtp_hostname or socket.gethostname()  # no DNS here
        self.max_bytes = settings.smtp_max_message_bytes
        self.max_recipients = settings.smtp_max_recipients
        self.outcomes: Counter[str] = Counter()  # what was done, for logs, tests and bench
        self._boxes: dict[str, Mailbox] = {}
        self._loaded_at = float("-inf")
        self._refresh: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None

    # -- lifecycle --

    def start(self) -> MailListener:
        loop = asyncio.new_event_loop()
        ready: list[BaseException | None] = []
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
                ready.append(None)
            except BaseException as exc:  # bind failed: reported to start()
                ready.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="smtp-listener", daemon=True)
        self._thread.start()
        started.wait(30)
        if not ready or ready[0] is not None:
            self._thread.join(5)
            loop.close()
            self._loop = self._thread = None
            raise RuntimeError(f"SMTP listener on {self.host}:{self.port} did not start") from (
                ready[0] if ready else None
            )
        log.info("SMTP listener on %s:%s", self.host, self.port)
        return self

    async def _serve(self) -> None:
        self._refresh = asyncio.Lock()
        loop = asyncio.get_running_loop()
        handler = _Handler(self)
        self._server = await loop.create_server(
            lambda: SMTP(
                handler,
                data_size_limit=self.max_bytes,
                hostname=self.hostname,
                ident="omnirelay",
                timeout=60,
                loop=loop,
            ),
            self.host,
            self.port,
            reuse_address=True,
            reuse_port=hasattr(socket, "SO_REUSEPORT"),
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            # Sessions still open end with the loop, not as pending tasks.
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(close(), loop).result(timeout=10)
        except Exception:
            log.exception("SMTP listener: closing failed")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> MailListener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses --

    async def lookup(self, key: str) -> Mailbox | None:
        """The mailbox of an address; on a miss (or an old hit) the addresses are read
        again, once for every lookup waiting (a new connection is found at once)."""
        box = self._boxes.get(key)
        if box is not None and time.monotonic() - self._loaded_at < CACHE_SECONDS:
            return box
        asked = time.monotonic()
        assert self._refresh is not None
        async with self._refresh:
            if self._loaded_at <= asked:
                started = time.monotonic()
                self._boxes = await asyncio.get_running_loop().run_in_executor(None, self._load)
                self._loaded_at = started
        return self._boxes.get(key)

    def _load(self) -> dict[str, Mailbox]:
        with self.db.read() as session:
            return service.mailboxes(session)

    # -- one message --

    def store(self, boxes: list[tuple[str, Mailbox]], data: bytes, mail_from: str | None) -> None:
        """In the executor: parse and apply, one transaction for every recipient."""
        event = parse(data, mail_from)
        done: list[str] = []
        # A reply's attachments go to the media storage first, with no transaction open
        # (a bucket is a network call); once per organization, each with its own links.
        files: dict[str, list[media.Stored]] = {}
        storage = None
        if event.kind == "reply" and event.files:
            storage = from_settings(self.settings)
            base = self.settings.public_url.rstrip("/") + "/user"
            for _, box in boxes:
                if box.organization_id not in files:
                    files[box.organization_id] = [
                        media.store(storage, base, f.data, f.filename, f.content_type, i)
                        for i, f in enumerate(event.files)
                    ]
        try:
            with self.db.transaction() as session:
                kept: dict[str, list[dict[str, Any]]] = {}
                for org, stored in files.items():
                    kept[org] = media.register(session, org, stored, utcnow())
                for recipient, box in boxes:
                    attachments = kept.get(box.organization_id)
                    done.append(service.apply(session, box, recipient, event, attachments))
        except BaseException:
            # Not accepted: the sender tries again; files of this try are not kept.
            for stored in files.values():
                for file in stored:
                    if file.key is not None and isinstance(storage, LocalStorage):
                        storage.remove(file.key)
            raise
        self.outcomes.update(done)


class _Handler:
    def __init__(self, listener: MailListener) -> None:
        self.listener = listener

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if len(envelope.rcpt_tos) >= self.listener.max_recipients:
            return "452 4.5.3 Too many recipients"
        try:
            key = mailbox_key(normalize(address))
        except BadAddress:
            return "553 5.1.3 Bad recipient address syntax"
        try:
            box = await self.listener.lookup(key)
        except Exception:
            log.exception("SMTP listener: reading addresses failed")
            return "451 4.3.0 Temporary failure, try again later"
        if box is None:
            self.listener.outcomes["refused"] += 1
            return "550 5.1.1 No such user here"
        boxes: list[tuple[str, Mailbox]] = _boxes(envelope)
        if all(b != box for _, b in boxes):  # one application per connection
            boxes.append((address, box))
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content
        if data is None:
            content = envelope.content
            data = content if isinstance(content, bytes) else str(content or "").encode()
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, self.listener.store, _boxes(envelope), data, envelope.mail_from
            )
        except Exception:
            log.exception("SMTP listener: storing a message failed")
            return "451 4.3.0 Temporary failure, try again later"
        return "250 OK: queued"


def _boxes(envelope: Any) -> list[tuple[str, Mailbox]]:
    # aiosmtpd's Envelope is a plain object: the mailboxes of its recipients ride on it.
    boxes: list[tuple[str, Mailbox]] | None = getattr(envelope, "omnirelay_boxes", None)
    if boxes is None:
        boxes = []
        envelope.omnirelay_boxes = boxes
    return boxes
