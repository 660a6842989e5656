"""Word boundaries of many hits at once: jieba's dictionary as arrays, compiled loops over it.

Verification asks, of each edge of a word-mode hit, whether jieba cuts
through it (:meth:`screener.verify.Verifier._cut`). Asked per hit in Python
that cost ~120 µs a time (a dictionary scan, then jieba on a window), and on
a lexicon of ordinary words half of all hits need it. Here every edge of a
batch is answered in one compiled call, over jieba's own dictionary held as
a trie in arrays (:class:`WordTrie`, built once per process from the
tokenizer's ``FREQ``, so the very dictionary jieba uses):

1. **Pre-filter** (``spanned`` in :func:`_kernels`): an edge that no dictionary word spans
   is a token boundary in every segmentation, so the hit is kept at that edge
   without segmenting. This is ``Segmenter.spanned``, the same question.
2. **Segmentation** of the rest (``tokenize``, ``cut_block``): jieba's
   ``tokenize(window, HMM=False)`` step for step: the window is cut into
   blocks by ``re_han_default``; characters outside blocks are tokens of
   their own (``\\r\\n`` one token); within a block, jieba's DAG (every
   dictionary word of positive frequency), its route (``calc``: from the
   right, the best of ``log(freq) - log(total) + route[x + 1]``, the largest
   ``x`` on a tie, with the weights computed by Python's ``math.log``
   exactly as jieba does, so the float sums are the same sums) and its walk
   (single ASCII letters and digits merged into one token).

A dictionary word spanning an edge is necessary, not sufficient, for a cut
(jieba picks a max-probability path; 大麻 in 这是个大麻烦 is cut only because
大/麻烦 outscores 大麻/烦), which is why step 2 exists: it leaves the answers
exactly jieba's. ``tests/test_bulk_verify.py`` compares step 2 with jieba
itself on generated windows, and whole verification with the per-post
reference path; ``SCREENER_SEGMENT=jieba`` keeps step 1 but asks jieba
itself in step 2 (slow; for comparison). Without numba, verification takes
the per-post path.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

import numpy as np

from .segment import MAX_WORD, WINDOW

if TYPE_CHECKING:
    from types import ModuleType

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WordTrie:
    """Every key of jieba's ``FREQ`` (words and their prefixes) as a trie.

    Node 0 is the root; its children (12k first characters, the busiest
    look-ups) are in ``root``, indexed by character (-1: none). Every other
    edge ``(node, char) -> child`` is in ``edges``, an open-addressing hash
    table of ``[key, child]`` pairs (key ``node << 21 | char``; -1: empty),
    one cache line per look-up where a sorted child list took four (the
    loops ran twice as fast). ``weight[node]`` is ``log(freq) - log(total)``
    for a word of positive frequency, NaN for a mere prefix; ``fallback`` is
    jieba's weight of a character no word starts with (``log(1) - log(total)``).
    """

    root: np.ndarray
    edges: np.ndarray
    weight: np.ndarray
    fallback: float


def build_trie(freq: Mapping[str, int], total: int) -> WordTrie:
    """About 0.5 s for jieba's 500k keys; ~30 MB."""
    loops = _loops()
    keys = [k for k in freq if k]
    ids = {k: i for i, k in enumerate(keys, 1)}
    n = len(keys)
    parent = np.fromiter((ids.get(k[:-1], 0) for k in keys), dtype=np.int64, count=n)
    last = np.fromiter((ord(k[-1]) for k in keys), dtype=np.int64, count=n)
    logtotal = math.log(total)
    # As jieba's calc: log(FREQ.get(word) or 1) - logtotal, by Python's math.log.
    weight = np.fromiter(
        (math.log(freq[k]) - logtotal if freq[k] else math.nan for k in keys), dtype=np.float64, count=n
    )
    node = np.arange(1, n + 1, dtype=np.int64)
    top = parent == 0
    root = np.full(int(last[top].max(initial=0)) + 1, -1, dtype=np.int64)
    root[last[top]] = node[top]
    deeper = ~top
    size = 1 << max(4, int(2 * deeper.sum()).bit_length())  # load factor <= 1/2
    edges = np.full(2 * size, -1, dtype=np.int64)
    loops.insert(edges, parent[deeper] << 21 | last[deeper], node[deeper])
    return WordTrie(root, edges, np.concatenate(([math.nan], weight)), math.log(1) - logtotal)


