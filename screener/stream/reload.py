"""Hot reload of lexicon and policy: compile off the hot path, swap between batches.

A watcher thread checks the lexicon directory, the policy file and the list
files it names every few seconds (and at once on SIGHUP). A changed set is
loaded, validated and compiled in that thread into a new :class:`Engine`; the
worker loop picks it up between two batches, so no batch is screened half by one version and
half by another. A lexicon or policy that fails validation is logged as
``path:line: reason``, counted, recorded in the audit trail, and the running
version keeps serving.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path

from ..errors import LexiconError, ScreenerError
from ..files import read_regular
from ..judge import Engine
from ..lexicon.load import content_version
from ..lexicon.parse import os_reason
from ..policy import sources
from . import metrics

log = logging.getLogger("screener.reload")


class LexiconReloader:
    def __init__(self, directory: str, policy: str | None, matcher: str, current: Engine, interval_s: float,
                 cache_dir: str | None = None) -> None:
        self.directory = Path(directory)
        self.policy = Path(policy) if policy else None
        self.matcher = matcher
        self.cache_dir = cache_dir  # a new version compiled here is cached for the next start
        self.interval_s = interval_s
        self._seen = self._version()  # what serves (or last failed)
        self._serving = (current.lexicon_version, current.policy_version)
        self._last_stat: tuple = ()
        self._settled = True  # the last stats seen were looked at (hashed) already
        self._last_failure: list[str] | None = None  # files unreadable: reported once, not every interval
        self._forced = False
        self._ready: Engine | None = None
        self._rejected: list[list[str]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lexicon-reload", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request(self) -> None:
        """Check now (SIGHUP), even if no file stat changed."""
        self._forced = True
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def take(self) -> Engine | None:
        """A newly compiled engine, once; None if there is none."""
        with self._lock:
            ready, self._ready = self._ready, None
        return ready

    def take_rejections(self) -> list[list[str]]:
        """Problems of each version rejected since the last call (for the audit trail)."""
        with self._lock:
            rejected, self._rejected = self._rejected, []
        return rejected

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if not self._stop.is_set():
                try:
                    self.check()
                except Exception:  # pragma: no cover - check() catches everything itself; belt and braces
                    log.exception("lexicon reload: unexpected failure; still watching")

    def _watched(self) -> list[Path]:
        return [*self.directory.iterdir(), *sources(self.policy)]

    def _stat(self) -> tuple:
        """Names, sizes and mtimes: cheap to read every few seconds. A file
        that cannot be stat'ed (a broken link, a loop) is an entry too, so
        that it is noticed and reported by the loader, not skipped."""
        entries = []
        for path in self._watched():
            try:
                st = path.stat()
                entries.append((str(path), st.st_size, st.st_mtime_ns))
            except OSError as exc:
                entries.append((str(path), -1, exc.errno or 0))
        return tuple(sorted(entries))

    def _version(self) -> str:
        """Lexicon content hash plus the bytes of the policy file and the
        list files it names."""
        digest = hashlib.sha256(content_version(self.directory).encode())
        for path in sources(self.policy):
            try:
                data = read_regular(path)
            except OSError as exc:  # hashed, so that the policy loader reports it
                data = f"unreadable: {os_reason(exc)}".encode()
            digest.update(str(path).encode() + b"\0" + data)
        return digest.hexdigest()[:16]

    def check(self) -> None:
        """Look for a new version and build it. Never raises: whatever goes
        wrong (a broken file, an unreadable directory, a crash while
        compiling, memory) is logged, counted and recorded as a rejection,
        the serving version stays, and the next check runs as usual."""
        # Hash the content only when the file stats moved (or on SIGHUP):
        # hashing a 100k-term set every 2 s took the GIL from the hot loop.
        # A change is built once the stats have held still for one interval:
        # a file still being written (a copy, an editor's save) was compiled
        # half-way, and 50,071 of 100k terms served until the next check
        # (found by a hostile-input probe). SIGHUP means "done": at once.
        try:
            stat = self._stat()
            if not self._forced:
                if stat != self._last_stat:
                    self._last_stat, self._settled = stat, False
                    return
                if self._settled:
                    return
            self._last_stat, self._forced, self._settled = stat, False, True
            version = self._version()
        except Exception as exc:  # noqa: BLE001 - the watcher must outlive any failure
            self._last_stat = ()  # look again next time
            lines = self._failure_lines(exc)
            if lines != self._last_failure:  # a directory gone for a while is one failure, not one per check
                self._last_failure = lines
                self._reject(lines)
            return
        self._last_failure = None
        if version == self._seen:
            return
        self._seen = version
        try:
            engine = Engine.build(self.directory, self.policy, self.matcher, self.cache_dir)
            engine.posts.pinyin.warm()  # here, not in the first batch after the swap
        except Exception as exc:  # noqa: BLE001 - LexiconError, PolicyError, OSError, MemoryError, ...
            self._reject(self._failure_lines(exc))
            return
        serving = (engine.lexicon_version, engine.policy_version)
        if serving == self._serving:
            # Back to what serves (a rejected version, then the good files
            # restored): a swap would only stall the loop and audit a no-op.
            log.info("lexicon and policy content unchanged (versions %s, %s): nothing to swap", *serving)
            return
        self._serving = serving
        with self._lock:
            self._ready = engine
        for warning in engine.policy.warnings:
            log.warning("policy warning: %s", warning)
        log.info("lexicon version %s, policy version %s compiled (%d terms, %d lexicon warnings); swapping at the next batch",
                 engine.lexicon_version, engine.policy_version, engine.posts.lexicons.term_count,
                 len(engine.posts.lexicons.warnings))

    def _failure_lines(self, exc: Exception) -> list[str]:
        """``path:line: reason`` lines for any failure, one line each."""
        if isinstance(exc, LexiconError):  # and PolicyError
            return [str(p) for p in exc.problems]
        if isinstance(exc, OSError) and exc.filename:
            return [f"{exc.filename}:0: {os_reason(exc)}"]
        kind = "" if isinstance(exc, ScreenerError) else f"{type(exc).__name__}: "
        text = " ".join(str(exc).split()) or "(no message)"
        return [f"{self.directory}:0: {kind}{text}"]

    def _reject(self, lines: list[str]) -> None:
        metrics.RELOAD_FAILURES.inc()
        for line in lines:
            log.error("rejected: %s", line)
        log.error("new lexicon/policy rejected (%d problems); the previous version keeps serving", len(lines))
        with self._lock:
            self._rejected.append(lines)
