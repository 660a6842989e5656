"""The worker's commit protocol, at-least-once, in one place.

What must hold: an input offset is committed only after everything the
records below it caused is acknowledged by the broker: their dead letters and
audit records, their events, and the offender-state changes they made (the
changelog records). Then a crash at any moment re-delivers only records whose
effects may be missing, and nothing is lost. Re-delivered records produce
their events again with the same ``event_id`` and count nothing twice (the
offender state is keyed by post id), so duplicates are harmless.

The order, per batch:

1. dead letters and audit records, acknowledged (an event must never be out
   while the audit record that explains it could still be lost);
2. events, together with the *previous* batch's changelog records (the
   riders), acknowledged. A second round trip per batch for the changelog cost
   ~50 ms of p99 latency at half load; riding along costs nothing. Events
   before state: if we die in between, the state is rebuilt from the older
   changelog and the events come again; writing state first could lose a
   blacklist event;
3. the previous batch's offsets become committable (its riders are
   acknowledged now); this batch's offsets become committable at once if it
   changed no state, otherwise they wait for its own changelog records,
   which ride with the next batch or go out when the loop idles
   (:meth:`CommitProtocol.flush_state`);
4. what is committable is committed, in the background: a lost commit is
   covered by the next one (offsets only grow); revocation and shutdown
   commit synchronously.

A batch whose sends are not all acknowledged (shutdown deadline) is not
committed; the caller seeks back so that it is consumed again.
"""

from __future__ import annotations

from typing import Callable, Collection

from .clients import TP, BrokerFailure, Consumer, Transactional, TransactionAborted
from .outgoing import Outgoing, Sends

#: Send records and wait until the broker acknowledged every one (False: gave up).
Deliver = Callable[[list[Outgoing]], bool]
#: Commit offsets (next offset to read per partition); ``sync`` waits for the
#: answer. The caller reports the outcome back with :meth:`CommitProtocol.committed`.
Commit = Callable[[dict[TP, int], bool], None]


class CommitProtocol:
    def __init__(self, deliver: Deliver, commit: Commit) -> None:
        self._deliver, self._commit = deliver, commit
        #: Changelog records of the last batch: they ride with the next batch's events.
        self.riders: list[Outgoing] = []
        #: That batch's offsets: committable once the riders are acknowledged.
        self.awaiting: dict[TP, int] = {}
        #: Acknowledged and committable, not yet known to be committed.
        self.uncommitted: dict[TP, int] = {}

    def batch(self, offsets: dict[TP, int], sends: Sends, changelog: list[Outgoing]) -> bool:
        """Deliver one batch's records in order and commit what became
        committable; False if not everything was acknowledged (nothing of the
        batch may be committed then)."""
        if not (self._deliver(sends.first) and self._deliver(sends.then + self.riders)):
            return False
        self.uncommitted.update(self.awaiting)  # their changelog records are acknowledged now
        self.riders, self.awaiting = list(changelog), {}
        if changelog:
            self.awaiting = dict(offsets)
        else:
            self.uncommitted.update(offsets)
        self.commit(sync=False)
        return True

    def flush_state(self) -> bool:
        """Deliver the last batch's changelog records (the loop is idle, a
        partition is revoked or we stop); its offsets become committable."""
        if not self.riders and not self.awaiting:
            return True
        if not self._deliver(self.riders):
            return False
        self.uncommitted.update(self.awaiting)
        self.riders, self.awaiting = [], {}
        return True

    def commit(self, only: Collection[TP] | None = None, sync: bool = True) -> None:
        offsets = {tp: o for tp, o in self.uncommitted.items() if only is None or tp in only}
        if offsets:
            self._commit(offsets, sync)

    def committed(self, offsets: dict[TP, int], error: Exception | None) -> None:
        """A commit's outcome: committed offsets need not be committed again
        (unless a later batch moved them on meanwhile)."""
        if error is not None:
            return  # still uncommitted: the next commit covers it
        for tp, offset in offsets.items():
            if self.uncommitted.get(tp) == offset:
                del self.uncommitted[tp]

    def revoke(self, tps: Collection[TP]) -> bool:
        """Commit what is done for partitions we are losing, then forget them;
        False if the changelog records could not be acknowledged first (the
        next owner redoes the last batch)."""
        flushed = self.flush_state()
        self.commit(only=tps)
        for tp in tps:
            self.uncommitted.pop(tp, None)
        return flushed

    def finish(self) -> bool:
        """At shutdown: deliver the riders, commit synchronously; True if
        nothing is left to redo."""
        if not self.flush_state():
            return False
        self.commit()
        return not self.uncommitted and not self.awaiting

    @property
    def settled(self) -> bool:
        return not self.uncommitted and not self.awaiting


class Transactions:
    """``--guarantee exactly-once``: each batch is one Kafka transaction.

    Its dead letters, audit records, events and changelog records, and the
    input offsets after it, are written in one transaction: a
    ``read_committed`` consumer sees all of them or none, and the offsets
    move on only with them. A crash before the commit leaves an open
    transaction that the broker aborts (at once when a process with the same
    transactional id starts, else after ``transaction.timeout.ms``); the batch
    is consumed again from the last committed offsets and screened again.
    Nothing waits for a next batch, so nothing rides along and nothing is
    committed outside a transaction.

    An aborted transaction's changelog records are kept and go out with the
    next transaction: the offender state in memory already holds the
    batch's changes, and screening the batch again changes nothing more
    (violations are keyed by post id), so they would be lost otherwise.
    """

    def __init__(self, producer: Transactional, consumer: Consumer, sent: Callable[[list[Outgoing]], None]) -> None:
        self.producer, self.consumer, self._sent = producer, consumer, sent
        self.riders: list[Outgoing] = []  # changelog records of aborted transactions
        self.awaiting: dict[TP, int] = {}
        self.uncommitted: dict[TP, int] = {}

    def batch(self, offsets: dict[TP, int], sends: Sends, changelog: list[Outgoing]) -> bool:
        items = sends.first + sends.then + self.riders + changelog
        producer = self.producer
        try:
            producer.begin()
            for o in items:
                # A send refused at once (queue full, unknown partition) never
                # reached the transaction, so its commit cannot fail for it:
                # ignored, events were lost with their offsets committed
                # (found by a hostile-input probe). Such a batch aborts.
                delivery = producer.send(o.topic, o.key, o.value, o.headers, o.partition)
                if delivery.failed:
                    raise BrokerFailure(f"send to {o.topic} failed: {delivery.error}")
            producer.send_offsets(offsets, self.consumer)
            producer.commit()  # flushes; a send that failed fails the commit (librdkafka)
        except TransactionAborted:  # aborted already
            self.riders = self.riders + changelog
            return False
        except BrokerFailure:
            producer.abort()
            self.riders = self.riders + changelog
            return False
        self.riders = []
        self._sent(items)
        return True

    def flush_state(self) -> bool:
        return True

    def commit(self, only: Collection[TP] | None = None, sync: bool = True) -> None:
        return None  # offsets are committed inside each batch's transaction

    def committed(self, offsets: dict[TP, int], error: Exception | None) -> None:
        return None

    def revoke(self, tps: Collection[TP]) -> bool:
        return True  # every finished batch is committed already

    def finish(self) -> bool:
        return not self.riders

    @property
    def settled(self) -> bool:
        return not self.riders
