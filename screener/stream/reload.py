"""Lexicon hot reload: compile a new version off the hot path, swap between batches.

A watcher thread checks the directory's content hash every few seconds (and at
once on SIGHUP). A changed set is loaded and its matcher compiled in that
thread; the worker loop picks the finished :class:`Screener` up between two
batches, so no batch is screened half by one version and half by another. A
set that fails validation is logged as ``path:line: reason``, counted, and the
running version keeps serving.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from ..errors import LexiconError
from ..lexicon import load_lexicons
from ..lexicon.load import content_version
from ..pipeline import Screener
from . import metrics

log = logging.getLogger("screener.reload")


class LexiconReloader:
    def __init__(self, directory: str, matcher: str, current: Screener, interval_s: float) -> None:
        self.directory = Path(directory)
        self.matcher = matcher
        self.interval_s = interval_s
        self._seen = current.version  # the content hash of what serves (or last failed)
        self._last_stat: tuple = ()
        self._forced = False
        self._ready: Screener | None = None
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

    def take(self) -> Screener | None:
        """A newly compiled screener, once; None if there is none."""
        with self._lock:
            ready, self._ready = self._ready, None
        return ready

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if not self._stop.is_set():
                self.check()

    def _stat(self) -> tuple:
        """Names, sizes and mtimes: cheap to read every few seconds."""
        return tuple(sorted((p.name, st.st_size, st.st_mtime_ns)
                            for p in self.directory.iterdir() for st in [p.stat()]))

    def check(self) -> None:
        # Hash the content only when the file stats moved (or on SIGHUP):
        # hashing a 100k-term set every 2 s took the GIL from the hot loop.
        try:
            stat = self._stat()
            if stat == self._last_stat and not self._forced:
                return
            self._last_stat, self._forced = stat, False
            version = content_version(self.directory)
        except OSError as exc:
            log.error("lexicon directory %s unreadable: %s", self.directory, exc)
            return
        if version == self._seen:
            return
        self._seen = version
        try:
            screener = Screener(load_lexicons(self.directory), self.matcher)
        except LexiconError as exc:
            metrics.RELOAD_FAILURES.inc()
            for problem in exc.problems:
                log.error("lexicon rejected: %s", problem)
            log.error("lexicon version %s rejected (%d problems); the previous version keeps serving",
                      version, len(exc.problems))
            return
        with self._lock:
            self._ready = screener
        log.info("lexicon version %s compiled (%d terms); swapping at the next batch",
                 screener.version, screener.lexicons.term_count)
