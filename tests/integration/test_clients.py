"""The client seam (screener/stream/clients.py) and the commit protocol
(screener/stream/commits.py) against Tansu, on both clients: the same tests
pass for confluent-kafka and kafka-python."""

from __future__ import annotations

import time

import pytest

from screener.settings import Settings
from screener.stream import clients
from screener.stream.clients import TP
from screener.stream.commits import CommitProtocol
from screener.stream.outgoing import Outgoing, Sends

from .conftest import committed, consume

pytestmark = pytest.mark.integration


def settings_for(topics, client: str) -> Settings:
    return Settings(bootstrap_servers=topics.bootstrap, group_id=topics.group, input_topic=topics.input,
                    kafka_client=client, metrics_port=0)


def send_all(producer: clients.Producer, items: list[Outgoing], timeout: float = 30.0) -> list[clients.Delivery]:
    deliveries = [producer.send(o.topic, o.key, o.value, o.headers, o.partition) for o in items]
    deadline = time.monotonic() + timeout
    while not all(d.done for d in deliveries) and time.monotonic() < deadline:
        producer.flush(1.0)
    return deliveries


def test_sent_records_are_acknowledged_and_read_back_in_range(topics, kafka_client):
    settings = settings_for(topics, kafka_client)
    assert clients.chosen(settings) == kafka_client
    producer = clients.producer(settings)
    items = [Outgoing(topics.input, f"k{i}".encode(), f"v{i}".encode(), [("h", str(i).encode())], "flag", i % 3)
             for i in range(30)]
    deliveries = send_all(producer, items)
    assert all(d.done and d.error is None for d in deliveries)
    producer.close(5.0)

    reader = clients.consumer(settings, group=False)
    try:
        assert reader.partitions(topics.input) == {0, 1, 2}
        assert topics.input in reader.topics()
        got = [r for records, _ in clients.read_range(reader, topics.input, ("offset", 0), 100) for r in records]
    finally:
        reader.close()
    assert sorted(r.value for r in got) == sorted(o.value for o in items)
    by_value = {r.value: r for r in got}
    for i in range(30):
        r = by_value[f"v{i}".encode()]
        assert (r.key, r.partition, r.headers, r.topic) == (f"k{i}".encode(), i % 3, [("h", str(i).encode())], topics.input)
        assert abs(r.timestamp / 1000 - time.time()) < 120
    assert [r.offset for r in got if r.partition == 0] == list(range(10))  # in order within a partition


def test_reading_a_range_from_an_offset_and_a_missing_topic(topics, kafka_client):
    settings = settings_for(topics, kafka_client)
    producer = clients.producer(settings)
    send_all(producer, [Outgoing(topics.input, None, f"v{i}".encode(), [], "flag", 0) for i in range(10)])
    producer.close(5.0)
    reader = clients.consumer(settings, group=False)
    try:
        batches = list(clients.read_range(reader, topics.input, ("offset", 6), 100, partitions=[0]))
        assert [r.value for records, _ in batches for r in records] == [b"v6", b"v7", b"v8", b"v9"]
        assert batches[-1][1] == {0: 10}  # the next position of the partition
        with pytest.raises(Exception, match="not found"):
            list(clients.read_range(reader, "no-such-topic", ("offset", 0), 100))
    finally:
        reader.close()


def test_the_commit_protocol_commits_what_the_broker_acknowledged(topics, kafka_client):
    """A group member polls, delivers events (and state that rides with the
    next batch) through the protocol and commits; the group's committed
    offsets are the records' ends, and the events are on the topic."""
    settings = settings_for(topics, kafka_client)
    producer = clients.producer(settings)
    send_all(producer, [Outgoing(topics.input, None, f"p{i}".encode(), [], "flag", i % 3) for i in range(60)])
    consumer = clients.consumer(settings)
    assigned: set[TP] = set()
    consumer.subscribe(topics.input, assigned.update, lambda tps: None)

    def deliver(items: list[Outgoing]) -> bool:
        return all(d.done and d.error is None for d in send_all(producer, items))

    outcomes: list[Exception | None] = []
    protocol = CommitProtocol(deliver, lambda offsets, sync: consumer.commit(offsets, on_done, sync))

    def on_done(offsets: dict[TP, int], error: Exception | None) -> None:
        outcomes.append(error)
        protocol.committed(offsets, error)

    seen = 0
    deadline = time.monotonic() + 60
    try:
        while seen < 60 and time.monotonic() < deadline:
            batch = consumer.poll_batch(25, 0.5)
            if not batch:
                continue
            seen += sum(len(rs) for rs in batch.values())
            offsets = {tp: rs[-1].offset + 1 for tp, rs in batch.items()}
            events = [Outgoing(topics.events, None, r.value, [], "flag") for rs in batch.values() for r in rs]
            changes = [Outgoing(topics.offenders, r.value, b"{}", [], "state", r.partition)
                       for rs in batch.values() for r in rs[:1]]
            assert protocol.batch(offsets, Sends([], events), changes)
        assert seen == 60
        assert assigned == {TP(topics.input, p) for p in range(3)}
        assert protocol.awaiting  # the last batch's state has not been acknowledged yet
        assert protocol.finish()  # riders delivered, committed synchronously
        for _ in range(20):  # serve the answers of background commits still in flight
            consumer.poll_batch(1, 0.05)
    finally:
        consumer.close()
        producer.close(5.0)
    assert None in outcomes and protocol.settled
    assert committed(topics.bootstrap, topics.group, topics.input) == {0: 20, 1: 20, 2: 20}
    events = consume(topics.bootstrap, topics.events, lambda r: len(r) >= 60)
    assert sorted(r.value for r in events) == sorted(f"p{i}".encode() for i in range(60))
