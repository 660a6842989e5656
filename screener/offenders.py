"""Repeat offenders (Yuhang Art. 15; the 2021 opinion's blacklist database).

Each account's violations are counted in a sliding window of event time;
crossing the policy's threshold blacklists the account (one
``account_blacklist`` event), and with ``clear=true`` falling back below it
clears the account again (one ``account_cleared`` event).

State is kept per *shard*: a Kafka input partition in the worker (posts are
partitioned by account id, so an account's whole history lives in one
partition and the state scales out with the consumer group), one shard in
``scan``. Each shard's changes are taken after every batch and written
durably before the batch's input is committed: to a compacted changelog topic
(``stream/changelog.py``) or to SQLite (:class:`SqliteStore`).

Replays are harmless: violations are keyed by post id, so a batch screened
again after a crash counts nothing twice, and event ids are derived from the
post that crossed the threshold.

Time. A post's event time is its ``published_at`` (else the record time),
clamped to processing time when it lies before 1970 or more than a day ahead
(:func:`event_time_checked`). Each account's violations expire relative to
that account's own latest violation, so no other account's post, however
dated, can age them. The shard's stream clock, which only drives the sweep
(clearing accounts that fell back, forgetting idle ones), advances by a
median, never a maximum: each batch's clock is the median of its posts'
times (:func:`batch_clock`), and the shard moves to the lower median of its
last five batch clocks, never beyond processing time + 1 day. One outlier,
in a batch or as a batch of its own, does not move it; a real move of time
does, within a few batches.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Hashable, Iterable, Sequence, TypeVar

from . import jsonio
from .files import directory_problem
from .jsonio import BigInt
from .judge import Tracker
from .policy import OffenderConfig

log = logging.getLogger("screener.offenders")

T = TypeVar("T")
H = TypeVar("H", bound=Hashable)
DAY = 86400.0
#: Batch clocks the shard clock is the median of.
CLOCK_BATCHES = 5

NAMESPACE = uuid.UUID("0f7c0e56-4a1e-4d0b-93a5-6d7f3c1b9e42")


def event_time_checked(obj: dict[str, Any], fallback: float | None = None, *,
                       now: float | None = None) -> tuple[float, str | None]:
    """When a post was published, in epoch seconds, and a note when the time
    given could not be used as it is (else None).

    The time is the post's ``published_at`` (epoch seconds or milliseconds,
    or ISO 8601), else ``fallback`` (the Kafka record timestamp), else
    processing time (``now``, default the clock). A time before 1970 or
    more than a day after processing time is not believed: processing time
    is used, and the note says so.

    >>> event_time_checked({"published_at": "2023-11-14T22:13:20Z"}, now=1.8e9)
    (1700000000.0, None)
    >>> event_time_checked({"published_at": "9999-12-31T23:59:59-01:00"}, now=1.8e9)
    (1800000000.0, "published_at '9999-12-31T23:59:59-01:00' is outside 1970..now+1d; processing time used")
    """
    now = time.time() if now is None else now
    value = obj.get("published_at")
    if value is None:
        if fallback is None:
            return now, None
        return _believed(fallback, "record timestamp", fallback, now)
    t = _seconds(value)
    if t is None:
        used = "record timestamp" if fallback is not None else "processing time"
        return (fallback if fallback is not None else now), f"published_at {_shown(value)} is not a time; {used} used"
    return _believed(t, "published_at", value, now)


def event_time(obj: dict[str, Any], fallback: float | None = None) -> float:
    """:func:`event_time_checked` without the note."""
    return event_time_checked(obj, fallback)[0]


def _seconds(value: Any) -> float | None:
    """Epoch seconds of a ``published_at`` (milliseconds above 1e11), or None."""
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value / 1000 if value > 1e11 else float(value)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()
    except (ValueError, OverflowError):  # not ISO 8601; an integer too large for a float
        pass
    return None


def _believed(t: float, what: str, value: Any, now: float) -> tuple[float, str | None]:
    if 0.0 <= t <= now + DAY:  # false for NaN too
        return t, None
    return now, f"{what} {_shown(value)} is outside 1970..now+1d; processing time used"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


#: The instants datetime can show (years 1 to 9999).
_FIRST = datetime(1, 1, 1, tzinfo=timezone.utc).timestamp()
_LAST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc).timestamp()


def iso(t: float) -> str:
    """ISO 8601 in UTC with milliseconds; never raises (a time beyond what
    datetime shows is shown as its first or last instant, NaN as the epoch).

    >>> iso(1700000000.123), iso(1e20), iso(float("nan"))
    ('2023-11-14T22:13:20.123Z', '9999-12-31T23:59:59.000Z', '1970-01-01T00:00:00.000Z')
    """
    t = 0.0 if math.isnan(t) else min(max(t, _FIRST), _LAST)
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def batch_clock(times: Iterable[float], *, now: float | None = None) -> float:
    """The clock a batch moves its shard to: the median of its posts' event
    times (NaN ignored), never beyond ``now`` + 1 day. One outlier moves a
    median by one rank, where it moved a maximum anywhere. ``times`` may be
    those of a :func:`sample` of the batch: a median needs no more.
    (:func:`clock_of` computes it from a batch's messages.)

    >>> batch_clock([100.0, 101.0, 5e9], now=200.0), batch_clock([5e9], now=200.0)
    (101.0, 86600.0)
    """
    ordered = sorted(t for t in times if t == t)
    if not ordered:
        raise ValueError("a batch clock needs at least one time")
    now = time.time() if now is None else now
    return float(min(ordered[len(ordered) // 2], now + DAY))


def clock_of(objects: Sequence[dict[str, Any]], fallback_of: Callable[[int], float | None] | None = None, *,
             now: float | None = None) -> float | None:
    """A batch's clock (:func:`batch_clock`) from the event times of a
    :func:`sample` of its messages (``fallback_of(i)``: message i's record
    time), for :meth:`OffenderTracker.finish`. Only times the messages carry
    count: not processing time put in for a time that was not believed
    (:func:`event_time_checked` noted it) or for none at all (a profile
    message in ``scan``), which would pull the clock of an archive to now.
    None when no time counts: the clock stays.

    >>> clock_of([{"published_at": 100}, {"published_at": "9999-01-01"}, {"published_at": 300}, {}], now=1e9)
    300.0
    """
    times = []
    for i in _sampled(len(objects)):
        fallback = fallback_of(i) if fallback_of else None
        if fallback is None and objects[i].get("published_at") is None:
            continue
        t, note = event_time_checked(objects[i], fallback, now=now)
        if note is None:
            times.append(t)
    return batch_clock(times, now=now) if times else None


def shard_clocks(objects: Sequence[dict[str, Any]], shard_of: Callable[[int], H],
                 fallback_of: Callable[[int], float | None] | None = None, *, now: float | None = None) -> dict[H, float]:
    """:func:`clock_of` for each shard of a batch whose messages belong to
    several (the worker's partitions): ``shard_of(i)`` is message i's."""
    groups: dict[H, list[int]] = {}
    for i in range(len(objects)):
        groups.setdefault(shard_of(i), []).append(i)
    clocks = {}
    for shard, indices in groups.items():
        fallback = (lambda k, ix=indices: fallback_of(ix[k])) if fallback_of else None
        clock = clock_of([objects[i] for i in indices], fallback, now=now)
        if clock is not None:
            clocks[shard] = clock
    return clocks


def _sampled(n: int, k: int = 31) -> Sequence[int]:
    return sample(range(n), k)


def sample(items: Sequence[T], k: int = 31) -> Sequence[T]:
    """At most ``k`` items spread evenly over ``items``, first and last included:
    enough for :func:`batch_clock` without an event time per post.

    >>> sample(range(100), 5), sample("abc", 5)
    ([0, 24, 49, 74, 99], 'abc')
    """
    n = len(items)
    if n <= k:
        return items
    return [items[(i * (n - 1)) // (k - 1)] for i in range(k)]


@dataclass
class Record:
    """One account in one shard: recent violations by post, and its status."""

    violations: dict[str, float] = field(default_factory=dict)  # post key → event time
    blacklisted: bool = False
    trigger: str = ""  # the post whose violation blacklisted the account
    #: The event time of that violation: posts published after it are the
    #: blacklisted account's (:meth:`Offenders.is_blacklisted`). 0 in a
    #: record written before screener kept it: every post is.
    since: float = 0.0

    def expire(self, now: float, window_s: int) -> None:
        horizon = now - window_s
        if any(t <= horizon for t in self.violations.values()):
            self.violations = {k: t for k, t in self.violations.items() if t > horizon}

    def latest(self) -> float:
        """The account's own clock: its latest violation (0 without one)."""
        return max(self.violations.values(), default=0.0)

    def dumps(self) -> bytes | None:
        """Serialised state, or None (a tombstone) when there is nothing to keep."""
        if not self.violations and not self.blacklisted:
            return None
        if self.blacklisted:
            return jsonio.dumps({"v": self.violations, "b": True, "t": self.trigger, "s": self.since})
        return jsonio.dumps({"v": self.violations, "b": False, "t": self.trigger})

    @classmethod
    def loads(cls, data: bytes) -> "Record":
        """The record :meth:`dumps` wrote; ValueError for anything else.

        Checked field by field: a row of other kinds (``{"v": {}, "b": true}``
        without a trigger, a violation time that is a string) was accepted and
        then failed every batch of the run, and ``"b": "false"`` counted as
        blacklisted (found by a hostile-input probe)."""
        doc = jsonio.loads(data)
        if not isinstance(doc, dict) or not isinstance(doc.get("v"), dict) or type(doc.get("b")) is not bool \
                or type(doc.get("t", "")) is not str:
            raise ValueError("not an offender record")
        violations = doc["v"]
        if not all(type(t) in (int, float) and math.isfinite(t) for t in violations.values()):
            raise ValueError("a violation time is not a number")
        since = doc.get("s", 0.0)
        if type(since) not in (int, float) or not math.isfinite(since):
            raise ValueError("the blacklisting time is not a number")
        trigger = doc.get("t", "")
        if doc["b"]:  # its events name the post that blacklisted it, by that post's id as JSON
            try:
                jsonio.loads(trigger)
            except ValueError:
                raise ValueError("a blacklisted account without the post that blacklisted it") from None
        return cls(dict(violations), doc["b"], trigger, float(since))


@dataclass
class Shard:
    accounts: dict[bytes, Record] = field(default_factory=dict)  # by the account id as JSON
    #: Blacklisted accounts by :func:`_lookup` key, with the time since when
    #: (:attr:`Record.since`): asked for every post of a batch when post
    #: rules exist, where serialising each id would cost more.
    blacklisted: dict[Any, float] = field(default_factory=dict)
    #: Stream time, for the sweep only (module docstring): 0 until a batch
    #: sets it, also after a restore (a restored clock could only be a guess).
    clock: float = 0.0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=CLOCK_BATCHES))  # batch clocks
    swept: float = 0.0
    changed: set[bytes] = field(default_factory=set)

    def advance(self, batch: float) -> None:
        """Move the clock by a batch's clock: to the lower median of the last
        few, so that one outlying batch (one post at the end of a file) does
        not move it either."""
        self.recent.append(batch)
        ordered = sorted(self.recent)
        self.clock = max(self.clock, ordered[(len(ordered) - 1) // 2])


_PLAIN_IDS = (str, int, BigInt)


def _lookup(account_id: Any) -> Any:
    """A set key for an account id: the id itself when it is a string or an
    integer (the usual case), its JSON otherwise (any JSON value is an id)."""
    return account_id if type(account_id) in _PLAIN_IDS else jsonio.dumps(account_id)


class Offenders:
    """Sliding-window violation counts per account, per shard."""

    def __init__(self, config: OffenderConfig) -> None:
        self.config = config
        self.shards: dict[Hashable, Shard] = {}

    def shard(self, key: Hashable) -> Shard:
        found = self.shards.get(key)
        if found is None:
            found = self.shards[key] = Shard()
        return found

    def listed(self, shard: Hashable, account_id: Any) -> bool:
        """Whether ``account_id`` is on the shard's blacklist at all (cheap:
        asked for every post)."""
        s = self.shards.get(shard)
        return s is not None and bool(s.blacklisted) and _lookup(account_id) in s.blacklisted

    def is_blacklisted(self, shard: Hashable, account_id: Any, t: float | None = None, post_id: Any = None) -> bool:
        """Whether a post of ``account_id`` published at ``t`` is a
        blacklisted account's: published after the violation that
        blacklisted it, or at the same instant but not that post itself
        (Kafka record times have a millisecond: a burst shares one), and,
        with ``clear``, while the account still had ``threshold``
        violations within the window before ``t``. A post's answer so
        depends on the account's own violations and the post's time, not
        on when it is screened: a post screened again (a replay, an
        at-least-once redelivery) is judged as it was the first time, where
        it had turned into an escalated recall with a new event id (found
        by a policy probe). Without ``t``: blacklisted now."""
        s = self.shards.get(shard)
        if s is None or not s.blacklisted:
            return False
        since = s.blacklisted.get(_lookup(account_id))
        if since is None or t is None:
            return since is not None
        if t < since:
            return False
        record = s.accounts[jsonio.dumps(account_id)]
        if t == since and (post_id is None or jsonio.dumps(post_id).decode() == record.trigger):
            return False
        if not self.config.clear:
            return True
        horizon = t - self.config.window_s
        return sum(1 for v in record.violations.values() if horizon < v <= t) >= self.config.threshold

    def violation(self, shard: Hashable, account_id: Any, post_id: Any, t: float) -> list[dict[str, Any]]:
        """Count one violation; the ``account_blacklist`` event if it crosses the threshold."""
        s = self.shard(shard)
        key = jsonio.dumps(account_id)
        record = s.accounts.setdefault(key, Record())
        post_key = jsonio.dumps(post_id).decode()
        record.violations[post_key] = t
        record.expire(record.latest(), self.config.window_s)  # the account's own clock, not the shard's
        s.changed.add(key)
        if record.blacklisted or len(record.violations) < self.config.threshold:
            return []
        record.blacklisted, record.trigger, record.since = True, post_key, t
        s.blacklisted[_lookup(account_id)] = t
        return [self._event("account_blacklist", account_id, record, t)]

    def sweep(self, shard: Hashable) -> list[dict[str, Any]]:
        """Clear blacklisted accounts that fell back (if configured); forget
        accounts whose violations all left the window. Cheap: the full pass
        runs at most every twentieth of a window of stream time."""
        s = self.shards.get(shard)
        if s is None:
            return []
        events = []
        if self.config.clear:
            for item in list(s.blacklisted):
                key = item if isinstance(item, bytes) else jsonio.dumps(item)
                record = s.accounts[key]
                record.expire(s.clock, self.config.window_s)
                if len(record.violations) < self.config.threshold:
                    # Never dated before the blacklisting it undoes: the
                    # shard clock is a median of every account's times.
                    at = max(s.clock, record.since)
                    events.append(self._event("account_cleared", jsonio.loads(key), record, at))
                    record.blacklisted = False
                    del s.blacklisted[item]
                    s.changed.add(key)
        if s.clock - s.swept >= max(60, self.config.window_s / 20):
            s.swept = s.clock
            for key, record in list(s.accounts.items()):
                record.expire(s.clock, self.config.window_s)
                if not record.violations and not record.blacklisted:
                    del s.accounts[key]
                    s.changed.add(key)
        return events

    def _event(self, kind: str, account_id: Any, record: Record, t: float) -> dict[str, Any]:
        return {
            "event_id": str(uuid.uuid5(NAMESPACE, jsonio.dumps([kind, account_id, record.trigger]).decode())),
            "kind": kind,
            "account_id": account_id,
            "violations": len(record.violations),
            "threshold": self.config.threshold,
            "window_s": self.config.window_s,
            "post_ids": [jsonio.loads(k) for k in sorted(record.violations, key=record.violations.__getitem__)],
            "trigger_post_id": jsonio.loads(record.trigger),
            "at": iso(t),
        }

    # -- durability ------------------------------------------------------------------
    def take_changes(self, shard: Hashable) -> list[tuple[bytes, bytes | None]]:
        """(account key, state or None to delete) for every account changed since the last call."""
        s = self.shards.get(shard)
        if s is None or not s.changed:
            return []
        out = []
        for key in sorted(s.changed):
            record = s.accounts.get(key)
            out.append((key, record.dumps() if record is not None else None))
        s.changed.clear()
        return out

    def restore(self, shard: Hashable, items: Iterable[tuple[bytes, bytes | None]], strict: bool = True) -> int:
        """Replace a shard's state with the latest value per key (a changelog
        read from the start, or a SQLite table). Returns the accounts kept.

        A record that is not one :meth:`Record.dumps` wrote raises ValueError
        (``scan --state``: the file is refused at start), or with ``strict``
        off is skipped with one log line (the worker's changelog: anyone who
        can write the topic could otherwise stop every start)."""
        s = Shard()
        bad = 0
        lookups: dict[bytes, Any] = {}
        for key, value in items:
            if value is None:
                s.accounts.pop(key, None)
                continue
            try:
                record = Record.loads(value)
                lookups[key] = _lookup(jsonio.loads(key))
                hash(lookups[key])
            except (ValueError, TypeError) as exc:
                if strict:
                    raise ValueError(f"account {key[:80]!r}: {exc}") from None
                bad += 1
                continue
            s.accounts[key] = record
        s.blacklisted.update((lookups[key], record.since) for key, record in s.accounts.items() if record.blacklisted)
        if bad:
            log.error("offender state of %s: %d records that are not offender records skipped", shard, bad)
        self.shards[shard] = s
        return len(s.accounts)

    def drop(self, shard: Hashable) -> None:
        self.shards.pop(shard, None)


class SqliteStore:
    """The ``scan`` mode's durable offender state: one SQLite file.

    Changes are written per chunk in one transaction after the chunk's events
    were written, so an interrupted run loses at most the chunk in flight,
    whose violations are counted again (idempotently) when it is rescanned.
    """

    def __init__(self, path: str) -> None:
        if os.path.exists(path) and not os.path.isfile(path):  # /dev/null: "disk I/O error" and a /dev/null-journal
            raise sqlite3.OperationalError("not a regular file")
        # Can we write? Found now, not after the first chunk's events are
        # out (a read-only or locked file was; found by a probe). SQLite
        # opens a file it cannot write read-only without a word, and needs
        # the directory for its journal.
        if directory_problem(path) or (os.path.exists(path) and not os.access(path, os.W_OK)):
            raise sqlite3.OperationalError("attempt to write a readonly database")
        self.db = sqlite3.connect(path)
        try:
            # The file is this run's until it ends: two scans sharing it each
            # wrote their own counts back over the other's (3 + 3 violations
            # stored as 3, no blacklist; found by a hostile-input probe). In
            # exclusive locking mode SQLite keeps the lock its first write
            # takes until the connection closes, on every platform.
            self.db.execute("PRAGMA locking_mode=EXCLUSIVE")
            # Another program's database (found by a probe: it was used, and
            # an offenders table added to it) is not ours to write in.
            others = sorted(name for (name,) in self.db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
                if name != "offenders")
            if others:
                raise sqlite3.DatabaseError(f"it holds other tables: {', '.join(others[:5])}")
            self.db.execute("CREATE TABLE IF NOT EXISTS offenders (shard TEXT, account BLOB, state BLOB NOT NULL,"
                            " PRIMARY KEY (shard, account))")
            self.db.commit()
            self.db.execute("PRAGMA user_version = 1")  # that first write, now
        except BaseException:
            self.db.close()
            raise

    def load(self, shard: str) -> list[tuple[bytes, bytes | None]]:
        return [(bytes(k), bytes(v)) for k, v in
                self.db.execute("SELECT account, state FROM offenders WHERE shard = ?", (shard,))]

    def save(self, shard: str, changes: list[tuple[bytes, bytes | None]]) -> None:
        if not changes:
            return
        with self.db:
            self.db.executemany("DELETE FROM offenders WHERE shard = ? AND account = ?",
                                [(shard, k) for k, v in changes if v is None])
            self.db.executemany("INSERT OR REPLACE INTO offenders VALUES (?, ?, ?)",
                                [(shard, k, v) for k, v in changes if v is not None])

    def close(self) -> None:
        self.db.close()


class OffenderTracker(Tracker):
    """The judge's view of the offender state for one batch (see judge.Tracker).

    ``shard_of`` and ``time_of`` say, per batch index, which shard a post
    belongs to and when it was published.
    """

    def __init__(self, offenders: Offenders, shard_of: Any, time_of: Any) -> None:
        self.offenders = offenders
        self.shard_of, self.time_of = shard_of, time_of
        self.events: list[dict[str, Any]] = []
        self.touched: set[Hashable] = set()

    def blacklisted(self, index: int, account_id: Any, post_id: Any = None) -> bool:
        shard = self.shard_of(index)
        # The post's time only for a listed account: parsing it for every post cost more.
        return self.offenders.listed(shard, account_id) and \
            self.offenders.is_blacklisted(shard, account_id, self.time_of(index), post_id)

    def violation(self, index: int, account_id: Any, post_id: Any, action: str) -> None:
        if action in self.offenders.config.count:
            shard = self.shard_of(index)
            self.touched.add(shard)
            self.events += self.offenders.violation(shard, account_id, post_id, self.time_of(index))

    def finish(self, clocks: dict[Hashable, float], *, now: float | None = None) -> list[dict[str, Any]]:
        """Blacklist events of the batch, then clears found by sweeping its
        shards at their new stream time. ``clocks``: each shard's batch clock,
        from :func:`clock_of` (or :func:`shard_clocks`); a shard without one
        is not swept. A shard's clock moves by medians (:meth:`Shard.advance`),
        never beyond ``now`` + 1 day."""
        limit = (time.time() if now is None else now) + DAY
        for shard, t in clocks.items():
            if shard in self.offenders.shards or shard in self.touched:
                s = self.offenders.shard(shard)
                s.advance(min(t, limit))
                self.events += self.offenders.sweep(shard)
        return self.events
