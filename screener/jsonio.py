"""JSON in and out with integers kept exactly as written.

orjson is the fastest JSON library for Python, but it holds integers in 64
bits: it reads ``123456789012345678901234567890`` as the float
``1.2345678901234568e+29`` (so such a post id was dead-lettered as "id is
float", and the number came out rounded in every event), and it refuses to
write an int beyond 64 bits. Here such an integer is a :class:`BigInt`, an
``int`` that compares and hashes like the number, and writes back digit for
digit.

The cost is paid only by records that need it. orjson decodes everything;
only a record with a run of 20 ASCII digits, or a minus sign and 19 (every
integer beyond 64 bits has one), is decoded again by the standard library
with exact integers. Finding those runs costs one ``bytes.translate`` per
record (:func:`loads`), or for a whole batch one compiled scan that reads
about a twentieth of its bytes (:func:`loads_batch`).

>>> value = loads(b'{"id": 123456789012345678901234567890, "n": 7}')
>>> value["id"] == 123456789012345678901234567890, type(value["id"]).__name__, type(value["n"]).__name__
(True, 'BigInt', 'int')
>>> dumps(value)
b'{"id":123456789012345678901234567890,"n":7}'
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable, Sequence

import numpy as np
import orjson

log = logging.getLogger(__name__)

#: The integers orjson reads and writes exactly (int64 and uint64 together).
SMALLEST, LARGEST = -(1 << 63), (1 << 64) - 1
#: Digits in a row that make a record worth decoding exactly: the smallest
#: integer beyond 64 bits, 18446744073709551616, has 20; a negative one below
#: -9223372036854775808 has a minus sign and 19.
RUN = 20


class BigInt(int):
    """An integer beyond the 64 bits orjson holds: an ``int`` in every way
    (equality, hashing, arithmetic), which :func:`dumps` writes exactly.

    >>> BigInt(10**30) == 10**30 and hash(BigInt(10**30)) == hash(10**30)
    True
    """

    __slots__ = ()


def _int(digits: str) -> int:
    value = int(digits)
    return value if SMALLEST <= value <= LARGEST else BigInt(value)


# -- reading ---------------------------------------------------------------------------
# 19 digits can already overflow when negative (below -2**63): a run of 19
# digits preceded by "-" marks a record too. translate() maps digits to 1 and
# "-" to 2, everything else to 0 (a decoded record holds no raw control bytes,
# so no 1 or 2 is left over from the record itself).
_CLASSES = bytes(1 if 48 <= b <= 57 else 2 if b == 45 else 0 for b in range(256))
_DIGIT_RUN = b"\x01" * RUN
_SIGNED_RUN = b"\x02" + b"\x01" * (RUN - 1)


def needs_exact(raw: bytes | bytearray | str) -> bool:
    """Whether ``raw`` may hold an integer orjson cannot: a run of 20 digits,
    or a minus sign and 19 (the cheap test; strings with such runs pass it too).

    >>> needs_exact(b'{"id": 18446744073709551616}'), needs_exact(b'{"id": 1844674407370955161}')
    (True, False)
    >>> needs_exact(b'[-9223372036854775809]'), needs_exact('[9223372036854775809]')
    (True, False)
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    classes = raw.translate(_CLASSES)
    return _DIGIT_RUN in classes or _SIGNED_RUN in classes


def _exact(raw: bytes | bytearray | str, value: Any) -> Any:
    """``raw`` (which orjson accepted as ``value``) decoded again with exact integers.

    orjson has already validated the document (UTF-8, surrogates, NaN, depth),
    so the standard library only re-reads what orjson accepted. Should it
    still disagree (it recurses, orjson does not), orjson's value stands.
    """
    if not _has_big_float(value):  # the digits were in a string: orjson's value is exact
        return value
    text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8")
    try:
        return json.loads(text, parse_int=_int)
    except (ValueError, RecursionError):
        return value


