"""Where events and dead letters go in ``scan`` mode (files or std streams)."""

from __future__ import annotations

import base64
import io
import os
import sys
from typing import Any, BinaryIO

from . import jsonio
from .emit import now_iso
from .source import Truncated


class ClosedStderr(io.TextIOWrapper):
    """What ``sys.stderr`` is when the process started with it closed
    (``2>&-``): messages are dropped. Python's ``sys.stderr`` would be None,
    and ``print(..., file=None)`` writes to stdout, into the events (found
    in review); the dead letters' default sink would then fail as a bug of
    ours. Nothing that must not be lost is written here (:func:`open_sink`)."""

    @classmethod
    def install(cls) -> None:
        if sys.stderr is None:
            sys.stderr = cls(open(os.devnull, "wb"), encoding="utf-8", errors="backslashreplace")  # as Python's own


def open_sink(path: str | None, default: BinaryIO) -> BinaryIO:
    if path in (None, "-"):
        if isinstance(sys.stderr, ClosedStderr) and default is sys.stderr.buffer:
            raise OSError("stderr is closed; give a file (--dead-letter PATH)")
        return default
    return open(path, "ab", buffering=1 << 16)


def dead_letter_record(source: str, line: int, raw: bytes, reason: str, post_id: Any = None,
                       account_id: Any = None, size: int | None = None,
                       omitted: dict[str, int] | None = None) -> dict[str, Any]:
    """A dead letter keeps the record whole: as text if it is UTF-8, else base64;
    with the post and account ids when they could be read.

    Of a line too long to hold, the source kept the head: the dead letter
    says so (``"truncated": true``) and how long the line was (``"bytes"``).
    The head may end inside a character, and is then kept as base64.
    ``size``: the line's length where ``raw`` is a head cut here;
    ``omitted``: the ids left out as too long, with their length as JSON
    (:func:`fitted_dead_letter`).

    >>> record = dead_letter_record("f", 3, Truncated(b"[1, 2", 10**9), "too long")
    >>> record["raw"], record["truncated"], record["bytes"]
    ('[1, 2', True, 1000000000)
    """
    record: dict[str, Any] = {"source": source, "line": line, "reason": reason, "at": now_iso()}
    if post_id is not None:
        record["post_id"] = post_id
    if account_id is not None:
        record["account_id"] = account_id
    if omitted:
        record["omitted"] = omitted
    try:
        record["raw"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        record["raw_base64"] = base64.b64encode(raw).decode("ascii")
    if isinstance(raw, Truncated):
        size = raw.size
    if size is not None:
        record["truncated"] = True
        record["bytes"] = size
    return record


def fitted_dead_letter(source: str, line: int, raw: bytes, reason: str, max_bytes: int, post_id: Any = None,
                       account_id: Any = None) -> bytes:
    """The dead letter serialised, at most ``max_bytes`` long
    (``max_record_bytes``, as events and audit records): a longer one keeps
    the head of ``raw`` that fits, marked as a source-truncated line is.
    JSON escapes a control byte as six, so a line well under the limit can
    make a dead letter over it (found by a hostile-input probe: 260 KB of
    0x01 made a 1.56 MB line). An id longer than a quarter of the limit as
    JSON is left out (``"omitted": {"post_id": its length}``): a record of
    ``{"id": <20,000 characters>, "text": 5}`` made a 20 KB dead letter
    under a 4096-byte limit (found by the same kind of probe). The rest
    are short fields of ours, so cutting ``raw`` then always ends within
    the limit's floor of 4096 bytes.

    >>> out = fitted_dead_letter("f", 1, b"\x01" * 10_000, "bad", 4096)
    >>> import json; record = json.loads(out)
    >>> len(out) <= 4096, record["truncated"], record["bytes"], len(record["raw"]) < 10_000
    (True, True, 10000, True)
    """
    post_id, account_id, omitted = short_ids(post_id, account_id, max_bytes // 4)
    record = dead_letter_record(source, line, raw, reason, post_id, account_id, omitted=omitted)
    out = jsonio.dumps(record, newline=True)
    if len(out) <= max_bytes:
        return out
    size = raw.size if isinstance(raw, Truncated) else len(raw)
    text = "raw" in record  # the whole line decoded as UTF-8
    keep = len(raw)
    while len(out) > max_bytes and keep:
        keep = min(keep - 1, keep * max_bytes // len(out) * 9 // 10)  # shrinks every round
        head = bytes(raw[:keep])
        if text:  # not inside a character: a UTF-8 line stays text
            head = head.decode("utf-8", "ignore").encode("utf-8")
        out = jsonio.dumps(dead_letter_record(source, line, head, reason, post_id, account_id, size, omitted),
                           newline=True)
    return out


def short_ids(post_id: Any, account_id: Any, most: int) -> tuple[Any, Any, dict[str, int]]:
    """The ids a dead letter may carry (each at most ``most`` bytes as
    JSON), and the length of those it may not.

    >>> short_ids("p" * 20, 7, 16)
    (None, 7, {'post_id': 22})
    """
    omitted = {}
    kept = []
    for name, value in (("post_id", post_id), ("account_id", account_id)):
        size = len(jsonio.dumps(value)) if value is not None else 0
        if size > most:
            omitted[name] = size
            value = None
        kept.append(value)
    return kept[0], kept[1], omitted


class DeadLetterSink:
    def __init__(self, path: str | None, max_bytes: int = 1 << 62) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._stream = open_sink(path, sys.stderr.buffer)
        self.count = 0

    def write(self, source: str, line: int, raw: bytes, reason: str, post_id: Any = None,
              account_id: Any = None) -> None:
        self._stream.write(fitted_dead_letter(source, line, raw, reason, self.max_bytes, post_id, account_id))
        self.count += 1

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        self._stream.flush()
        if self._stream is not sys.stderr.buffer:
            self._stream.close()
