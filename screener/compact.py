"""The normaliser's hot loop: fold, drop noise and separate posts in one pass.

:meth:`screener.normalise.Normaliser.encode_batch` turns a batch of posts into
a matcher's alphabet: look every code point up in the table, drop those that
fold to "delete", put the separator after each post and note where each post
starts. In numpy that is four passes over the batch (take, compare, compress,
reduceat) with three temporary arrays as large as the batch, which compete
with the matcher's tables for the cache. Compiled with numba it is one pass
with no temporary. At 50k terms that made the fold 2x faster, Hyperscan's scan
right after it ~10% faster, and ``scan`` end to end 1.16-1.26x (the
``scan-numpy`` contender of ``benchmarks/throughput.py``).

The numpy version stays. It runs where numba does not import (a platform
without wheels), and it is the reference that the compiled loop is tested
against. ``SCREENER_COMPACT=numpy`` forces it.

Loading numba costs ~0.45 s (import and the compiled loop from numba's disk
cache; more the first time on a machine) and saves ~1 ms per MB of posts
(the fold 1.25 → 0.5 ms per MB, and Hyperscan's scan after it a little),
so it pays only after some 400 MB. A process therefore folds with numpy
until it has folded :data:`NUMBA_AFTER` code points, then loads numba for
the rest: a ``scan`` of a few files never loads it, a ``scan`` of gigabytes
does, and the worker, which runs for days, loads it at start-up
(:func:`load`). ``SCREENER_COMPACT=numba`` loads it at the first batch.

**Runs.** The same pass folds a run of one repeated character to one (加微微信
reads 加微信): a character whose *folded* code (``keys``, the fold table) is
the one before it, with nothing between them but deleted characters, is
dropped like noise. Only folded code points from :data:`COLLAPSE_FROM` on
(Han, kana, Hangul) collapse: in Latin letters and digits a doubled
character is spelling, not evasion (110 is not 10, a QQ or phone number
needs every digit, qq and www are what they say, book is not bok), and a
collapsed Latin term would be a one-letter pattern (qq → q) firing on every
q of every post. The run key is the fold code and not the matcher's code
because Hyperscan's alphabet gives every character outside the lexicon the
same code: runs over it would merge different characters, and offsets would
no longer agree with :meth:`screener.normalise.Normaliser.normalise`.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable

import numpy as np

from .charmap import TABLE_SIZE

log = logging.getLogger(__name__)

#: First folded code point that collapses in runs: U+2E80, where the CJK
#: blocks start (the same line ``screener.verify`` draws between Latin and
#: CJK edges). Everything below it (Latin and other alphabets, digits) never
#: collapses; see the module docstring for why.
COLLAPSE_FROM = 0x2E80


def run_heads(keys: np.ndarray) -> np.ndarray:
    """Which of the folded codes ``keys`` (deleted ones already dropped) start
    a run: the first, and every one that differs from the one before it or
    does not collapse. A post separator must carry a key below
    :data:`COLLAPSE_FROM` (0), so that no run crosses it."""
    head = np.ones(len(keys), dtype=bool)
    if len(keys) > 1:
        head[1:] = (keys[1:] != keys[:-1]) | (keys[1:] < COLLAPSE_FROM)
    return head


def compact_numpy(points: np.ndarray, table: np.ndarray, delete: int, separator: int,
                  separators: np.ndarray, keys: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Codes of ``points`` without deleted ones, and where each post starts.

    ``separators`` are the (increasing) positions in ``points`` that end a
    post; the last one ends ``points``. Post ``i`` is
    ``codes[starts[i]:starts[i + 1] - 1]`` followed by ``separator``.
    With ``keys`` (the fold table), runs collapse (see the module docstring);
    without, they stay (lexicon terms as they are spelled).
    """
    codes = table.take(points)  # take: half the time of fancy indexing
    codes[separators] = separator
    keep = codes != delete
    compact = codes.compress(keep)
    if not len(separators):
        return compact, np.zeros(1, dtype=np.int64)
    # Posts are never empty here (each carries its separator), so reduceat's
    # index list is strictly increasing as it requires.
    kept = np.add.reduceat(keep, np.concatenate(([0], separators[:-1] + 1)), dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(kept)))
    if keys is not None:
        compact, starts = _collapse(compact, starts, points, keep, table, keys)
    return compact, starts