def _has_big_float(value: Any) -> bool:
    """Whether ``value`` holds a float as large as an integer orjson turns into one."""
    if type(value) is float:
        return not -_FLOAT_BOUND < value < _FLOAT_BOUND
    if type(value) is dict:
        return any(map(_has_big_float, value.values()))
    if type(value) is list:
        return any(map(_has_big_float, value))
    return False


_FLOAT_BOUND = float(-SMALLEST)  # 2**63: orjson reads every integer of smaller magnitude exactly


def loads(raw: bytes | bytearray | memoryview | str) -> Any:
    """Decode one JSON document; raises ``orjson.JSONDecodeError`` (a ``ValueError``).

    Integers beyond 64 bits come back exact, as :class:`BigInt`; everything
    else exactly as ``orjson.loads`` returns it. Integer literals that do not
    fit a double at all (over ~309 digits) are rejected, as orjson rejects them.

    >>> loads(b'[-9223372036854775809, 1.5, "12345678901234567890"]')
    [-9223372036854775809, 1.5, '12345678901234567890']
    """
    if isinstance(raw, memoryview):
        raw = raw.tobytes()
    value = orjson.loads(raw)
    return _exact(raw, value) if needs_exact(raw) else value


def loads_batch(raws: Sequence[bytes]) -> tuple[list[Any], list[int]]:
    """Every record decoded as :func:`loads` does, and the indices of those
    that are not JSON (their value is None).

    One bad record must not slow its batch: orjson runs over the whole batch
    in C (``list.extend`` over ``map``), and a record that raises costs one
    Python-level ``except`` before the same ``map`` carries on after it.

    >>> loads_batch([b'1', b'nope', b'[2]', b'', b'{"a": 18446744073709551616}'])
    ([1, None, [2], None, {'a': 18446744073709551616}], [1, 3])
    """
    values: list[Any] = []
    failed: list[int] = []
    decoded = map(orjson.loads, raws)
    while True:
        try:
            # CPython's list.extend keeps what it appended before the iterator
            # raised, so len(values) is the index of the record that failed.
            values.extend(decoded)
            break
        except ValueError:  # orjson.JSONDecodeError, or a bytes subclass orjson refuses
            failed.append(len(values))
            values.append(None)
    if len(values) != len(raws):  # not CPython's list.extend: decode one by one
        return _loads_each(raws)
    if failed:
        bad = set(failed)
        for index in digit_run_records(raws):
            if index not in bad:
                values[index] = _exact(raws[index], values[index])
    else:
        for index in digit_run_records(raws):
            values[index] = _exact(raws[index], values[index])
    return values, failed


def _loads_each(raws: Sequence[bytes]) -> tuple[list[Any], list[int]]:
    values: list[Any] = []
    failed: list[int] = []
    for index, raw in enumerate(raws):
        try:
            values.append(loads(raw))
        except ValueError:
            failed.append(index)
            values.append(None)
    return values, failed


# -- finding the records that need it, a batch at a time -----------------------------
# Every integer orjson cannot hold has a run of at least 19 digits, so a scan
# that looks at every 19th byte and skips on when it is not a digit reads
# about a twentieth of the batch (compiled with numba: ~0.1 ms per MB, plus
# joining the records). A digit it lands on is widened to its whole run, so
# every byte is read at most twice however many digits a batch holds.
_KERNEL: Callable[..., int] | None = None
_KERNEL_LOADED = False


def _compile(numba: Any) -> Callable[..., int]:
    def runs(data, out):  # pragma: no cover - compiled
        n = data.shape[0]
        found = 0
        i = RUN - 2
        while i < n:
            if np.uint8(data[i] - 48) >= 10:
                i += RUN - 1
                continue
            start = i
            while start > 0 and np.uint8(data[start - 1] - 48) < 10:
                start -= 1
            end = i + 1
            while end < n and np.uint8(data[end] - 48) < 10:
                end += 1
            if end - start >= RUN or (end - start == RUN - 1 and start > 0 and data[start - 1] == 45):
                out[found] = start
                found += 1
            i = end + RUN - 1  # the next run starts after end: its 19 bytes hold a probe
        return found

    t = numba.types
    signature = t.intp(t.Array(t.uint8, 1, "C", readonly=True), t.Array(t.int64, 1, "C"))
    try:
        return numba.njit([signature], cache=True, nogil=True, boundscheck=False)(runs)
    except RuntimeError:  # no writable cache location: compile in every process instead
        return numba.njit([signature], nogil=True, boundscheck=False)(runs)


