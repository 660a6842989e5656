"""The fused fold loop (numba) against its numpy reference."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from screener import compact as C
from screener import normalise
from screener.charmap import MARKUP
from screener.matchers import available
from screener.normalise import Normaliser

N = Normaliser()
IMPLEMENTATIONS = [C.compact_numpy] + ([C.compact_numba] if C.load() == "numba" else [])
needs_numba = pytest.mark.skipif(C.load() != "numba", reason="numba does not import here")


def _tables() -> list[tuple[str, np.ndarray, int, int]]:
    tables = [("fold", N.alphabet.table, N.alphabet.delete, N.alphabet.separator)]
    if "hyperscan" in available():
        from screener.matchers.hyperscan_backend import HyperscanMatcher

        alphabet = HyperscanMatcher(["赌博", "ab"], N.table).alphabet
        tables.append(("hyperscan", alphabet.table, alphabet.delete, alphabet.separator))
    return tables


TABLES = _tables()
# Code points that fold, vanish (noise), are markup, or stay: CJK, full-width,
# astral, zero-width, punctuation, NUL; 賭 (folds to 赌, so 賭赌 is a run),
# a digit and its full-width form (never a run), characters outside the
# Hyperscan alphabet (all one code there, but runs only of the same one).
# Drawn from few, so that runs are frequent.
_POINTS = st.sampled_from([0x8D4C, 0x8CED, 0x535A, 0xFF41, 0x41, 0x20000, 0x200B, 0xFF0C, 0x2A, 0x0, 0x1F600,
                           MARKUP, 0x31, 0xFF11, 0x4E00, 0x4E01])


@needs_numba
@settings(max_examples=300, deadline=None)
@given(posts=st.lists(st.lists(_POINTS, max_size=12), max_size=8), which=st.sampled_from(range(len(TABLES))))
def test_numba_equals_numpy(posts, which):
    _, table, delete, separator = TABLES[which]
    points = np.array([p for post in posts for p in [*post, 0]], dtype=np.uint32)
    separators = np.cumsum(np.array([len(p) + 1 for p in posts], dtype=np.int64)) - 1
    want_codes, want_starts = C.compact_numpy(points.copy(), table, delete, separator, separators, N.table)
    got_codes, got_starts = C.compact_numba(points, table, delete, separator, separators, N.table)
    assert got_codes.dtype == want_codes.dtype == table.dtype
    assert got_codes.tolist() == want_codes.tolist()
    assert got_starts.tolist() == want_starts.tolist()


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("which", range(len(TABLES)), ids=[t[0] for t in TABLES])
def test_runs_collapse_only_for_cjk(impl, which):
    """賭*赌 is one run of 赌; 11, aa and a run across a post's end are not;
    丁一 in the Hyperscan alphabet (both "other") stay two characters."""
    _, table, delete, separator = TABLES[which]
    posts = ["賭*赌赌博", "11１", "aa", "博", "博", "丁一丁丁"]
    points = np.frombuffer("".join(p + "\x00" for p in posts).encode("utf-32-le"), dtype="<u4")
    separators = np.cumsum(np.array([len(p) + 1 for p in posts], dtype=np.int64)) - 1
    codes, starts = impl(points, table, delete, separator, separators, N.table)
    want = ["赌博", "111", "aa", "博", "博", "丁一丁"]
    expected = table.take(np.frombuffer("".join(w + "\x00" for w in want).encode("utf-32-le"), dtype="<u4"))
    expected[np.cumsum([len(w) + 1 for w in want]) - 1] = separator
    assert codes.tolist() == expected.tolist()
    assert starts.tolist() == [0, *np.cumsum([len(w) + 1 for w in want]).tolist()]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("texts", [
    [], [""], ["", ""], ["赌*博", "", "<b>赌</b>&#21338;", "ａ　ｂ"], ["&amp;&#x8D4C;<!-- x -->博"],
    ["赌赌博", "博", "博博", "賭<b>赌</b>&#36172;博", "丁一丁丁", "11aa"],
])
def test_encode_batch_with_each_implementation(monkeypatch, impl, texts):
    monkeypatch.setattr(normalise, "compact", impl)
    for _, table, delete, separator in TABLES:
        alphabet = normalise.Alphabet(table, delete, separator)
        batch = N.encode_batch(texts, alphabet)
        assert len(batch.starts) == len(texts) + 1
        for i, text in enumerate(texts):
            want = table.take(np.array([ord(c) for c in N.fold_string(text)], dtype=np.int64))
            assert batch.codes[batch.starts[i]:batch.starts[i + 1] - 1].tolist() == want.tolist()
            assert batch.codes[batch.starts[i + 1] - 1] == separator


@needs_numba
@pytest.mark.parametrize("table,separators", [
    (np.zeros(10, dtype=np.uint32), np.array([1])),  # not a full table: indices could overrun
    (N.alphabet.table, np.array([0])),  # does not end the points
    (N.alphabet.table, np.array([1, 1])),  # not strictly rising
])
def test_numba_refuses_what_could_overrun(table, separators):
    with pytest.raises(ValueError):
        C.compact_numba(np.zeros(2, dtype=np.uint32), table, 1, 0, separators.astype(np.int64), N.table)


def test_numpy_can_be_forced():
    env = {**os.environ, "SCREENER_COMPACT": "numpy"}
    out = subprocess.run([sys.executable, "-c", "import screener.compact as c; print(c.load())"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "numpy"


@given(st.lists(st.integers(0, 255) | st.just(0), max_size=70))
def test_the_fast_nonzero_is_flatnonzero(values):
    array = np.array(values, dtype=np.uint8)
    assert C._nonzero(array).tolist() == np.flatnonzero(array).tolist()


@given(st.lists(st.sampled_from([0x41, 0x61, 0x7A, 0x4E2D, 0xFF41, 0x10FFFF, 0x20, 0]), max_size=200),
       st.sets(st.sampled_from([0x41, 0x61, 0x7A, 0x4E2D, 0xFF41, 0x10FFFF]), max_size=4))
def test_marked_is_where_the_table_marks(points, marks):
    """Both paths of :func:`compact.marked` (compiled once numba is loaded,
    numpy before) equal np.flatnonzero of the looked-up marks."""
    table = np.zeros(C.TABLE_SIZE, dtype=np.uint8)
    table[sorted(marks)] = 7
    array = np.array(points, dtype=np.uint32)
    want = np.flatnonzero(table[array]).tolist()
    assert C._nonzero(table.take(array)).tolist() == want
    assert C.marked(array, table).tolist() == want  # numba where it loads (IMPLEMENTATIONS above loaded it)
    readonly = np.frombuffer(array.tobytes(), dtype=np.uint32)
    assert C.marked(readonly, table).tolist() == want
    fixed = np.frombuffer(table.tobytes(), dtype=np.uint8)  # a read-only table too
    assert C.marked(readonly, fixed).tolist() == want


def test_marked_refuses_tables_and_points_of_the_wrong_kind():
    """What it can check for free; code points past the table are the
    caller's contract (as for compact_numba), not checked."""
    with pytest.raises(ValueError):
        C.marked(np.zeros(3, dtype=np.uint32), np.zeros(10, dtype=np.uint8))
    with pytest.raises(ValueError):
        C.marked(np.zeros(3, dtype=np.int64), np.zeros(C.TABLE_SIZE, dtype=np.uint8))
