"""The Kafka clients behind one small seam: confluent-kafka (librdkafka) or kafka-python.

The worker, ``rescan --topic``, ``audit`` on Kafka and the offender changelog
need few operations: poll a batch of records, send a record and learn when
the broker acknowledged it, flush, commit offsets (at once or in the
background), be told of assigned and revoked partitions, list topics and
partitions, and read a topic range. This module creates the clients with
their defaults and offers exactly those operations, for either library:

- ``confluent`` (the default where its wheel imports): librdkafka does the
  protocol work in C threads; measured against Tansu on this project's
  machine it consumed 150-550k records/s where kafka-python, pure Python,
  managed 20-23k (issue 11).
- ``kafka-python``: kept because users asked for it (no native library).

Client options (``[kafka]``, ``[kafka_consumer]``, ``[kafka_producer]``,
``SCREENER_KAFKA_*``, ``--kafka-option``) pass through in the chosen client's
own spelling: ``security_protocol`` / ``sasl_plain_username`` for
kafka-python, ``security.protocol`` / ``sasl.username`` for librdkafka. An
underscore in a librdkafka option is read as a dot (no librdkafka option
has one), so ``SCREENER_KAFKA_SECURITY_PROTOCOL`` works with both.

Nothing outside this module imports a Kafka library.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Literal, NamedTuple, Protocol, Sequence

from ..errors import BrokerError, ConfigError
from ..settings import Settings

log = logging.getLogger("screener.clients")

CLIENTS = ("confluent", "kafka-python")


class BrokerFailure(Exception):
    """A client operation failed (broker unreachable, request refused, timed out)."""


class TP(NamedTuple):
    """A topic partition, the same for both clients."""

    topic: str
    partition: int


@dataclass(slots=True)
class Record:
    """A consumed record, the same for both clients; ``timestamp`` in ms."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


class Delivery:
    """A sent record's fate: ``done`` once the broker answered, ``error`` if it refused."""

    __slots__ = ("done", "error")

    def __init__(self, done: bool = False, error: str | None = None) -> None:
        self.done, self.error = done, error

    @property
    def failed(self) -> bool:
        return self.done and self.error is not None

    def __call__(self, error: Any, _message: Any = None) -> None:
        """librdkafka's delivery report (the object itself is the callback: no closure per record)."""
        self.done, self.error = True, (None if error is None else str(error))


Batch = dict[TP, list[Record]]
OnPartitions = Callable[[set[TP]], None]
OnCommit = Callable[[dict[TP, int], "Exception | None"], None]


class Consumer(Protocol):
    """What the worker and the topic readers need of a consumer."""

    def subscribe(self, topic: str, on_assigned: OnPartitions, on_revoked: OnPartitions) -> None: ...
    def poll_batch(self, max_records: int, timeout_s: float) -> Batch: ...
    def assignment(self) -> set[TP]: ...
    def seek(self, tp: TP, offset: int) -> None: ...
    def commit(self, offsets: dict[TP, int], on_done: OnCommit, sync: bool = True) -> None: ...
    def topics(self) -> set[str]: ...
    def partitions(self, topic: str) -> set[int]: ...
    def highwater(self, tp: TP) -> int | None: ...
    def connected(self) -> bool: ...
    # reading a range outside any group
    def assign(self, offsets: dict[TP, int]) -> None: ...
    def watermarks(self, tp: TP) -> tuple[int, int]: ...
    def offset_for_time(self, tp: TP, ms: int) -> int | None: ...
    def pause(self, tp: TP) -> None: ...
    def position(self, tp: TP) -> int | None: ...
    def close(self) -> None: ...


class Producer(Protocol):
    def send(self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]] | None = None,
             partition: int | None = None) -> Delivery: ...
    def flush(self, timeout_s: float) -> None: ...
    def close(self, timeout_s: float) -> None: ...


class TransactionAborted(BrokerFailure):
    """The broker aborted (or we had to abort) a transaction: nothing of it is visible; redo the batch."""


class Transactional(Producer, Protocol):
    """A transactional producer (``--guarantee exactly-once``)."""

    def begin(self) -> None: ...
    def send_offsets(self, offsets: dict[TP, int], consumer: Consumer) -> None: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...


_MODULES = {"confluent": "confluent_kafka", "kafka-python": "kafka"}


def _imports(name: str) -> bool:
    try:
        __import__(_MODULES[name])
    except ImportError:
        return False
    return True


