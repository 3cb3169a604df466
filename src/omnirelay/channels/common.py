"""What the messenger adapters (Viber, VK, ...) share: settings checks, reading a
provider's JSON answer, and the pacer that holds a provider's documented rate limit."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from omnirelay.channels.base import RetriableError

MAX_TIMEOUT = 120.0


def base_url(settings: Mapping[str, Any], default: str) -> str:
    url = settings.get("base_url", default)
    if not isinstance(url, str):
        raise ValueError("base_url must be a string")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("base_url must be an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("base_url must not carry credentials")
    if parts.query or parts.fragment:
        raise ValueError("base_url must not have a query or a fragment")
    try:
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        raise ValueError("base_url has an invalid port") from None
    return url.strip().rstrip("/")


def number(
    settings: Mapping[str, Any], key: str, default: float, *, low: float, high: float
) -> float:
    """A number setting in [low, high] (low itself allowed only when it is 0: "off")."""
    value = settings.get(key, default)
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or not (low <= value <= high)
        or (value == low and low != 0)
    ):
        raise ValueError(f"{key} must be a number in {'[' if low == 0 else '('}{low:g}, {high:g}]")
    return float(value)


def secret(
    settings: Mapping[str, Any], key: str, *, required: bool, most: int = 1024
) -> str | None:
    """A token or secret: printable ASCII without spaces (it goes into a header)."""
    value = settings.get(key)
    if value is None or value == "":
        if required:
            raise ValueError(f"{key} is required")
        return None
    if not isinstance(value, str) or len(value) > most:
        raise ValueError(f"{key} must be a string of at most {most} characters")
    if not all(0x21 <= ord(c) <= 0x7E for c in value):
        raise ValueError(f"{key} must be printable ASCII without spaces")
    return value


def text_setting(settings: Mapping[str, Any], key: str, *, most: int) -> str | None:
    value = settings.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > most:
        raise ValueError(f"{key} must be a string of at most {most} characters")
    return value


def only_keys(settings: Any, keys: tuple[str, ...], provider: str) -> Mapping[str, Any]:
    if not isinstance(settings, Mapping):
        raise ValueError("settings must be an object")
    unknown = sorted(set(settings) - set(keys))
    if unknown:
        raise ValueError(f"unknown {provider} setting {unknown[0]!r}")
    return settings


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def json_of(answer: httpx.Response) -> Any:
    """The answer's JSON, or None when it is not JSON (a proxy's page, garbage)."""
    try:
        return json.loads(answer.content)
    except (ValueError, UnicodeDecodeError):
        return None


class Pacer:
    """Spaces a provider's requests per key (a token, a group) at most ``rate`` a second,
    across the dispatch pool's threads of this process. The threads of one key go one at
    a time: each waits for the key and sleeps until its slot; a thread the machine woke
    too late restarts the slots from when it went (no burst behind it). ``hold`` pushes
    the next slot back (a 429's Retry-After). ``most``: a request whose slot (behind the
    ones already waiting) is further away is retried later instead of holding a thread."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._next: dict[str, float] = {}
        self._keys: dict[str, threading.Lock] = {}
        self._queued: dict[str, int] = {}  # threads waiting for each key's slot
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def _key(self, key: str) -> threading.Lock:
        with self._lock:
            lock = self._keys.get(key)
            if lock is None:
                if len(self._keys) > 10_000:  # keys of connections gone: start afresh
                    self._keys, self._next, self._queued = {}, {}, {}
                lock = self._keys[key] = threading.Lock()
            return lock

    def wait(self, key: str, rate: float, *, most: float | None = None) -> float:
        """Block until this request may go; returns the seconds waited. RetriableError
        (its delay: until the slot) when the slot is more than ``most`` seconds away."""
        if rate <= 0:
            return 0.0
        lock = self._key(key)
        with self._lock:
            queued = self._queued.get(key, 0)
            if most is not None:
                now = self._clock()
                ahead = max(now, self._next.get(key, now)) + queued / rate - now
                if ahead > most:
                    raise RetriableError(f"rate limit of {rate:g}/s", delay=ahead)
            self._queued[key] = queued + 1
        try:
            return self._take(key, lock, rate)
        finally:
            with self._lock:
                self._queued[key] = max(0, self._queued.get(key, 1) - 1)

    def _take(self, key: str, lock: threading.Lock, rate: float) -> float:
        with lock:
            now = self._clock()
            at = self._next.get(key, now)
            waited = max(0.0, at - now)
            if waited > 0:
                self._sleep(waited)
            # Slots stay on a grid 1/rate apart while each request goes within its slot
            # (a thread woken a little late costs no rate, and no second can hold more
            # than rate + 1); one that went later than its whole slot restarts the grid
            # from when it went, so no burst follows it.
            interval, went = 1.0 / rate, self._clock()
            ideal = max(at, now) + interval
            self._next[key] = ideal if went < ideal else went + interval
        return waited

    def hold(self, key: str, seconds: float) -> None:
        with self._key(key):
            until = self._clock() + max(0.0, seconds)
            self._next[key] = max(self._next.get(key, 0.0), until)