def _kernel() -> Callable[..., int] | None:
    """The compiled scan once the normaliser folds with numba (:func:`screener.compact.load`).

    Never loads numba itself: a ``scan`` of a few posts would pay ~0.4 s
    for it (the cached start at 100k terms went from 0.35 to 0.8 s), and
    until then a ``translate`` per record does the same work."""
    global _KERNEL, _KERNEL_LOADED
    if not _KERNEL_LOADED:
        from . import compact

        if compact.current() != "numba":
            return None
        _KERNEL_LOADED = True
        import numba

        try:
            _KERNEL = _compile(numba)
        except Exception:
            log.warning("numba failed to compile the digit-run scan; checking record by record", exc_info=True)
    return _KERNEL


def digit_run_records(raws: Sequence[bytes]) -> list[int]:
    """Indices of the records that :func:`needs_exact`, in order.

    >>> digit_run_records([b'{"id": 1}', b'{"id": 123456789012345678901}', b'[-1234567890123456789]'])
    [1, 2]
    """
    kernel = _kernel()
    if kernel is None or not raws:
        return digit_run_records_each(raws)
    data = np.frombuffer(b"\n".join(raws), dtype=np.uint8)  # "\n": no run spans two records
    starts = np.empty(len(data) // RUN + 1, dtype=np.int64)  # a run and what ends it take RUN bytes
    found = kernel(data, starts)
    if not found:
        return []
    ends = np.cumsum(np.array(list(map(len, raws)), dtype=np.int64) + 1)
    return np.unique(np.searchsorted(ends, starts[:found], side="right")).tolist()


def digit_run_records_each(raws: Sequence[bytes]) -> list[int]:
    """:func:`digit_run_records` without numba: one ``translate`` per record
    (~0.5 ns per byte, several times the compiled scan)."""
    return [index for index, raw in enumerate(raws) if needs_exact(raw)]


# -- writing ---------------------------------------------------------------------------
_OPTIONS = (orjson.OPT_PASSTHROUGH_SUBCLASS, orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_APPEND_NEWLINE)


def default(obj: Any) -> Any:
    """orjson's ``default`` hook for what OPT_PASSTHROUGH_SUBCLASS hands it:
    a BigInt becomes its digits, embedded as a Fragment; any other subclass
    of a builtin is written as its base type, as orjson writes it without
    the option. For options :func:`dumps` does not take (indentation, say):
    ``orjson.dumps(obj, default=default, option=orjson.OPT_PASSTHROUGH_SUBCLASS | ...)``.
    """
    if isinstance(obj, int):
        value = int(obj)
        return orjson.Fragment(str(value).encode()) if not SMALLEST <= value <= LARGEST else value
    for base in (str, dict, list):
        if isinstance(obj, base):
            return base(obj)  # type: ignore[arg-type]  # obj is an instance of base
    raise TypeError(f"Type is not JSON serializable: {type(obj).__name__}")


def dumps(obj: Any, *, newline: bool = False) -> bytes:
    """``orjson.dumps`` that also writes :class:`BigInt` exactly; ``newline``
    appends ``\\n`` (a JSONL line). Plain objects cost what orjson costs.

    >>> dumps({"id": BigInt(-10**20), "ok": True}, newline=True)
    b'{"id":-100000000000000000000,"ok":true}\\n'
    """
    return orjson.dumps(obj, default=default, option=_OPTIONS[newline])