def available() -> list[str]:
    """The clients whose library imports here, default first."""
    return [name for name in CLIENTS if _imports(name)]


def chosen(settings: Settings) -> str:
    """The client ``settings.kafka_client`` names; ``auto`` is confluent where it imports."""
    name = settings.kafka_client
    if name == "auto":
        first = next((n for n in CLIENTS if _imports(n)), None)  # kafka-python is imported only if needed
        if first is None:
            raise ConfigError("kafka_client: neither confluent-kafka nor kafka-python is installed "
                              "(pip install 'screener[stream]')")
        return first
    if not _imports(name):
        module = "confluent-kafka" if name == "confluent" else "kafka-python"
        raise ConfigError(f"kafka_client: {name} needs the {module} package, which does not import here")
    return name


def consumer(settings: Settings, group: bool = True) -> Consumer:
    """A consumer of the settings' group (``group=False``: outside any group, for reading ranges)."""
    if chosen(settings) == "confluent":
        return _ConfluentConsumer(settings, group)
    return _PyConsumer(settings, group)


def producer(settings: Settings) -> Producer:
    if chosen(settings) == "confluent":
        return _ConfluentProducer(settings)
    return _PyProducer(settings)


def transactional_producer(settings: Settings, transactional_id: str) -> Transactional:
    """A producer whose sends commit together with input offsets (confluent-kafka only)."""
    if chosen(settings) != "confluent":
        raise ConfigError("guarantee: exactly-once needs the confluent client (kafka_client = \"confluent\"); "
                          "kafka-python's transactions are not supported here")
    return _ConfluentTransactional(settings, transactional_id)


def probe(settings: Settings) -> Callable[[float], object]:
    """A broker-liveness probe for :class:`screener.stream.liveness.BrokerWatch`
    on a connection of its own, in the chosen client (so it takes the same
    options, in the same spelling, as the worker's consumer)."""
    if chosen(settings) != "confluent":
        from .liveness import kafka_python_probe

        return kafka_python_probe(settings.bootstrap_servers, settings.kafka)
    admin: list[Any] = []  # created on first use: the broker may be down at start

    def ask(timeout_s: float) -> object:
        ck = _ck()
        if not admin:
            from confluent_kafka.admin import AdminClient

            admin.append(AdminClient(_confluent_config(settings, {}, {})))
        try:
            # Metadata: any reply, even one that refuses a topic, is an answer.
            return admin[0].list_topics(timeout=timeout_s)
        except ck.KafkaException as exc:
            raise BrokerFailure(str(exc)) from None
        finally:
            # Its librdkafka log lines reach LIBRDKAFKA_LOG only from poll:
            # unserved, they piled up (~1 MB a minute with the broker down)
            # and their reasons were never seen (found by a review).
            admin[0].poll(0)

    return ask


def quiet_logs() -> None:
    """kafka-python logs every failed reconnect (10 per second while a broker
    is down); the worker reports connection state itself, once per change."""
    logging.getLogger("kafka").setLevel(logging.CRITICAL)


# -- reading a topic range ------------------------------------------------------------------

Start = tuple[str, int]  # ("offset", n) | ("timestamp", epoch ms)


def read_range(consumer: Consumer, topic: str, start: Start, batch: int, positions: dict[int, int] | None = None,
               stop: threading.Event | None = None, partitions: Sequence[int] | None = None,
               until_ms: int | None = None) -> Iterator[tuple[list[Record], dict[int, int]]]:
    """Batches of records from ``start`` up to the topic's end as of now, each
    with the next position of every partition after it.

    "The end as of now" is two conditions, because a broker's end offsets
    cannot be trusted alone (Tansu reports the high watermark of a
    multi-record batch as its base offset + 1; measured in the tests): a
    partition is finished when a record newer than ``until_ms`` (default:
    the start of the read) turns up, or when it is at or past its end offset
    and a poll brings nothing more.
    """
    known = consumer.partitions(topic)
    if not known:
        raise ConfigError(f"topic {topic!r} not found")
    tps = [TP(topic, p) for p in sorted(known) if partitions is None or p in partitions]
    until = until_ms if until_ms is not None else int(time.time() * 1000)
    marks = {tp: consumer.watermarks(tp) for tp in tps}
    begin: dict[TP, int] = {}
    for tp in tps:
        low, high = marks[tp]
        if start[0] == "timestamp":
            found = consumer.offset_for_time(tp, start[1])
            begin[tp] = high if found is None else found
        else:
            begin[tp] = max(start[1], low)
    at = {tp.partition: (positions or {}).get(tp.partition, begin[tp]) for tp in tps}
    consumer.assign({tp: at[tp.partition] for tp in tps})
    done: set[TP] = set()
    while len(done) < len(tps) and not (stop and stop.is_set()):
        polled = consumer.poll_batch(batch, 0.3)
        records: list[Record] = []
        for tp, rs in polled.items():
            kept = [r for r in rs if r.timestamp <= until]
            if len(kept) < len(rs):
                done.add(tp)
                consumer.pause(tp)
            if kept:
                records += kept
                at[tp.partition] = kept[-1].offset + 1
        if not polled:
            # The consumer's position, not the last record's offset + 1: a
            # transaction's commit marker takes an offset no record has.
            done |= {tp for tp in tps if max(at[tp.partition], consumer.position(tp) or 0) >= marks[tp][1]}
        if records:
            yield records, dict(at)


