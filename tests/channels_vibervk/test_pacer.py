"""The pacer that holds a provider's rate limit, on a clock the test moves (no timing)."""

from __future__ import annotations

import pytest

from omnirelay.channels.base import RetriableError
from omnirelay.channels.common import Pacer


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_requests_of_one_key_are_spaced_at_the_rate_and_keys_are_independent() -> None:
    clock = FakeClock()
    pacer = Pacer(clock, clock.sleep)
    assert [pacer.wait("a", 20) for _ in range(3)] == pytest.approx([0.0, 0.05, 0.05])
    assert pacer.wait("b", 20) == 0.0  # another community is not held back
    assert pacer.wait("a", 0) == 0.0  # off


def test_a_late_request_moves_the_schedule_and_hold_pushes_it_back() -> None:
    clock = FakeClock()
    pacer = Pacer(clock, clock.sleep)
    pacer.wait("a", 10)
    clock.now += 1.0  # the next one comes late: it goes at once, and no burst follows it
    assert pacer.wait("a", 10) == 0.0
    assert abs(pacer.wait("a", 10) - 0.1) < 1e-9
    pacer.hold("a", 5.0)  # a 429 with Retry-After: 5
    assert abs(pacer.wait("a", 10) - 5.0) < 1e-9


def test_most_retries_a_request_whose_slot_is_further_behind_the_queue() -> None:
    clock = FakeClock()
    pacer = Pacer(clock, clock.sleep)
    pacer.wait("bot", 1, most=2.0)  # now
    pacer.wait("bot", 1, most=2.0)  # a second later: within 2 s
    with pytest.raises(RetriableError) as later:
        pacer.hold("bot", 3.0)  # a 429's Retry-After: the next slot 3 s away
        pacer.wait("bot", 1, most=2.0)
    assert later.value.delay == pytest.approx(3.0)
    assert pacer.wait("bot", 1) == pytest.approx(3.0)  # without ``most`` it waits
