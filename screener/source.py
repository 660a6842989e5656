"""Stage: source. JSONL records from files or stdin, in batches, with line numbers.

Lines are split in C (``readlines`` of the file, or of a block read from
it): a Python object per line is already the largest per-post cost of ``scan``.

With ``max_line_bytes``, a line is held in memory only up to that (plus one
read block): a line over the limit becomes its first ``max_line_bytes + 1``
bytes (a :class:`Truncated`, which decode dead-letters), and the rest of it
is read and dropped a block at a time.
"""

from __future__ import annotations

import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Sequence

#: The file buffer.
BUFFER_BYTES = 1 << 20
#: The smallest block :class:`_LineReader` reads (it reads what a chunk still
#: lacks, and one line more, as ``readlines(hint)`` does).
MIN_BLOCK_BYTES = 4096


class Truncated(bytes):
    """The head of a line over the limit: its first ``max_line_bytes + 1``
    bytes. ``size`` is the whole line's length, terminator included.

    >>> head = Truncated(b'{"id": 1, "te', 1 << 30)
    >>> head == b'{"id": 1, "te', len(head), head.size
    (True, 13, 1073741824)
    """

    size: int

    def __new__(cls, head: bytes, size: int) -> "Truncated":
        self = super().__new__(cls, head)
        self.size = size
        return self


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
    #: Bytes of the input the lines took (all of a cut line; the reader counts
    #: them anyway, callers need not again).
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
            offset: int = 0, line: int = 1, max_line_bytes: int | None = None) -> Iterator[Chunk]:
    """Chunks of ``max_records`` lines or about ``max_bytes`` (one line over at most).

    Lines read beyond a full chunk wait for the next one: cutting each read
    into chunks instead left a runt chunk after every read (2048 + 850 posts
    from a 1 MB read), and each chunk costs a matcher call with cold tables.
    """
    read = _LineReader(stream, max_line_bytes).read if max_line_bytes is not None else _whole_lines(stream)
    pending: list[bytes] = []
    held = 0  # bytes of the pending lines in memory (of a cut line, its head)
    cut = 0  # cut lines among them: they took more bytes of the input than they hold
    eof = False
    while True:
        while not eof and len(pending) < max_records and held < max_bytes:
            lines, size, cuts = read(max_bytes - held)  # hint >= 1: never "read everything"
            if not lines:
                eof = True
            pending += lines
            held += size
            cut += cuts
        if not pending:
            return
        part, pending = pending[:max_records], pending[max_records:]
        size = sum(map(len, part))
        held -= size
        if cut:
            skipped = [line.size - len(line) for line in part if isinstance(line, Truncated)]
            cut -= len(skipped)
            size += sum(skipped)
        offset += size
        yield Chunk(name, line, part, index, offset, size)
        line += len(part)


def _whole_lines(stream: BinaryIO) -> Callable[[int], tuple[list[bytes], int, int]]:
    """Lines however long, about ``hint`` bytes of them per call."""
    def read(hint: int) -> tuple[list[bytes], int, int]:
        lines = stream.readlines(hint)
        return lines, sum(map(len, lines)), 0
    return read


class _LineReader:
    """Lines of a stream a block at a time, none held beyond ``max_line_bytes + 2``
    bytes (its content and "\\r\\n") plus the block.

    ``BytesIO(block).readlines()`` splits a block in C as ``readlines`` splits
    a file's buffer (the BytesIO shares the block, it does not copy it), so
    ordinary input costs what it cost before. The line a block ends inside is
    carried over to the next block, up to the limit; a longer one is cut to
    its first ``max_line_bytes + 1`` bytes, and the rest of it is only counted.
    """

    def __init__(self, stream: BinaryIO, max_line_bytes: int, block: int = 0) -> None:
        self.stream = stream
        self.block = block  # 0: as the hint asks
        self.keep = max_line_bytes + 2  # the longest line kept whole: the content and "\r\n"
        self.head = max_line_bytes + 1  # what is kept of a longer one
        self.start = b""  # the start of a line no block so far has finished (at most ``keep`` bytes)
        self.size = 0  # the bytes of that line so far (more than len(start) once it is too long)

    def read(self, hint: int = 0) -> tuple[list[bytes], int, int]:
        """The next lines (at least one, unless at the end; about ``hint``
        bytes of them), the bytes they hold, and how many of them were cut."""
        while True:
            block = self.stream.read(self.block or max(hint, MIN_BLOCK_BYTES))
            if not block:
                return self._last()
            lines = io.BytesIO(block).readlines()
            held = len(block)
            if self.size:  # the first line goes on from the block before
                first = self._go_on(lines[0])
                if first is None:  # the block is all inside it
                    continue
                held += len(first) - len(lines[0])
                lines[0] = first
            if not block.endswith(b"\n"):  # the last line goes on in the next block
                rest = lines.pop()
                held -= len(rest)
                self.start, self.size = rest[:self.keep], len(rest)
            if not lines:
                continue
            if len(block) <= self.keep or not _has_longer(block, self.keep):
                return lines, held, isinstance(lines[0], Truncated)
            return self._cut(lines)

    def _go_on(self, piece: bytes) -> bytes | None:
        """The pending line with ``piece`` added: the whole line once ``piece`` ends it, else None."""
        self.size += len(piece)
        if len(self.start) < self.keep:
            self.start += piece[:self.keep - len(self.start)]
        if not piece.endswith(b"\n"):
            return None
        return self._done()

    def _done(self) -> bytes:
        line = self.start if self.size <= self.keep else Truncated(self.start[:self.head], self.size)
        self.start, self.size = b"", 0
        return line

    def _last(self) -> tuple[list[bytes], int, int]:
        """At the end of the input: the last line if it has no terminator."""
        if not self.size:
            return [], 0, 0
        line = self._done()
        return [line], len(line), isinstance(line, Truncated)

    def _cut(self, lines: list[bytes]) -> tuple[list[bytes], int, int]:
        cuts = 0
        for i, line in enumerate(lines):
            if isinstance(line, Truncated):
                cuts += 1
            elif len(line) > self.keep:
                lines[i] = Truncated(line[:self.head], len(line))
                cuts += 1
        return lines, sum(map(len, lines)), cuts