# -- confluent-kafka (librdkafka) -------------------------------------------------------------

# Group joins and failure detection as fast as kafka-python's settings below;
# fetch.wait.max.ms bounds how long a broker may hold a fetch that found no
# data (a record arriving just after an empty fetch waits that long).
# message.timeout.ms: a send the broker has not acknowledged in 30 s is
# reported failed and sent again (librdkafka's default waits 5 minutes).
CONFLUENT_CONSUMER: dict[str, Any] = {
    "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000, "auto.offset.reset": "earliest",
    "isolation.level": "read_committed",  # librdkafka's default too: aborted transactions stay unseen
    "max.partition.fetch.bytes": 4 << 20, "fetch.wait.max.ms": 50, "enable.auto.commit": False,
    "enable.auto.offset.store": False, "statistics.interval.ms": 1000,
}
BOOTSTRAP_TIMEOUT_S = 2.0
#: Half-second waits for room in librdkafka's queue before a send fails (a
#: queue smaller than a batch's records drains as the broker acknowledges).
QUEUE_FULL_RETRIES = 10
# compression.type lz4: at 50% violating posts the worker writes 1.5
# records a post (event, audit, changelog); compressed, they cost the broker
# beside it less, and the worker ran 1.02-1.16x the posts/s (0.99x at 1%;
# benchmarks/results/stream-compression.md). kafka-python keeps its own
# default (none): not measured there.
CONFLUENT_PRODUCER: dict[str, Any] = {
    "acks": "all", "linger.ms": 5, "enable.idempotence": True, "message.timeout.ms": 30000,
    "compression.type": "lz4",
}
# A transaction left open by a process that died is aborted by the broker
# after transaction.timeout.ms (at once when a process with the same
# transactional.id starts): until then read_committed consumers wait at it.
CONFLUENT_TRANSACTIONAL: dict[str, Any] = {**CONFLUENT_PRODUCER, "transaction.timeout.ms": 10000,
                                           "message.timeout.ms": 10000}  # librdkafka: at most the transaction's
# How long one transaction step may retry: well inside the liveness probe's
# 60 s, and as long as the broker keeps an abandoned transaction open.
TRANSACTION_TIMEOUT_S = 10.0


def _dotted(options: dict[str, Any]) -> dict[str, Any]:
    return {key.replace("_", "."): value for key, value in options.items()}


def _confluent_config(settings: Settings, defaults: dict[str, Any], own: Any) -> dict[str, Any]:
    return {"bootstrap.servers": settings.bootstrap_servers, **defaults, **_dotted(dict(settings.kafka)),
            **_dotted(dict(own)), "logger": LIBRDKAFKA_LOG}


