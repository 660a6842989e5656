"""The worker screens a poll batch in parts, with a heartbeat between them
(no broker: fake clients; the worker against Tansu is tests/integration)."""

from __future__ import annotations

import time

import orjson

from screener.batch import part_bounds
from screener.judge import Engine
from screener.settings import Settings
from screener.stream import metrics
from screener.stream.clients import TP, Delivery, Record
from screener.stream.worker import Worker

from .conftest import LEXICONS

POLICY = "offenders: threshold=2 window=30d clear=true\n"
TPS = [TP("posts", 0), TP("posts", 1)]


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None]] = []

    def send(self, topic, key, value, headers, partition=None):
        self.sent.append((topic, key))
        return Delivery(True)

    def flush(self, timeout):
        return 0


class FakeConsumer:
    def assignment(self):
        return set(TPS)

    def highwater(self, tp):
        return None

    def commit(self, offsets, on_done, sync=True):
        on_done(offsets, None)


def _posts() -> dict[TP, list[Record]]:
    """Hit-dense posts of several KB among short ones, authors spread over both partitions."""
    now = int(time.time() * 1000)
    records: dict[TP, list[Record]] = {}
    for i in range(24):
        text = "赌博" * 900 if i % 5 == 0 else ("卖冰毒" if i % 3 == 0 else "今天天气不错")
        value = orjson.dumps({"id": i, "text": text, "account_id": f"u{i % 4}"})
        tp = TPS[i % 2]
        records.setdefault(tp, []).append(Record(tp.topic, tp.partition, i, now, None, value, []))
    return records


def _run(tmp_path, batch_bytes: int, batch_records: int) -> tuple[Worker, list[float], list[tuple[str, bytes | None]]]:
    policy = tmp_path / "p.policy"
    policy.write_text(POLICY, encoding="utf-8")
    settings = Settings(bootstrap_servers="x:1", policy=str(policy), audit_topic="audit", events_topic="events",
                        dead_letter_topic="dead", batch_bytes=batch_bytes, batch_records=batch_records)
    health = metrics.Health()
    beats: list[float] = []
    health.beat = lambda: beats.append(time.monotonic())  # type: ignore[method-assign]
    worker = Worker(settings, Engine.build(LEXICONS, policy, "aho"), health)
    producer = FakeProducer()
    worker.producer, worker.consumer = producer, FakeConsumer()  # type: ignore[assignment]
    worker.process(_posts())
    return worker, beats, producer.sent


def test_a_poll_batch_is_screened_in_parts_with_a_beat_between_and_the_same_outcome(tmp_path):
    """A poll batch of hostile posts (赌博 over and over, ~0.7 s each at 256
    KiB) went minutes without a heartbeat: /healthz failed and the pod
    restarted into the same batch for ever. Parts keep the beat; what is
    sent, and the offender state of each partition, stay as in one part."""
    parted, beats, sent_parted = _run(tmp_path, batch_bytes=8192, batch_records=5)
    whole, one_beat, sent_whole = _run(tmp_path, batch_bytes=1 << 20, batch_records=4096)
    raws = [r.value for rs in _posts().values() for r in rs]  # the worker's order: partition by partition
    parts = len(part_bounds(raws, 5, 8192))
    assert parts >= 5 and len(beats) - len(one_beat) == parts - 1, (parts, len(beats), len(one_beat))
    assert sorted(sent_parted) == sorted(sent_whole) and any(t == "events" for t, _ in sent_whole)
    shards = {tp: sorted(s.accounts) for tp, s in parted.offenders.shards.items()}
    assert shards == {tp: sorted(s.accounts) for tp, s in whole.offenders.shards.items()}
    # each author counted in the shard of the partition its posts came from (a part indexes its own records)
    assert shards == {TPS[0]: [b'"u0"', b'"u2"'], TPS[1]: [b'"u1"', b'"u3"']}


class SeekingConsumer(FakeConsumer):
    def __init__(self) -> None:
        self.sought: dict[TP, int] = {}
        self.committed: dict[TP, int] = {}

    def seek(self, tp, offset):
        self.sought[tp] = offset

    def commit(self, offsets, on_done, sync=True):
        self.committed.update(offsets)
        on_done(offsets, None)


def test_a_poll_batch_over_its_byte_budget_is_screened_in_turns_and_nothing_is_skipped(tmp_path):
    """2,048 hit-dense posts of 256 KiB take ~25 min: longer than librdkafka
    lets a consumer go without polling (5 min), so the partition went from
    worker to worker and never got further. The worker screens the batch up
    to 16 x batch_bytes and seeks each partition back to what it left."""
    policy = tmp_path / "p.policy"
    policy.write_text(POLICY, encoding="utf-8")
    now = int(time.time() * 1000)
    values = {i: orjson.dumps({"id": i, "text": "赌博" * 1500, "account_id": f"u{i % 4}"}) for i in range(12)}  # ~9 KB
    log: dict[TP, list[Record]] = {tp: [] for tp in TPS}
    for i, value in values.items():
        tp = TPS[i % 2]
        log[tp].append(Record(tp.topic, tp.partition, len(log[tp]), now, None, value, []))

    def worker(batch_bytes: int) -> tuple[Worker, SeekingConsumer, FakeProducer]:
        settings = Settings(bootstrap_servers="x:1", policy=str(policy), events_topic="events",
                            dead_letter_topic="dead", batch_bytes=batch_bytes)
        w = Worker(settings, Engine.build(LEXICONS, policy, "aho"), metrics.Health())
        consumer, producer = SeekingConsumer(), FakeProducer()
        w.producer, w.consumer = producer, consumer  # type: ignore[assignment]
        return w, consumer, producer

    small, consumer, producer = worker(2048)  # a budget of 32 KiB: three or four posts a turn
    position = {tp: 0 for tp in TPS}
    turns = 0
    while any(position[tp] < len(log[tp]) for tp in TPS):
        turns += 1
        consumer.sought.clear()
        small.process({tp: log[tp][position[tp]:] for tp in TPS if position[tp] < len(log[tp])})
        for tp in TPS:  # the next poll starts where the worker sought back to, else after what it was given
            position[tp] = consumer.sought.get(tp, len(log[tp]))
        assert turns < 20
        # what is committed never passes what was screened
        assert all(consumer.committed.get(tp, 0) <= position[tp] for tp in TPS)
    assert turns >= 3
    whole, _, everything = worker(1 << 20)
    whole.process(log)

    def out(sent):  # events and audit records; the changelog rides with a later batch
        return sorted(item for item in sent if item[0] != "screener.offenders")
    assert out(producer.sent) == out(everything.sent)
    assert len([t for t, _ in everything.sent if t == "events"]) == 12 + 4  # 12 posts, 4 accounts blacklisted
