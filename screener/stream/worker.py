"""``screener run``: one consumer-group worker process, at-least-once.

Per poll batch: decode every record, screen all posts in one call of the core
(:meth:`Screener.screen_sparse`), produce flag/recall events and dead letters,
wait until the broker has acknowledged every one of them, and only then commit
the batch's offsets. A crash anywhere before the commit re-delivers the batch;
its events come out again with the same ``event_id``. Nothing is lost.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable

import orjson
from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError

from ..decode import decode_batch
from ..emit import events_for, now_iso
from ..pipeline import Screener
from ..settings import Settings
from . import metrics
from .reload import LexiconReloader

log = logging.getLogger("screener.worker")

# Faster group joins and failure detection than kafka-python's defaults
# (measured against Tansu: ~3 s to join instead of ~23 s). fetch_max_wait_ms
# bounds how long a broker may hold a fetch that found no data: with the
# default 500 ms, a record arriving just after an empty fetch waited up to
# half a second (p99 475 ms measured at half load). All overridable.
CONSUMER_DEFAULTS: dict[str, Any] = {
    "session_timeout_ms": 6000, "heartbeat_interval_ms": 1000, "auto_offset_reset": "earliest",
    "max_partition_fetch_bytes": 4 << 20, "fetch_max_wait_ms": 50, "bootstrap_timeout_ms": 2000,
}
# max_block_ms bounds how long send() may block on missing metadata (broker
# gone) and bootstrap_timeout_ms how long a client constructor waits for a
# first broker (kafka-python 3: 30 s), so shutdown stays bounded; _connect and
# _deliver retry with backoff instead.
PRODUCER_DEFAULTS: dict[str, Any] = {"acks": "all", "linger_ms": 5, "max_block_ms": 5000, "bootstrap_timeout_ms": 2000}


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    action: str  # flag | recall | dead_letter


def dead_letter(record: Any, reason: str, topic: str) -> Outgoing:
    """The record as it came, with where it came from and why, in headers."""
    headers = [
        ("screener.reason", reason.encode()),
        ("screener.source.topic", record.topic.encode()),
        ("screener.source.partition", str(record.partition).encode()),
        ("screener.source.offset", str(record.offset).encode()),
        ("screener.source.timestamp", str(record.timestamp).encode()),
        ("screener.dead_lettered_at", now_iso().encode()),
    ]
    return Outgoing(topic, record.key, record.value if record.value is not None else b"", headers, "dead_letter")


class _Listener(ConsumerRebalanceListener):
    def __init__(self, worker: "Worker") -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        metrics.REBALANCES.labels(kind="revoked").inc()
        self.worker.on_revoked(set(revoked))

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        metrics.REBALANCES.labels(kind="assigned").inc()
        log.info("assigned %s", sorted((tp.topic, tp.partition) for tp in assigned))


class Worker:
    def __init__(self, settings: Settings, screener: Screener, health: metrics.Health) -> None:
        self.settings = settings
        self.screener = screener
        self.health = health
        self.stop_requested = threading.Event()
        self.deadline: float | None = None
        self.reloader = LexiconReloader(settings.lexicons, settings.matcher, screener, settings.reload_interval_s)
        self.uncommitted: dict[TopicPartition, OffsetAndMetadata] = {}
        self.abandoned = False
        # kafka-python is untyped; both are set by _connect before use.
        self.consumer: Any = None
        self.producer: Any = None
        metrics.set_lexicon(screener.version, screener.lexicons.term_count, None)

    # -- lifecycle ------------------------------------------------------------------
    def request_stop(self, *_: object) -> None:
        if not self.stop_requested.is_set():
            log.info("stop requested: finishing the batch, flushing, committing")
            self.deadline = time.monotonic() + self.settings.shutdown_timeout_s
            self.stop_requested.set()

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, lambda *_: self.reloader.request())

    def run(self) -> int:
        metrics.UP.set(1)
        if not self._connect():  # stopped before any broker answered: nothing to redo
            return self._close(clean=True)
        self.consumer.subscribe([self.settings.input_topic], listener=_Listener(self))
        self.reloader.start()
        while not self.stop_requested.is_set():
            self.health.heartbeat = time.monotonic()
            self._maybe_swap()
            try:
                records = self.consumer.poll(timeout_ms=self.settings.poll_timeout_ms,
                                             max_records=self.settings.poll_max_records)
            except KafkaError as exc:
                self._not_ready(f"poll failed: {exc}")
                time.sleep(0.5)
                continue
            self._set_ready()
            if records:
                self.process(records)
            elif self.uncommitted:
                self._commit(sync=False)
        return self._close(clean=True)

    def _connect(self) -> bool:
        """Create the clients, retrying with backoff while no broker answers."""
        backoff = 0.5
        while not self.stop_requested.is_set():
            try:
                self.producer = self.producer or KafkaProducer(
                    bootstrap_servers=self.settings.bootstrap_servers,
                    **{**PRODUCER_DEFAULTS, **self.settings.kafka, **self.settings.kafka_producer})
                self.consumer = KafkaConsumer(
                    bootstrap_servers=self.settings.bootstrap_servers, group_id=self.settings.group_id,
                    enable_auto_commit=False, max_poll_records=self.settings.poll_max_records,
                    **{**CONSUMER_DEFAULTS, **self.settings.kafka, **self.settings.kafka_consumer})
                return True
            except KafkaError as exc:
                self._not_ready(f"cannot reach {self.settings.bootstrap_servers}: {exc}")
                self.stop_requested.wait(backoff)
                backoff = min(backoff * 2, 10.0)
        return False

    def _close(self, clean: bool) -> int:
        self.reloader.stop()
        self.health.ready = False
        metrics.READY.set(0)
        if self.consumer is not None:
            if clean and self.uncommitted:
                self._commit()
            try:
                self.consumer.close(autocommit=False)  # leaves the group at once
            except KafkaError as exc:
                log.warning("consumer close: %s", exc)
        if self.producer is not None:
            self.producer.close(timeout=max(0.1, (self.deadline or time.monotonic() + 5) - time.monotonic()))
        metrics.UP.set(0)
        done = clean and not self.uncommitted and not self.abandoned
        log.info("stopped %s", "cleanly, offsets committed" if done else "with work to redo after restart")
        return 0 if done else 1

    # -- one batch -----------------------------------------------------------------------
    def process(self, records: dict[TopicPartition, list[Any]]) -> None:
        owned = self.consumer.assignment()
        parts = {tp: rs for tp, rs in records.items() if tp in owned and rs}  # never a lost partition
        batch = [r for rs in parts.values() for r in rs]
        if not batch:
            return
        started = time.perf_counter()
        outgoing, counts = self._screen(batch)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        if not self._deliver(outgoing):
            log.warning("batch of %d records not fully acknowledged; not committing it", len(batch))
            for tp, rs in parts.items():  # consume the batch again
                self.consumer.seek(tp, rs[0].offset)
            self.abandoned = True  # redone after restart; the exit code says so
            return
        now = time.time()
        for record in batch:
            metrics.LATENCY.observe(max(0.0, now - record.timestamp / 1000))
        for outcome, n in counts.items():
            metrics.POSTS.labels(outcome=outcome).inc(n)
        metrics.POSTS_CONSUMED.inc(len(batch))
        for tp, rs in parts.items():
            self.uncommitted[tp] = OffsetAndMetadata(rs[-1].offset + 1, "", -1)
            high = self.consumer.highwater(tp)
            if high is not None:
                metrics.LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(max(0, high - rs[-1].offset - 1))
        self._commit(sync=False)

    def _screen(self, batch: list[Any]) -> tuple[list[Outgoing], dict[str, int]]:
        objects, texts, rejected = decode_batch([r.value or b"" for r in batch], self.settings.max_post_bytes)
        outgoing = [dead_letter(batch[i], reason, self.settings.dead_letter_topic) for i, reason in rejected]
        counts = {"passed": 0, "flagged": 0, "recalled": 0, "dead_lettered": len(rejected)}
        for post, screening, event in events_for(self.screener, objects, texts):
            action = screening.action
            outgoing.append(Outgoing(self.settings.topic_for(action), orjson.dumps(post.id), event, [], action))
            counts["flagged" if action == "flag" else "recalled"] += 1
            for hit in screening.hits:
                metrics.HITS.labels(category=hit.rule.category).inc()
        counts["passed"] = len(texts) - counts["flagged"] - counts["recalled"]
        return outgoing, counts

    def _send(self, item: Outgoing) -> Any:
        try:
            return self.producer.send(item.topic, key=item.key, value=item.value, headers=item.headers or None)
        except KafkaError as exc:  # metadata unavailable within max_block_ms
            self._not_ready(f"send failed: {exc}")
            return None

    def _deliver(self, outgoing: list[Outgoing]) -> bool:
        """Send everything and wait until the broker acknowledged all of it.

        Failed sends are sent again (the idempotent producer and deterministic
        event ids make a duplicate harmless) until they succeed or the shutdown
        deadline passes.
        """
        in_flight = [(item, self._send(item)) for item in outgoing]
        backoff = 0.2
        while in_flight:
            if self.deadline is not None and time.monotonic() > self.deadline:
                return False
            try:
                self.producer.flush(timeout=1.0)
            except KafkaError:
                pass
            waiting = []
            for item, future in in_flight:
                if future is None or (future.is_done and future.failed()):
                    metrics.PRODUCE_FAILURES.inc()
                    waiting.append((item, self._send(item)))
                elif not future.is_done:
                    waiting.append((item, future))
                elif item.action in ("flag", "recall"):
                    metrics.EVENTS.labels(action=item.action).inc()
            in_flight = waiting
            if in_flight:
                self._not_ready(f"{len(in_flight)} sends not yet acknowledged")
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        return True

    def _commit(self, only: set[TopicPartition] | None = None, sync: bool = True) -> None:
        """Commit acknowledged offsets; per batch asynchronously.

        At-least-once only needs the commit to follow the acknowledgements, not
        the loop to wait for it: a lost async commit is covered by the next one
        (offsets only grow), and revocation and shutdown commit synchronously.
        Waiting for each commit added a broker round trip to every batch.
        """
        offsets = {tp: o for tp, o in self.uncommitted.items() if only is None or tp in only}
        if not offsets:
            return
        if not sync:
            self.consumer.commit_async(offsets, callback=self._committed)
            return
        try:
            self.consumer.commit(offsets)
        except KafkaError as exc:
            self._committed(offsets, exc)
            return
        self._committed(offsets, None)

    def _committed(self, offsets: dict[TopicPartition, OffsetAndMetadata], error: object) -> None:
        if isinstance(error, Exception):
            metrics.COMMIT_FAILURES.inc()
            log.warning("commit failed (will be retried with the next one): %s", error)
            return
        metrics.COMMITS.inc()
        for tp, offset in offsets.items():
            if self.uncommitted.get(tp) == offset:
                del self.uncommitted[tp]

    def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Commit what is done for partitions we are losing, then forget them."""
        self._commit(only=revoked)
        for tp in revoked:
            self.uncommitted.pop(tp, None)
            metrics.LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(0)

    # -- lexicon and readiness ---------------------------------------------------------------
    def _maybe_swap(self) -> None:
        fresh = self.reloader.take()
        if fresh is None:
            return
        previous = self.screener.version
        self.screener = fresh  # between batches: a batch is screened by one version
        gc.collect()
        gc.freeze()  # the new lexicon is as long-lived as the first (see run.py)
        metrics.RELOADS.inc()
        metrics.set_lexicon(fresh.version, fresh.lexicons.term_count, previous)
        log.info("lexicon version %s now serving (was %s)", fresh.version, previous)

    def _coordinator_connected(self) -> bool:
        """Whether the group coordinator is known and connected.

        An idle poll does not raise while kafka-python retries a lost broker in
        the background, so readiness asks the coordinator (a kafka-python
        internal, hence the guard: without it we fall back to "connected").
        """
        coordinator = getattr(self.consumer, "_coordinator", None)
        try:
            return coordinator is None or not coordinator.coordinator_unknown()
        except Exception:  # noqa: BLE001 - an internal API; never let it stop the loop
            return True

    def _set_ready(self) -> None:
        assigned = bool(self.consumer.assignment())
        connected = self._coordinator_connected()
        ready = assigned and connected
        reason = "ready" if ready else "broker connection lost" if not connected else "waiting for partition assignment"
        if ready != self.health.ready or reason != self.health.reason:
            if not ready:
                log.warning("not ready: %s", reason)
            self.health.ready, self.health.reason = ready, reason
            metrics.READY.set(1 if ready else 0)

    def _not_ready(self, reason: str) -> None:
        if self.health.ready or self.health.reason != reason:
            log.warning("not ready: %s", reason)
        self.health.ready = False
        self.health.reason = reason
        metrics.READY.set(0)
