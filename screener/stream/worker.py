"""``screener run``: one consumer-group worker process, at-least-once.

Per poll batch: screen it with the batch step every front end shares
(:func:`screener.batch.screen_batch`: decode, screening, policy, repeat
offenders, events, audit records, dead letters), produce its dead letters and
audit records and wait until the broker has acknowledged them, then its
events (with the previous batch's offender-state changes for the changelog
topic) and wait again, and only then commit the batch's offsets (the
protocol and its argument: :mod:`screener.stream.commits`). A crash anywhere
before the commit re-delivers the batch; its events come out again with the
same ``event_id``, and its violations count nothing twice (they are keyed by
post id). Nothing is lost. The Kafka client behind it is confluent-kafka or
kafka-python (:mod:`screener.stream.clients`).

Offender state is per input partition: restored from the changelog
partition of the same number when a partition is assigned, dropped when it
is revoked.
"""

from __future__ import annotations

import gc
from bisect import bisect_left
import logging
import signal
import threading
import time
from typing import Any, Callable, Sequence

from .. import audit
from ..batch import Batch, BatchResult, Step, part_bounds, screen_parts
from ..judge import NO_TRACKER, Engine, Tracker
from ..offenders import OffenderTracker, Offenders, event_time, shard_clocks
from ..settings import Settings
from . import clients, metrics
from .clients import TP, BrokerFailure, Delivery, Record
from .commits import CommitProtocol, Transactions
from .liveness import IdleWait
from .outgoing import Outgoing, audit_record, sends_of, source_of
from .reload import LexiconReloader

log = logging.getLogger("screener.worker")
#: Bytes of a poll batch screened at once, in batch_bytes (16 MiB by default): see Worker._defer.
POLL_BUDGET_BATCHES = 16