class RepeatLimitedLog:
    """librdkafka's log lines, through Python logging, each kind at most once
    per ``every_s`` seconds, with how many like it were held back.

    librdkafka writes to stderr on its own: with the broker down, a worker
    logged ~25 "Connect ... failed: Connection refused" lines a second (300 in
    12 s), and ``screener audit`` printed 40 before its one-line error (found
    by a walk-through of the docs). Its other lines (a failed SASL handshake,
    a certificate refused) must still be seen, so nothing is dropped by kind:
    a line is held back only if one that differs from it only in its numbers
    was logged less than ``every_s`` ago. confluent-kafka calls :meth:`log`
    as it would a ``logging.Logger`` (from poll, consume and flush).
    """

    _NUMBERS = re.compile(r"[0-9]+")
    _MOST_KINDS = 1000  # a kind is its text without numbers: few in practice; bounded anyway

    def __init__(self, logger: logging.Logger, every_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._logger, self._every, self._clock = logger, every_s, clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def log(self, level: int, message: str, *args: Any) -> None:
        text = message % args if args else message
        kind = self._NUMBERS.sub("#", text)
        now = self._clock()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self._every:
                self._held[kind] = self._held.get(kind, 0) + 1
                return
            if len(self._last) >= self._MOST_KINDS:
                self._last.clear()
                self._held.clear()
            self._last[kind] = now
            held = self._held.pop(kind, 0)
        if held:
            text += f" ({held} more like it in the last {now - last:.0f} s)"  # type: ignore[operator]
        self._logger.log(level, "librdkafka: %s", text)


LIBRDKAFKA_LOG = RepeatLimitedLog(logging.getLogger("screener.librdkafka"))


def _ck() -> Any:
    import confluent_kafka

    return confluent_kafka


SPELLING = ("Kafka options pass through in the chosen client's own spelling (README, the streaming worker); "
            "kafka-python's spelling needs kafka_client = \"kafka-python\", librdkafka's \"confluent\"")


def _confluent_failure(exc: Exception) -> Exception:
    """A rejected option is a configuration error (said once, not retried); the rest is the broker's."""
    error = exc.args[0] if exc.args else None
    if error is not None and getattr(error, "code", lambda: None)() == _ck().KafkaError._INVALID_ARG:
        return ConfigError(f"kafka (confluent-kafka): {error.str()}. {SPELLING}")
    return BrokerFailure(str(exc))


class _ConfluentConsumer:
    def __init__(self, settings: Settings, group: bool) -> None:
        ck = _ck()
        self._ck = ck
        config = _confluent_config(settings, CONFLUENT_CONSUMER, settings.kafka_consumer)
        if group:
            config["group.id"] = settings.group_id
        else:  # librdkafka wants a group id; this one never joins nor commits
            config["group.id"] = f"screener-reader-{uuid.uuid4().hex[:8]}"
            config.pop("statistics.interval.ms", None)
        self._on_commit: OnCommit | None = None
        self._group_up = True
        self._brokers_down = False
        config.update(on_commit=self._committed, error_cb=self._error, stats_cb=self._stats)
        try:
            self._c = ck.Consumer(config)
        except ck.KafkaException as exc:
            raise _confluent_failure(exc) from None
        self._assigned: set[TP] = set()
        # librdkafka connects lazily; ask for metadata once, as kafka-python's
        # constructor does (bootstrap_timeout_ms), so that "cannot reach the
        # broker" is said at once and retried by the caller.
        self._timeout = BOOTSTRAP_TIMEOUT_S
        try:
            self._metadata()
        except BrokerFailure:
            # librdkafka's log lines reach LIBRDKAFKA_LOG only from poll: the
            # reason behind "cannot reach" (a refused SASL handshake) is among them.
            self._c.poll(0)
            self._c.close()
            raise
        self._timeout = 5.0

    # librdkafka's callbacks run inside poll/consume, on this thread
    def _error(self, error: Any) -> None:
        if error.code() in (self._ck.KafkaError._ALL_BROKERS_DOWN, self._ck.KafkaError._TRANSPORT):
            self._brokers_down = True

    def _stats(self, text: str) -> None:
        from .. import jsonio

        try:
            stats = jsonio.loads(text)
        except ValueError:
            return
        cgrp = stats.get("cgrp")
        if cgrp is not None:
            self._group_up = cgrp.get("state") == "up"
        brokers = [b for b in stats.get("brokers", {}).values() if b.get("nodeid", -1) >= 0]
        if brokers:
            self._brokers_down = not any(b.get("state") == "UP" for b in brokers)

    def _committed(self, error: Any, partitions: list[Any]) -> None:
        if self._on_commit is None:
            return
        failure = BrokerFailure(str(error)) if error is not None else None
        offsets = {TP(p.topic, p.partition): p.offset for p in partitions}
        if failure is None:
            failure = next((BrokerFailure(str(p.error)) for p in partitions if p.error is not None), None)
        self._on_commit(offsets, failure)

    def subscribe(self, topic: str, on_assigned: OnPartitions, on_revoked: OnPartitions) -> None:
        def assigned(_c: Any, parts: list[Any]) -> None:
            tps = {TP(p.topic, p.partition) for p in parts}
            self._assigned |= tps
            on_assigned(tps)

        def revoked(_c: Any, parts: list[Any]) -> None:
            tps = {TP(p.topic, p.partition) for p in parts}
            on_revoked(tps)
            self._assigned -= tps

        self._c.subscribe([topic], on_assign=assigned, on_revoke=revoked, on_lost=revoked)

    def poll_batch(self, max_records: int, timeout_s: float) -> Batch:
        # consume(n, timeout) returns only when n records are there or the
        # timeout passed: at half load every batch waited the whole timeout
        # (p50 167 ms measured). So: take what librdkafka has prefetched; if
        # nothing, wait for the first record only, then take what came with it.
        consume = self._c.consume
        try:
            messages = consume(max_records, 0)
            if not messages:
                messages = consume(1, timeout_s)
                if messages and max_records > 1:
                    messages += consume(max_records - 1, 0)
        except self._ck.KafkaException as exc:
            raise BrokerFailure(str(exc)) from None
        out: Batch = {}
        for m in messages:
            if m.error() is not None:
                if m.error().code() != self._ck.KafkaError._PARTITION_EOF:
                    log.warning("consume: %s", m.error())
                continue
            topic, partition = m.topic(), m.partition()
            tp = TP(topic, partition)
            records = out.get(tp)
            if records is None:
                records = out[tp] = []
            records.append(Record(topic, partition, m.offset(), m.timestamp()[1], m.key(), m.value(),
                                  m.headers() or []))
        if out:
            self._brokers_down = False
        return out

    def assignment(self) -> set[TP]:
        return set(self._assigned)

    def group_metadata(self) -> Any:
        return self._c.consumer_group_metadata()

    def seek(self, tp: TP, offset: int) -> None:
        try:
            self._c.seek(self._ck.TopicPartition(tp.topic, tp.partition, offset))
        except self._ck.KafkaException as exc:
            raise BrokerFailure(str(exc)) from None

    def commit(self, offsets: dict[TP, int], on_done: OnCommit, sync: bool = True) -> None:
        parts = [self._ck.TopicPartition(tp.topic, tp.partition, o) for tp, o in offsets.items()]
        self._on_commit = on_done
        if not sync:
            try:
                self._c.commit(offsets=parts, asynchronous=True)
            except self._ck.KafkaException as exc:
                on_done(offsets, BrokerFailure(str(exc)))
            return
        try:
            done = self._c.commit(offsets=parts, asynchronous=False)
        except self._ck.KafkaException as exc:
            on_done(offsets, BrokerFailure(str(exc)))
            return
        failed = [p for p in done or [] if p.error is not None]
        on_done(offsets, BrokerFailure(str(failed[0].error)) if failed else None)

    def _metadata(self, topic: str | None = None) -> Any:
        try:
            return self._c.list_topics(topic, timeout=self._timeout)
        except self._ck.KafkaException as exc:
            raise BrokerFailure(str(exc)) from None

    def topics(self) -> set[str]:
        return {name for name, t in self._metadata().topics.items() if t.error is None}

    def partitions(self, topic: str) -> set[int]:
        found = self._metadata(topic).topics.get(topic)
        if found is None or found.error is not None:
            return set()
        return set(found.partitions)

    def highwater(self, tp: TP) -> int | None:
        try:
            _, high = self._c.get_watermark_offsets(self._ck.TopicPartition(tp.topic, tp.partition), cached=True)
        except self._ck.KafkaException:
            return None
        return high if high >= 0 else None

    def connected(self) -> bool:
        return self._group_up and not self._brokers_down

    def assign(self, offsets: dict[TP, int]) -> None:
        self._c.assign([self._ck.TopicPartition(tp.topic, tp.partition, o) for tp, o in offsets.items()])
        self._assigned = set(offsets)

    def watermarks(self, tp: TP) -> tuple[int, int]:
        try:
            low, high = self._c.get_watermark_offsets(self._ck.TopicPartition(tp.topic, tp.partition),
                                                      timeout=self._timeout)
        except self._ck.KafkaException as exc:
            raise BrokerFailure(str(exc)) from None
        return low, high

    def offset_for_time(self, tp: TP, ms: int) -> int | None:
        try:
            [found] = self._c.offsets_for_times([self._ck.TopicPartition(tp.topic, tp.partition, ms)],
                                                timeout=self._timeout)
        except self._ck.KafkaException as exc:
            raise BrokerFailure(str(exc)) from None
        return found.offset if found.offset >= 0 else None

    def pause(self, tp: TP) -> None:
        self._c.pause([self._ck.TopicPartition(tp.topic, tp.partition)])

    def position(self, tp: TP) -> int | None:
        try:
            [found] = self._c.position([self._ck.TopicPartition(tp.topic, tp.partition)])
        except self._ck.KafkaException as exc:
            raise BrokerFailure(str(exc)) from None
        return found.offset if found.offset >= 0 else None

    def close(self) -> None:
        try:
            self._c.close()  # leaves the group at once
        except (self._ck.KafkaException, RuntimeError) as exc:
            raise BrokerFailure(str(exc)) from None


class _ConfluentProducer:
    def __init__(self, settings: Settings) -> None:
        ck = _ck()
        self._ck = ck
        try:
            self._p = ck.Producer(_confluent_config(settings, CONFLUENT_PRODUCER, settings.kafka_producer))
        except ck.KafkaException as exc:
            raise _confluent_failure(exc) from None
        self._unserved = 0

    def send(self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]] | None = None,
             partition: int | None = None) -> Delivery:
        delivery = Delivery()
        try:
            if partition is None and not headers:
                self._p.produce(topic, value, key, on_delivery=delivery)
            else:
                self._produce_with(topic, value, key, delivery, headers, partition)
        except BufferError:  # the local queue is full: let librdkafka drain it, then try again
            for _ in range(QUEUE_FULL_RETRIES):
                self._p.poll(0.5)
                try:
                    self._produce_with(topic, value, key, delivery, headers, partition)
                    break
                except BufferError:
                    continue
            else:
                return Delivery(True, "local queue full")
        except self._ck.KafkaException as exc:
            return Delivery(True, str(exc))
        self._unserved += 1
        if self._unserved >= 1000:  # serve the delivery callbacks due so far (flush serves the rest)
            self._p.poll(0)
            self._unserved = 0
        return delivery

    def _produce_with(self, topic: str, value: bytes | None, key: bytes | None, delivery: Delivery,
                      headers: list[tuple[str, bytes]] | None, partition: int | None) -> None:
        extra: dict[str, Any] = {} if partition is None else {"partition": partition}
        if headers:
            extra["headers"] = headers
        self._p.produce(topic, value, key, on_delivery=delivery, **extra)

    def flush(self, timeout_s: float) -> None:
        self._p.flush(timeout_s)

    def close(self, timeout_s: float) -> None:
        self._p.flush(timeout_s)


