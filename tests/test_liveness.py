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
        assert _until(lambda: _ready_gauge() == 0, timeout=5)
        assert 1.0 <= time.monotonic() - started < 3.0  # the timeout, and the publisher's turn (slack for a busy machine)
        assert health.readiness()[1] == "broker has not answered for over 1 s"
    finally:
        release.set()
        watch.stop()


def test_polls_stop_blocking_while_the_broker_is_silent_and_the_wait_is_ours():
    health = metrics.Health(broker_timeout_s=1)
    idle = IdleWait(health, poll_timeout_ms=100, stop=threading.Event())
    assert idle.timeout_ms() == 100  # no answer yet: nothing to spin on
    health.broker_answered()
    assert idle.timeout_ms() == 100
    time.sleep(0.6)  # silent for more than half the timeout (three probe intervals would be 0.75 s)
    assert idle.timeout_ms() == 0
    started, cpu = time.monotonic(), time.process_time()
    for _ in range(3):
        idle.timeout_ms()
        idle.after(False)  # nothing came: the wait is ours, asleep
    assert time.monotonic() - started >= 0.3 and time.process_time() - cpu < 0.1
    started = time.monotonic()
    idle.after(True)  # records: straight on to the next batch
    assert time.monotonic() - started < 0.05
    health.broker_answered()
    assert idle.timeout_ms() == 100 and not idle.throttled


def test_a_well_broker_behind_an_idle_worker_never_throttles_it():
    """The watch lets an idle worker's evidence age about 1.5 probe
    intervals at most; the idle wait starts at three."""
    health = metrics.Health(broker_timeout_s=4)
    watch = BrokerWatch(health, lambda timeout: None).start()
    idle = IdleWait(health, poll_timeout_ms=20, stop=threading.Event())
    try:
        health.broker_answered()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            assert idle.timeout_ms() == 20, health.broker_silence()
            time.sleep(0.02)
    finally:
        watch.stop()


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


@pytest.mark.parametrize("raised, answered", [
    (None, True),
    ("ClusterAuthorizationFailedError", True),  # the broker refused, which is an answer
    ("RequestTimedOutError", False),  # kafka-python's own timeout
    ("KafkaConnectionError", False),
])
def test_the_kafka_python_probe_counts_refusals_as_answers(monkeypatch, raised, answered):
    from kafka import errors

    from screener.stream import liveness

    class Admin:
        def describe_cluster(self) -> dict:
            if raised:
                raise getattr(errors, raised)("from the test")
            return {"cluster_id": "c"}

    monkeypatch.setattr(liveness, "_admin_client", lambda *_: Admin())
    probe = liveness.kafka_python_probe("127.0.0.1:9", {})
    if answered:
        probe(1.0)
    else:
        with pytest.raises(errors.KafkaError):
            probe(1.0)
