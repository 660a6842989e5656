"""Where events and dead letters go in ``scan`` mode (files or std streams)."""

from __future__ import annotations

import base64
import sys
from typing import Any, BinaryIO

from . import jsonio
from .emit import now_iso
from .source import Truncated


def open_sink(path: str | None, default: BinaryIO) -> BinaryIO:
    if path in (None, "-"):
        return default
    return open(path, "ab", buffering=1 << 16)


def dead_letter_record(source: str, line: int, raw: bytes, reason: str, post_id: Any = None,
                       account_id: Any = None) -> dict[str, Any]:
    """A dead letter keeps the record whole: as text if it is UTF-8, else base64;
    with the post and account ids when they could be read.

    Of a line too long to hold, the source kept the head: the dead letter
    says so (``"truncated": true``) and how long the line was (``"bytes"``).
    The head may end inside a character, and is then kept as base64.

    >>> record = dead_letter_record("f", 3, Truncated(b"[1, 2", 10**9), "too long")
    >>> record["raw"], record["truncated"], record["bytes"]
    ('[1, 2', True, 1000000000)
    """
    record: dict[str, Any] = {"source": source, "line": line, "reason": reason, "at": now_iso()}
    if post_id is not None:
        record["post_id"] = post_id
    if account_id is not None:
        record["account_id"] = account_id
    try:
        record["raw"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        record["raw_base64"] = base64.b64encode(raw).decode("ascii")
    if isinstance(raw, Truncated):
        record["truncated"] = True
        record["bytes"] = raw.size
    return record


class DeadLetterSink:
    def __init__(self, path: str | None) -> None:
        self.path = path
        self._stream = open_sink(path, sys.stderr.buffer)
        self.count = 0

    def write(self, source: str, line: int, raw: bytes, reason: str, post_id: Any = None,
              account_id: Any = None) -> None:
        record = dead_letter_record(source, line, raw, reason, post_id, account_id)
        self._stream.write(jsonio.dumps(record, newline=True))
        self.count += 1

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        self._stream.flush()
        if self._stream is not sys.stderr.buffer:
            self._stream.close()
