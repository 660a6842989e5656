"""Stage: source. JSONL records from files or stdin, in batches, with line numbers.

Lines are read with ``readlines(hint)``, which splits a whole buffer in C: a
Python object per line is already the largest per-post cost of ``scan``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence


@dataclass(frozen=True, slots=True)
class Chunk:
    """Consecutive lines of one source; ``lines[i]`` is line ``first_line + i``.

    Lines keep their line terminator (JSON ignores it); :func:`screener.decode.strip_eol`
    removes it where the exact record matters (dead letters).
    """

    source: str
    first_line: int
    lines: list[bytes]
    #: Which of the paths, and the byte offset just after the chunk (resuming).
    source_index: int = 0
    end_offset: int = 0
    #: Bytes of the lines (the reader counts them anyway; callers need not again).
    size: int = 0

    @property
    def line_numbers(self) -> range:
        """The line number of each of ``lines``."""
        return range(self.first_line, self.first_line + len(self.lines))

    @property
    def resume_at(self) -> tuple[int, int, int]:
        """``read_chunks``'s ``resume`` that continues right after this chunk."""
        return self.source_index, self.end_offset, self.first_line + len(self.lines)


def _chunks(name: str, stream: BinaryIO, max_records: int, max_bytes: int, index: int = 0,
            offset: int = 0, line: int = 1) -> Iterator[Chunk]:
    """Chunks of ``max_records`` lines or about ``max_bytes`` (one line over at most).

    Lines read beyond a full chunk wait for the next one: cutting each read
    into chunks instead left a runt chunk after every read (2048 + 850 posts
    from a 1 MB read), and each chunk costs a matcher call with cold tables.
    """
    pending: list[bytes] = []
    pending_bytes = 0
    eof = False
    while True:
        while not eof and len(pending) < max_records and pending_bytes < max_bytes:
            lines = stream.readlines(max_bytes - pending_bytes)  # hint >= 1: never "read everything"
            if not lines:
                eof = True
            pending += lines
            pending_bytes += sum(map(len, lines))
        if not pending:
            return
        part, pending = pending[:max_records], pending[max_records:]
        size = sum(map(len, part))
        pending_bytes -= size
        offset += size
        yield Chunk(name, line, part, index, offset, size)
        line += len(part)


def read_chunks(paths: Sequence[str], max_records: int, max_bytes: int,
                resume: tuple[int, int, int] = (0, 0, 1)) -> Iterator[Chunk]:
    """Every line of every file in order; ``-`` or no paths means stdin.

    ``resume``: (path index, byte offset, line number) to start from, as a
    chunk's ``source_index``, ``end_offset`` and next line left it.
    """
    for index, path in enumerate(paths or ["-"]):
        if index < resume[0]:
            continue
        offset, line = resume[1:] if index == resume[0] else (0, 1)
        if path == "-":
            yield from _chunks("<stdin>", sys.stdin.buffer, max_records, max_bytes, index)
        else:
            with open(path, "rb", buffering=1 << 20) as stream:
                stream.seek(offset)
                yield from _chunks(path, stream, max_records, max_bytes, index, offset, line)


def total_size(paths: Sequence[str]) -> int | None:
    """Bytes to read, when known (for the progress bar)."""
    if not paths or "-" in paths:
        return None
    return sum(Path(p).stat().st_size for p in paths)
