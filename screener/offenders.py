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
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Hashable, Iterable

import orjson

from .judge import Tracker
from .policy import OffenderConfig

NAMESPACE = uuid.UUID("0f7c0e56-4a1e-4d0b-93a5-6d7f3c1b9e42")


def event_time(obj: dict[str, Any], fallback: float | None = None) -> float:
    """When a post was published, in epoch seconds: its ``published_at``
    (epoch seconds or milliseconds, or ISO 8601), else ``fallback`` (the
    Kafka record timestamp), else now."""
    value = obj.get("published_at")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value / 1000 if value > 1e11 else float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()
        except ValueError:
            pass
    return fallback if fallback is not None else time.time()


def event_time_checked(obj: dict[str, Any], fallback: float | None = None) -> tuple[float, str | None]:
    """TEMPORARY shim."""
    return event_time(obj, fallback), None


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Record:
    """One account in one shard: recent violations by post, and its status."""

    violations: dict[str, float] = field(default_factory=dict)  # post key → event time
    blacklisted: bool = False
    trigger: str = ""  # the post whose violation blacklisted the account

    def expire(self, now: float, window_s: int) -> None:
        horizon = now - window_s
        if any(t <= horizon for t in self.violations.values()):
            self.violations = {k: t for k, t in self.violations.items() if t > horizon}

    def dumps(self) -> bytes | None:
        """Serialised state, or None (a tombstone) when there is nothing to keep."""
        if not self.violations and not self.blacklisted:
            return None
        return orjson.dumps({"v": self.violations, "b": self.blacklisted, "t": self.trigger})

    @classmethod
    def loads(cls, data: bytes) -> "Record":
        doc = orjson.loads(data)
        return cls(dict(doc["v"]), bool(doc["b"]), doc.get("t", ""))


@dataclass
class Shard:
    accounts: dict[bytes, Record] = field(default_factory=dict)  # by the account id as JSON
    #: Blacklisted accounts by :func:`_lookup` key: asked for every post of a
    #: batch when post rules exist, where serialising each id would cost more.
    blacklisted: set[Any] = field(default_factory=set)
    clock: float = 0.0  # stream time: the latest event time seen
    swept: float = 0.0
    changed: set[bytes] = field(default_factory=set)


def _lookup(account_id: Any) -> Any:
    """A set key for an account id: the id itself when it is a string or an
    integer (the usual case), its JSON otherwise (any JSON value is an id)."""
    return account_id if type(account_id) in (str, int) else orjson.dumps(account_id)


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

    def is_blacklisted(self, shard: Hashable, account_id: Any) -> bool:
        s = self.shards.get(shard)
        return s is not None and bool(s.blacklisted) and _lookup(account_id) in s.blacklisted

    def violation(self, shard: Hashable, account_id: Any, post_id: Any, t: float) -> list[dict[str, Any]]:
        """Count one violation; the ``account_blacklist`` event if it crosses the threshold."""
        s = self.shard(shard)
        key = orjson.dumps(account_id)
        record = s.accounts.setdefault(key, Record())
        s.clock = max(s.clock, t)
        post_key = orjson.dumps(post_id).decode()
        record.violations[post_key] = t
        record.expire(s.clock, self.config.window_s)
        s.changed.add(key)
        if record.blacklisted or len(record.violations) < self.config.threshold:
            return []
        record.blacklisted, record.trigger = True, post_key
        s.blacklisted.add(_lookup(account_id))
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
                key = item if isinstance(item, bytes) else orjson.dumps(item)
                record = s.accounts[key]
                record.expire(s.clock, self.config.window_s)
                if len(record.violations) < self.config.threshold:
                    events.append(self._event("account_cleared", orjson.loads(key), record, s.clock))
                    record.blacklisted = False
                    s.blacklisted.discard(item)
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
            "event_id": str(uuid.uuid5(NAMESPACE, orjson.dumps([kind, account_id, record.trigger]).decode())),
            "kind": kind,
            "account_id": account_id,
            "violations": len(record.violations),
            "threshold": self.config.threshold,
            "window_s": self.config.window_s,
            "post_ids": [orjson.loads(k) for k in sorted(record.violations, key=record.violations.__getitem__)],
            "trigger_post_id": orjson.loads(record.trigger),
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

    def restore(self, shard: Hashable, items: Iterable[tuple[bytes, bytes | None]]) -> int:
        """Replace a shard's state with the latest value per key (a changelog
        read from the start, or a SQLite table). Returns the accounts kept."""
        s = self.shards[shard] = Shard()
        for key, value in items:
            if value is None:
                s.accounts.pop(key, None)
            else:
                s.accounts[key] = Record.loads(value)
        for key, record in s.accounts.items():
            if record.blacklisted:
                s.blacklisted.add(_lookup(orjson.loads(key)))
            s.clock = max([s.clock, *record.violations.values()])
        s.swept = s.clock
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
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS offenders (shard TEXT, account BLOB, state BLOB NOT NULL,"
                        " PRIMARY KEY (shard, account))")
        self.db.commit()

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

    def blacklisted(self, index: int, account_id: Any) -> bool:
        return self.offenders.is_blacklisted(self.shard_of(index), account_id)

    def violation(self, index: int, account_id: Any, post_id: Any, action: str) -> None:
        if action in self.offenders.config.count:
            shard = self.shard_of(index)
            self.touched.add(shard)
            self.events += self.offenders.violation(shard, account_id, post_id, self.time_of(index))

    def finish(self, clocks: dict[Hashable, float]) -> list[dict[str, Any]]:
        """Blacklist events of the batch, then clears found by sweeping its
        shards at their new stream time (``clocks``: the latest event time
        of each shard's posts in the batch)."""
        for shard, t in clocks.items():
            if shard in self.offenders.shards or shard in self.touched:
                s = self.offenders.shard(shard)
                s.clock = max(s.clock, t)
                self.events += self.offenders.sweep(shard)
        return self.events
