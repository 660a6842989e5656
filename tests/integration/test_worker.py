"""``screener run`` against a real Kafka-compatible broker (Tansu).

What a user relies on: events out for posts in, dead letters with their origin,
nothing lost across kill -9 or a broker outage, a clean SIGTERM, hot reload.
"""

from __future__ import annotations

import shutil
import time

import orjson
import pytest

from .conftest import (ROOT, Broker, Proxy, committed, consume, create_topics, free_port, posts, produce,
                       read_committed)

pytestmark = pytest.mark.integration

TEXTS = {"pass": "今天天气不错", "recall": "网上赌*博稳赚", "flag": "你个傻逼"}


def stream(n: int, start: int = 0) -> tuple[list[bytes], dict[int, str]]:
    """n posts cycling pass/recall/flag; returns values and the expected action per id."""
    kinds = list(TEXTS)
    items = [(start + i, kinds[i % 3]) for i in range(n)]
    return posts([(pid, TEXTS[kind]) for pid, kind in items]), {pid: k for pid, k in items if k != "pass"}


def event_map(records) -> dict:
    out: dict = {}
    for r in records:
        event = orjson.loads(r.value)
        out.setdefault(event["post_id"], []).append(event)
    return out


def wait_committed(topics, worker, n: int, timeout: float = 30.0) -> None:
    """Until the group has committed ``n`` offsets of the input in all."""
    deadline = time.monotonic() + timeout
    while sum(committed(topics.bootstrap, topics.group, topics.input).values()) < n:
        assert time.monotonic() < deadline, worker.log()
        time.sleep(0.5)


def test_posts_in_events_and_dead_letters_out(topics, workers):
    worker = workers(topics).start()
    values, expected = stream(30)
    bad = [b"not json", b'{"id": 1}', b"\xff\xfe", orjson.dumps({"id": 2, "text": 5})]
    produce(topics.bootstrap, topics.input, values + bad)
    events = consume(topics.bootstrap, topics.events, lambda r: len(r) >= len(expected))
    got = event_map(events)
    assert {pid: evs[0]["action"] for pid, evs in got.items()} == expected
    recall = got[1][0]
    assert recall["hits"][0]["matched"] == "赌*博" and recall["account_id"] == "a1"
    dead = consume(topics.bootstrap, topics.dead, lambda r: len(r) >= len(bad))
    assert sorted(d.value for d in dead) == sorted(bad)
    for d in dead:
        headers = dict(d.headers)
        assert headers["screener.source.topic"] == topics.input.encode()
        assert {"screener.reason", "screener.source.partition", "screener.source.offset",
                "screener.source.timestamp"} <= set(headers)
    reasons = {d.value: dict(d.headers)["screener.reason"].decode() for d in dead}
    assert reasons[b'{"id": 1}'] == 'missing "text"' and reasons[b"\xff\xfe"].startswith("invalid JSON")
    worker.wait_metric("screener_posts_consumed_total", lambda v: v == len(values) + len(bad))
    assert worker.metric('screener_posts_total{outcome="dead_lettered"}') == len(bad)
    assert worker.metric('screener_posts_total{outcome="recalled"}') == 10
    assert worker.terminate() == 0


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_input_is_screened(topics, workers, codec):
    """A platform's producer may compress its posts with any codec Kafka
    has; librdkafka reads all four, kafka-python only with their packages
    (python-snappy, lz4, zstandard: dependencies of the stream extra)."""
    ck = pytest.importorskip("confluent_kafka")
    worker = workers(topics).start()
    values, expected = stream(30)
    producer = ck.Producer({"bootstrap.servers": topics.bootstrap, "compression.type": codec, "linger.ms": 20})
    for value in values:
        producer.produce(topics.input, value)
    assert producer.flush(20) == 0
    got = event_map(consume(topics.bootstrap, topics.events, lambda r: len(r) >= len(expected)))
    assert {pid: evs[0]["action"] for pid, evs in got.items()} == expected
    worker.wait_metric("screener_posts_consumed_total", lambda v: v == len(values))
    assert worker.metric('screener_posts_total{outcome="dead_lettered"}') == 0
    assert worker.terminate() == 0