class _ConfluentTransactional(_ConfluentProducer):
    def __init__(self, settings: Settings, transactional_id: str) -> None:
        ck = _ck()
        self._ck = ck
        config = _confluent_config(settings, CONFLUENT_TRANSACTIONAL, settings.kafka_producer)
        config["transactional.id"] = self._id = transactional_id
        try:
            self._p = ck.Producer(config)
        except ck.KafkaException as exc:
            raise _confluent_failure(exc) from None
        self._unserved = 0
        try:
            # Fences an earlier process with this id and aborts what it left open.
            self._p.init_transactions(BOOTSTRAP_TIMEOUT_S * 5)
        except ck.KafkaException as exc:
            self._p.poll(0)  # the log lines behind the failure (see LIBRDKAFKA_LOG)
            raise BrokerFailure(f"init_transactions: {exc}") from None

    def _call(self, what: str, *args: Any) -> None:
        """One transaction step; retried while librdkafka says it may be, an
        abort when it says the transaction cannot go on."""
        deadline = time.monotonic() + TRANSACTION_TIMEOUT_S
        while True:
            try:
                getattr(self._p, what)(*args)
                return
            except self._ck.KafkaException as exc:
                error = exc.args[0]
                if error.txn_requires_abort():
                    self.abort()
                    raise TransactionAborted(f"{what}: {error.str()}") from None
                if error.retriable() and time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                if error.fatal():  # fenced by a newer process with our id: this one must stop
                    raise BrokerError(f"transactional producer {self._id}: {what}: {error.str()} "
                                      "(another process uses the same worker_id?)") from None
                raise BrokerFailure(f"{what}: {error.str()}") from None

    def begin(self) -> None:
        self._call("begin_transaction")

    def send_offsets(self, offsets: dict[TP, int], consumer: Consumer) -> None:
        parts = [self._ck.TopicPartition(tp.topic, tp.partition, o) for tp, o in offsets.items()]
        self._call("send_offsets_to_transaction", parts, consumer.group_metadata(), TRANSACTION_TIMEOUT_S)  # type: ignore[attr-defined]

    def commit(self) -> None:
        self._call("commit_transaction", TRANSACTION_TIMEOUT_S)

    def abort(self) -> None:
        try:
            self._p.abort_transaction(TRANSACTION_TIMEOUT_S)
        except self._ck.KafkaException as exc:
            log.warning("abort_transaction: %s", exc)


