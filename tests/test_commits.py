"""The worker's commit protocol (screener/stream/commits.py) against a fake broker.

The property that matters: whatever moment the worker dies at, every
committed offset lies after records whose events and offender-state changes
the broker has acknowledged. The same protocol runs against Tansu in
tests/integration/test_clients.py and in every worker test.
"""

from __future__ import annotations

import random

import pytest

from screener.stream.clients import TP
from screener.stream.commits import CommitProtocol
from screener.stream.outgoing import Outgoing, Sends

A, B = TP("posts", 0), TP("posts", 1)


class Crash(Exception):
    pass


class FakeBroker:
    """Acknowledges what it is sent, in order; can refuse, or die at the n-th call."""

    def __init__(self) -> None:
        self.acked: list[Outgoing] = []
        self.committed: dict[TP, int] = {}
        self.commit_calls: list[tuple[dict[TP, int], bool]] = []
        self.refuse = False
        self.fail_commits = False
        self.die_at: int | None = None
        self.calls = 0
        self.protocol: CommitProtocol | None = None

    def _tick(self) -> None:
        self.calls += 1
        if self.die_at is not None and self.calls >= self.die_at:
            raise Crash()

    def deliver(self, items: list[Outgoing]) -> bool:
        self._tick()
        if self.refuse:
            return False
        self.acked += items
        return True

    def commit(self, offsets: dict[TP, int], sync: bool) -> None:
        self._tick()
        self.commit_calls.append((dict(offsets), sync))
        assert self.protocol is not None
        if self.fail_commits:
            self.protocol.committed(offsets, RuntimeError("coordinator moved"))
            return
        for tp, offset in offsets.items():
            assert offset >= self.committed.get(tp, 0), "offsets only grow"
            self.committed[tp] = offset
        self.protocol.committed(offsets, None)


def protocol_on(broker: FakeBroker) -> CommitProtocol:
    broker.protocol = CommitProtocol(broker.deliver, broker.commit)
    return broker.protocol


def event(name: str) -> Outgoing:
    return Outgoing("events", name.encode(), b"{}", [], "flag")


def audit(name: str) -> Outgoing:
    return Outgoing("audit", name.encode(), b"{}", [], "audit")


def state(name: str, partition: int) -> Outgoing:
    return Outgoing("offenders", name.encode(), b"{}", [], "state", partition)


def test_a_batch_without_state_changes_is_committable_at_once():
    broker = FakeBroker()
    commits = protocol_on(broker)
    assert commits.batch({A: 10}, Sends([audit("a1")], [event("e1")]), [])
    assert [o.key for o in broker.acked] == [b"a1", b"e1"]  # audit record before the event
    assert broker.committed == {A: 10} and broker.commit_calls == [({A: 10}, False)]  # in the background
    assert commits.settled


def test_state_changes_ride_with_the_next_batch_and_hold_back_its_offsets():
    broker = FakeBroker()
    commits = protocol_on(broker)
    assert commits.batch({A: 10}, Sends([], [event("e1")]), [state("s1", 0)])
    assert broker.committed == {} and commits.awaiting == {A: 10}  # s1 not yet acknowledged
    assert commits.batch({B: 5}, Sends([], [event("e2")]), [])
    assert [o.key for o in broker.acked] == [b"e1", b"e2", b"s1"]  # s1 rode with e2
    assert broker.committed == {A: 10, B: 5}


def test_an_idle_loop_sends_the_riders_and_commits():
    broker = FakeBroker()
    commits = protocol_on(broker)
    commits.batch({A: 10}, Sends([], [event("e1")]), [state("s1", 0)])
    assert commits.flush_state()
    commits.commit(sync=False)
    assert broker.acked[-1].key == b"s1" and broker.committed == {A: 10} and commits.settled


def test_a_batch_not_acknowledged_commits_nothing():
    broker = FakeBroker()
    commits = protocol_on(broker)
    commits.batch({A: 10}, Sends([], [event("e1")]), [state("s1", 0)])
    broker.refuse = True
    assert not commits.batch({A: 20}, Sends([], [event("e2")]), [state("s2", 0)])
    assert broker.committed == {}
    assert [o.key for o in commits.riders] == [b"s1"] and commits.awaiting == {A: 10}  # still owed
    assert not commits.finish()


