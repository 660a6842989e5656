"""``screener run --guarantee exactly-once`` against Tansu: each batch is one
Kafka transaction, so after ``kill -9`` mid-stream and a restart a
``read_committed`` consumer of the events topic sees every expected event
exactly once (confluent-kafka only: the option needs its transactions)."""

from __future__ import annotations

import time

import orjson
import pytest

from .conftest import committed, produce
from .test_worker import stream

pytestmark = pytest.mark.integration

ck = pytest.importorskip("confluent_kafka")


def read_committed(bootstrap: str, topic: str, until, timeout: float = 90.0) -> list:
    """Values of ``topic`` as a read_committed consumer sees them, until ``until(values)`` or timeout."""
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{time.time_ns()}",
                            "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                            "enable.auto.commit": False})
    consumer.assign([ck.TopicPartition(topic, 0, 0)])
    values: list = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(values):
            for m in consumer.consume(500, 0.5):
                if m.error() is None:
                    values.append(m.value())
    finally:
        consumer.close()
    return values


def post_ids(values: list) -> list:
    return [orjson.loads(v)["post_id"] for v in values if orjson.loads(v).get("kind") == "post"]


def test_exactly_once_through_kill_9(topics, workers, kafka_client):
    if kafka_client != "confluent":
        pytest.skip("exactly-once needs the confluent client")
    values, expected = stream(3000)
    produce(topics.bootstrap, topics.input, values)
    # A stable worker id: the restarted process has the dead one's transactional id.
    args = ("--guarantee", "exactly-once", "--worker-id", "eos-1")
    first = workers(topics, *args, env={"SCREENER_POLL_MAX_RECORDS": "20"}).start()
    first.wait_metric("screener_posts_consumed_total", lambda v: v >= 300)
    first.kill()
    second = workers(topics, *args).start()
    second.wait_metric("screener_posts_consumed_total", lambda v: v >= 1)
    seen = read_committed(topics.bootstrap, topics.events, lambda v: set(post_ids(v)) >= set(expected))
    ids = post_ids(seen)
    assert set(ids) == set(expected), f"missing {len(set(expected) - set(ids))} events"
    deadline = time.monotonic() + 30
    while sum(committed(topics.bootstrap, topics.group, topics.input).values()) < 3000:
        assert time.monotonic() < deadline, second.log()
        time.sleep(0.5)
    ids = post_ids(read_committed(topics.bootstrap, topics.events, lambda v: False, timeout=5))
    assert len(ids) == len(set(ids)) == len(expected), "an event was seen twice"
    assert second.terminate() == 0


def test_exactly_once_is_refused_with_kafka_python(topics, workers, kafka_client):
    if kafka_client != "kafka-python":
        pytest.skip("the refusal is kafka-python's")
    worker = workers(topics, "--guarantee", "exactly-once").start(wait_ready=False)
    assert worker.process.wait(60) == 2
    assert "exactly-once needs the confluent client" in worker.log()