def aborted_records_hidden(bootstrap: str) -> bool:
    """Whether this broker keeps an aborted transaction's records from a
    read_committed consumer (Tansu 0.6.0 does not: README, Known limits)."""
    import confluent_kafka as ck

    topic = create_topics(bootstrap, 1).input
    producer = ck.Producer({"bootstrap.servers": bootstrap, "transactional.id": f"probe-{topic}"})
    producer.init_transactions(20)
    for value, commit in ((b"aborted", False), (b"committed", True)):
        producer.begin_transaction()
        producer.produce(topic, value)
        producer.flush(20)
        if commit:
            producer.commit_transaction(20)
        else:
            producer.abort_transaction(20)
    return read_committed(bootstrap, topic, lambda values: b"committed" in values, timeout=10) == [b"committed"]


def test_aborted_input_is_not_screened(topics, workers):
    """A platform that publishes posts in transactions may roll some back:
    those posts were never published, so neither client's worker screens
    them (read_committed; kafka-python's own default reads them)."""
    ck = pytest.importorskip("confluent_kafka")
    if not aborted_records_hidden(topics.bootstrap):
        pytest.skip("this broker (Tansu) returns an aborted transaction's records to read_committed consumers")
    aborted, _ = stream(30, start=1000)
    values, expected = stream(30)
    producer = ck.Producer({"bootstrap.servers": topics.bootstrap, "transactional.id": f"platform-{topics.group}"})
    producer.init_transactions(20)
    producer.begin_transaction()
    for value in aborted:
        producer.produce(topics.input, value)
    producer.flush(20)
    producer.abort_transaction(20)
    producer.begin_transaction()
    for value in values:
        producer.produce(topics.input, value)
    producer.commit_transaction(20)
    worker = workers(topics).start()
    consume(topics.bootstrap, topics.events, lambda r: len(r) >= len(expected))
    worker.wait_metric("screener_posts_consumed_total", lambda v: v >= len(values))
    time.sleep(1)  # an aborted post screened late would show here
    got = event_map(consume(topics.bootstrap, topics.events, lambda r: False, timeout=3))
    assert {pid: evs[0]["action"] for pid, evs in got.items()} == expected
    assert worker.metric("screener_posts_consumed_total") == len(values)
    assert worker.terminate() == 0


def test_sigterm_exits_cleanly_with_offsets_committed(topics, workers):
    worker = workers(topics).start()
    values, _ = stream(200)
    produce(topics.bootstrap, topics.input, values)
    worker.wait_metric("screener_posts_consumed_total", lambda v: v == 200)
    started = time.monotonic()
    assert worker.terminate() == 0
    assert time.monotonic() - started < 10
    assert sum(committed(topics.bootstrap, topics.group, topics.input).values()) == 200
    assert "stopped cleanly, every record processed is committed" in worker.log()


def test_kill_9_mid_stream_loses_nothing(topics, workers):
    values, expected = stream(3000)
    produce(topics.bootstrap, topics.input, values)
    # Small batches so that the kill lands in the middle of the stream.
    first = workers(topics, env={"SCREENER_POLL_MAX_RECORDS": "20"}).start()
    first.wait_metric("screener_posts_consumed_total", lambda v: v >= 300)
    first.kill()
    workers(topics).start()
    events = consume(topics.bootstrap, topics.events,
                     lambda r: set(event_map(r)) >= set(expected), timeout=90)
    got = event_map(events)
    assert set(got) == set(expected), f"missing {len(set(expected) - set(got))} events"
    for pid, evs in got.items():
        assert {e["action"] for e in evs} == {expected[pid]}
        assert len({e["event_id"] for e in evs}) == 1  # duplicates share the id