class Worker:
    def __init__(self, settings: Settings, engine: Engine, health: metrics.Health,
                 on_started: Callable[[], None] = lambda: None) -> None:
        self.settings = settings
        self.engine = engine
        self.health = health
        #: Told once the clients are made and subscribed: every setting held.
        self.on_started = on_started
        self.stop_requested = threading.Event()
        self.deadline: float | None = None
        self.reloader = LexiconReloader(settings.lexicons, settings.policy_path, settings.matcher, engine,
                                        settings.reload_interval_s, settings.cache_dir)
        self.offenders = Offenders(engine.policy.offenders)
        #: Input partitions whose changelog partition does not exist: their offender state is not written.
        self.undurable: set[TP] = set()
        self.step = Step.of(settings, engine, bool(settings.audit_topic))
        self.pending_audit: list[dict[str, Any]] = []
        self.commits: CommitProtocol | Transactions = CommitProtocol(self._deliver, self._commit)
        self.rescan: threading.Thread | None = None
        self.abandoned = False
        # Both set by _connect before use.
        self.consumer: clients.Consumer | None = None
        self.producer: clients.Producer | None = None
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
        consumer = self.consumer
        assert consumer is not None
        consumer.subscribe(self.settings.input_topic, self._assigned, self._revoked)
        self.on_started()
        self._check_topics()
        self.reloader.start()
        idle = IdleWait(self.health, self.settings.poll_timeout_ms, self.stop_requested)
        while not self.stop_requested.is_set():
            self.health.heartbeat = time.monotonic()
            self._maybe_swap()
            try:
                records = consumer.poll_batch(self.settings.poll_max_records, idle.timeout_ms() / 1000)
            except BrokerFailure as exc:
                self._not_ready(f"poll failed: {exc}")
                time.sleep(0.5)
                continue
            idle.after(bool(records))
            if records:
                self.health.broker_answered()
            self._set_ready()
            if records:
                self.process(records)
            elif self.commits.flush_state():
                self.commits.commit(sync=False)
        return self._close(clean=True)

    def _connect(self) -> bool:
        """Create the clients, retrying with backoff while no broker answers."""
        backoff = 0.5
        while not self.stop_requested.is_set():
            try:
                if self.settings.guarantee == "exactly-once":
                    return self._connect_transactional()
                self.producer = self.producer or clients.producer(self.settings)
                self.consumer = clients.consumer(self.settings)
                return True
            except BrokerFailure as exc:
                self.health.beat()  # retrying a broker is alive, not stalled
                self._not_ready(f"cannot reach {self.settings.bootstrap_servers}: {exc}")
                self.stop_requested.wait(backoff)
                backoff = min(backoff * 2, 10.0)
        return False

    def _connect_transactional(self) -> bool:
        # A stable worker_id gives a restarted process the same transactional
        # id, so that what the dead one left open is aborted at once (README).
        producer = clients.transactional_producer(self.settings,
                                                  f"screener-{self.settings.group_id}-{self.settings.worker_id}")
        self.producer = producer
        self.consumer = clients.consumer(self.settings)
        self.commits = Transactions(producer, self.consumer, self._count_sent)
        return True

    def _check_topics(self) -> None:
        """Say clearly, once, which output topics do not exist: sends to them
        would wait forever (readiness says so too, less plainly)."""
        s = self.settings
        wanted = [s.topic_for("flag"), s.topic_for("recall"), s.events_topic, s.dead_letter_topic, s.audit_topic]
        if self.engine.policy.offenders.enabled:
            wanted.append(s.offenders_topic)
        assert self.consumer is not None
        try:
            existing = self.consumer.topics()
        except BrokerFailure as exc:
            log.warning("cannot list topics to check them: %s", exc)
            return
        for topic in dict.fromkeys(t for t in wanted if t):
            if topic not in existing:
                log.error("output topic %s does not exist: create it (see README), or nothing can be committed", topic)

    def _close(self, clean: bool) -> int:
        self.reloader.stop()
        if self.rescan is not None:
            self.rescan.join(timeout=max(0.1, (self.deadline or time.monotonic() + 5) - time.monotonic()))
        self.health.set(False, "stopping")
        if self.consumer is not None:
            if clean and not self.commits.finish():
                clean = False
            try:
                self.consumer.close()  # leaves the group at once
            except BrokerFailure as exc:
                log.warning("consumer close: %s", exc)
        if self.producer is not None:
            try:
                self.producer.close(max(0.1, (self.deadline or time.monotonic() + 5) - time.monotonic()))
            except BrokerFailure as exc:
                log.warning("producer close: %s", exc)
        metrics.UP.set(0)
        done = clean and self.commits.settled and not self.abandoned
        log.info("stopped %s", "cleanly, every record processed is committed" if done else "with work to redo after restart")
        return 0 if done else 1

    # -- one batch -----------------------------------------------------------------------
    def process(self, records: dict[TP, list[Record]]) -> None:
        assert self.consumer is not None
        owned = self.consumer.assignment()
        parts = {tp: rs for tp, rs in records.items() if tp in owned and rs}  # never a lost partition
        settings = self.settings
        batch = [r for rs in parts.values() for r in rs]
        if not batch:
            return
        raws = [r.value or b"" for r in batch]
        within = part_bounds(raws, len(raws), POLL_BUDGET_BATCHES * settings.batch_bytes)[0][1]
        if within < len(batch):  # rare: over the byte budget (an ordinary batch is one C-speed sum)
            batch, raws = self._defer(batch, within), raws[:within]
            parts = {}
            for r in batch:
                parts.setdefault(TP(r.topic, r.partition), []).append(r)
        started = time.perf_counter()
        result = screen_parts(self.step, Batch(raws, lambda i: source_of(batch[i]),
                                               lambda i: batch[i].timestamp / 1000),
                              _PartitionAccounts(self.offenders, batch), settings.batch_records,
                              settings.batch_bytes, self.health.beat)
        sends = sends_of(result, batch, self.settings)
        if self.pending_audit and self.settings.audit_topic:
            sends.first += [audit_record(r, self.settings.audit_topic) for r in self.pending_audit]
        self.pending_audit = []
        changelog = self._changelog()
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        # The order of sends and commits, and why it is at-least-once: screener/stream/commits.py.
        offsets = {tp: rs[-1].offset + 1 for tp, rs in parts.items()}
        if not self.commits.batch(offsets, sends, changelog):
            log.warning("batch of %d records not fully acknowledged; not committing it", len(batch))
            for tp, rs in parts.items():  # consume the batch again
                self.consumer.seek(tp, rs[0].offset)
            self.abandoned = True  # redone after restart; the exit code says so
            return
        self._count(result)
        _observe_all(metrics.LATENCY, _latencies(batch, time.time() * 1000))
        for tp, next_offset in offsets.items():
            high = self.consumer.highwater(tp)
            if high is not None:
                metrics.LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(max(0, high - next_offset))

    def _defer(self, batch: list[Record], within: int) -> list[Record]:
        """The first ``within`` records of a poll batch, to screen now; every
        partition with records after them is sought back to its first one,
        which the next polls bring again.

        Screening in parts keeps the heartbeat (screen_parts), but librdkafka
        takes a partition away from a consumer that has not polled for
        ``max.poll.interval.ms`` (5 min): 2,048 hit-dense posts of 256 KiB
        take ~25 min, so their partition would pass from worker to worker and
        never get further. A budget of 16 MiB is ~45 s of the worst posts
        measured, and an ordinary batch (2,048 posts of ~300 bytes) is far
        below it.
        """
        assert self.consumer is not None
        back: dict[TP, int] = {}
        for r in batch[within:]:
            back.setdefault(TP(r.topic, r.partition), r.offset)
        for tp, offset in back.items():
            self.consumer.seek(tp, offset)
        log.info("poll batch over %d bytes: screening %d records of it now, the rest at the next polls",
                 POLL_BUDGET_BATCHES * self.settings.batch_bytes, within)
        return batch[:within]

    @staticmethod
    def _count(result: BatchResult) -> None:
        counts = result.counts
        for outcome in ("passed", "flagged", "recalled", "dead_lettered"):
            metrics.POSTS.labels(outcome=outcome).inc(getattr(counts, outcome))
        metrics.POSTS_CONSUMED.inc(counts.posts)
        hits: dict[str, int] = {}  # one increment per category (and variant kind), not per hit
        variants: dict[str, int] = {}  # keys: the bounded VARIANT_KINDS
        for e in result.emitted:
            if e.judged is not None:
                for hit in e.judged.counted:
                    hits[hit.hit.rule.category] = hits.get(hit.hit.rule.category, 0) + 1
                    variants[hit.hit.variant] = variants.get(hit.hit.variant, 0) + 1
        for category, n in hits.items():
            metrics.HITS.labels(category=category).inc(n)
        for variant, n in variants.items():
            metrics.HITS_BY_VARIANT.labels(variant=variant).inc(n)

    def _changelog(self) -> list[Outgoing]:
        out = []
        for tp in list(self.offenders.shards):
            changes = self.offenders.take_changes(tp)
            if tp in self.undurable:  # no changelog partition: restore() said so; sending would fail for ever
                continue
            for key, value in changes:
                out.append(Outgoing(self.settings.offenders_topic, key, value, [], "state", tp.partition))  # type: ignore[attr-defined]
        if out:
            shards = self.offenders.shards.values()
            metrics.OFFENDER_ACCOUNTS.set(sum(len(s.accounts) for s in shards))
            metrics.BLACKLISTED.set(sum(len(s.blacklisted) for s in shards))
        return out

    def _send(self, item: Outgoing) -> Delivery:
        assert self.producer is not None
        delivery = self.producer.send(item.topic, item.key, item.value, item.headers, item.partition)
        if delivery.failed:
            self._not_ready(f"send failed: {delivery.error}")
        return delivery

    def _deliver(self, outgoing: list[Outgoing]) -> bool:
        """Send everything and wait until the broker acknowledged all of it.

        Failed sends are sent again (the idempotent producer and deterministic
        event ids make a duplicate harmless) until they succeed or the shutdown
        deadline passes.
        """
        producer = self.producer
        assert producer is not None
        send = producer.send
        # One call per record and nothing else per record: at 50% violating
        # posts a batch sends three records per post.
        in_flight = [(item, send(item.topic, item.key, item.value, item.headers, item.partition)) for item in outgoing]
        backoff = 0.2
        while in_flight:
            if self.deadline is not None and time.monotonic() > self.deadline:
                return False
            producer.flush(1.0)
            waiting = []
            acknowledged = []
            for item, delivery in in_flight:
                if delivery.failed:
                    metrics.PRODUCE_FAILURES.inc()
                    waiting.append((item, self._send(item)))
                elif not delivery.done:
                    waiting.append((item, delivery))
                else:
                    acknowledged.append(item)
            self._count_sent(acknowledged)
            if acknowledged:
                self.health.broker_answered()
            in_flight = waiting
            self.health.beat()  # waiting for a broker is alive, not stalled
            if in_flight:
                self._not_ready(f"{len(in_flight)} sends not yet acknowledged")
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        return True

    @staticmethod
    def _count_sent(items: list[Outgoing]) -> None:
        """Count acknowledged records, one increment per kind."""
        by_action: dict[str, int] = {}
        for item in items:
            by_action[item.action] = by_action.get(item.action, 0) + 1
        for action, n in by_action.items():
            if action == "audit":
                metrics.AUDIT_RECORDS.inc(n)
            elif action not in ("dead_letter", "state"):
                metrics.EVENTS.labels(action=action).inc(n)

    def _commit(self, offsets: dict[TP, int], sync: bool) -> None:
        """Commit for the commit protocol; per batch asynchronously (see commits.py)."""
        assert self.consumer is not None
        self.consumer.commit(offsets, self._committed, sync)

    def _committed(self, offsets: dict[TP, int], error: Exception | None) -> None:
        if error is not None:
            metrics.COMMIT_FAILURES.inc()
            log.warning("commit failed (will be retried with the next one): %s", error)
        else:
            metrics.COMMITS.inc()
            self.health.broker_answered()
        self.commits.committed(offsets, error)

    def _revoked(self, revoked: set[TP]) -> None:
        metrics.count_rebalance("revoked", revoked)
        self.on_revoked(revoked)

    def _assigned(self, assigned: set[TP]) -> None:
        metrics.count_rebalance("assigned", assigned)
        log.info("assigned %s", sorted(assigned))
        self.on_assigned(assigned)

    def on_revoked(self, revoked: set[TP]) -> None:
        """Commit what is done for partitions we are losing, then forget them
        (their offender state too: the next owner restores it)."""
        if not self.commits.revoke(revoked):
            log.warning("changelog not acknowledged before revocation; the next owner redoes the last batch")
        for tp in revoked:
            self.offenders.drop(tp)
            self.undurable.discard(tp)
            metrics.LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(0)

    def on_assigned(self, assigned: set[TP]) -> None:
        """Restore each new partition's offender state from its changelog
        partition (only while the policy counts offenders: otherwise there is
        no state to restore, and no changelog topic need exist)."""
        fresh = [tp for tp in assigned if tp not in self.offenders.shards]
        if not fresh or not self.offenders.config.enabled:
            return
        from .changelog import restore

        started = time.monotonic()
        restored, missing = restore(self.settings, [tp.partition for tp in fresh])
        self.undurable |= {tp for tp in fresh if tp.partition in missing}
        for tp in fresh:
            items = restored.get(tp.partition, [])
            metrics.STATE_RESTORED.inc(len(items))
            kept = self.offenders.restore(tp, items, strict=False)
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
        if self.offenders.config.enabled and not was_counting and self.consumer is not None:
            self.on_assigned(self.consumer.assignment())  # counting starts: restore what the changelog has
        gc.collect()
        gc.freeze()  # the new lexicon is as long-lived as the first (see run.py)
        metrics.RELOADS.inc()
        metrics.set_lexicon(fresh.lexicon_version, fresh.posts.lexicons.term_count, previous["lexicon_version"])
        log.info("lexicon version %s, policy version %s now serving (was lexicon %s, policy %s)", fresh.lexicon_version,
                 fresh.policy_version, previous["lexicon_version"], previous["policy_version"])
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
        # A transactional producer sends only inside the loop's transactions.
        shared = None if isinstance(self.commits, Transactions) else self.producer

        def run() -> None:
            try:
                summary = rescan_topic(self.settings, engine, self.settings.input_topic, ("timestamp", since_ms),
                                       stop=self.stop_requested, producer=shared)
                metrics.RESCANS.labels(outcome="finished").inc()
                log.info("rescan after reload: %s", summary.line(engine))
            except Exception as exc:  # noqa: BLE001 - a failed rescan must not stop screening
                metrics.RESCANS.labels(outcome="failed").inc()
                log.error("rescan after reload failed: %s", exc)

        self.rescan = threading.Thread(target=run, name="rescan", daemon=True)
        self.rescan.start()

    def _coordinator_connected(self) -> bool:
        """Whether the group coordinator is known and connected (an idle poll
        does not raise while a client retries a lost broker in the background;
        each client knows in its own way: screener/stream/clients.py)."""
        return self.consumer is None or self.consumer.connected()

    def _set_ready(self) -> None:
        assigned = self.consumer is not None and bool(self.consumer.assignment())
        connected = self._coordinator_connected()
        ready = assigned and connected
        reason = "ready" if ready else "broker connection lost" if not connected else "waiting for partition assignment"
        self.health.set(ready, reason)  # ready for /readyz also needs a broker that answered lately

    def _not_ready(self, reason: str) -> None:
        self.health.set(False, reason)


