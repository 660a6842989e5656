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
import re
import sys
import threading
import time
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any, Iterator, Sequence

from .. import audit, jsonio
from ..batch import Batch, Step, screen_batch
from ..errors import ConfigError
from ..judge import Engine
from ..rescan import Checkpoint, Previous, RescanSummary
from .outgoing import sends_of, source_of
from ..scan import Progress
from ..settings import Settings
from . import clients
from .clients import Record, Start, read_range

log = logging.getLogger("screener.rescan")

def start_from(offset: str | None, timestamp: str | None) -> Start:
    """Where ``--from-offset`` / ``--from-timestamp`` start (neither: offset 0)."""
    if timestamp:
        try:
            parsed = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"--from-timestamp: not an ISO 8601 time: {timestamp!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        if parsed.timestamp() < 0:  # Kafka's ListOffsets reads -1 and -2 as "latest" and "earliest"
            raise ConfigError(f"--from-timestamp: must be 1970 or later, not {timestamp!r}")
        return ("timestamp", int(parsed.timestamp() * 1000))
    # Found by a hostile-input probe: a negative offset rescanned from the
    # start, one past 64 bits stopped with an internal error.
    # ASCII digits only: int() also reads '1_000' and '٣', the settings do not.
    if offset is not None and (not re.fullmatch(r"[0-9]{1,19}", offset.strip()) or int(offset) >= 1 << 63):
        raise ConfigError(f"--from-offset: must be 0 to 2**63-1, not {offset}")
    return ("offset", int(offset) if offset is not None else 0)


def read_previous(settings: Settings, topics: Sequence[str], start: Start) -> Previous:
    """Verdicts from earlier events / audit records on ``topics`` (events come
    after their posts, so reading from the same time is enough)."""
    previous = Previous()
    begin: Start = start if start[0] == "timestamp" else ("offset", 0)
    for topic in dict.fromkeys(topics):
        consumer = clients.consumer(settings, group=False)
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
                 stop: threading.Event | None = None, producer: clients.Producer | None = None) -> RescanSummary:
    checkpoint = Checkpoint(checkpoint_path, {"topic": topic, "start": list(start)}, engine)
    summary = checkpoint.summary()
    if checkpoint.done:
        return summary
    previous = read_previous(settings, previous_topics or default_previous_topics(settings), start)
    previous.restore_noted(checkpoint.noted)
    step = Step.of(settings, engine, bool(settings.audit_topic))
    own_producer = producer is None
    if producer is None:
        producer = clients.producer(settings)
    consumer = clients.consumer(settings, group=False)
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
                _acknowledged(producer, [producer.send(o.topic, o.key, o.value, o.headers or None) for o in part])
            summary.posts += len(records)
            summary.rescreened += result.counts.posts - result.counts.dead_lettered
            summary.stricter += len(result.emitted)
            summary.dead_lettered += len(result.dead)
            checkpoint.save({"positions": {str(p): o for p, o in at.items()}, "until_ms": until_ms,
                             "summary": asdict(summary)}, previous.take_noted())
            done_bytes += sum(len(r.value or b"") for r in records)
            progress.update(done_bytes, summary.posts)
        progress.close()
        summary.seconds = time.perf_counter() - started
        if not (stop and stop.is_set()):
            checkpoint.save({"done": True, "summary": asdict(summary)})
        _acknowledged(producer, _audit(producer, settings,
                                       [audit.rescan(settings.worker_id, engine, "finish", asdict(summary))]))
    finally:
        consumer.close()
        if own_producer:
            producer.close(30.0)
    return summary


def _origins(records: Sequence[Record]) -> Any:
    return lambda i: source_of(records[i])


def _acknowledged(producer: clients.Producer, deliveries: list[clients.Delivery], timeout_s: float = 30.0) -> None:
    """Wait until the broker acknowledged every send; raise if it refused one
    or did not answer in time (then the checkpoint stays behind)."""
    deadline = time.monotonic() + timeout_s
    while not all(d.done for d in deliveries):
        if time.monotonic() > deadline:
            raise clients.BrokerFailure(f"{sum(not d.done for d in deliveries)} sends not acknowledged in {timeout_s:.0f} s")
        producer.flush(1.0)
    failed = [d.error for d in deliveries if d.failed]
    if failed:
        raise clients.BrokerFailure(f"{len(failed)} sends refused: {failed[0]}")


def _audit(producer: clients.Producer, settings: Settings, records: list[dict[str, Any]]) -> list[clients.Delivery]:
    if not settings.audit_topic:
        return []
    return [producer.send(settings.audit_topic, audit.key_of(r), jsonio.dumps(r)) for r in records]


def read_topic_records(settings: Settings, topic: str) -> Iterator[dict[str, Any]]:
    """Every record of a topic as JSON (``screener audit`` on Kafka)."""
    consumer = clients.consumer(settings, group=False)
    try:
        for records, _ in read_range(consumer, topic, ("offset", 0), 4096):
            for r in records:
                if r.value:
                    try:
                        record = jsonio.loads(r.value)
                    except ValueError:  # orjson's and json's decode errors both are
                        continue
                    if isinstance(record, dict):  # select() reads fields of each
                        yield record
    finally:
        consumer.close()
