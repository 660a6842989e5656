"""``screener run``: one consumer-group worker process, at-least-once.

Per poll batch: screen it with the batch step every front end shares
(:func:`screener.batch.screen_batch`: decode, screening, policy, repeat
offenders, events, audit records, dead letters), produce its dead letters and
audit records and wait until the broker has acknowledged them, then its
events (with the previous batch's offender-state changes for the changelog
topic) and wait again, and only then commit the batch's offsets. A
crash anywhere before the commit re-delivers the batch; its events come out
again with the same ``event_id``, and its violations count nothing twice
(they are keyed by post id). Nothing is lost.

Offender state is per input partition: restored from the changelog
partition of the same number when a partition is assigned, dropped when it
is revoked.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from typing import Any, Iterable, Sequence

from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError

from .. import audit
from ..batch import Batch, BatchResult, Step, screen_batch
from ..judge import NO_TRACKER, Engine, Tracker
from ..offenders import OffenderTracker, Offenders, event_time, shard_clocks
from ..settings import Settings
from . import metrics
from .outgoing import Outgoing, audit_record, sends_of, source_of
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


class _Listener(ConsumerRebalanceListener):
    def __init__(self, worker: "Worker") -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        metrics.REBALANCES.labels(kind="revoked").inc()
        self.worker.on_revoked(set(revoked))

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        metrics.REBALANCES.labels(kind="assigned").inc()
        log.info("assigned %s", sorted((tp.topic, tp.partition) for tp in assigned))
        self.worker.on_assigned(set(assigned))


class Worker:
    def __init__(self, settings: Settings, engine: Engine, health: metrics.Health) -> None:
        self.settings = settings
        self.engine = engine
        self.health = health
        self.stop_requested = threading.Event()
        self.deadline: float | None = None
        self.reloader = LexiconReloader(settings.lexicons, settings.policy_path, settings.matcher, engine,
                                        settings.reload_interval_s, settings.cache_dir)
        self.offenders = Offenders(engine.policy.offenders)
        self.step = Step.of(settings, engine, bool(settings.audit_topic))
        self.pending_audit: list[dict[str, Any]] = []
        #: Changelog records of the last batch, and that batch's offsets,
        #: which may be committed only once those records are acknowledged.
        self.pending_changelog: list[Outgoing] = []
        self.awaiting_state: dict[TopicPartition, OffsetAndMetadata] = {}
        self.rescan: threading.Thread | None = None
        self.uncommitted: dict[TopicPartition, OffsetAndMetadata] = {}
        self.abandoned = False
        # kafka-python is untyped; both are set by _connect before use.
        self.consumer: Any = None
        self.producer: Any = None
        metrics.set_lexicon(engine.lexicon_version, engine.posts.lexicons.term_count, None)

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
        self._check_topics()
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
            else:
                self._flush_state()
                if self.uncommitted:
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
                self.health.beat()  # retrying a broker is alive, not stalled
                self._not_ready(f"cannot reach {self.settings.bootstrap_servers}: {exc}")
                self.stop_requested.wait(backoff)
                backoff = min(backoff * 2, 10.0)
        return False

    def _check_topics(self) -> None:
        """Say clearly, once, which output topics do not exist: sends to them
        would wait forever (readiness says so too, less plainly)."""
        s = self.settings
        wanted = [s.topic_for("flag"), s.topic_for("recall"), s.events_topic, s.dead_letter_topic, s.audit_topic]
        if self.engine.policy.offenders.enabled:
            wanted.append(s.offenders_topic)
        try:
            existing = self.consumer.topics()
        except KafkaError as exc:
            log.warning("cannot list topics to check them: %s", exc)
            return
        for topic in dict.fromkeys(t for t in wanted if t):
            if topic not in existing:
                log.error("output topic %s does not exist: create it (see README), or nothing can be committed", topic)

    def _flush_state(self) -> bool:
        """Deliver the last batch's changelog records; its offsets become committable."""
        if not self.pending_changelog and not self.awaiting_state:
            return True
        if not self._deliver(self.pending_changelog):
            return False
        self.uncommitted.update(self.awaiting_state)
        self.pending_changelog, self.awaiting_state = [], {}
        return True

    def _close(self, clean: bool) -> int:
        self.reloader.stop()
        if self.rescan is not None:
            self.rescan.join(timeout=max(0.1, (self.deadline or time.monotonic() + 5) - time.monotonic()))
        self.health.ready = False
        metrics.READY.set(0)
        if self.consumer is not None:
            if clean and not self._flush_state():
                clean = False
            if clean and self.uncommitted:
                self._commit()
            try:
                self.consumer.close(autocommit=False)  # leaves the group at once
            except KafkaError as exc:
                log.warning("consumer close: %s", exc)
        if self.producer is not None:
            self.producer.close(timeout=max(0.1, (self.deadline or time.monotonic() + 5) - time.monotonic()))
        metrics.UP.set(0)
        done = clean and not self.uncommitted and not self.awaiting_state and not self.abandoned
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
        result = screen_batch(self.step, Batch([r.value or b"" for r in batch], lambda i: source_of(batch[i]),
                                               lambda i: batch[i].timestamp / 1000),
                              _PartitionAccounts(self.offenders, batch))
        sends = sends_of(result, batch, self.settings)
        if self.pending_audit and self.settings.audit_topic:
            sends.first += [audit_record(r, self.settings.audit_topic) for r in self.pending_audit]
        self.pending_audit = []
        changelog = self._changelog()
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        # Dead letters and audit records are acknowledged before the events
        # go out: an event must never be out while the audit record that
        # explains it could still be lost. Events before state: a batch's
        # changelog records ride along with the *next* batch's events (or go
        # out when the loop idles), and its offsets are committed only once
        # they are acknowledged. If we die in between, the state is rebuilt
        # from the older changelog and the events come again with the same
        # ids; writing state first could lose a blacklist event. A second
        # round trip per batch for the changelog cost ~50 ms of p99 latency
        # at half load; the one for audit records is paid only by batches
        # that have any.
        if not (self._deliver(sends.first) and self._deliver(sends.then + self.pending_changelog)):
            log.warning("batch of %d records not fully acknowledged; not committing it", len(batch))
            for tp, rs in parts.items():  # consume the batch again
                self.consumer.seek(tp, rs[0].offset)
            self.abandoned = True  # redone after restart; the exit code says so
            return
        self.uncommitted.update(self.awaiting_state)  # their changelog records are acknowledged now
        self.pending_changelog, self.awaiting_state = changelog, {}
        self._count(result)
        now = time.time()
        for record in batch:
            metrics.LATENCY.observe(max(0.0, now - record.timestamp / 1000))
        for tp, rs in parts.items():
            offset = OffsetAndMetadata(rs[-1].offset + 1, "", -1)
            if changelog:
                self.awaiting_state[tp] = offset
            else:
                self.uncommitted[tp] = offset
            high = self.consumer.highwater(tp)
            if high is not None:
                metrics.LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(max(0, high - rs[-1].offset - 1))
        self._commit(sync=False)

    @staticmethod
    def _count(result: BatchResult) -> None:
        counts = result.counts
        for outcome in ("passed", "flagged", "recalled", "dead_lettered"):
            metrics.POSTS.labels(outcome=outcome).inc(getattr(counts, outcome))
        metrics.POSTS_CONSUMED.inc(counts.posts)
        for e in result.emitted:
            if e.judged is not None:
                for hit in e.judged.counted:
                    metrics.HITS.labels(category=hit.hit.rule.category).inc()
                    metrics.HITS_BY_VARIANT.labels(variant=hit.hit.variant).inc()

    def _changelog(self) -> list[Outgoing]:
        out = []
        for tp in list(self.offenders.shards):
            for key, value in self.offenders.take_changes(tp):
                out.append(Outgoing(self.settings.offenders_topic, key, value, [], "state", tp.partition))  # type: ignore[attr-defined]
        if out:
            shards = self.offenders.shards.values()
            metrics.OFFENDER_ACCOUNTS.set(sum(len(s.accounts) for s in shards))
            metrics.BLACKLISTED.set(sum(len(s.blacklisted) for s in shards))
        return out

    def _send(self, item: Outgoing) -> Any:
        try:
            return self.producer.send(item.topic, key=item.key, value=item.value, headers=item.headers or None,
                                      partition=item.partition)
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
                elif item.action == "audit":
                    metrics.AUDIT_RECORDS.inc()
                elif item.action not in ("dead_letter", "state"):
                    metrics.EVENTS.labels(action=item.action).inc()
            in_flight = waiting
            self.health.beat()  # waiting for a broker is alive, not stalled
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
        """Commit what is done for partitions we are losing, then forget them
        (their offender state too: the next owner restores it)."""
        if not self._flush_state():
            log.warning("changelog not acknowledged before revocation; the next owner redoes the last batch")
        self._commit(only=revoked)
        for tp in revoked:
            self.uncommitted.pop(tp, None)
            self.offenders.drop(tp)
            metrics.LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(0)

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """Restore each new partition's offender state from its changelog
        partition (only while the policy counts offenders: otherwise there is
        no state to restore, and no changelog topic need exist)."""
        fresh = [tp for tp in assigned if tp not in self.offenders.shards]
        if not fresh or not self.offenders.config.enabled:
            return
        from .changelog import restore

        started = time.monotonic()
        restored = restore(self.settings, [tp.partition for tp in fresh])
        for tp in fresh:
            items = restored.get(tp.partition, [])
            metrics.STATE_RESTORED.inc(len(items))
            kept = self.offenders.restore(tp, items)
            log.info("offender state of %s:%d restored: %d accounts from %d changelog records",
                     tp.topic, tp.partition, kept, len(items))
        log.info("offender state restored in %.2f s", time.monotonic() - started)

    # -- lexicon and readiness ---------------------------------------------------------------
    def _maybe_swap(self) -> None:
        fresh = self.reloader.take()
        self._audit_rejections()
        if fresh is None:
            return
        previous = {"lexicon_version": self.engine.lexicon_version, "policy_version": self.engine.policy_version}
        self.engine = fresh  # between batches: a batch is judged by one version
        self.step = Step.of(self.settings, fresh, bool(self.settings.audit_topic))
        was_counting = self.offenders.config.enabled
        self.offenders.config = fresh.policy.offenders  # the counts so far carry over
        if self.offenders.config.enabled and not was_counting:
            self.on_assigned(set(self.consumer.assignment()))  # counting starts: restore what the changelog has
        gc.collect()
        gc.freeze()  # the new lexicon is as long-lived as the first (see run.py)
        metrics.RELOADS.inc()
        metrics.set_lexicon(fresh.lexicon_version, fresh.posts.lexicons.term_count, previous["lexicon_version"])
        log.info("lexicon version %s, policy version %s now serving (was %s)", fresh.lexicon_version,
                 fresh.policy_version, previous)
        self.pending_audit.append(audit.reload(self.settings.worker_id, fresh, previous, "loaded"))
        if self.settings.rescan_window_s:
            self._start_rescan(fresh)

    def _audit_rejections(self) -> None:
        for problems in self.reloader.take_rejections():
            self.pending_audit.append(audit.reload(self.settings.worker_id, self.engine, {}, "rejected", problems))

    def _start_rescan(self, engine: Engine) -> None:
        """Rescan the input topic's last ``rescan_window_s`` with the new
        version, in a thread with its own consumer (outside the group)."""
        if self.rescan is not None and self.rescan.is_alive():
            log.warning("a rescan is still running; the new version's rescan is skipped")
            metrics.RESCANS.labels(outcome="skipped").inc()
            return
        from .rescan_topic import rescan_topic

        since_ms = int((time.time() - self.settings.rescan_window_s) * 1000)

        def run() -> None:
            try:
                summary = rescan_topic(self.settings, engine, self.settings.input_topic, ("timestamp", since_ms),
                                       stop=self.stop_requested, producer=self.producer)
                metrics.RESCANS.labels(outcome="finished").inc()
                log.info("rescan after reload: %s", summary.line(engine))
            except Exception as exc:  # noqa: BLE001 - a failed rescan must not stop screening
                metrics.RESCANS.labels(outcome="failed").inc()
                log.error("rescan after reload failed: %s", exc)

        self.rescan = threading.Thread(target=run, name="rescan", daemon=True)
        self.rescan.start()

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


class _PartitionAccounts:
    """The offender state one poll batch meets (:class:`screener.batch.Accounts`):
    a shard per input partition; a post without ``published_at`` happened at
    its record's timestamp."""

    def __init__(self, offenders: Offenders, records: Sequence[Any]) -> None:
        self.offenders, self.records = offenders, records

    def tracker(self, objects: Sequence[dict[str, Any]], rows: Sequence[int], batch: Batch) -> Tracker:
        if not self.offenders.config.enabled:
            return NO_TRACKER
        records = self.records
        return OffenderTracker(self.offenders, lambda i: _tp(records[rows[i]]),
                               lambda i: event_time(objects[i], records[rows[i]].timestamp / 1000))

    def finish(self, tracker: Tracker, objects: Sequence[dict[str, Any]], rows: Sequence[int],
               batch: Batch) -> list[dict[str, Any]]:
        if not isinstance(tracker, OffenderTracker):
            return []
        records = self.records
        return tracker.finish(shard_clocks(objects, lambda i: _tp(records[rows[i]]),
                                           lambda i: records[rows[i]].timestamp / 1000))


def _tp(record: Any) -> TopicPartition:
    return TopicPartition(record.topic, record.partition)
