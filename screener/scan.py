"""The ``scan`` job: source → decode → judge → emit, with nothing lost.

Every input line ends as exactly one of passed / flagged / recalled /
dead-lettered; the summary adds up by construction, and a test checks it.
Offender state lives in one shard (``scan``), in memory or in a SQLite file
(``--state``); the audit trail goes to a JSONL file (``--audit``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import stat
import sys
import time
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Iterator, Mapping, Sequence, TypeVar

from . import audit, compact
from .batch import Batch, BatchResult, Counts, Step, screen_batch
from .decode import strip_eol
from .errors import ConfigError, InputError, OutputError
from .judge import Engine, NO_TRACKER, Tracker
from .offenders import OffenderTracker, Offenders, SqliteStore, clock_of, event_time
from .settings import Settings
from .sinks import DeadLetterSink
from .source import Chunk, read_chunks, total_size

SHARD = "scan"
T = TypeVar("T")


@dataclass
class Summary(Counts):
    """A run's counts so far (printed even when the run is cut short)."""

    input_bytes: int = 0
    seconds: float = 0.0
    #: Whether any input was read: a run refused before that has no summary to give.
    started: bool = False

    def line(self, matcher: str, version: str, command: str = "scan") -> str:
        rate = self.input_bytes / 1e6 / self.seconds if self.seconds else 0.0
        return (
            f"screener {command}: posts={self.posts} passed={self.passed} flagged={self.flagged} "
            f"recalled={self.recalled} dead_lettered={self.dead_lettered} "
            f"blacklisted={self.blacklisted} cleared={self.cleared} "
            f"MB={self.input_bytes / 1e6:.2f} MB/s={rate:.1f} seconds={self.seconds:.2f} "
            f"matcher={matcher} fold={compact.current()} lexicon_version={version}"
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
    """Offender state of a scan (:class:`screener.batch.Accounts`): one shard,
    in memory, or restored from and saved to SQLite."""

    def __init__(self, engine: Engine, path: str) -> None:
        config = engine.policy.offenders
        self.offenders = Offenders(config) if config.enabled else None
        self.store = None
        self.path = path
        if path and self.offenders is not None:
            try:
                self.store = SqliteStore(path)
                self.offenders.restore(SHARD, self.store.load(SHARD))
            except (sqlite3.Error, OSError, ValueError, KeyError, TypeError) as exc:
                self.close()  # the file stays locked while its connection is open
                raise ConfigError(f"--state {path}: {_state_problem(exc, path)}") from None

    def tracker(self, objects: Sequence[dict[str, Any]], rows: Sequence[int], batch: Batch) -> Tracker:
        if self.offenders is None:
            return NO_TRACKER
        # A post without a published_at counts at the stream's time (its
        # batch's clock, else the shard's), not at processing time, which
        # made it its account's latest violation and expired the account's
        # archived ones (found by a policy probe). None: processing time.
        # Only for a post without one: a published_at that is no time ("x")
        # gets processing time, as the audit record's note says (a review).
        # The clock only for such a post: a batch of dated posts never needs it.
        offenders = self.offenders

        @functools.cache
        def stream() -> float | None:
            return clock_of(objects) or offenders.shard(SHARD).clock or None

        def time_of(i: int) -> float:
            return event_time(objects[i], stream() if objects[i].get("published_at") is None else None)

        return OffenderTracker(offenders, lambda i: SHARD, time_of)

    def finish(self, tracker: Tracker, objects: Sequence[dict[str, Any]], rows: Sequence[int],
               batch: Batch) -> list[dict[str, Any]]:
        if not isinstance(tracker, OffenderTracker) or not objects:
            return []
        clock = clock_of(objects)  # a median: one post's absurd date does not move it
        return tracker.finish({SHARD: clock} if clock is not None else {})

    def save(self) -> None:
        if self.offenders is not None and self.store is not None:
            try:
                self.store.save(SHARD, self.offenders.take_changes(SHARD))
            except (sqlite3.Error, OSError) as exc:
                raise OutputError(f"cannot write --state {self.path}: {exc}") from None

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def _state_problem(exc: Exception, path: str) -> str:
    """Why a state file cannot serve this run, as the operator can act on it."""
    text = str(exc)
    parent = os.path.dirname(path) or "."
    if not os.path.isdir(parent):  # SQLite says "read-only" (found by a walk-through of the docs)
        return f"{parent} is not a directory" if os.path.exists(parent) else f"no directory {parent}"
    if "database is locked" in text:
        return "locked by another process (another scan using it, or another program); each run needs its own state file"
    if "readonly database" in text:
        return "cannot write it (read-only)"
    return f"not a usable screener state file ({text})"


class Outputs:
    """Where a file job's results go, written in the order that loses nothing:
    dead letters and audit records (flushed, the audit log fsynced) before
    the events they go with. A failed write is an :class:`OutputError` naming
    the output; nothing after it is written."""

    def __init__(self, settings: Settings, out: BinaryIO) -> None:
        self.out = out
        self.dead = _opened("--dead-letter", settings.dead_letter, lambda: DeadLetterSink(settings.dead_letter,
                                                                                   settings.max_record_bytes))
        try:
            self.log = _opened("--audit", settings.audit, lambda: audit.AuditLog(settings.audit or None))
        except OutputError:
            self.dead.close()
            raise

    def write(self, result: BatchResult, source: str, first_line: int, raws: Sequence[bytes]) -> None:
        if result.dead:
            with _writing("--dead-letter", self.dead.path):
                for d in result.dead:
                    self.dead.write(source, first_line + d.index, strip_eol(raws[d.index]), d.reason,
                                    post_id=d.post_id, account_id=d.account_id)
                self.dead.flush()
        if result.audit:
            with _writing("--audit", self.log.path):
                self.log.write(result.audit)
                self.log.flush()
        if result.emitted:
            with _writing("events to", "stdout"):
                self.out.write(b"".join(e.value for e in result.emitted))
                self.out.flush()

    def close(self) -> None:
        try:
            with _writing("--audit", self.log.path):
                self.log.close()
        finally:
            with _writing("--dead-letter", self.dead.path):
                self.dead.close()


def _opened(option: str, path: str | None, make: Callable[[], T]) -> T:
    try:
        return make()
    except OSError as exc:
        raise OutputError(f"cannot open {option} {path}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def _writing(option: str, path: str | None) -> Iterator[None]:
    try:
        yield
    except (OSError, ValueError) as exc:  # ValueError: a closed stream
        # `scan | head`: the reader has what it wanted (cli.py). A dead-letter or audit FIFO whose
        # reader went away lost records: an error, not the end of a pipe.
        if isinstance(exc, BrokenPipeError) and option == "events to":
            raise
        raise OutputError(f"cannot write {option} {path or '-'}: {getattr(exc, 'strerror', None) or exc}") from None


def check_apart(inputs: Sequence[str], outputs: Mapping[str, str | None], out: BinaryIO | None = None) -> None:
    """Refuse a run whose outputs are one of its inputs, or each other.

    ``--audit X X`` read back its own records for ever (the file grew to
    228 MB in 15 s), ``--dead-letter X X`` likewise, and ``rescan --audit X
    --checkpoint X`` renamed the checkpoint over the audit trail after each
    batch (found by a hostile-input probe). ``outputs``: option → path
    (None or ``-``: not a file); ``out``: the events' stream, when it is a
    file (``>> X``)."""
    named: dict[Any, str] = {}
    for path in inputs:
        identity = _identity(path) if path != "-" else None
        if identity is not None:
            named.setdefault(identity, path)
    seen: dict[Any, str] = {}
    files = [(option, path) for option, path in outputs.items() if path not in (None, "", "-")]
    for option, path in files:
        identity = _identity(path)
        if identity is None:  # a device or pipe (/dev/null twice, /dev/stderr): nothing is read back
            continue
        if identity in named:
            raise ConfigError(f"{option} {path} is the input {named[identity]}: it would read its own output")
        if identity in seen:
            raise ConfigError(f"{option} {path} is also {seen[identity]}: give each output its own file")
        seen[identity] = f"{option} {path}"
    if out is not None:
        try:
            st = os.fstat(out.fileno())
        except (OSError, ValueError, AttributeError):  # not a file descriptor (a test's buffer)
            return
        if stat.S_ISREG(st.st_mode) and ("inode", st.st_dev, st.st_ino) in named:
            raise ConfigError(f"events (stdout) go to the input {named['inode', st.st_dev, st.st_ino]}: "
                              "it would read its own output")


def _identity(path: str) -> tuple[Any, ...] | None:
    """The regular file a path names (device and inode), or for one that
    does not exist yet the path it will have; None for anything else."""
    try:
        st = os.stat(path)
    except OSError:
        return ("path", os.path.realpath(path))
    return ("inode", st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None


def origin_of(chunk: Chunk) -> Callable[[int], dict[str, Any]]:
    """Where record ``i`` of a chunk came from, as the audit trail names it."""
    return lambda i: {"file": chunk.source, "line": chunk.first_line + i}


def chunks_of(paths: Sequence[str], settings: Settings,
              resume: tuple[int, int, int] = (0, 0, 1)) -> Iterator[Chunk]:
    """:func:`screener.source.read_chunks`, with every path checked now,
    before any line is screened, and read errors as :class:`InputError`.

    A path may be a pipe (``<(zcat posts.jsonl.gz)``, ``/dev/stdin``) as
    well as a file: input is read once, front to back, like stdin."""
    for path in paths:
        if path != "-" and (not os.path.exists(path) or os.path.isdir(path)):
            reason = "no such file" if not os.path.exists(path) else "is a directory"
            raise InputError(f"cannot read {path}: {reason}")
    if (not paths or "-" in paths) and sys.stdin is None:
        raise InputError("cannot read stdin: it is closed")
    return _reading(read_chunks(paths, settings.batch_records, settings.batch_bytes, resume,
                                max_line_bytes=settings.max_post_bytes))


def _reading(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    while True:
        try:
            chunk = next(chunks)
        except StopIteration:
            return
        except OSError as exc:
            raise InputError(f"cannot read {exc.filename or 'stdin'}: {exc.strerror or exc}") from None
        yield chunk


def run_scan(settings: Settings, engine: Engine, paths: Sequence[str], out: BinaryIO,
             summary: Summary | None = None) -> Summary:
    """Screen JSONL files (or stdin); ``summary`` is filled in as the run goes,
    so a caller still has the counts when the run is cut short."""
    summary = summary if summary is not None else Summary()
    step = Step.of(settings, engine, bool(settings.audit))
    check_apart(paths, {"--dead-letter": settings.dead_letter, "--audit": settings.audit, "--state": settings.state}, out)
    chunks = chunks_of(paths, settings)
    state = ScanState(engine, settings.state)
    started = time.perf_counter()
    progress = Progress(_total_size(paths), settings.progress)
    try:
        outputs = Outputs(settings, out)
        try:
            for chunk in chunks:
                summary.started = True
                batch = Batch(chunk.lines, origin_of(chunk))
                result = screen_batch(step, batch, state)
                outputs.write(result, chunk.source, chunk.first_line, chunk.lines)
                state.save()  # after the chunk's events and audit records are out
                summary.add(result.counts)
                summary.input_bytes += chunk.size
                summary.seconds = time.perf_counter() - started
                progress.update(summary.input_bytes, summary.posts)
        finally:
            outputs.close()
    finally:
        progress.close()
        state.close()
        summary.seconds = time.perf_counter() - started
    return summary


def _total_size(paths: Sequence[str]) -> int | None:
    try:
        return total_size(paths)
    except OSError:
        return None