class _PartitionAccounts:
    """The offender state one poll batch meets (:class:`screener.batch.Accounts`):
    a shard per input partition; a post without ``published_at`` happened at
    its record's timestamp."""

    def __init__(self, offenders: Offenders, records: Sequence[Any]) -> None:
        self.offenders, self.records = offenders, records

    def tracker(self, objects: Sequence[dict[str, Any]], rows: Sequence[int], batch: Batch) -> Tracker:
        if not self.offenders.config.enabled:
            return NO_TRACKER
        # batch.start: a part of the poll batch (screen_parts, or the split
        # that isolates a failing record) indexes from its own first record.
        records, start = self.records, batch.start
        return OffenderTracker(self.offenders, lambda i: _tp(records[start + rows[i]]),
                               lambda i: event_time(objects[i], records[start + rows[i]].timestamp / 1000))

    def finish(self, tracker: Tracker, objects: Sequence[dict[str, Any]], rows: Sequence[int],
               batch: Batch) -> list[dict[str, Any]]:
        if not isinstance(tracker, OffenderTracker):
            return []
        records, start = self.records, batch.start
        return tracker.finish(shard_clocks(objects, lambda i: _tp(records[start + rows[i]]),
                                           lambda i: records[start + rows[i]].timestamp / 1000))


def _latencies(records: list[Record], now_ms: float) -> list[float]:
    """Seconds from each record's timestamp to ``now_ms``: 0 for a timestamp
    ahead of this clock, none for a record without one (-1: message format
    v0, or a producer that set none), which would otherwise count 56 years."""
    return [max(0.0, now_ms - r.timestamp) / 1000 for r in records if r.timestamp > 0]


def _observe_all(histogram: Any, values: list[float]) -> None:
    """``histogram.observe(v)`` for every value, with one increment per bucket:
    per record, observe() cost ~1.5 us, a sixth of a record's budget at 100k
    posts/s. Uses prometheus-client's bucket list (non-cumulative, as
    observe() fills it); falls back to observe() if its shape changes."""
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for v in values:
            histogram.observe(v)
        return
    counts: dict[int, int] = {}
    for v in values:
        i = bisect_left(bounds, v)  # the first bound >= v, as observe() picks it
        counts[i] = counts.get(i, 0) + 1
    for i, n in counts.items():
        buckets[i].inc(n)
    total.inc(sum(values))


def _tp(record: Record) -> TP:
    return TP(record.topic, record.partition)
