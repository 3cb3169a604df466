"""A local SMTP server for the email channel's tests and benchmark (aiosmtpd): STARTTLS or
implicit TLS with a throwaway self-signed certificate, AUTH PLAIN/LOGIN, and faults on
demand (a reply per recipient, a DATA reply, dropped connections). It keeps every
message it accepted, as bytes, with its envelope. Loopback only.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from omnirelay.testing.httppeer import DROP, Chaos


class _QuietAuth(logging.Filter):
    # aiosmtpd's own AUTH code trips its deprecation warning of Session.login_data on
    # every login: noise in test and benchmark output, nothing to act on.
    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    mail_options: list[str] = field(default_factory=list)


def self_signed(host: str = "localhost") -> tuple[str, str]:
    """A certificate for ``host`` and 127.0.0.1 and its key, as PEM text."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(host), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return cert_pem, key_pem


class SmtpPeer:
    """``mode``: "starttls" (STARTTLS offered; AUTH only after it), "tls" (TLS from the
    first byte) or "none" (plain, no AUTH)."""

    def __init__(
        self,
        *,
        mode: str = "starttls",
        username: str | None = "relay-user",
        password: str | None = "relay-pass",
        host: str = "127.0.0.1",
    ) -> None:
        self.mode = mode
        self.username, self.password = username, password
        self.host = host
        self.port = 0
        self.cert_pem, self.key_pem = self_signed()
        self.messages: list[Received] = []
        self.logins: list[str] = []
        self.connections = 0
        # Faults: recipient -> the whole reply to its RCPT TO ("550 5.1.1 No such user");
        # data_reply: the reply to every DATA; drop: close connections at MAIL FROM.
        self.rcpt_replies: dict[str, str] = {}
        self.data_reply: str | None = None
        self.drop = False
        # chaos: random faults at MAIL FROM (a dropped connection, or SMTP's "500": a 451
        # transient local error), as testing/httppeer.Chaos rolls them.
        self.chaos: Chaos | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._lock = threading.Lock()
        self._files = tempfile.TemporaryDirectory(prefix="smtppeer-")

    # -- what a connection's settings are --

    def settings(self, **overrides: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "security": self.mode,
            "from_address": "news@shop.example",
            "from_name": "Shop",
            "ca_cert": self.cert_pem,
        }
        if self.username and self.mode != "none":
            out.update(username=self.username, password=self.password)
        if self.mode == "none":
            out.pop("ca_cert")
        out.update(overrides)
        return {k: v for k, v in out.items() if v is not None}

    # -- lifecycle --

    def _tls(self) -> ssl.SSLContext:
        directory = Path(self._files.name)
        (directory / "cert.pem").write_text(self.cert_pem)
        (directory / "key.pem").write_text(self.key_pem)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
        return context

    def start(self) -> SmtpPeer:
        mail_log = logging.getLogger("mail.log")
        if not any(isinstance(f, _QuietAuth) for f in mail_log.filters):
            mail_log.addFilter(_QuietAuth())
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._serve(loop))
            ready.set()
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="smtp-peer", daemon=True)
        self._thread.start()
        if not ready.wait(15):
            raise RuntimeError("SMTP peer did not start")
        return self

    async def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        context = self._tls() if self.mode != "none" else None
        handler = _Handler(self)

        def factory() -> SMTP:
            self.connections += 1
            return SMTP(
                handler,
                hostname="peer.localhost",
                tls_context=context if self.mode == "starttls" else None,
                require_starttls=self.mode == "starttls",
                authenticator=self._authenticate if self.username else None,
                auth_require_tls=True,
                loop=loop,
            )

        self._server = await loop.create_server(
            factory, self.host, 0, ssl=context if self.mode == "tls" else None
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = data.login.decode() == self.username and data.password.decode() == self.password
        if ok:
            with self._lock:
                self.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)

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

        asyncio.run_coroutine_threadsafe(close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._loop = self._thread = None
        self._files.cleanup()

    def __enter__(self) -> SmtpPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler:
    def __init__(self, peer: SmtpPeer) -> None:
        self.peer = peer

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        fault = self.peer.chaos.roll() if self.peer.chaos is not None else None
        if self.peer.drop or fault == DROP:
            assert server.transport is not None
            server.transport.close()
            return "421 4.3.2 Closing"
        if fault is not None:
            return "451 4.3.0 Requested action aborted: local error in processing"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self.peer.rcpt_replies.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.peer.data_reply is not None:
            return self.peer.data_reply
        data = envelope.original_content or b""
        with self.peer._lock:
            self.peer.messages.append(
                Received(
                    str(envelope.mail_from),
                    list(envelope.rcpt_tos),
                    bytes(data),
                    list(envelope.mail_options),
                )
            )
        return "250 2.0.0 Ok: queued"