# -- kafka-python --------------------------------------------------------------------------------

# Faster group joins and failure detection than kafka-python's defaults
# (measured against Tansu: ~3 s to join instead of ~23 s). fetch_max_wait_ms
# bounds how long a broker may hold a fetch that found no data: with the
# default 500 ms, a record arriving just after an empty fetch waited up to
# half a second (p99 475 ms measured at half load). isolation_level: as
# librdkafka, records of aborted transactions stay unseen (kafka-python's
# default reads them: a post its producer rolled back would be screened, and
# counted against its account). All overridable.
PY_CONSUMER: dict[str, Any] = {
    "session_timeout_ms": 6000, "heartbeat_interval_ms": 1000, "auto_offset_reset": "earliest",
    "max_partition_fetch_bytes": 4 << 20, "fetch_max_wait_ms": 50, "bootstrap_timeout_ms": 2000,
    "isolation_level": "read_committed",
}
# max_block_ms bounds how long send() may block on missing metadata (broker
# gone) and bootstrap_timeout_ms how long a client constructor waits for a
# first broker (kafka-python 3: 30 s), so shutdown stays bounded; the worker
# retries with backoff instead.
PY_PRODUCER: dict[str, Any] = {"acks": "all", "linger_ms": 5, "max_block_ms": 5000, "bootstrap_timeout_ms": 2000}


