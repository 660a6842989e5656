"""One batch step for every front end: decode → accept → track → judge → finish → emit → audit.

``scan``, ``rescan`` (files and topic) and the Kafka worker each call
:func:`screen_batch` once per batch and differ only in where records come
from and where results go. A front end is an adapter: it supplies the raw
records and where each came from (:class:`Batch`), the offender state the
batch meets (:class:`Accounts`) and, for a rescan, the verdicts posts were
published under (:class:`Review`); it writes the :class:`BatchResult` out.

What every front end gets from here, written once:

* every record ends in exactly one count: passed, flagged, recalled or
  dead-lettered (:class:`Counts` adds up by construction);
* a dead letter carries the post and account ids when they can be read, so
  ``screener audit --post/--account`` finds it;
* no event or audit record lists more than ``max_hits_per_post`` hits or
  exceeds ``max_record_bytes`` (:func:`screener.emit.fit`); a message whose
  event cannot be made to fit is dead-lettered with the reason;
* a ``published_at`` outside the sane range is noted in the audit record.

The order in which a front end writes a result matters, and is the same
everywhere: dead letters and audit records first (durable), then events,
then offender state and the input position. A crash or a failed write then
never leaves an event whose audit record was lost.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Protocol, Sequence

from . import audit, jsonio
from .decode import accepted, decode_batch, valid_id
from .emit import Emitted, Limits, emit
from .errors import debugging
from .judge import NO_TRACKER, Engine, Judgement, Tracker
from .offenders import event_time_checked
from .settings import Settings

log = logging.getLogger("screener.batch")


@dataclass(frozen=True, slots=True)
class Step:
    """What stays the same from batch to batch of one run."""

    engine: Engine
    worker_id: str
    max_post_bytes: int
    limits: Limits
    audit: bool = True

    @classmethod
    def of(cls, settings: Settings, engine: Engine, audit_enabled: bool) -> "Step":
        limits = Limits(settings.max_hits_per_post, settings.max_record_bytes)
        return cls(engine, settings.worker_id, settings.max_post_bytes, limits, audit_enabled)


@dataclass(frozen=True, slots=True)
class Batch:
    """Raw records and, per record index, where it came from (audit ``source``)
    and the time to assume when a post has no ``published_at`` (a Kafka
    record's timestamp; None: processing time)."""

    raws: Sequence[bytes]
    origin: Callable[[int], dict[str, Any]]
    fallback_time: Callable[[int], float | None] = lambda i: None
    #: Index of ``raws[0]`` in the batch this one is a part of (what an
    #: :class:`Accounts` indexes its own records by).
    start: int = 0


class Accounts(Protocol):
    """The offender state a batch meets (scan: one SQLite-backed shard; the
    worker: one shard per input partition). ``rows[k]`` is the batch index of
    ``objects[k]``."""

    def tracker(self, objects: Sequence[dict[str, Any]], rows: Sequence[int], batch: Batch) -> Tracker: ...

    def finish(self, tracker: Tracker, objects: Sequence[dict[str, Any]], rows: Sequence[int],
               batch: Batch) -> list[dict[str, Any]]: ...


class NoAccounts:
    """No offender state: nobody is blacklisted, nothing is counted."""

    def tracker(self, objects: Sequence[dict[str, Any]], rows: Sequence[int], batch: Batch) -> Tracker:
        return NO_TRACKER

    def finish(self, tracker: Tracker, objects: Sequence[dict[str, Any]], rows: Sequence[int],
               batch: Batch) -> list[dict[str, Any]]:
        return []


NO_ACCOUNTS = NoAccounts()


class Review(Protocol):
    """A rescan's filter: of the judgements, those that became stricter than
    the verdict their post was published under, and that earlier verdict
    by batch index."""

    def stricter(self, objects: Sequence[dict[str, Any]],
                 judgements: Sequence[Judgement]) -> tuple[list[Judgement], dict[int, str]]: ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    index: int  # into the batch's records
    reason: str
    post_id: Any = None
    account_id: Any = None


@dataclass
class Counts:
    posts: int = 0
    passed: int = 0
    flagged: int = 0
    recalled: int = 0
    dead_lettered: int = 0
    blacklisted: int = 0
    cleared: int = 0

    def add(self, other: "Counts") -> None:
        for f in fields(Counts):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass(slots=True)
class BatchResult:
    """Everything one batch produced, in the order it must be written."""

    dead: list[DeadLetter] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    emitted: list[Emitted] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)

    def extend(self, other: "BatchResult", offset: int) -> None:
        """Append the result of the records that start at batch index ``offset``."""
        self.dead += [DeadLetter(d.index + offset, d.reason, d.post_id, d.account_id) for d in other.dead]
        self.audit += other.audit
        self.emitted += other.emitted
        self.counts.add(other.counts)