def test_broker_outage_through_proxy(workers):
    proxy_port = free_port()
    broker = Broker(advertised_port=proxy_port)  # clients must always go through the proxy
    proxy = Proxy(proxy_port, broker.port)
    try:
        topics = create_topics(broker.bootstrap)
        worker = workers(topics, env={"SCREENER_POLL_MAX_RECORDS": "50"}).start()
        values, expected = stream(600)
        produce(topics.bootstrap, topics.input, values[:300])
        worker.wait_metric("screener_posts_consumed_total", lambda v: v >= 100)
        proxy.cut()
        time.sleep(6)
        assert worker.get("/readyz")[0] == 503
        proxy.restore()
        produce(topics.bootstrap, topics.input, values[300:])
        events = consume(topics.bootstrap, topics.events,
                         lambda r: set(event_map(r)) >= set(expected), timeout=120)
        assert set(event_map(events)) == set(expected)
        worker.wait_ready()
        assert worker.terminate() == 0
    finally:
        proxy.cut()
        broker.stop()


def test_hot_reload_and_broken_lexicon(topics, workers, tmp_path):
    lexicons = tmp_path / "lexicons"
    shutil.copytree(ROOT / "lexicons", lexicons)
    worker = workers(topics, "--lexicons", str(lexicons)).start()
    placeholder = "测试占位词甲"  # a neutral placeholder for an operator-supplied category
    produce(topics.bootstrap, topics.input, posts([(1, f"今天{placeholder}")]))
    worker.wait_metric("screener_posts_consumed_total", lambda v: v == 1)
    assert worker.metric('screener_posts_total{outcome="passed"}') == 1

    with open(lexicons / "rumour.txt", "a", encoding="utf-8") as f:
        f.write(f"{placeholder}\n")
    worker.wait_metric("screener_lexicon_reloads_total", lambda v: v == 1)
    produce(topics.bootstrap, topics.input, posts([(2, f"今天{placeholder}")]))
    [event] = consume(topics.bootstrap, topics.events, lambda r: len(r) >= 1)
    event = orjson.loads(event.value)
    assert (event["post_id"], event["action"], event["categories"]) == (2, "flag", ["rumour"])

    with open(lexicons / "rumour.txt", "a", encoding="utf-8") as f:
        f.write("*** ; colour=red\n")
    worker.wait_metric("screener_lexicon_reload_failures_total", lambda v: v == 1)
    assert f"{lexicons}/rumour.txt:" in worker.log() and "unknown option 'colour'" in worker.log()
    produce(topics.bootstrap, topics.input, posts([(3, f"又是{placeholder}")]))
    events = consume(topics.bootstrap, topics.events, lambda r: len(r) >= 2)
    third = orjson.loads(events[-1].value)
    assert (third["post_id"], third["lexicon_version"]) == (3, event["lexicon_version"])  # old set still serving
    assert worker.get("/readyz")[0] == 200
    assert worker.terminate() == 0


def test_two_workers_share_the_group_and_metrics(topics, workers):
    worker = workers(topics, "--workers", "2").start()
    values, expected = stream(600)
    produce(topics.bootstrap, topics.input, values)
    worker.wait_metric("screener_posts_consumed_total", lambda v: v == 600)
    assert worker.metric("screener_worker_up") == 2
    assert worker.metric("screener_worker_ready") == 2
    events = consume(topics.bootstrap, topics.events, lambda r: set(event_map(r)) >= set(expected))
    assert set(event_map(events)) == set(expected)
    assert worker.terminate() == 0


def test_unreachable_broker_not_ready_and_sigterm_is_bounded(workers, tmp_path):
    from .conftest import Topics

    nowhere = Topics(f"127.0.0.1:{free_port()}", "posts", "events", "dead", "group", offenders="offenders")
    worker = workers(nowhere).start(wait_ready=False)
    deadline = time.monotonic() + 30
    status, reason = worker.get("/readyz")
    while "cannot reach" not in reason and time.monotonic() < deadline:
        time.sleep(0.2)
        status, reason = worker.get("/readyz")
    assert status == 503 and "cannot reach" in reason
    started = time.monotonic()
    assert worker.terminate() == 0
    assert time.monotonic() - started < 10