_STATE: str | None = None


def loaded() -> bool:
    """Whether :func:`load` has run (without running it)."""
    return _STATE is not None


def load() -> str:
    """``numba`` when the compiled loops are available (once per process), else ``none``."""
    global _STATE
    if _STATE is None:
        _STATE = "none"
        try:
            from . import boundary_loops  # noqa: F401 - imports numba: only now, and only here

            _STATE = "numba"
            _warm()
        except ImportError:
            pass
        except Exception:
            _STATE = "none"
            log.warning("numba failed to compile the boundary loops; verifying per post", exc_info=True)
    return _STATE


def _warm() -> None:
    """Compile (or load from numba's cache) now, not in the first batch."""
    trie = build_trie({"a": 1, "ab": 2}, 3)
    one = np.zeros(1, dtype=np.int64)
    check_edges(trie, np.array([97, 98, 99], dtype=np.uint32), one, one + 3, one + 1, one + 2, one + 3, True)


def _loops() -> ModuleType:
    if load() != "numba":
        raise RuntimeError("numba is not available")
    from . import boundary_loops

    return boundary_loops


def jieba_only() -> bool:
    """``SCREENER_SEGMENT=jieba``: segment with jieba itself after the pre-filter."""
    return os.environ.get("SCREENER_SEGMENT", "").lower() == "jieba"


@dataclass(frozen=True)
class EdgeAnswers:
    """Per query: which edges needed segmenting (bit 1 start, bit 2 end),
    the first token that cuts (index into ``tok_s``/``tok_e``; -1: none) and
    the window's tokens (``tok_n[q]`` of them from ``tok_off[q]``)."""

    checked: np.ndarray
    cut: np.ndarray
    tok_off: np.ndarray
    tok_n: np.ndarray
    tok_s: np.ndarray
    tok_e: np.ndarray


def check_edges(trie: WordTrie, codes: np.ndarray, post_lo: np.ndarray, post_hi: np.ndarray,
                starts: np.ndarray, ends: np.ndarray, need: np.ndarray, segment: bool) -> EdgeAnswers:
    """Answer every query ``[starts[q], ends[q])`` of the post ``codes[post_lo[q]:post_hi[q]]``
    at the edges ``need[q]`` asks about (bit 1 start, bit 2 end)."""
    loops = _loops()
    q = len(starts)
    width = np.minimum(post_hi, ends + WINDOW) - np.maximum(post_lo, starts - WINDOW)
    tok_off = np.zeros(q + 1, dtype=np.int64)
    np.cumsum(width, out=tok_off[1:])
    tok_s = np.empty(int(tok_off[-1]) if segment else 0, dtype=np.int64)
    tok_e = np.empty_like(tok_s)
    checked = np.empty(q, dtype=np.int64)
    cut = np.empty(q, dtype=np.int64)
    tok_n = np.empty(q, dtype=np.int64)
    loops.check(codes, post_lo, post_hi, starts, ends, need, trie.root, trie.edges, trie.weight,
          trie.fallback, WINDOW, MAX_WORD, segment, checked, cut, tok_off, tok_n, tok_s, tok_e)
    return EdgeAnswers(checked, cut, tok_off, tok_n, tok_s, tok_e)


def tokenize(trie: WordTrie, text: str) -> list[tuple[int, int]]:
    """The compiled segmentation of a whole ``text`` (tests compare it with jieba's ``tokenize``)."""
    loops = _loops()
    codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
    n = len(codes)
    route_v, route_x = np.empty(n + 1), np.empty(n + 1, dtype=np.int64)
    out_s, out_e = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    k = loops.tokenize(codes, 0, n, trie.root, trie.edges, trie.weight, trie.fallback,
                                route_v, route_x, out_s, out_e, 0)
    return list(zip(out_s[:k].tolist(), out_e[:k].tolist()))