def screen_batch(step: Step, batch: Batch, accounts: Accounts = NO_ACCOUNTS,
                 review: Review | None = None) -> BatchResult:
    """Screen one batch of raw records; see the module docstring.

    A record that makes screening itself fail (a bug of ours that a hostile
    record found) must not stop the run, nor make it fail the same way after
    every restart: the batch is split until the record is alone, and that
    record is dead-lettered with the error as its reason. Offender counts are
    keyed by post id, so screening a part again counts nothing twice.
    """
    try:
        return _screen(step, batch, accounts, review)
    except Exception as exc:
        if not batch.raws:
            raise
        if len(batch.raws) == 1:
            log.error("screening failed on one record (dead-lettered): %s: %s", type(exc).__name__, exc,
                      exc_info=debugging())
            reason = f"screening failed: {type(exc).__name__}: {exc}"
            return _alone_dead(step, batch, dead_letter_of(batch.raws[0], 0, reason))
    half = len(batch.raws) // 2
    result = BatchResult()
    for lo, hi in ((0, half), (half, len(batch.raws))):
        result.extend(screen_batch(step, _part(batch, lo, hi), accounts, review), lo)
    return result


def _part(batch: Batch, lo: int, hi: int) -> Batch:
    """Records ``lo:hi`` of a batch, still saying where each came from."""
    return Batch(batch.raws[lo:hi], lambda i: batch.origin(lo + i), lambda i: batch.fallback_time(lo + i),
                 batch.start + lo)


def screen_parts(step: Step, batch: Batch, accounts: Accounts, max_records: int, max_bytes: int,
                 between: Callable[[], None]) -> BatchResult:
    """:func:`screen_batch` over parts of at most ``max_records`` records and
    ``max_bytes`` bytes (a longer record is a part alone), in order, calling
    ``between()`` after each: the worker's heartbeat. A poll batch may hold
    2,048 posts of 256 KiB; written dense in hits (赌博 over and over) each
    takes ~0.7 s to verify, and one call screening them all went minutes
    without a heartbeat, so /healthz failed and the pod restarted into the
    same batch for ever. An ordinary batch is one part, as before.
    """
    bounds = part_bounds(batch.raws, max_records, max_bytes)
    if len(bounds) == 1:
        result = screen_batch(step, batch, accounts)
        between()
        return result
    result = BatchResult()
    for lo, hi in bounds:
        result.extend(screen_batch(step, _part(batch, lo, hi), accounts), lo)
        between()
    return result


def part_bounds(raws: Sequence[bytes], max_records: int, max_bytes: int) -> list[tuple[int, int]]:
    """``(lo, hi)`` of consecutive parts of ``raws`` within both limits.

    >>> part_bounds([b"a" * 4] * 5, 10, 8), part_bounds([b"a" * 20, b"b"], 10, 8), part_bounds([b"a"] * 5, 2, 100)
    ([(0, 2), (2, 4), (4, 5)], [(0, 1), (1, 2)], [(0, 2), (2, 4), (4, 5)])
    """
    sizes = list(map(len, raws))
    if len(sizes) <= max_records and sum(sizes) <= max_bytes:  # the common case: one part
        return [(0, len(sizes))]
    bounds, lo, held = [], 0, 0
    for i, size in enumerate(sizes):
        if i > lo and (i - lo >= max_records or held + size > max_bytes):
            bounds.append((lo, i))
            lo, held = i, 0
        held += size
    bounds.append((lo, len(sizes)))
    return bounds


def _alone_dead(step: Step, batch: Batch, dead: DeadLetter) -> BatchResult:
    records = []
    if step.audit:
        records = [audit.within(audit.dead_letter(dead.reason, step.worker_id, step.engine, batch.origin(0),
                                                  dead.post_id, dead.account_id), step.limits)]
    return BatchResult([dead], records, [], Counts(posts=1, dead_lettered=1))