def test_rebalance_mid_stream_loses_nothing(topics, workers):
    """A second worker joins while the first is busy: partitions move, the
    first commits what it finished on revocation, nothing is lost."""
    values, expected = stream(3000)
    produce(topics.bootstrap, topics.input, values[:1500])
    slow = {"SCREENER_POLL_MAX_RECORDS": "20"}
    first = workers(topics, env=slow).start()
    first.wait_metric("screener_posts_consumed_total", lambda v: v >= 200)
    second = workers(topics, env=slow).start()
    first.wait_metric("screener_rebalances_total", lambda v: v >= 2)  # revoked + assigned again
    produce(topics.bootstrap, topics.input, values[1500:])
    events = consume(topics.bootstrap, topics.events, lambda r: set(event_map(r)) >= set(expected), timeout=120)
    got = event_map(events)
    assert set(got) == set(expected)
    assert all(len({e["event_id"] for e in evs}) == 1 for evs in got.values())
    assert second.metric("screener_posts_consumed_total") > 0  # the newcomer took partitions
    consumed = first.metric("screener_posts_consumed_total") + second.metric("screener_posts_consumed_total")
    assert consumed >= 3000
    assert first.terminate() == 0 and second.terminate() == 0
    assert sum(committed(topics.bootstrap, topics.group, topics.input).values()) == 3000


def test_hostile_posts_neither_stall_nor_crash_the_worker(topics, workers, tmp_path):
    """Issue 9: a post of 8,000 terms (its event and audit record were over
    the producer's 1 MB request: retried for ever, nothing committed), far-
    future timestamps on an account that gets blacklisted (the worker died
    on `year 10000 is out of range`, again after every restart), and an id
    beyond 64 bits. Every post comes out, the offsets are committed, and the
    worker stays up and ready."""
    policy = tmp_path / "strict.policy"
    policy.write_text((ROOT / "policy" / "default.policy").read_text(encoding="utf-8").replace("threshold=5", "threshold=2"),
                      encoding="utf-8")
    worker = workers(topics, "--policy", str(policy)).start()
    big = b"123456789012345678901234567890"
    values = [
        orjson.dumps({"id": 1, "text": "赌博" * 8000, "account_id": "a1"}),
        orjson.dumps({"id": 2, "text": TEXTS["flag"], "account_id": "far", "published_at": "9999-12-31T23:59:59-01:00"}),
        orjson.dumps({"id": 3, "text": TEXTS["flag"], "account_id": "far", "published_at": 1e20}),
        b'{"id": ' + big + b', "text": "\\u8d4c\\u535a", "account_id": "a3"}',
        orjson.dumps({"id": 5, "text": TEXTS["recall"], "account_id": "a5"}),
    ]
    produce(topics.bootstrap, topics.input, values, keys=[b"a1", b"far", b"far", b"a3", b"a5"])
    events = consume(topics.bootstrap, topics.events, lambda r: len(r) >= 6)  # 5 posts, 1 blacklist
    by_kind: dict = {}
    for r in events:
        by_kind.setdefault(orjson.loads(r.value)["kind"], []).append(r.value)
    assert len(by_kind["post"]) == 5 and len(by_kind["account_blacklist"]) == 1
    flood = next(orjson.loads(v) for v in by_kind["post"] if b'"post_id":1,' in v)
    assert flood["truncated"] == {"hits": 8000} and len(flood["hits"]) == 100
    assert any(b'"post_id":' + big in v for v in by_kind["post"])
    worker.wait_metric("screener_posts_consumed_total", lambda v: v == len(values))
    wait_committed(topics, worker, len(values))
    assert worker.get("/readyz")[0] == 200 and worker.get("/healthz")[0] == 200
    assert worker.metric('screener_posts_total{outcome="dead_lettered"}') == 0
    assert worker.terminate() == 0


