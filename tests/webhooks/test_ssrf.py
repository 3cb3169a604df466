"""The SSRF guard: refusals at validation time and again at delivery time."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from omnirelay.db import Database
from omnirelay.testing.receiver import Receiver
from omnirelay.webhooks.deliverer import Deliverer
from omnirelay.webhooks.models import WebhookEvent
from omnirelay.webhooks.ssrf import UnsafeURL, parse_networks, resolve, validate_url
from tests.webhooks.conftest import LOOPBACK, wait_for


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "http://172.16.5.4/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://[::1]/hook",
        "http://[fd00::1]/hook",
        "http://[::ffff:10.0.0.1]/hook",
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",  # a name that resolves to loopback
    ],
)
def test_private_and_loopback_refused_by_default(url: str) -> None:
    with pytest.raises(UnsafeURL) as err:
        validate_url(url)
    assert err.value.code == "unsafe_url" and "not allowed" in err.value.message


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/x", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("http://user:pw@127.0.0.1/", "credentials"),
        ("http:///nohost", "no host"),
        ("http://127.0.0.1:99999/", "url invalid"),
        ("http://no-such-host.invalid/", "does not resolve"),
    ],
)
def test_malformed_urls(url: str, reason: str) -> None:
    with pytest.raises(UnsafeURL) as err:
        validate_url(url, parse_networks("127.0.0.0/8"))
    assert reason in err.value.message


def test_allowlist_admits_loopback_and_pins_the_address() -> None:
    target = resolve("http://localhost:8123/a?b=1", parse_networks("127.0.0.0/8,::1/128"))
    assert str(target.address) in ("127.0.0.1", "::1")
    assert target.host == "localhost" and target.port == 8123
    assert target.pinned_url.endswith(":8123/a?b=1")
    assert "localhost" not in target.pinned_url


def test_delivery_refuses_loopback_when_not_allowed(
    db: Database,
    receiver: Receiver,
    emit: Callable[..., str],
    event_state: Callable[[str], WebhookEvent],
) -> None:
    # The URL got in (say, allowed when it was set); the deliverer checks it again.
    d = Deliverer(db, allowed_networks=(), timeout=1.0)
    d.start()
    try:
        event_id = emit(receiver.url())
        wait_for(lambda: event_state(event_id).status == "failed")
    finally:
        d.stop()
    assert receiver.received() == []
    assert "not allowed" in (event_state(event_id).last_error or "")
    assert event_state(event_id).attempts == 1  # never retried


def test_hostname_resolving_to_loopback_refused_at_delivery(
    db: Database,
    receiver: Receiver,
    emit: Callable[..., str],
    event_state: Callable[[str], WebhookEvent],
) -> None:
    d = Deliverer(db, allowed_networks=(), timeout=1.0)
    d.start()
    try:
        event_id = emit(f"http://localhost:{receiver.port}/hook")
        wait_for(lambda: event_state(event_id).status == "failed")
    finally:
        d.stop()
    time.sleep(0.2)
    assert receiver.received() == []


def test_allowed_deliverer_reaches_loopback(
    db: Database,
    receiver: Receiver,
    emit: Callable[..., str],
    event_state: Callable[[str], WebhookEvent],
) -> None:
    d = Deliverer(db, allowed_networks=LOOPBACK, timeout=1.0)
    d.start()
    try:
        event_id = emit(f"http://localhost:{receiver.port}/hook")
        wait_for(lambda: event_state(event_id).status == "delivered")
    finally:
        d.stop()
    assert receiver.received()[0].headers["host"] == f"localhost:{receiver.port}"