def _kp() -> Any:
    import kafka
    import kafka.errors

    return kafka


class _Translated:
    """kafka-python's errors as :class:`BrokerFailure`; an option it does not
    know (ValueError "Unrecognized configs") as :class:`ConfigError`."""

    def __init__(self, constructing: bool = False) -> None:
        self.constructing = constructing

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, _tb: Any) -> Literal[False]:
        errors = _kp().errors
        if self.constructing and isinstance(exc, (errors.KafkaConfigurationError, ValueError, AssertionError, TypeError)):
            raise ConfigError(f"kafka (kafka-python): {exc}. {SPELLING}") from None
        if exc is not None and isinstance(exc, errors.KafkaError):
            raise BrokerFailure(str(exc) or type(exc).__name__) from None
        return False


_translated = _Translated()


class _PyConsumer:
    def __init__(self, settings: Settings, group: bool) -> None:
        kafka = _kp()
        self._kafka = kafka
        options = {**PY_CONSUMER, **settings.kafka, **settings.kafka_consumer}
        if not group:
            options = {k: v for k, v in options.items() if k not in ("session_timeout_ms", "heartbeat_interval_ms")}
        with _Translated(constructing=True):
            self._c = kafka.KafkaConsumer(
                bootstrap_servers=settings.bootstrap_servers, group_id=settings.group_id if group else None,
                enable_auto_commit=False, max_poll_records=settings.poll_max_records, **options)

    def subscribe(self, topic: str, on_assigned: OnPartitions, on_revoked: OnPartitions) -> None:
        from kafka.consumer.subscription_state import ConsumerRebalanceListener

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked: Iterable[Any]) -> None:
                on_revoked({TP(tp.topic, tp.partition) for tp in revoked})

            def on_partitions_assigned(self, assigned: Iterable[Any]) -> None:
                on_assigned({TP(tp.topic, tp.partition) for tp in assigned})

        self._c.subscribe([topic], listener=Listener())

    def poll_batch(self, max_records: int, timeout_s: float) -> Batch:
        with _translated:
            polled = self._c.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        return {TP(tp.topic, tp.partition): [Record(r.topic, r.partition, r.offset, r.timestamp, r.key, r.value,
                                                    list(r.headers or [])) for r in rs]
                for tp, rs in polled.items() if rs}

    def _tp(self, tp: TP) -> Any:
        return self._kafka.TopicPartition(tp.topic, tp.partition)

    def assignment(self) -> set[TP]:
        return {TP(tp.topic, tp.partition) for tp in self._c.assignment()}

    def seek(self, tp: TP, offset: int) -> None:
        with _translated:
            self._c.seek(self._tp(tp), offset)

    def commit(self, offsets: dict[TP, int], on_done: OnCommit, sync: bool = True) -> None:
        meta = {self._tp(tp): self._kafka.OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()}
        if not sync:
            def done(_offsets: Any, result: object) -> None:
                on_done(offsets, BrokerFailure(str(result)) if isinstance(result, Exception) else None)

            self._c.commit_async(meta, callback=done)
            return
        try:
            self._c.commit(meta)
        except self._kafka.errors.KafkaError as exc:
            on_done(offsets, BrokerFailure(str(exc)))
            return
        on_done(offsets, None)

    def topics(self) -> set[str]:
        with _translated:
            found = set(self._c.topics())
        return found

    def partitions(self, topic: str) -> set[int]:
        with _translated:
            found = set(self._c.partitions_for_topic(topic) or ())
        return found

    def highwater(self, tp: TP) -> int | None:
        high = self._c.highwater(self._tp(tp))
        return None if high is None else int(high)

    def connected(self) -> bool:
        """Whether the group coordinator is known and connected.

        An idle poll does not raise while kafka-python retries a lost broker in
        the background, so readiness asks the coordinator (a kafka-python
        internal, hence the guard: without it we fall back to "connected").
        """
        coordinator = getattr(self._c, "_coordinator", None)
        try:
            return coordinator is None or not coordinator.coordinator_unknown()
        except Exception:  # noqa: BLE001 - an internal API; never let it stop the loop
            return True

    def assign(self, offsets: dict[TP, int]) -> None:
        with _translated:
            self._c.assign([self._tp(tp) for tp in offsets])
            for tp, offset in offsets.items():
                self._c.seek(self._tp(tp), offset)

    def watermarks(self, tp: TP) -> tuple[int, int]:
        with _translated:
            low = self._c.beginning_offsets([self._tp(tp)])[self._tp(tp)]
            high = self._c.end_offsets([self._tp(tp)])[self._tp(tp)]
        return int(low), int(high)

    def offset_for_time(self, tp: TP, ms: int) -> int | None:
        with _translated:
            found = self._c.offsets_for_times({self._tp(tp): ms}).get(self._tp(tp))
        return None if found is None else int(found.offset)

    def pause(self, tp: TP) -> None:
        self._c.pause(self._tp(tp))

    def position(self, tp: TP) -> int | None:
        with _translated:
            found = self._c.position(self._tp(tp))
        return None if found is None else int(found)

    def close(self) -> None:
        with _translated:
            self._c.close(autocommit=False)  # leaves the group at once


