"""HTTP connectors that resolve only through the SSRF guard: what is checked is what is
connected to, whether the URL's host is a name or (after the client's own normalisation)
an address literal, which aiohttp would otherwise connect to without asking a resolver."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from typing import Any

from aiohttp import TCPConnector
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from omnirelay.net.ssrf import IPNetwork, UnsafeURL, check_address


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that refuses names resolving to addresses not allowed; the
    connection goes to exactly the addresses it checked (the pin)."""

    def __init__(self, allowed: Sequence[IPNetwork] = ()) -> None:
        self._inner = ThreadedResolver()
        self.allowed = tuple(allowed)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not results:
            raise UnsafeURL(f"url unreachable: {host} does not resolve")
        for result in results:
            check_address(ipaddress.ip_address(result["host"].split("%", 1)[0]), self.allowed)
        return results

    async def close(self) -> None:
        await self._inner.close()


class GuardedConnector(TCPConnector):
    """A TCPConnector whose every peer passed the guard: names through
    ``GuardedResolver``, literals checked here (aiohttp skips the resolver for them)."""

    def __init__(self, allowed: Sequence[IPNetwork] = (), **kwargs: Any) -> None:
        self.allowed = tuple(allowed)
        super().__init__(resolver=GuardedResolver(self.allowed), **kwargs)

    async def _resolve_host(self, host: str, port: int, traces: Any = None) -> list[ResolveResult]:
        try:
            literal = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
        except ValueError:
            literal = None
        if literal is not None:
            check_address(literal, self.allowed)
        return await super()._resolve_host(host, port, traces=traces)