def test_a_failed_commit_is_covered_by_the_next_one():
    broker = FakeBroker()
    commits = protocol_on(broker)
    broker.fail_commits = True
    commits.batch({A: 10}, Sends(), [])
    assert broker.committed == {} and commits.uncommitted == {A: 10}
    broker.fail_commits = False
    commits.batch({B: 3}, Sends(), [])
    assert broker.committed == {A: 10, B: 3} and commits.settled


def test_an_older_commit_answer_does_not_forget_a_newer_offset():
    broker = FakeBroker()
    commits = protocol_on(broker)
    commits.uncommitted = {A: 20}
    commits.committed({A: 10}, None)  # the answer to an earlier background commit
    assert commits.uncommitted == {A: 20}


def test_revocation_delivers_state_commits_the_lost_partitions_and_forgets_them():
    broker = FakeBroker()
    commits = protocol_on(broker)
    broker.fail_commits = True
    commits.batch({A: 10, B: 7}, Sends(), [])
    commits.batch({A: 12}, Sends([], [event("e")]), [state("s", 0)])
    broker.fail_commits = False
    broker.commit_calls.clear()
    assert commits.revoke({A})
    assert broker.acked[-1].key == b"s"
    assert broker.commit_calls == [({A: 12}, True)]  # synchronously, only the lost partition
    assert commits.uncommitted == {B: 7}


def simulate(seed: int) -> tuple[FakeBroker, set[bytes]]:
    """Random batches over two partitions, some with state changes, some
    sends refused, idle polls and revocations, and a crash at a random call;
    returns the broker and the records that changed state."""
    rng = random.Random(seed)
    broker = FakeBroker()
    commits = protocol_on(broker)
    broker.die_at = rng.randrange(1, 60)
    position = {A: 0, B: 0}
    made: set[bytes] = set()
    try:
        for _ in range(25):
            offsets, events, changes = {}, [], []
            for tp in rng.sample([A, B], rng.randint(1, 2)):
                for _ in range(rng.randint(1, 3)):
                    name = f"{tp.partition}:{position[tp]}"
                    events.append(event(name))
                    if rng.random() < 0.4:
                        changes.append(state(name, tp.partition))
                    position[tp] += 1
                offsets[tp] = position[tp]
            made |= {o.key for o in changes}
            broker.refuse = rng.random() < 0.1
            if not commits.batch(offsets, Sends([], events), changes):
                raise Crash()  # the worker seeks back; for the broker the same as dying here
            if rng.random() < 0.3 and commits.flush_state():  # an idle poll
                commits.commit(sync=False)
            if rng.random() < 0.1:
                commits.revoke({rng.choice([A, B])})
    except Crash:
        pass
    return broker, made


@pytest.mark.parametrize("seed", range(200))
def test_whenever_the_worker_dies_committed_offsets_follow_acknowledged_effects(seed):
    """Every record below a committed offset has its event and its state
    change acknowledged; state never goes out before its event."""
    broker, made = simulate(seed)
    acked_events = {o.key for o in broker.acked if o.action == "flag"}
    acked_state = {o.key for o in broker.acked if o.action == "state"}
    for tp, offset in broker.committed.items():
        for n in range(offset):
            name = f"{tp.partition}:{n}".encode()
            assert name in acked_events, f"{name!r} committed but its event was never acknowledged"
            if name in made:
                assert name in acked_state, f"{name!r} committed but its state change was never acknowledged"
    assert acked_state <= acked_events


def test_the_simulation_commits_and_crashes_with_state_owed():
    """The property above is not vacuous: most runs commit, and many die
    with state changes still owed."""
    runs = [simulate(seed) for seed in range(200)]
    assert sum(1 for broker, _ in runs if broker.committed) > 100
    owed = sum(1 for broker, made in runs if made - {o.key for o in broker.acked if o.action == "state"})
    assert owed > 50


# -- exactly-once: one transaction per batch ----------------------------------------------------

from screener.stream.clients import BrokerFailure, Delivery, TransactionAborted  # noqa: E402
from screener.stream.commits import Transactions  # noqa: E402