def _collapse(compact: np.ndarray, starts: np.ndarray, points: np.ndarray, keep: np.ndarray,
              table: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop the repeats of runs from ``compact`` (numpy's version of the loop's test).

    A repeat has the same code as the character before it in every alphabet,
    so only those places (few) have their fold codes looked up; in the fold
    alphabet the code is the fold code already. Twice the old numpy fold
    where every position was looked up in ``keys`` (measured).
    """
    at = np.flatnonzero(compact[1:] == compact[:-1]) + 1
    if not len(at):
        return compact, starts
    if keys is table:
        here, before = compact[at], compact[at - 1]
    else:
        kept_points = points.compress(keep)
        here, before = keys.take(kept_points[at]), keys.take(kept_points[at - 1])
    ends = np.zeros(len(compact), dtype=bool)
    ends[starts[1:] - 1] = True  # the separators: no run crosses a post
    repeat = at[(here == before) & (here >= COLLAPSE_FROM) & ~ends[at] & ~ends[at - 1]]
    if not len(repeat):
        return compact, starts
    return np.delete(compact, repeat), starts - np.searchsorted(repeat, starts)


def _numba_loop() -> Callable[..., int] | None:
    """The compiled loop, or None where numba is missing, disabled or broken."""
    if os.environ.get("SCREENER_COMPACT", "").lower() == "numpy":
        return None
    try:
        import numba
    except ImportError:
        return None
    try:
        return _compile(numba)
    except Exception:
        log.warning("numba failed to compile the fold loop; using numpy", exc_info=True)
        return None


def _compile(numba: Any) -> Callable[..., int]:
    u = numba.uint64

    def loop(points, table, keys, delete, separator, separators, out, starts):  # pragma: no cover - compiled
        # Unsigned indices: with signed ones numba wraps negative indices
        # around, three more instructions per array access, which made this
        # loop 1.7x slower once the run test was added (measured). With them
        # it runs as fast as the loop without runs did.
        j = u(0)
        first = u(0)
        for k in range(separators.shape[0]):
            prev = keys[0] & 0  # the previous live character's fold code; 0: none (never collapses)
            last = u(separators[k])
            i = first
            while i < last:
                point = points[i]
                code = table[point]
                key = keys[point]
                out[j] = code
                live = code != delete
                # branch-free: noise, and the repeats of a CJK run, are
                # overwritten by what follows
                j += u(live & ((key != prev) | (key < 0x2E80)))
                prev = key if live else prev
                i += u(1)
            out[j] = separator
            j += u(1)
            starts[k + 1] = j
            first = last + u(1)
        return j

    # Every type the normaliser passes, compiled up front (and cached on
    # disk): points are read-only (a view of the encoded text) or writable
    # (after the HTML rule edited them); tables are uint32 (fold alphabet) or
    # uint16 (Hyperscan's dense alphabet). Anything else is a TypeError.
    t = numba.types
    signatures = [
        t.uint64(t.Array(t.uint32, 1, "C", readonly=readonly), t.Array(code, 1, "C"), t.Array(t.uint32, 1, "C"),
               t.int64, t.int64, t.Array(t.int64, 1, "C"), t.Array(code, 1, "C"), t.Array(t.int64, 1, "C"))
        for readonly in (True, False) for code in (t.uint32, t.uint16)
    ]
    global _SEEDS
    try:
        _SEEDS = _compile_seeds(numba, cache=True)
        return numba.njit(signatures, cache=True, nogil=True, boundscheck=False)(loop)
    except RuntimeError:  # no writable cache location: compile in every process instead
        _SEEDS = _compile_seeds(numba, cache=False)
        return numba.njit(signatures, nogil=True, boundscheck=False)(loop)


_LOOP: Callable[..., int] | None = None
_SEEDS: Callable[..., int] | None = None
_IMPLEMENTATION: str | None = None
#: Code points a process folds with numpy before it loads numba (~128 M:
#: 384 MB of Chinese text, where the load has about paid for itself).
NUMBA_AFTER = 128 << 20
_folded_without = 0


def load() -> str:
    """Choose the implementation (once per process) and return its name.

    Lazy, because numba costs about 0.45 s and 100 MB of RSS to load: only
    a process that folds a lot (:data:`NUMBA_AFTER`) or says it will (the
    worker calls this at start-up, so its first batch does not pay the
    load) pays it.
    """
    global _LOOP, _IMPLEMENTATION
    if _IMPLEMENTATION is None:
        _LOOP = _numba_loop()
        _IMPLEMENTATION = "numpy" if _LOOP is None else "numba"
    return _IMPLEMENTATION


def compact_numba(points: np.ndarray, table: np.ndarray, delete: int, separator: int,
                  separators: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`compact_numpy` as one compiled pass (same contract, same result),
    always collapsing runs (``keys``: the fold table)."""
    if load() != "numba":
        raise RuntimeError("numba is not available")
    # The loop does not check bounds. Points index the table safely because
    # they come from UTF-32 text or are MARKUP; separators must rise strictly
    # and end the points.
    if len(table) != TABLE_SIZE or len(keys) != TABLE_SIZE or keys.dtype != np.uint32 or (len(separators) and (
            separators[-1] != len(points) - 1 or separators[0] < 0 or np.any(np.diff(separators) <= 0))):
        raise ValueError("table or separators do not fit the compiled loop")
    out = np.empty(len(points), dtype=table.dtype)
    starts = np.zeros(len(separators) + 1, dtype=np.int64)
    n = int(_LOOP(points, table, keys, delete, separator, separators, out, starts))  # type: ignore[misc]
    return out[:n], starts


def marked(points: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Positions ``i`` where ``table[points[i]]`` is not 0, for a uint8
    ``table`` of :data:`~screener.charmap.TABLE_SIZE` entries and marks that
    are rare (the pinyin pass's Latin letters in Chinese posts, before this
    process folds with numba; after, :func:`letter_word_seeds` does that
    work in one compiled pass): numpy's take, then a nonzero that skips
    eight zero bytes at a time.

    >>> table = np.zeros(TABLE_SIZE, dtype=np.uint8); table[ord("a")] = 1
    >>> marked(np.array([ord(c) for c in "中a文aa"], dtype=np.uint32), table).tolist()
    [1, 3, 4]
    """
    if len(table) != TABLE_SIZE or table.dtype != np.uint8 or points.dtype != np.uint32:
        raise ValueError("marked() takes uint32 points and a uint8 table of TABLE_SIZE")
    return _nonzero(table.take(points))


def _nonzero(values: np.ndarray) -> np.ndarray:
    """``np.flatnonzero`` of a uint8 array, eight bytes at a time: 5-7 times
    faster where the marks are rare (measured on the news corpus: 0.1 vs
    0.7 ms per 4096 posts)."""
    n = len(values)
    padded = np.zeros((n + 7) // 8 * 8, dtype=np.uint8)
    padded[:n] = values
    blocks = np.flatnonzero(padded.view(np.uint64))
    if not len(blocks):
        return blocks
    candidates = (blocks[:, None] * 8 + np.arange(8)).ravel()
    return candidates[padded[candidates] != 0]


def _compile_seeds(numba: Any, cache: bool) -> Callable[..., int]:
    def seeds(points, letters, first, last, pair, single, max_letters, markup, out):  # pragma: no cover - compiled
        # Words of letters (side by side, or with only markup between), each
        # judged when the next letter does not follow it: see
        # screener.pinyin.PinyinPass.gated, whose numpy passes this fuses.
        n = 0
        start = -1  # the current word's first letter (-1: none yet)
        length = 0
        ok = True
        head = 0  # its first letter's code
        prev = -1  # the previous letter's position
        code = 0  # ... and code
        clean = True  # nothing but markup since the previous letter
        for i in range(points.shape[0] + 1):
            c = letters[points[i]] if i < points.shape[0] else 0
            if c == 0 and i < points.shape[0]:
                if points[i] != markup:
                    clean = False
                continue
            if c != 0 and prev >= 0 and clean:
                ok = ok and pair[code, c]
                length += 1
            else:
                if start >= 0:  # the word that ended at prev
                    if 2 <= length <= max_letters and first[head] and last[code] and ok:
                        out[n] = start
                        n += 1
                    elif length == 1 and start > 0:
                        before = points[start - 1]
                        if before < single.shape[0] and (single[before] >> (head - 96)) & 1:
                            out[n] = start
                            n += 1
                start, length, ok, head = i, 1, True, c
            prev, code, clean = i, c, True
        return n

    t = numba.types
    signatures = [
        t.int64(t.Array(t.uint32, 1, "C", readonly=readonly), t.Array(t.uint8, 1, "C", readonly=fixed),
                t.Array(t.bool_, 1, "C"), t.Array(t.bool_, 1, "C"), t.Array(t.bool_, 2, "C"),
                t.Array(t.int32, 1, "C"), t.int64, t.uint32, t.Array(t.int64, 1, "C"))
        for readonly in (True, False) for fixed in (True, False)
    ]
    return numba.njit(signatures, cache=cache, nogil=True, boundscheck=False)(seeds)


def letter_word_seeds(points: np.ndarray, letters: np.ndarray, first: np.ndarray, last: np.ndarray,
                      pair: np.ndarray, single: np.ndarray, max_letters: int, markup: int) -> np.ndarray | None:
    """The pinyin pass's seeds (:meth:`screener.pinyin.PinyinPass.gated`) in
    one compiled pass over ``points``, or None before this process folds
    with numba (the caller then runs its numpy passes, the reference that a
    property test holds this to). ``points`` must be code points of text (or
    :data:`~screener.charmap.MARKUP`), all below ``TABLE_SIZE``, as
    :func:`compact_numba` requires: the compiled pass does not check bounds."""
    if _IMPLEMENTATION != "numba" or _SEEDS is None:
        return None
    if len(letters) != TABLE_SIZE or letters.dtype != np.uint8 or points.dtype != np.uint32:
        raise ValueError("letter_word_seeds() takes uint32 points and a uint8 table of TABLE_SIZE")
    out = np.empty(len(points), dtype=np.int64)
    n = _SEEDS(np.ascontiguousarray(points), np.ascontiguousarray(letters), first, last, pair,
               single.astype(np.int32, copy=False), max_letters, np.uint32(markup), out)
    return out[:int(n)]


def current() -> str:
    """The implementation folding batches now, without loading anything."""
    return _IMPLEMENTATION or "numpy"


def compact(points: np.ndarray, table: np.ndarray, delete: int, separator: int,
            separators: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """numpy until :data:`NUMBA_AFTER` code points, then the chosen
    implementation (:func:`load`); runs collapse (``keys``: the fold table)."""
    global _folded_without
    if _IMPLEMENTATION is None:
        _folded_without += len(points)
        if _folded_without <= NUMBA_AFTER and os.environ.get("SCREENER_COMPACT", "").lower() != "numba":
            return compact_numpy(points, table, delete, separator, separators, keys)
    if load() == "numba":
        return compact_numba(points, table, delete, separator, separators, keys)
    return compact_numpy(points, table, delete, separator, separators, keys)