def test_a_poll_batch_over_its_byte_budget_is_screened_in_turns(topics, workers):
    """The worker screens at most 16 x batch_bytes of a poll batch at once
    and seeks back to the rest (hit-dense posts had made one batch outlast
    max.poll.interval.ms): here 4 KiB, a budget of 64 KiB, for 40 posts of
    ~12 KB. Every post comes out once and every offset is committed."""
    worker = workers(topics, env={"SCREENER_BATCH_BYTES": "4096"}).start()
    values = [orjson.dumps({"id": i, "text": "赌博，" * 1300, "account_id": f"a{i}"}) for i in range(40)]
    produce(topics.bootstrap, topics.input, values)
    events = consume(topics.bootstrap, topics.events, lambda r: len(r) >= len(values))
    got = event_map(events)
    assert sorted(got) == list(range(40)) and all(len(e) == 1 for e in got.values())
    worker.wait_metric("screener_posts_consumed_total", lambda v: v == len(values))
    wait_committed(topics, worker, len(values))
    assert "screening" in worker.log() and "the rest at the next polls" in worker.log()
    assert worker.metric('screener_posts_total{outcome="recalled"}') == len(values)
    assert worker.terminate() == 0


def test_input_record_near_the_size_limit_is_dead_lettered_not_wedged(topics, workers):
    """A record just under the 1 MB the producer allows: its dead letter,
    the record plus our headers, was over it, refused as too large for
    ever, and nothing after it was committed (found by a hostile-input
    probe). The dead letter now keeps the head of the value within
    ``max_record_bytes`` and says how long it was; the posts after it flow."""
    worker = workers(topics).start()
    huge = b"x" * 1_000_000  # not JSON, and over --max-post-bytes
    values, expected = stream(6)
    produce(topics.bootstrap, topics.input, [huge, *values], keys=[b"k"] * 7)  # one partition: in this order
    events = consume(topics.bootstrap, topics.events, lambda r: len(r) >= len(expected))
    assert {pid: evs[0]["action"] for pid, evs in event_map(events).items()} == expected
    dead = consume(topics.bootstrap, topics.dead, lambda r: len(r) >= 1)
    headers = dict(dead[0].headers)
    assert orjson.loads(headers["screener.truncated"]) == {"key": 1, "value": len(huge)}
    assert huge.startswith(dead[0].value) and 800_000 < len(dead[0].value) < 900_000
    worker.wait_metric("screener_posts_consumed_total", lambda v: v == 7)
    wait_committed(topics, worker, 7)
    assert worker.get("/readyz")[0] == 200
    assert worker.terminate() == 0


def test_a_changelog_topic_short_of_partitions_neither_wedges_nor_crashes(topics, workers):
    """Input of 3 partitions, changelog of 1 (or partitions added to the
    input later): the worker logged that partitions 1 and 2 would have no
    durable state, then sent their changes anyway. confluent retried them
    for ever and committed nothing; kafka-python stopped with an internal
    error at every restart (found by a hostile-input probe). Their state is
    now kept in memory only, as the log says, and the posts flow."""
    from dataclasses import replace

    from kafka.admin import KafkaAdminClient, NewTopic

    short = replace(topics, offenders=topics.offenders + "-short")
    admin = KafkaAdminClient(bootstrap_servers=topics.bootstrap)
    admin.create_topics([NewTopic(short.offenders, 1, 1, topic_configs={"cleanup.policy": "compact"})])
    admin.close()
    worker = workers(short).start()
    values, expected = stream(30)
    produce(topics.bootstrap, topics.input, values, keys=[str(i % 3).encode() for i in range(30)])
    events = consume(topics.bootstrap, topics.events, lambda r: len(r) >= len(expected))
    assert {pid: evs[0]["action"] for pid, evs in event_map(events).items()} == expected
    wait_committed(topics, worker, len(values))
    assert worker.get("/readyz")[0] == 200 and "has no partition(s)" in worker.log()
    assert worker.terminate() == 0