class FakeTransactions:
    """A transactional producer: what is sent becomes visible, with the
    offsets, only when the transaction commits."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.visible: list[Outgoing] = []
        self.committed: dict[TP, int] = {}
        self.staged: list[Outgoing] = []
        self.offsets: dict[TP, int] = {}
        self.open = False
        self.aborts = 0
        self.fail: str | None = None  # "commit", "commit-aborted", "offsets", "send"
        self.rng = rng

    def begin(self) -> None:
        assert not self.open, "a transaction is already open"
        self.open, self.staged, self.offsets = True, [], {}

    def send(self, topic, key, value, headers=None, partition=None) -> Delivery:
        assert self.open, "sent outside a transaction"
        if self.fail == "send" and topic != "offenders":  # refused at once: never in the transaction
            return Delivery(True, "local queue full")
        self.staged.append(Outgoing(topic, key, value, headers or [], "state" if topic == "offenders" else "flag", partition))
        return Delivery(True)

    def send_offsets(self, offsets, consumer) -> None:
        if self.fail == "offsets":
            raise BrokerFailure("coordinator gone")
        self.offsets = dict(offsets)

    def commit(self) -> None:
        fail = self.fail
        if self.rng is not None:
            fail = self.rng.choice([None, None, None, "commit", "commit-aborted"])
        if fail == "commit":
            raise BrokerFailure("request timed out")
        if fail == "commit-aborted":
            self.abort()
            raise TransactionAborted("aborted by the broker")
        self.visible += self.staged
        for tp, o in self.offsets.items():
            assert o >= self.committed.get(tp, 0)
            self.committed[tp] = o
        self.open = False

    def abort(self) -> None:
        self.aborts += 1
        self.open, self.staged, self.offsets = False, [], {}

    def flush(self, timeout_s) -> None:
        pass

    def close(self, timeout_s) -> None:
        pass


def test_a_transaction_carries_the_batch_and_its_offsets():
    producer, sent = FakeTransactions(), []
    tx = Transactions(producer, None, sent.extend)  # type: ignore[arg-type]
    assert tx.batch({A: 10}, Sends([audit("a1")], [event("e1")]), [state("s1", 0)])
    assert [o.key for o in producer.visible] == [b"a1", b"e1", b"s1"] and producer.committed == {A: 10}
    assert [o.key for o in sent] == [b"a1", b"e1", b"s1"] and tx.settled and tx.finish()


# "send": a send refused at once (queue full, unknown partition) was ignored,
# and the transaction committed without it (found by a hostile-input probe)
@pytest.mark.parametrize("fail", ["commit", "commit-aborted", "offsets", "send"])
def test_a_failed_transaction_shows_nothing_and_its_state_goes_with_the_next(fail):
    producer, sent = FakeTransactions(), []
    tx = Transactions(producer, None, sent.extend)  # type: ignore[arg-type]
    producer.fail = fail
    assert not tx.batch({A: 10}, Sends([], [event("e1")]), [state("s1", 0)])
    assert producer.visible == [] and producer.committed == {} and sent == [] and not producer.open
    assert producer.aborts == 1 and not tx.settled
    producer.fail = None
    # the batch comes again: its violations are counted already, so no new state changes
    assert tx.batch({A: 10}, Sends([], [event("e1")]), [])
    assert [o.key for o in producer.visible] == [b"e1", b"s1"] and producer.committed == {A: 10} and tx.settled


@pytest.mark.parametrize("seed", range(50))
def test_exactly_once_whatever_fails(seed):
    """Batches retried until their transaction commits: every record's event
    is visible exactly once, the offsets are the end, the state is there."""
    rng = random.Random(seed)
    producer = FakeTransactions(rng)
    tx = Transactions(producer, None, lambda items: None)  # type: ignore[arg-type]
    position = 0
    changed = set()
    while position < 60:
        size = rng.randint(1, 5)
        names = [f"0:{n}" for n in range(position, min(60, position + size))]
        changes = [state(n, 0) for n in names if rng.random() < 0.4 and n not in changed]
        changed |= {o.key for o in changes}
        while not tx.batch({A: position + len(names)}, Sends([], [event(n) for n in names]), changes):
            changes = []  # screened again: the counts are in memory already
        position += len(names)
    keys = [o.key for o in producer.visible if o.action == "flag"]
    assert sorted(keys) == sorted(f"0:{n}".encode() for n in range(60)) and len(keys) == len(set(keys))
    assert producer.committed == {A: 60}
    assert {o.key for o in producer.visible if o.action == "state"} == changed
