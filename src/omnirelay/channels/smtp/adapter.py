"""The ``smtp`` provider: sends the ``email`` channel's messages with aiosmtplib (ADR 30).

The Adapter protocol is synchronous (dispatch calls ``send`` from its thread pool), and
aiosmtplib is asyncio: the adapter owns one event loop in a daemon thread, started on the
first send; ``send`` hands its coroutine to that loop and waits for the answer. SMTP
connections are pooled per server and login on that loop (at most ``max_connections``
each, idle ones closed after IDLE_SECONDS), so a batch to one relay reuses a few
connections instead of a handshake per message.

Every connection goes to an address the SSRF guard checked just before (``check_host``):
the socket is connected here to that address, and aiosmtplib gets the host name only for
TLS (certificate and SNI).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiosmtplib

from omnirelay.channels.base import (
    Outbound,
    PermanentError,
    ProviderEvent,
    RetriableError,
    SendResult,
    register,
)
from omnirelay.channels.smtp import errors
from omnirelay.channels.smtp.addresses import BadAddress, normalize
from omnirelay.channels.smtp.attachments import Fetcher
from omnirelay.channels.smtp.compose import build, provider_id
from omnirelay.channels.smtp.config import SmtpConfig, cached
from omnirelay.net.ssrf import IPAddress, IPNetwork, UnsafeURL, allowed_networks, check_host

log = logging.getLogger(__name__)
IDLE_SECONDS = 20.0  # below the usual server idle timeouts (RFC 5321 asks 5 minutes)


@dataclass
class _Pool:
    slots: asyncio.Semaphore
    idle: list[tuple[aiosmtplib.SMTP, float]] = field(default_factory=list)


class SmtpAdapter:
    name = "smtp"
    channels: tuple[str, ...] = ("email",)

    def __init__(
        self,
        *,
        allowed_networks: Sequence[IPNetwork] | None = None,
        media_dir: str | None = None,
    ) -> None:
        # None: the server's settings, read when first needed (as the Cloud API adapter).
        self.allowed_networks: tuple[IPNetwork, ...] | None = (
            None if allowed_networks is None else tuple(allowed_networks)
        )
        self.media_dir = media_dir
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pools: dict[tuple[Any, ...], _Pool] = {}
        self._fetcher: Fetcher | None = None

    # -- settings --

    def validate_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        return SmtpConfig.from_settings(settings, self._allowed()).as_settings()

    # -- sending --

    def send(self, message: Outbound) -> SendResult:
        try:
            config = cached(message.settings)
        except ValueError as exc:  # stored before a rule tightened: fix the connection
            raise PermanentError(f"smtp settings: {exc}", status="error", code=1016) from None
        attachments = (message.extra or {}).get("attachments") or []
        budget = config.timeout * (4 if attachments else 3)  # connect, TLS, AUTH, DATA
        future = asyncio.run_coroutine_threadsafe(self._send(config, message), self._start())
        try:
            return future.result(timeout=budget)
        except TimeoutError:
            future.cancel()
            raise RetriableError(f"SMTP send took over {budget:g} s") from None

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._close_all(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()

    def __enter__(self) -> SmtpAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the loop --

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=self._run, args=(loop,), name="smtp-adapter", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        loop.call_later(IDLE_SECONDS, self._reap)
        loop.run_forever()

    def _reap(self) -> None:
        now = time.monotonic()
        for pool in self._pools.values():
            keep = []
            for smtp, since in pool.idle:
                if now - since > IDLE_SECONDS:
                    smtp.close()
                else:
                    keep.append((smtp, since))
            pool.idle = keep
        if self._loop is not None:
            self._loop.call_later(IDLE_SECONDS, self._reap)

    async def _close_all(self) -> None:
        for pool in self._pools.values():
            for smtp, _ in pool.idle:
                smtp.close()
            pool.idle = []
        if self._fetcher is not None:
            await self._fetcher.close()
        # Semaphores and sessions belong to this loop: a later loop makes its own.
        self._pools.clear()
        self._fetcher = None

    def _allowed(self) -> tuple[IPNetwork, ...]:
        if self.allowed_networks is None:
            from omnirelay.config import get_settings

            self.allowed_networks = allowed_networks(get_settings())
        return self.allowed_networks

    def _media_dir(self) -> str:
        if self.media_dir is None:
            from omnirelay.config import get_settings

            self.media_dir = get_settings().media_dir
        return self.media_dir

    # -- one message, on the loop --

    async def _send(self, config: SmtpConfig, message: Outbound) -> SendResult:
        extra = message.extra or {}
        try:
            to = normalize(extra.get("email"))
        except BadAddress as exc:
            raise PermanentError(f"recipient: {exc}", code=errors.RECIPIENT_ERROR) from None
        items = extra.get("attachments") or []
        if self._fetcher is None:
            self._fetcher = Fetcher(self._allowed(), self._media_dir())
        files = await self._fetcher.fetch_all(items, config.timeout) if items else []
        pid = provider_id(message.message_id, config)
        data = build(message, config, files, pid)
        await self._deliver(config, to, data, pid)
        # SMTP has no positive delivery report: the message counts as delivered when the
        # server took it and no bounce came within the bounce window (docs/channels/email.md).
        window = min(config.bounce_window, message.ttl / 2)
        return SendResult(pid, (ProviderEvent("status", window, status="delivered"),))

    async def _deliver(self, config: SmtpConfig, to: str, data: bytes, pid: str) -> None:
        pool = self._pool(config)
        for reused_try in (True, False):
            async with (
                pool.slots,
                self._connection(config, pool, reuse=reused_try) as (
                    smtp,
                    reused,
                ),
            ):
                try:
                    await self._transaction(smtp, config, to, data, pid)
                    return
                except aiosmtplib.SMTPServerDisconnected:
                    # A pooled connection the server closed while idle: once more, fresh.
                    if not reused:
                        raise RetriableError("SMTP server closed the connection") from None
                    smtp.close()
                    continue
        raise RetriableError("SMTP server closed the connection")

    async def _transaction(
        self, smtp: aiosmtplib.SMTP, config: SmtpConfig, to: str, data: bytes, pid: str
    ) -> None:
        mail_options: list[str] = []
        rcpt_options: list[str] = []
        if smtp.supports_extension("dsn"):
            # Ask for delivery status notifications: failures and, where the path
            # supports it, successes come back to the listener, matched by ENVID.
            mail_options = ["RET=HDRS", f"ENVID={_xtext(pid)}"]
            rcpt_options = ["NOTIFY=SUCCESS,FAILURE", f"ORCPT=rfc822;{_xtext(to)}"]
        try:
            await smtp.sendmail(
                config.envelope_from,
                [to],
                data,
                mail_options=mail_options,
                rcpt_options=rcpt_options,
            )
        except aiosmtplib.SMTPSenderRefused as exc:
            raise errors.for_reply(exc.code, exc.message, "mail") from None
        except aiosmtplib.SMTPRecipientsRefused as exc:
            first = exc.recipients[0]
            raise errors.for_reply(first.code, first.message, "rcpt") from None
        except aiosmtplib.SMTPRecipientRefused as exc:
            raise errors.for_reply(exc.code, exc.message, "rcpt") from None
        except aiosmtplib.SMTPDataError as exc:
            raise errors.for_reply(exc.code, exc.message, "data") from None
        except aiosmtplib.SMTPServerDisconnected:
            raise
        except aiosmtplib.SMTPResponseException as exc:
            raise errors.for_reply(exc.code, exc.message, "data") from None
        except (aiosmtplib.SMTPTimeoutError, TimeoutError, OSError) as exc:
            raise RetriableError(f"SMTP send failed: {exc.__class__.__name__}: {exc}") from None

    def _pool(self, config: SmtpConfig) -> _Pool:
        key = _pool_key(config)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(asyncio.Semaphore(config.max_connections))
        return pool

    @contextlib.asynccontextmanager
    async def _connection(
        self, config: SmtpConfig, pool: _Pool, *, reuse: bool
    ) -> AsyncIterator[tuple[aiosmtplib.SMTP, bool]]:
        smtp: aiosmtplib.SMTP | None = None
        reused = False
        while reuse and pool.idle:
            candidate, since = pool.idle.pop()
            if candidate.is_connected and time.monotonic() - since < IDLE_SECONDS:
                smtp, reused = candidate, True
                break
            candidate.close()
        if smtp is None:
            smtp = await self._connect(config)
        ok = False
        try:
            yield smtp, reused
            ok = True
        finally:
            if ok and smtp.is_connected:
                pool.idle.append((smtp, time.monotonic()))
            else:
                smtp.close()

    async def _connect(self, config: SmtpConfig) -> aiosmtplib.SMTP:
        port = config.effective_port
        address = await self._check(config.host, port)
        sock = socket.socket(
            socket.AF_INET6 if address.version == 6 else socket.AF_INET, socket.SOCK_STREAM
        )
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (str(address), port)), config.timeout)
        except (OSError, TimeoutError) as exc:
            sock.close()
            raise RetriableError(
                f"SMTP connect to {config.host}:{port} failed: {exc.__class__.__name__}"
            ) from None
        smtp = aiosmtplib.SMTP(
            hostname=config.host,  # for TLS only: the socket is already connected
            sock=sock,
            use_tls=config.security == "tls",
            start_tls=config.security == "starttls",
            tls_context=config.tls_context(),
            timeout=config.timeout,
            local_hostname=config.local_hostname or await asyncio.to_thread(_ehlo_name),
        )
        try:
            await smtp.connect()
            if config.username is not None and config.password is not None:
                await smtp.login(config.username, config.password)
        except BaseException as exc:
            smtp.close()
            raise _connect_error(exc, config) from None
        return smtp

    async def _check(self, host: str, port: int) -> IPAddress:
        """The SSRF guard, now (DNS may have changed since the settings were stored)."""
        try:
            return await asyncio.to_thread(check_host, host, port, self._allowed(), "host")
        except UnsafeURL as exc:
            if exc.message.startswith("url unreachable"):
                raise RetriableError(f"SMTP host {host}: {exc.message}") from None
            raise PermanentError(
                f"SMTP host {host}: {exc.message}", status="error", code=errors.SETTINGS_ERROR
            ) from None


def _connect_error(exc: BaseException, config: SmtpConfig) -> BaseException:
    """What a failure between the TCP connect and a logged-in session means."""
    if isinstance(exc, RetriableError | PermanentError | asyncio.CancelledError):
        return exc
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return errors.for_reply(exc.code, exc.message, "auth")
    if isinstance(exc, aiosmtplib.SMTPConnectResponseError):
        return errors.for_reply(exc.code, exc.message, "connect")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return errors.for_reply(exc.code, exc.message, "auth" if config.username else "connect")
    cause = exc.__cause__ or exc.__context__
    for candidate in (exc, cause):
        if isinstance(candidate, ssl.SSLError):
            return errors.for_tls(candidate)
    if isinstance(exc, aiosmtplib.SMTPException) and "STARTTLS" in str(exc).upper():
        return errors.unsupported(f"STARTTLS is not offered ({exc})")
    if isinstance(exc, aiosmtplib.SMTPException) and "auth" in str(exc).lower():
        return errors.unsupported(f"no usable AUTH method ({exc})")
    if isinstance(exc, aiosmtplib.SMTPException | OSError | TimeoutError):
        return RetriableError(f"SMTP session with {config.host} failed: {exc}")
    return exc


@functools.lru_cache(maxsize=1)
def _ehlo_name() -> str:
    # The machine's name for EHLO, looked up once per process (aiosmtplib would ask the
    # resolver at every connect).
    return socket.getfqdn()


def _pool_key(config: SmtpConfig) -> tuple[Any, ...]:
    return (
        config.host,
        config.effective_port,
        config.security,
        config.username,
        config.password,
        config.tls_verify,
        config.ca_cert,
        config.local_hostname,
    )


def _xtext(value: str) -> str:
    """RFC 3461 xtext: '+', '=' and anything outside printable ASCII as +HH."""
    return "".join(f"+{ord(c):02X}" if c in "+=" or not 33 <= ord(c) <= 126 else c for c in value)


register(SmtpAdapter())