def _screen(step: Step, batch: Batch, accounts: Accounts, review: Review | None) -> BatchResult:
    engine = step.engine
    objects, texts, rejected = decode_batch(batch.raws, step.max_post_bytes)
    rows = accepted(range(len(batch.raws)), rejected)
    dead = [dead_letter_of(batch.raws[i], i, reason) for i, reason in rejected]
    tracker = accounts.tracker(objects, rows, batch)
    judgements = engine.judge(objects, texts, tracker)
    was: dict[int, str] = {}
    if review is not None:
        judgements, was = review.stricter(objects, judgements)
    account_events = accounts.finish(tracker, objects, rows, batch)
    rescan_of = (lambda i: {"previous_action": was[i]}) if review is not None else None
    emitted, unfit = emit(engine, objects, judgements, account_events, step.limits,
                          (lambda i: {"rescan": rescan_of(i)}) if rescan_of else None)
    for index, reason in unfit:
        obj = objects[index]
        dead.append(DeadLetter(rows[index], reason, obj.get("id"), _account_id(obj)))
    records: list[dict[str, Any]] = []
    if step.audit:
        records = [audit.within(audit.dead_letter(d.reason, step.worker_id, engine, batch.origin(d.index),
                                                  d.post_id, d.account_id), step.limits) for d in dead]
        records += audit.records_for(objects, judgements, emitted, engine, step.worker_id,
                                     lambda i: batch.origin(rows[i]), rescan_of, step.limits,
                                     lambda i: _notes(objects[i], batch.fallback_time(rows[i])))
    return BatchResult(dead, records, emitted, _count(len(batch.raws), len(dead), emitted))


def _count(records: int, dead: int, emitted: Sequence[Emitted]) -> Counts:
    counts = Counts(posts=records, dead_lettered=dead)
    for e in emitted:
        if e.judged is not None:
            if e.action == "flag":
                counts.flagged += 1
            else:
                counts.recalled += 1
        elif e.kind == "account_blacklist":
            counts.blacklisted += 1
        else:
            counts.cleared += 1
    counts.passed = records - dead - counts.flagged - counts.recalled
    return counts


def _notes(obj: dict[str, Any], fallback: float | None) -> list[str]:
    """How the message was read where that was not as written."""
    if "published_at" not in obj:
        return []
    _, note = event_time_checked(obj, fallback)
    return [note] if note else []


def _account_id(obj: dict[str, Any]) -> Any:
    account = obj.get("account")
    if isinstance(account, dict) and valid_id(account.get("id")):
        return account["id"]
    value = obj.get("account_id")
    return value if valid_id(value) else None


# A record that is not JSON (or is cut off) may still say whose it is.
_IDS_RE = re.compile(rb'"(id|account_id)"\s*:\s*("(?:[^"\\\n]|\\.){0,256}"|-?[0-9]{1,40}(?![0-9.eE]))')
_SCAN_BYTES = 64 << 10


def dead_letter_of(raw: bytes, index: int, reason: str) -> DeadLetter:
    """A rejected record, with its post and account ids when they can be read.

    >>> d = dead_letter_of(b'{"id": 7, "account_id": "u1", "text": 5}', 0, "bad")
    >>> d.post_id, d.account_id
    (7, 'u1')
    >>> dead_letter_of(b'{"id": "p9", "text": "cut off', 3, "bad").post_id
    'p9'
    """
    obj: Any = None
    if len(raw) <= _SCAN_BYTES:
        try:
            obj = jsonio.loads(raw)
        except ValueError:  # orjson.JSONDecodeError and json.JSONDecodeError both are
            obj = None
    if isinstance(obj, dict):
        post_id = obj.get("id")
        return DeadLetter(index, reason, post_id if valid_id(post_id) else None, _account_id(obj))
    found: dict[bytes, Any] = {}
    for match in _IDS_RE.finditer(raw[:_SCAN_BYTES]):
        name = match.group(1)
        if name not in found:
            try:
                found[name] = jsonio.loads(match.group(2))
            except ValueError:
                continue
    return DeadLetter(index, reason, found.get(b"id"), found.get(b"account_id"))
