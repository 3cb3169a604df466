"""Attachments of an email step: fetched from their URLs through the SSRF guard (aiohttp
with the guarded connector), or read from omnirelay's own media storage when the URL is a
local media link (``.../media/files/<token>/<name>``, docs/api/platform.md) so a file
uploaded to this server attaches without a request to itself."""

from __future__ import annotations

import asyncio
import mimetypes
import posixpath
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp

from omnirelay.channels.base import PermanentError, RetriableError
from omnirelay.channels.smtp.compose import Attachment
from omnirelay.net.connectors import GuardedConnector
from omnirelay.net.ssrf import IPNetwork, UnsafeURL

MAX_ATTACHMENTS = 10
MAX_BYTES = 10 * 1024 * 1024  # one file (seed 004's media limit)
MAX_TOTAL = 15 * 1024 * 1024  # all of them: base64 makes ~20 MB, under common 25 MB limits
MEDIA_ERROR = 1036  # Wrong image (media) URL
_MEDIA_LINK = re.compile(r"/media/files/([A-Za-z0-9_-]{22,64})/([^/]+)$")
TYPES = mimetypes.MimeTypes(filenames=())  # the built-in table: the same on every machine


class Fetcher:
    """Lives on the adapter's event loop; one HTTP session for every fetch."""

    def __init__(self, allowed: Sequence[IPNetwork], media_dir: str | None) -> None:
        self.allowed = tuple(allowed)
        self.media_dir = media_dir
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch_all(self, items: Sequence[Any], timeout: float) -> list[Attachment]:
        if len(items) > MAX_ATTACHMENTS:
            raise PermanentError(f"at most {MAX_ATTACHMENTS} attachments", code=MEDIA_ERROR)
        out = await asyncio.gather(*(self.fetch(item, timeout) for item in items))
        if sum(len(a.data) for a in out) > MAX_TOTAL:
            raise PermanentError(
                f"attachments are over {MAX_TOTAL // (1024 * 1024)} MB together",
                code=MEDIA_ERROR,
            )
        return list(out)

    async def fetch(self, item: Any, timeout: float) -> Attachment:
        url = item.get("url") if isinstance(item, dict) else None
        if not isinstance(url, str):
            raise PermanentError("an attachment needs a url", code=MEDIA_ERROR)
        given = item.get("filename")
        name = _filename(given if isinstance(given, str) and given.strip() else None, url)
        local = self._local(url)
        if local is not None:
            data = await asyncio.to_thread(_read, local)
            return Attachment(name, _type(name, None), data)
        data, header_type = await self._download(url, timeout)
        return Attachment(name, _type(name, header_type), data)

    def _local(self, url: str) -> Path | None:
        if not self.media_dir:
            return None
        match = _MEDIA_LINK.search(urlsplit(url).path)
        if match is None:
            return None
        from omnirelay.media.storage import LocalStorage

        return LocalStorage(self.media_dir).find(match[1], unquote(match[2]))

    async def _download(self, url: str, timeout: float) -> tuple[bytes, str | None]:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=GuardedConnector(self.allowed, limit=32),
                timeout=aiohttp.ClientTimeout(total=timeout),
            )
        try:
            async with self._session.get(url, max_redirects=3) as answer:
                if answer.status >= 500 or answer.status in (408, 429):
                    raise RetriableError(f"attachment {url}: HTTP {answer.status}")
                if answer.status >= 300:
                    raise PermanentError(
                        f"attachment {url}: HTTP {answer.status}", code=MEDIA_ERROR
                    )
                if (answer.content_length or 0) > MAX_BYTES:
                    raise _too_big(url)
                data = bytearray()
                async for chunk in answer.content.iter_chunked(65536):
                    data += chunk
                    if len(data) > MAX_BYTES:
                        raise _too_big(url)
                return bytes(data), answer.headers.get("Content-Type")
        except UnsafeURL as exc:
            if exc.message.startswith("url unreachable"):
                raise RetriableError(f"attachment {url}: {exc.message}") from None
            raise PermanentError(f"attachment {url}: {exc.message}", code=MEDIA_ERROR) from None
        except aiohttp.InvalidURL:
            raise PermanentError(f"attachment {url}: invalid URL", code=MEDIA_ERROR) from None
        except aiohttp.TooManyRedirects:
            raise PermanentError(
                f"attachment {url}: too many redirects", code=MEDIA_ERROR
            ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RetriableError(f"attachment {url}: {exc.__class__.__name__}") from None


def _too_big(url: str) -> PermanentError:
    return PermanentError(
        f"attachment {url} is over {MAX_BYTES // (1024 * 1024)} MB", code=MEDIA_ERROR
    )


def _read(path: Path) -> bytes:
    if path.stat().st_size > MAX_BYTES:
        raise _too_big(path.name)
    return path.read_bytes()


def _filename(given: str | None, url: str) -> str:
    name = given or posixpath.basename(unquote(urlsplit(url).path)) or "attachment"
    name = "".join(c for c in name.replace("\\", "/").rsplit("/", 1)[-1] if ord(c) >= 0x20)
    return name[:200] or "attachment"


def _type(name: str, header: str | None) -> str:
    guessed = TYPES.guess_type(name, strict=False)[0]
    if guessed:
        return guessed
    if header:
        kind = header.split(";", 1)[0].strip().lower()
        if re.fullmatch(r"[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*", kind):
            return kind
    return "application/octet-stream"
