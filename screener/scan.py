"""The ``scan`` job: source → decode → screen → emit, with nothing lost.

Every input line ends as exactly one of passed / flagged / recalled /
dead-lettered; the summary adds up by construction, and a test checks it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import BinaryIO, Sequence

from .decode import decode_batch, strip_eol
from .emit import events_for
from .pipeline import Screener
from .settings import Settings
from .sinks import DeadLetterSink
from .source import Chunk, read_chunks, total_size


_OUTCOME_FIELD = {"pass": "passed", "flag": "flagged", "recall": "recalled"}


@dataclass
class Summary:
    posts: int = 0
    passed: int = 0
    flagged: int = 0
    recalled: int = 0
    dead_lettered: int = 0
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
            f"MB={self.input_bytes / 1e6:.2f} MB/s={rate:.1f} seconds={self.seconds:.2f} "
            f"matcher={matcher} lexicon_version={version}"
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


def run_scan(settings: Settings, screener: Screener, paths: Sequence[str], out: BinaryIO) -> Summary:
    summary = Summary()
    dead = DeadLetterSink(settings.dead_letter)
    progress = Progress(total_size(paths), settings.progress)
    started = time.perf_counter()
    try:
        for chunk in read_chunks(paths, settings.batch_records, settings.batch_bytes):
            out.write(_screen_chunk(chunk, screener, settings.max_post_bytes, summary, dead))
            progress.update(summary.input_bytes, summary.posts)
    finally:
        progress.close()
        dead.close()
        out.flush()
        summary.seconds = time.perf_counter() - started
    return summary


def _screen_chunk(chunk: Chunk, screener: Screener, max_bytes: int, summary: Summary, dead: DeadLetterSink) -> bytes:
    """Decode, screen and emit one chunk; every line lands in exactly one count."""
    objects, texts, rejected = decode_batch(chunk.lines, max_bytes)
    for index, reason in rejected:
        dead.write(chunk.source, chunk.first_line + index, strip_eol(chunk.lines[index]), reason)
    emitted = events_for(screener, objects, texts)
    for _, screening, _ in emitted:
        summary.count(screening.action)
    summary.posts += len(chunk.lines)
    summary.dead_lettered += len(rejected)
    summary.passed += len(texts) - len(emitted)
    summary.input_bytes += sum(map(len, chunk.lines))
    return b"".join(event for _, _, event in emitted)
