"""Stage: source. JSONL records from files or stdin, in batches, with line numbers."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence


@dataclass(frozen=True, slots=True)
class Record:
    source: str
    line: int
    raw: bytes


def _lines(name: str, stream: BinaryIO) -> Iterator[Record]:
    for number, raw in enumerate(stream, start=1):
        if raw.endswith(b"\n"):
            raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
        yield Record(name, number, raw)


def read_records(paths: Sequence[str]) -> Iterator[Record]:
    """Every line of every file in order; ``-`` or no paths means stdin."""
    if not paths:
        paths = ["-"]
    for path in paths:
        if path == "-":
            yield from _lines("<stdin>", sys.stdin.buffer)
        else:
            with open(path, "rb", buffering=1 << 20) as stream:
                yield from _lines(path, stream)


def batches(records: Iterator[Record], max_records: int, max_bytes: int) -> Iterator[list[Record]]:
    """Group records so that one screening call covers many posts."""
    batch: list[Record] = []
    size = 0
    for record in records:
        batch.append(record)
        size += len(record.raw)
        if len(batch) >= max_records or size >= max_bytes:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def total_size(paths: Sequence[str]) -> int | None:
    """Bytes to read, when known (for the progress bar)."""
    if not paths or "-" in paths:
        return None
    return sum(Path(p).stat().st_size for p in paths)