class _PyProducer:
    def __init__(self, settings: Settings) -> None:
        kafka = _kp()
        with _Translated(constructing=True):
            self._p = kafka.KafkaProducer(bootstrap_servers=settings.bootstrap_servers,
                                          **{**PY_PRODUCER, **settings.kafka, **settings.kafka_producer})

    def send(self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]] | None = None,
             partition: int | None = None) -> Delivery:
        delivery = Delivery()

        def ok(_meta: Any) -> None:
            delivery.done = True

        def failed(exc: BaseException) -> None:
            delivery.done, delivery.error = True, str(exc) or type(exc).__name__

        try:
            future = self._p.send(topic, key=key, value=value, headers=headers or None, partition=partition)
        except _kp().errors.KafkaError as exc:  # metadata unavailable within max_block_ms
            return Delivery(True, str(exc) or type(exc).__name__)
        except (ValueError, AssertionError) as exc:  # kafka-python: "Unrecognized partition", a bad argument
            return Delivery(True, f"{type(exc).__name__}: {exc}")
        future.add_callback(ok)
        future.add_errback(failed)
        return delivery

    def flush(self, timeout_s: float) -> None:
        try:
            self._p.flush(timeout=timeout_s)
        except _kp().errors.KafkaError:
            pass  # what is not acknowledged shows in its Delivery

    def close(self, timeout_s: float) -> None:
        with _translated:
            self._p.close(timeout=timeout_s)


def client_of(settings: Settings) -> str:
    """For logs: which client, and its library version."""
    name = chosen(settings)
    if name == "confluent":
        version = _ck().version()
        return f"confluent-kafka {version if isinstance(version, str) else version[0]} (librdkafka {_ck().libversion()[0]})"
    return f"kafka-python {_kp().__version__}"


__all__ = ["CLIENTS", "BrokerFailure", "Consumer", "Delivery", "Producer", "Record", "TP", "Transactional",
           "TransactionAborted", "available", "chosen", "client_of", "consumer", "probe", "producer", "quiet_logs", "read_range",
           "transactional_producer"]
