"""The one HTTP client of provider adapters (WhatsApp Cloud, Telegram, Viber, VK, ...).

A request to the provider's own public host goes out as it is. A request to any other
base URL (a tenant's proxy, a self-hosted Bot API server, a local peer in the tests) is a
URL a tenant can aim: every address its host resolves to is checked by the SSRF guard
now, and the request connects to the checked address (a second DNS answer cannot move
it), with the original ``Host`` header and TLS server name. Redirects are never followed.

Transport failures become ``RetriableError``; what the provider answered is the
adapter's to read (it knows the provider's error shapes).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from omnirelay.channels.base import PermanentError, RetriableError
from omnirelay.net.ssrf import IPNetwork, UnsafeURL, allowed_networks, resolve


@dataclass(frozen=True)
class Endpoint:
    url: str
    headers: dict[str, str]
    extensions: dict[str, Any]
    pinned: bool


class ProviderHTTP:
    """Pooled clients (one unpinned for the provider's own hosts, one pinned for checked
    addresses), thread-safe: the dispatch pool calls adapters from many threads."""

    def __init__(
        self,
        provider: str,
        *,
        trusted: Sequence[str] = (),
        settings_error_code: int = 1000,
        allowed_networks: Sequence[IPNetwork] | None = None,
    ) -> None:
        # ``trusted``: the provider's own base URLs (e.g. "https://api.telegram.org").
        self.provider = provider
        self.trusted = tuple(t.rstrip("/") for t in trusted)
        self.settings_error_code = settings_error_code
        # None: the server's OMNIRELAY_WEBHOOK_ALLOWED_NETWORKS, read when first needed;
        # tests and apps with their own Settings assign it.
        self.allowed_networks: tuple[IPNetwork, ...] | None = (
            None if allowed_networks is None else tuple(allowed_networks)
        )
        self._clients: dict[bool, httpx.Client] = {}
        self._lock = threading.Lock()

    # -- checks --

    def networks(self) -> tuple[IPNetwork, ...]:
        if self.allowed_networks is None:
            from omnirelay.config import get_settings

            self.allowed_networks = allowed_networks(get_settings())
        return self.allowed_networks

    def is_trusted(self, url: str) -> bool:
        return any(url == t or url.startswith(t + "/") for t in self.trusted)

    def validate_base_url(self, base_url: str) -> None:
        """For ``validate_settings``: ValueError naming the cause when the guard refuses."""
        if self.is_trusted(base_url):
            return
        try:
            resolve(base_url, self.networks())
        except UnsafeURL as exc:
            raise ValueError(f"base_url {exc.message}") from None

    def endpoint(self, url: str) -> Endpoint:
        if self.is_trusted(url):
            return Endpoint(url, {}, {}, pinned=False)
        try:
            target = resolve(url, self.networks())
        except UnsafeURL as exc:
            if exc.message.startswith("url unreachable"):
                raise RetriableError(f"base_url: {exc.message}") from None
            raise PermanentError(
                f"base_url: {exc.message}", status="error", code=self.settings_error_code
            ) from None
        default_port = 443 if target.scheme == "https" else 80
        host = f"[{target.host}]" if ":" in target.host else target.host
        if target.port != default_port:
            host = f"{host}:{target.port}"
        extensions: dict[str, Any] = {}
        if target.scheme == "https":
            extensions["sni_hostname"] = target.host
        return Endpoint(target.pinned_url, {"Host": host}, extensions, pinned=True)

    # -- requests --

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float,
        **kwargs: Any,
    ) -> httpx.Response:
        """``kwargs``: what httpx takes for a body (``json``, ``data``, ``files``,
        ``content``) and ``params``."""
        endpoint = self.endpoint(url)
        try:
            return self._client(endpoint.pinned).request(
                method,
                endpoint.url,
                headers={**endpoint.headers, **(headers or {})},
                timeout=timeout,
                extensions=endpoint.extensions,
                **kwargs,
            )
        except httpx.TimeoutException as exc:
            # The provider may have taken the message before the timeout: a retry can
            # send it twice (at-least-once, as with every HTTP API without idempotency).
            raise RetriableError(f"{self.provider} timed out: {type(exc).__name__}") from None
        except httpx.TransportError as exc:
            raise RetriableError(
                f"{self.provider} unreachable: {type(exc).__name__}: {exc}"
            ) from None

    def _client(self, pinned: bool) -> httpx.Client:
        with self._lock:
            client = self._clients.get(pinned)
            if client is None:
                # Proxies from the environment apply to the provider's own hosts only.
                client = httpx.Client(follow_redirects=False, trust_env=not pinned)
                self._clients[pinned] = client
            return client

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()
