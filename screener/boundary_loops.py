"""The compiled loops of :mod:`screener.boundary` (imported only where numba is).

Module-level functions, so that numba's on-disk cache serves them: compiled
once per machine (~2 s), loaded in ~0.1 s by every later process. (Defined as
closures inside a function, as they first were, they missed the cache and
were compiled again in every process.) What each loop mirrors in jieba is
said in :mod:`screener.boundary`.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numba
import numpy as np


def _jit(function: Callable[..., Any]) -> Any:
    try:
        return numba.njit(cache=True, nogil=True, boundscheck=False)(function)
    except RuntimeError:  # no writable cache location: compile in every process instead
        return numba.njit(nogil=True, boundscheck=False)(function)



@_jit
def slot(key, mask):  # pragma: no cover - compiled
    # Fibonacci hashing; the table size is a power of two (mask = size - 1).
    return np.int64((np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32)) & mask


@_jit
def insert(edges, keys, children):  # pragma: no cover - compiled
    mask = edges.shape[0] // 2 - 1
    for i in range(keys.shape[0]):
        h = slot(keys[i], mask)
        while edges[2 * h] != -1:
            h = (h + 1) & mask
        edges[2 * h] = keys[i]
        edges[2 * h + 1] = children[i]


@_jit
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


@_jit
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


@_jit
def is_block(c):  # pragma: no cover - compiled
    # jieba's re_han_default: [\u4E00-\u9FD5a-zA-Z0-9+#&\._%\-]
    return ((0x4E00 <= c <= 0x9FD5) or (97 <= c <= 122) or (65 <= c <= 90) or (48 <= c <= 57)
            or c == 43 or c == 35 or c == 38 or c == 46 or c == 95 or c == 37 or c == 45)


@_jit
def is_eng(c):  # pragma: no cover - compiled
    return (97 <= c <= 122) or (65 <= c <= 90) or (48 <= c <= 57)  # jieba's re_eng


@_jit
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


@_jit
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


@_jit
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
