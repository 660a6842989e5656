"""The ``scan`` job: source → decode → judge → emit, with nothing lost.

Every input line ends as exactly one of passed / flagged / recalled /
dead-lettered; the summary adds up by construction, and a test checks it.
Offender state lives in one shard (``scan``), in memory or in a SQLite file
(``--state``); the audit trail goes to a JSONL file (``--audit``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, BinaryIO, Sequence

from . import audit, compact
from .decode import accepted, decode_batch, strip_eol
from .emit import Emitted, emit
from .judge import Engine, NO_TRACKER, Tracker
from .offenders import OffenderTracker, Offenders, SqliteStore, event_time
from .settings import Settings
from .sinks import DeadLetterSink
from .source import Chunk, read_chunks, total_size

_OUTCOME_FIELD = {"pass": "passed", "flag": "flagged", "recall": "recalled"}
SHARD = "scan"


@dataclass
class Summary:
    posts: int = 0
    passed: int = 0
    flagged: int = 0
    recalled: int = 0
    dead_lettered: int = 0
    blacklisted: int = 0
    cleared: int = 0
    input_bytes: int = 0
    seconds: float = 0.0

    def count(self, action: str) -> None:
        name = _OUTCOME_FIELD[action]
        setattr(self, name, getattr(self, name) + 1)

    def line(self, matcher: str, version: str) -> str:
        rate = self.input_bytes / 1e6 / self.seconds if self.seconds else 0.0
        return (
            f"screener scan: posts={self.posts} passed={self.passed} flagged={self.flagged} "
            f"recalled={self.recalled} dead_lettered={self.dead_lettered} "
            f"blacklisted={self.blacklisted} cleared={self.cleared} "
            f"MB={self.input_bytes / 1e6:.2f} MB/s={rate:.1f} seconds={self.seconds:.2f} "
            f"matcher={matcher} fold={compact.load()} lexicon_version={version}"
        )


class Progress:
    """A one-line progress bar on stderr, only when a person is watching."""

    def __init__(self, total: int | None, mode: str) -> None:
        wanted = mode == "on" or (mode == "auto" and sys.stderr.isatty() and (total or 0) > 16 << 20)
        self.enabled, self.total, self._last = wanted, total, 0.0

    def update(self, done: int, posts: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._last < 0.2:
            return
        self._last = now
        if self.total:
            pct = min(done / self.total, 1.0)
            bar = "#" * int(pct * 30)
            sys.stderr.write(f"\r[{bar:<30}] {pct:6.1%} {posts} posts")
        else:
            sys.stderr.write(f"\r{done / 1e6:.1f} MB {posts} posts")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


class ScanState:
    """Offender state of a scan: in memory, or restored from and saved to SQLite."""

    def __init__(self, engine: Engine, path: str) -> None:
        config = engine.policy.offenders
        self.offenders = Offenders(config) if config.enabled else None
        self.store = SqliteStore(path) if path and self.offenders else None
        if self.offenders is not None and self.store is not None:
            self.offenders.restore(SHARD, self.store.load(SHARD))

    def tracker(self, objects: Sequence[dict[str, Any]]) -> Tracker:
        if self.offenders is None:
            return NO_TRACKER
        return OffenderTracker(self.offenders, lambda i: SHARD, lambda i: event_time(objects[i]))

    def finish(self, tracker: Tracker, objects: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        if not isinstance(tracker, OffenderTracker) or not objects:
            return []
        return tracker.finish({SHARD: max(event_time(objects[0]), event_time(objects[-1]))})

    def save(self) -> None:
        if self.offenders is not None and self.store is not None:
            self.store.save(SHARD, self.offenders.take_changes(SHARD))

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def run_scan(settings: Settings, engine: Engine, paths: Sequence[str], out: BinaryIO) -> Summary:
    summary = Summary()
    dead = DeadLetterSink(settings.dead_letter)
    log = audit.AuditLog(settings.audit or None)
    state = ScanState(engine, settings.state)
    progress = Progress(total_size(paths), settings.progress)
    started = time.perf_counter()
    try:
        for chunk in read_chunks(paths, settings.batch_records, settings.batch_bytes):
            out.write(_screen_chunk(chunk, engine, settings, summary, dead, log, state))
            out.flush()
            log.flush()
            state.save()  # after the chunk's events and audit records are out
            progress.update(summary.input_bytes, summary.posts)
    finally:
        progress.close()
        dead.close()
        log.close()
        state.close()
        out.flush()
        summary.seconds = time.perf_counter() - started
    return summary


def _screen_chunk(chunk: Chunk, engine: Engine, settings: Settings, summary: Summary, dead: DeadLetterSink,
                  log: audit.AuditLog, state: ScanState) -> bytes:
    """Decode, judge and emit one chunk; every line lands in exactly one count."""
    objects, texts, rejected = decode_batch(chunk.lines, settings.max_post_bytes)
    for index, reason in rejected:
        dead.write(chunk.source, chunk.first_line + index, strip_eol(chunk.lines[index]), reason)
    tracker = state.tracker(objects)
    judgements = engine.judge(objects, texts, tracker)
    emitted = emit(engine, objects, judgements, state.finish(tracker, objects))
    _count(summary, emitted, chunk, len(texts), len(rejected))
    if log.enabled:
        lines = accepted(chunk.line_numbers, rejected)
        log.write(audit.dead_letter(reason, settings.worker_id, engine,
                                    {"file": chunk.source, "line": chunk.first_line + index}) for index, reason in rejected)
        log.write(audit.records_for(objects, judgements, emitted, engine, settings.worker_id,
                                    lambda i: {"file": chunk.source, "line": lines[i]}))
    return b"".join(e.value for e in emitted)


def _count(summary: Summary, emitted: list[Emitted], chunk: Chunk, good: int, bad: int) -> None:
    messages = 0
    for e in emitted:
        if e.judged is not None:
            summary.count(e.action)
            messages += 1
        elif e.kind == "account_blacklist":
            summary.blacklisted += 1
        else:
            summary.cleared += 1
    summary.posts += len(chunk.lines)
    summary.dead_lettered += bad
    summary.passed += good - messages
    summary.input_bytes += chunk.size

