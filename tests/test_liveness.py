"""Readiness from broker evidence, the probe thread and the idle wait, with
fake probes and polls (tests/integration/test_liveness.py freezes a real broker)."""

from __future__ import annotations

import threading
import time

import pytest
from prometheus_client import REGISTRY

from screener.errors import ConfigError
from screener.settings import Settings, load_settings
from screener.stream import metrics
from screener.stream.liveness import BrokerWatch, IdleWait


def _ready_gauge() -> float | None:
    return REGISTRY.get_sample_value("screener_worker_ready")


def _until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_ready_needs_the_loop_and_a_recent_broker_answer():
    health = metrics.Health(broker_timeout_s=0.2)
    assert health.readiness() == (False, "starting")
    health.set(True, "ready")
    ready, why = health.readiness()
    assert not ready and why == "broker has not answered for over 0.2 s"  # never answered
    assert _ready_gauge() == 0
    health.broker_answered()
    assert health.readiness() == (True, "ready")
    health.publish()
    assert _ready_gauge() == 1
    time.sleep(0.3)
    assert health.readiness() == (False, "broker has not answered for over 0.2 s")
    health.broker_answered()
    health.set(False, "waiting for partition assignment")  # the loop's own reason comes first
    assert health.readiness() == (False, "waiting for partition assignment")


def test_the_watch_probes_an_idle_worker_and_keeps_it_ready():
    health = metrics.Health(broker_timeout_s=1)
    health.set(True, "ready")
    calls: list[float] = []
    watch = BrokerWatch(health, lambda timeout: calls.append(timeout)).start()
    try:
        time.sleep(2.5)  # more than the timeout, with nothing but the probe as evidence
        assert health.readiness() == (True, "ready")
        assert _ready_gauge() == 1
        assert 2 <= len(calls) <= 12 and all(t == 0.5 for t in calls)  # every quarter of the timeout, half of it each
    finally:
        watch.stop()


def test_the_watch_does_not_probe_a_busy_worker():
    health = metrics.Health(broker_timeout_s=1)
    calls: list[float] = []
    watch = BrokerWatch(health, lambda timeout: calls.append(timeout)).start()
    try:
        for _ in range(30):  # the loop's own answers arrive more often than a quarter of the timeout
            health.broker_answered()
            time.sleep(0.05)
        assert calls == []
    finally:
        watch.stop()


@pytest.mark.parametrize("probe", ["raises", "hangs"])
def test_a_silent_broker_turns_readiness_off_within_the_timeout(probe):
    health = metrics.Health(broker_timeout_s=1)
    health.broker_answered()
    health.set(True, "ready")
    assert _ready_gauge() == 1
    release = threading.Event()

    def silent(timeout: float) -> None:
        if probe == "raises":
            raise TimeoutError("request timed out")
        release.wait(30)  # a probe whose own timeout did not work

    watch = BrokerWatch(health, silent).start()
    started = time.monotonic()
    try:
        # nobody but the watch publishes: the gauge (summed by the supervisor) must follow too
        assert _until(lambda: _ready_gauge() == 0, timeout=3)
        assert 1.0 <= time.monotonic() - started < 2.0
        assert health.readiness()[1] == "broker has not answered for over 1 s"
    finally:
        release.set()
        watch.stop()


def test_an_empty_poll_that_burns_cpu_is_throttled_until_the_broker_answers():
    health = metrics.Health()
    stop = threading.Event()
    idle = IdleWait(health, poll_timeout_ms=100, stop=stop)

    def spinning_poll(timeout_ms: int) -> None:  # kafka-python 3 against a frozen broker
        deadline = time.monotonic() + timeout_ms / 1000
        while time.monotonic() < deadline:
            pass

    for _ in range(2):
        spinning_poll(idle.timeout_ms())
        idle.after(False)
    assert idle.throttled_since is not None and idle.timeout_ms() == 0
    started, cpu = time.monotonic(), time.process_time()
    for _ in range(3):
        spinning_poll(idle.timeout_ms())  # returns at once now
        idle.after(False)  # and the wait is ours, asleep
    assert time.monotonic() - started >= 0.3 and time.process_time() - cpu < 0.1
    health.broker_answered()
    idle.timeout_ms()
    idle.after(False)
    assert idle.throttled_since is None and idle.timeout_ms() == 100


def test_a_poll_that_waits_asleep_or_returns_records_is_not_throttled():
    health = metrics.Health()
    idle = IdleWait(health, poll_timeout_ms=60, stop=threading.Event())
    for _ in range(4):
        time.sleep(idle.timeout_ms() / 1000)
        idle.after(False)
    assert idle.throttled_since is None
    idle.throttled_since = time.monotonic()
    idle.timeout_ms()
    idle.after(True)  # records: the client works
    assert idle.throttled_since is None


def test_an_empty_revocation_is_no_rebalance():
    def revoked() -> float:
        return REGISTRY.get_sample_value("screener_rebalances_total", {"kind": "revoked"}) or 0.0

    before = revoked()
    metrics.count_rebalance("revoked", set())  # kafka-python on a member's first join
    assert revoked() == before
    metrics.count_rebalance("revoked", {("posts", 0)})
    assert revoked() == before + 1


def test_broker_timeout_setting():
    assert Settings().broker_timeout_s == 10
    assert load_settings({"broker_timeout_s": 3}).broker_timeout_s == 3
    assert load_settings({}, env={"SCREENER_BROKER_TIMEOUT_S": "4"}).broker_timeout_s == 4
    with pytest.raises(ConfigError, match="broker_timeout_s: must be at least 1, not 0"):
        Settings(broker_timeout_s=0)
