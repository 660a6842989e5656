"""Word boundaries of many hits at once: jieba's dictionary as arrays, compiled loops over it.

Verification asks, of each edge of a word-mode hit, whether jieba cuts
through it (:meth:`screener.verify.Verifier._cut`). Asked per hit in Python
that cost ~120 µs a time (a dictionary scan, then jieba on a window), and on
a lexicon of ordinary words half of all hits need it. Here every edge of a
batch is answered in one compiled call, over jieba's own dictionary held as
a trie in arrays (:class:`WordTrie`, built once per process from the
tokenizer's ``FREQ``, so the very dictionary jieba uses):

1. **Pre-filter** (:func:`_spanned`): an edge that no dictionary word spans
   is a token boundary in every segmentation, so the hit is kept at that edge
   without segmenting. This is ``Segmenter.spanned``, the same question.
2. **Segmentation** of the rest (:func:`_tokenize`): jieba's
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
from typing import Callable, Mapping

import numpy as np

from .segment import MAX_WORD, WINDOW

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
    if load() != "numba":
        raise RuntimeError("numba is not available")
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
    _KERNELS[2](edges, parent[deeper] << 21 | last[deeper], node[deeper])  # type: ignore[index]
    return WordTrie(root, edges, np.concatenate(([math.nan], weight)), math.log(1) - logtotal)


def _kernels(numba):  # type: ignore[no-untyped-def]
    njit = numba.njit(cache=True, nogil=True, boundscheck=False)

    @njit
    def slot(key, mask):  # pragma: no cover - compiled
        # Fibonacci hashing; the table size is a power of two (mask = size - 1).
        return np.int64((np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32)) & mask

    @njit
    def insert(edges, keys, children):  # pragma: no cover - compiled
        mask = edges.shape[0] // 2 - 1
        for i in range(keys.shape[0]):
            h = slot(keys[i], mask)
            while edges[2 * h] != -1:
                h = (h + 1) & mask
            edges[2 * h] = keys[i]
            edges[2 * h + 1] = children[i]

    @njit
    def child_of(root, edges, node, c):  # pragma: no cover - compiled
        if node == 0:
            return root[c] if c < root.shape[0] else -1
        key = node << 21 | np.int64(c)
        mask = edges.shape[0] // 2 - 1
        h = slot(key, mask)
        while True:
            k = edges[2 * h]
            if k == key:
                return edges[2 * h + 1]
            if k == -1:
                return -1
            h = (h + 1) & mask

    @njit
    def spanned(codes, lo, hi, b, root, edges, weight, max_word):  # pragma: no cover - compiled
        # Segmenter.spanned(text, b) with text = codes[lo:hi], in global positions.
        left = b - 1
        stop = max(lo - 1, b - max_word)
        while left > stop:
            node = 0
            for i in range(left, b):
                node = child_of(root, edges, node, codes[i])
                if node < 0:
                    break
            if node >= 0:
                for r in range(b, min(hi, left + max_word)):
                    node = child_of(root, edges, node, codes[r])
                    if node < 0:
                        break
                    if not math.isnan(weight[node]):
                        return True
            left -= 1
        return False

    @njit
    def is_block(c):  # pragma: no cover - compiled
        # jieba's re_han_default: [\u4E00-\u9FD5a-zA-Z0-9+#&\._%\-]
        return ((0x4E00 <= c <= 0x9FD5) or (97 <= c <= 122) or (65 <= c <= 90) or (48 <= c <= 57)
                or c == 43 or c == 35 or c == 38 or c == 46 or c == 95 or c == 37 or c == 45)

    @njit
    def is_eng(c):  # pragma: no cover - compiled
        return (97 <= c <= 122) or (65 <= c <= 90) or (48 <= c <= 57)  # jieba's re_eng

    @njit
    def cut_block(codes, i, j, root, edges, weight, fallback, route_v, route_x, out_s, out_e, k):  # pragma: no cover
        # jieba's get_DAG + calc + __cut_DAG_NO_HMM over codes[i:j].
        n = j - i
        route_v[n] = 0.0
        route_x[n] = 0
        for idx in range(n - 1, -1, -1):
            node = 0
            found = False
            best_v = 0.0
            best_x = idx
            for x in range(idx, n):
                node = child_of(root, edges, node, codes[i + x])
                if node < 0:
                    break
                w = weight[node]
                if not math.isnan(w):
                    v = w + route_v[x + 1]
                    # max() of (value, x) tuples, x ascending: a tie goes to the larger x
                    if not found or v >= best_v:
                        best_v, best_x, found = v, x, True
            if not found:
                best_v, best_x = fallback + route_v[idx + 1], idx
            route_v[idx] = best_v
            route_x[idx] = best_x
        x = 0
        buf = -1
        while x < n:
            y = route_x[x] + 1
            if y - x == 1 and is_eng(codes[i + x]):
                if buf < 0:
                    buf = x
            else:
                if buf >= 0:
                    out_s[k], out_e[k] = i + buf, i + x
                    k += 1
                    buf = -1
                out_s[k], out_e[k] = i + x, i + y
                k += 1
            x = y
        if buf >= 0:
            out_s[k], out_e[k] = i + buf, i + n
            k += 1
        return k

    @njit
    def tokenize(codes, lo, hi, root, edges, weight, fallback, route_v, route_x, out_s, out_e, k):  # pragma: no cover
        # jieba's tokenize(text[lo:hi], HMM=False): blocks, then the rest one character a token.
        i = lo
        while i < hi:
            if is_block(codes[i]):
                j = i + 1
                while j < hi and is_block(codes[j]):
                    j += 1
                k = cut_block(codes, i, j, root, edges, weight, fallback, route_v, route_x, out_s, out_e, k)
                i = j
            else:
                width = 2 if codes[i] == 13 and i + 1 < hi and codes[i + 1] == 10 else 1
                out_s[k], out_e[k] = i, i + width
                k += 1
                i += width
        return k

    @njit
    def check(codes, post_lo, post_hi, starts, ends, need, root, edges, weight, fallback,
              window, max_word, segment, checked, cut, tok_off, tok_n, tok_s, tok_e):  # pragma: no cover
        longest = 1
        for q in range(starts.shape[0]):
            longest = max(longest, ends[q] - starts[q] + 2 * window + 1)
        route_v = np.empty(longest, dtype=np.float64)
        route_x = np.empty(longest, dtype=np.int64)
        for q in range(starts.shape[0]):
            lo, hi, s, e = post_lo[q], post_hi[q], starts[q], ends[q]
            cs = (need[q] & 1) != 0 and spanned(codes, lo, hi, s, root, edges, weight, max_word)
            ce = (need[q] & 2) != 0 and spanned(codes, lo, hi, e, root, edges, weight, max_word)
            checked[q] = (1 if cs else 0) | (2 if ce else 0)
            cut[q] = -1
            tok_n[q] = 0
            if not segment or not (cs or ce):
                continue
            k0 = tok_off[q]
            k = tokenize(codes, max(lo, s - window), min(hi, e + window), root, edges, weight,
                         fallback, route_v, route_x, tok_s, tok_e, k0)
            tok_n[q] = k - k0
            for t in range(k0, k):
                if (cs and tok_s[t] < s < tok_e[t]) or (ce and tok_s[t] < e < tok_e[t]):
                    cut[q] = t
                    break

    return check, tokenize, insert


_KERNELS: tuple[Callable[..., object], ...] | None = None
_STATE: str | None = None


def load() -> str:
    """``numba`` when the compiled loops are available (once per process), else ``none``."""
    global _KERNELS, _STATE
    if _STATE is None:
        _STATE = "none"
        try:
            import numba

            _KERNELS = _kernels(numba)
            _STATE = "numba"
            _warm()
        except ImportError:
            pass
        except Exception:  # noqa: BLE001 - a broken numba install must not stop screening
            _STATE = "none"
            log.warning("numba failed to compile the boundary loops; verifying per post", exc_info=True)
    return _STATE


def _warm() -> None:
    """Compile (or load from numba's cache) now, not in the first batch."""
    trie = build_trie({"a": 1, "ab": 2}, 3)
    one = np.zeros(1, dtype=np.int64)
    check_edges(trie, np.array([97, 98, 99], dtype=np.uint32), one, one + 3, one + 1, one + 2, one + 3, True)


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
    if load() != "numba":
        raise RuntimeError("numba is not available")
    kernel = _KERNELS[0]  # type: ignore[index]
    q = len(starts)
    width = np.minimum(post_hi, ends + WINDOW) - np.maximum(post_lo, starts - WINDOW)
    tok_off = np.zeros(q + 1, dtype=np.int64)
    np.cumsum(width, out=tok_off[1:])
    tok_s = np.empty(int(tok_off[-1]) if segment else 0, dtype=np.int64)
    tok_e = np.empty_like(tok_s)
    checked = np.empty(q, dtype=np.int64)
    cut = np.empty(q, dtype=np.int64)
    tok_n = np.empty(q, dtype=np.int64)
    kernel(codes, post_lo, post_hi, starts, ends, need, trie.root, trie.edges, trie.weight,
          trie.fallback, WINDOW, MAX_WORD, segment, checked, cut, tok_off, tok_n, tok_s, tok_e)
    return EdgeAnswers(checked, cut, tok_off, tok_n, tok_s, tok_e)


def tokenize(trie: WordTrie, text: str) -> list[tuple[int, int]]:
    """The compiled segmentation of a whole ``text`` (tests compare it with jieba's ``tokenize``)."""
    if load() != "numba":
        raise RuntimeError("numba is not available")
    codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
    n = len(codes)
    route_v, route_x = np.empty(n + 1), np.empty(n + 1, dtype=np.int64)
    out_s, out_e = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    k = _KERNELS[1](codes, 0, n, trie.root, trie.edges, trie.weight, trie.fallback,  # type: ignore[index]
                    route_v, route_x, out_s, out_e, 0)
    return list(zip(out_s[:k].tolist(), out_e[:k].tolist()))
