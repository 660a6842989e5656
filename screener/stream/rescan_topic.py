"""``screener rescan --topic``: rescan a Kafka topic from an offset or a timestamp.

Reads every partition of the topic from the start position up to the posts
published when it started (later posts are the live workers'),
with a consumer outside any group, so it never disturbs the workers. The
verdicts posts were published under are read first from the events and audit
topics. Events of posts that became stricter go to the events topic(s), audit
records to the audit topic; the checkpoint (per-partition positions) is saved
after each batch's sends are acknowledged, so an interrupted rescan resumes
where it stopped.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any, Iterator, Sequence

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from .. import audit, jsonio
from ..batch import Batch, Step, screen_batch
from ..errors import ConfigError
from ..judge import Engine
from ..rescan import Checkpoint, Previous, RescanSummary
from .outgoing import sends_of, source_of
from ..scan import Progress
from ..settings import Settings

log = logging.getLogger("screener.rescan")

Start = tuple[str, int]  # ("offset", n) | ("timestamp", epoch ms)


def start_from(offset: int | None, timestamp: str | None) -> Start:
    if timestamp:
        try:
            parsed = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"--from-timestamp: not an ISO 8601 time: {timestamp!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return ("timestamp", int(parsed.timestamp() * 1000))
    return ("offset", offset or 0)


def consumer_for(settings: Settings) -> Any:
    """A consumer outside any consumer group (it assigns partitions itself)."""
    from .worker import CONSUMER_DEFAULTS

    options = {k: v for k, v in CONSUMER_DEFAULTS.items() if k not in ("session_timeout_ms", "heartbeat_interval_ms")}
    return KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None, enable_auto_commit=False,
                         **{**options, **settings.kafka, **settings.kafka_consumer})


def read_range(consumer: Any, topic: str, start: Start, batch: int, positions: dict[int, int] | None = None,
               stop: threading.Event | None = None, partitions: Sequence[int] | None = None,
               until_ms: int | None = None) -> Iterator[tuple[list[Any], dict[int, int]]]:
    """Batches of records from ``start`` up to the topic's end as of now, each
    with the next position of every partition after it.

    "The end as of now" is two conditions, because a broker's end offsets
    cannot be trusted alone (Tansu reports the high watermark of a
    multi-record batch as its base offset + 1; measured in the tests): a
    partition is finished when a record newer than ``until_ms`` (default:
    the start of the read) turns up, or when it is at or past its end offset
    and a poll brings nothing more.
    """
    known = consumer.partitions_for_topic(topic)
    if not known:
        raise ConfigError(f"topic {topic!r} not found")
    tps = [TopicPartition(topic, p) for p in sorted(known) if partitions is None or p in partitions]
    until = until_ms if until_ms is not None else int(time.time() * 1000)
    consumer.assign(tps)
    end = consumer.end_offsets(tps)
    first = consumer.beginning_offsets(tps)
    if start[0] == "timestamp":
        found = consumer.offsets_for_times({tp: start[1] for tp in tps})
        begin = {tp: (found[tp].offset if found.get(tp) is not None else end[tp]) for tp in tps}
    else:
        begin = {tp: max(start[1], first[tp]) for tp in tps}
    at = {tp.partition: (positions or {}).get(tp.partition, begin[tp]) for tp in tps}
    for tp in tps:
        consumer.seek(tp, at[tp.partition])
    done: set[TopicPartition] = set()
    while len(done) < len(tps) and not (stop and stop.is_set()):
        polled = consumer.poll(timeout_ms=300, max_records=batch)
        records = []
        for tp, rs in polled.items():
            kept = [r for r in rs if r.timestamp <= until]
            if len(kept) < len(rs):
                done.add(tp)
                consumer.pause(tp)
            if kept:
                records += kept
                at[tp.partition] = kept[-1].offset + 1
        if not polled:
            done |= {tp for tp in tps if consumer.position(tp) >= end[tp]}
        if records:
            yield records, dict(at)


def read_previous(settings: Settings, topics: Sequence[str], start: Start) -> Previous:
    """Verdicts from earlier events / audit records on ``topics`` (events come
    after their posts, so reading from the same time is enough)."""
    previous = Previous()
    begin: Start = start if start[0] == "timestamp" else ("offset", 0)
    for topic in dict.fromkeys(topics):
        consumer = consumer_for(settings)
        try:
            for records, _ in read_range(consumer, topic, begin, 4096):
                previous.load(r.value for r in records if r.value)
        except ConfigError:
            log.warning("previous verdicts: topic %s not found; skipped", topic)
        finally:
            consumer.close()
    return previous


def default_previous_topics(settings: Settings) -> list[str]:
    topics = [settings.events_topic, settings.flag_topic, settings.recall_topic, settings.audit_topic]
    return [t for t in dict.fromkeys(topics) if t]


def rescan_topic(settings: Settings, engine: Engine, topic: str, start: Start,
                 previous_topics: Sequence[str] | None = None, checkpoint_path: str | None = None,
                 stop: threading.Event | None = None, producer: Any = None) -> RescanSummary:
    checkpoint = Checkpoint(checkpoint_path, {"topic": topic, "start": list(start)}, engine)
    summary = checkpoint.summary()
    if checkpoint.done:
        return summary
    previous = read_previous(settings, previous_topics or default_previous_topics(settings), start)
    noted = dict(checkpoint.state.get("noted", {}))
    previous.restore_noted(noted)
    step = Step.of(settings, engine, bool(settings.audit_topic))
    own_producer = producer is None
    if own_producer:
        from .worker import PRODUCER_DEFAULTS

        producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers,
                                 **{**PRODUCER_DEFAULTS, **settings.kafka, **settings.kafka_producer})
    consumer = consumer_for(settings)
    positions = {int(p): o for p, o in checkpoint.state.get("positions", {}).items()}
    # Posts published after the rescan started are the live workers' (with the
    # version this rescan uses); a resumed rescan keeps its original bound.
    until_ms = checkpoint.state.get("until_ms") or int(time.time() * 1000)
    started = time.perf_counter()
    # The size of a topic range is unknown up front: in auto mode the bar
    # shows whenever a person watches (never in the worker's background rescan).
    mode = settings.progress
    if stop is not None:
        mode = "off"
    elif mode == "auto" and sys.stderr.isatty():
        mode = "on"
    progress = Progress(None, mode)
    done_bytes = 0
    _audit(producer, settings, [audit.rescan(settings.worker_id, engine, "start", {"topic": topic, "from": list(start)})])
    try:
        for records, at in read_range(consumer, topic, start, settings.batch_records, positions, stop,
                                      until_ms=until_ms):
            result = screen_batch(step, Batch([r.value or b"" for r in records], _origins(records)), review=previous)
            sends = sends_of(result, records, settings)
            for part in (sends.first, sends.then):  # audit records and dead letters before events
                futures = [producer.send(o.topic, key=o.key, value=o.value, headers=o.headers or None) for o in part]
                producer.flush()
                for future in futures:
                    future.get(timeout=30)  # raises if not acknowledged: the checkpoint stays behind
            summary.posts += len(records)
            summary.rescreened += result.counts.posts - result.counts.dead_lettered
            summary.stricter += len(result.emitted)
            summary.dead_lettered += len(result.dead)
            noted.update(previous.take_noted())
            checkpoint.save({"positions": {str(p): o for p, o in at.items()}, "until_ms": until_ms,
                             "summary": asdict(summary), "noted": noted})
            done_bytes += sum(len(r.value or b"") for r in records)
            progress.update(done_bytes, summary.posts)
        progress.close()
        summary.seconds = time.perf_counter() - started
        if not (stop and stop.is_set()):
            checkpoint.save({"done": True, "summary": asdict(summary)})
        _audit(producer, settings, [audit.rescan(settings.worker_id, engine, "finish", asdict(summary))])
        producer.flush()
    finally:
        consumer.close()
        if own_producer:
            producer.close()
    return summary


def _origins(records: Sequence[Any]) -> Any:
    return lambda i: source_of(records[i])


def _audit(producer: Any, settings: Settings, records: list[dict[str, Any]]) -> list[Any]:
    if not settings.audit_topic:
        return []
    return [producer.send(settings.audit_topic, key=audit.key_of(r), value=jsonio.dumps(r)) for r in records]


def read_topic_records(settings: Settings, topic: str) -> Iterator[dict[str, Any]]:
    """Every record of a topic as JSON (``screener audit`` on Kafka)."""
    consumer = consumer_for(settings)
    try:
        for records, _ in read_range(consumer, topic, ("offset", 0), 4096):
            for r in records:
                if r.value:
                    try:
                        yield jsonio.loads(r.value)
                    except ValueError:  # orjson's and json's decode errors both are
                        continue
    finally:
        consumer.close()