def _has_longer(block: bytes, keep: int) -> bool:
    """Whether a line of ``block`` is longer than ``keep`` bytes (its last
    one counts as ended by the block): one ``rfind`` per ``keep`` bytes,
    not one look per line.

    >>> _has_longer(b"ab\\ncd\\n", 3), _has_longer(b"ab\\ncde\\n", 3), _has_longer(b"abcd", 3)
    (False, True, True)
    """
    at = 0
    while len(block) - at > keep:
        newline = block.rfind(b"\n", at, at + keep)  # the line starting at ``at`` ends within ``keep``?
        if newline < 0:
            return True
        at = newline + 1
    return False


def read_chunks(paths: Sequence[str], max_records: int, max_bytes: int,
                resume: tuple[int, int, int] = (0, 0, 1), *, max_line_bytes: int | None = None) -> Iterator[Chunk]:
    """Every line of every file in order; ``-`` or no paths means stdin.

    ``resume``: (path index, byte offset, line number) to start from, as a
    chunk's ``source_index``, ``end_offset`` and next line left it.
    ``max_line_bytes`` (callers pass ``max_post_bytes``): a longer line is
    held only up to that many bytes plus one buffer, and comes as a
    :class:`Truncated` of ``max_line_bytes + 1`` bytes; None reads every
    line whole, however long.
    """
    for index, path in enumerate(paths or ["-"]):
        if index < resume[0]:
            continue
        offset, line = resume[1:] if index == resume[0] else (0, 1)
        if path == "-":
            stdin = sys.stdin.buffer
            skipped = _skip_bom(stdin) if offset == 0 else 0
            yield from _chunks("<stdin>", stdin, max_records, max_bytes, index, skipped, max_line_bytes=max_line_bytes)
        else:
            with open(path, "rb", buffering=BUFFER_BYTES) as stream:
                if offset:  # only a resumed file (rescan's checkpoint: regular files); a pipe cannot seek
                    stream.seek(offset)
                offset += _skip_bom(stream) if offset == 0 else 0
                yield from _chunks(source_name(path), stream, max_records, max_bytes, index, offset, line, max_line_bytes)


_BOM = b"\xef\xbb\xbf"


def _skip_bom(stream: BinaryIO) -> int:
    """Read past a UTF-8 byte order mark at the start of an input, as the
    lexicon loader does: editors on Windows write one, and it made the first
    record invalid JSON (found by a hostile-input probe). The bytes skipped."""
    peek = getattr(stream, "peek", None)
    head = peek(3)[:3] if peek is not None else b""
    if head == _BOM:
        stream.read(3)
        return 3
    return 0


def source_name(path: str) -> str:
    """``path`` as dead letters and audit records name it: a file name that
    is not UTF-8 (Linux allows any bytes) comes from the OS with lone
    surrogates, which no JSON encoder writes; they crashed ``scan`` (found
    by a hostile-input probe). Those bytes are written as ``\\xff``.

    >>> source_name(os.fsdecode(b"dl\\xffname.jsonl"))
    'dl\\\\xffname.jsonl'
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def total_size(paths: Sequence[str]) -> int | None:
    """Bytes to read, when known (for the progress bar)."""
    if not paths or "-" in paths:
        return None
    return sum(Path(p).stat().st_size for p in paths)
