"""Matcher backends: table-driven semantics plus a differential property test.

Rows are (name, patterns, haystacks, expected) where expected lists
(pattern id, post index, start, end) in normalised positions of each post.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from screener.matchers import BACKENDS, available, build_matcher, resolve
from screener.matchers.hyperscan_backend import HyperscanMatcher
from screener.normalise import Normaliser

from .conftest import BACKENDS as TEST_BACKENDS

NORMALISER = Normaliser()

BASICS = [
    ("single", ["ab"], ["xaby"], [(0, 0, 1, 3)]),
    ("repeated", ["ab"], ["abab"], [(0, 0, 0, 2), (0, 0, 2, 4)]),
    ("overlapping self", ["aa"], ["aaa"], [(0, 0, 0, 2), (0, 0, 1, 3)]),
    ("nested", ["我的", "我的世界"], ["玩我的世界"], [(0, 0, 1, 3), (1, 0, 1, 5)]),
    ("failure link", ["abce", "bcd"], ["abcde"], [(1, 0, 1, 4)]),
    ("cjk", ["赌博", "博人"], ["我是赌博人"], [(0, 0, 2, 4), (1, 0, 3, 5)]),
    ("astral cjk", ["𠀀𠀁"], ["x𠀀𠀁y"], [(0, 0, 1, 3)]),
    ("several posts", ["ab"], ["ab", "", "xab"], [(0, 0, 0, 2), (0, 2, 1, 3)]),
    ("no match across posts", ["ab"], ["a", "b"], []),
    ("one character", ["吃"], ["吃饭吃"], [(0, 0, 0, 1), (0, 0, 2, 3)]),
    ("empty batch", ["ab"], [], []),
    ("no patterns", [], ["abc"], []),
    ("duplicate patterns", ["ab", "ab"], ["ab"], [(0, 0, 0, 2), (1, 0, 0, 2)]),
]

REGRESSION = [
    # A NUL byte in an encoded pattern used to truncate it in the binding.
    ("id with low byte 1", ["百家乐"], ["玩百家乐"], [(0, 0, 1, 4)]),
    # Misaligned two-byte matches must never be reported.
    ("misalignment", ["乐百", "家乐"], ["百家乐百家"], [(1, 0, 1, 3), (0, 0, 2, 4)]),
]


def _scan(matcher, texts: list[str]) -> list[tuple[int, int, int, int]]:
    batch = NORMALISER.encode_batch(texts, matcher.alphabet)
    rows = matcher.scan(batch)
    posts = batch.post_of(rows[:, 1]) if len(rows) else np.array([], dtype=np.int64)
    return sorted(
        (int(pid), int(post), int(s - batch.starts[post]), int(e - batch.starts[post]))
        for (pid, s, e), post in zip(rows.tolist(), posts.tolist())
    )


def _build(backend: str, patterns: list[str]):
    folded = [NORMALISER.fold_string(p) for p in patterns]
    if backend == "hyperscan-wide":
        return HyperscanMatcher(folded, NORMALISER.table, max_dense=0)
    if backend == "hyperscan-shards":  # several databases (large lexicons), forced here
        return HyperscanMatcher(folded, NORMALISER.table, shards=3)
    if backend == "hyperscan-wide-shards":
        return HyperscanMatcher(folded, NORMALISER.table, max_dense=0, shards=2)
    return build_matcher(backend, folded, NORMALISER.table)


ALL = TEST_BACKENDS + (["hyperscan-wide", "hyperscan-shards", "hyperscan-wide-shards"]
                       if "hyperscan" in available() else [])


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("name,patterns,texts,expected", BASICS + REGRESSION, ids=[r[0] for r in BASICS + REGRESSION])
def test_table(backend, name, patterns, texts, expected):
    assert _scan(_build(backend, patterns), texts) == sorted(expected)


def test_auto_reports_its_choice():
    chosen = resolve("auto")
    assert chosen == available()[0]
    assert build_matcher("auto", ["ab"], NORMALISER.table).name == chosen
    assert set(available()) <= set(BACKENDS)


def test_hyperscan_fallback_is_used_for_huge_alphabets():
    if "hyperscan" not in available():
        pytest.skip("hyperscan does not import here")
    assert HyperscanMatcher(["ab"], NORMALISER.table, max_dense=1).dense is False
    assert HyperscanMatcher(["ab"], NORMALISER.table).dense is True


def test_large_lexicons_compile_into_several_databases():
    if "hyperscan" not in available():
        pytest.skip("hyperscan does not import here")
    from screener.matchers.hyperscan_backend import SHARD_PATTERNS, SPLIT_FROM, _shard_count, _shard_ids

    assert [_shard_count(n) for n in (0, 1, SPLIT_FROM - 1, SPLIT_FROM, SHARD_PATTERNS, SHARD_PATTERNS + 1)] == \
        [1, 1, 1, 2, 2, 2]
    assert _shard_count(3 * SHARD_PATTERNS) == 3
    patterns = ["赌博", "博", "网站", "站", "大麻", "麻", "我的", "的", "世界"]
    shards = _shard_ids(patterns, 3)
    assert sorted(i for ids in shards for i in ids) == list(range(len(patterns)))  # each pattern once
    for ids in shards:  # a last character lives in one database
        assert not {patterns[i][-1] for i in ids} & {patterns[j][-1] for other in shards if other is not ids for j in other}
    assert _shard_ids(patterns, 1) == [list(range(len(patterns)))] and _shard_ids([], 2) == []
    assert len(HyperscanMatcher(patterns, NORMALISER.table, shards=3)._dbs) == 3


def test_several_databases_from_the_cache_state():
    if "hyperscan" not in available():
        pytest.skip("hyperscan does not import here")
    patterns = ["赌博", "博彩", "网站", "大麻", "我的世界"]
    texts = ["网上赌博彩票网站", "大麻我的世界"]
    for max_dense in (None, 0):
        extra = {} if max_dense is None else {"max_dense": max_dense}
        built = HyperscanMatcher(patterns, NORMALISER.table, shards=2, **extra)
        meta, buffers = built.state()
        loaded = HyperscanMatcher.from_state(meta, {k: memoryview(bytearray(memoryview(v).cast("B"))) for k, v in buffers.items()},
                                             NORMALISER.table)
        assert len(loaded._dbs) == 2
        assert _scan(loaded, texts) == _scan(built, texts) == _scan(_build("oracle", patterns), texts)


@pytest.mark.parametrize("backend", ALL)
def test_two_threads_scan_with_one_matcher(backend):
    """A rescan thread screens beside the worker's batches with the same
    engine; Hyperscan's scan releases the GIL, and one scratch space shared
    by two scans failed with ScratchInUseError (found by review)."""
    import threading

    rng = np.random.default_rng(3)
    chars = [chr(c) for c in range(0x4E00, 0x4E00 + 300)]
    patterns = sorted({"".join(rng.choice(chars, size=3)) for _ in range(3000)})
    matcher = _build(backend, patterns)
    texts = ["".join(rng.choice(chars, size=200)) for _ in range(500)]
    batch = NORMALISER.encode_batch(texts, matcher.alphabet)
    expected = sorted(map(tuple, matcher.scan(batch).tolist()))
    assert expected  # the case must exercise matches
    errors: list[BaseException] = []
    answers: list[list[tuple[int, ...]]] = []

    def run() -> None:
        try:
            for _ in range(10):
                answers.append(sorted(map(tuple, matcher.scan(batch).tolist())))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(answers) == 30 and all(a == expected for a in answers)


def test_dense_codes_are_distinct_aligned_and_never_nul():
    if "hyperscan" not in available():
        pytest.skip("hyperscan does not import here")
    from screener.matchers.hyperscan_backend import _DELETE_CODE, _MAX_DENSE, _slot_codes

    codes = _slot_codes(np.arange(_MAX_DENSE + 1))
    first, second = codes & 0xFF, codes >> 8  # little-endian byte order, as scanned
    assert len(np.unique(codes)) == _MAX_DENSE + 1
    assert first.min() >= 0x80 and second.min() >= 0x01 and second.max() <= 0x7F
    assert _DELETE_CODE not in set(codes.tolist())


@settings(max_examples=200, deadline=None)
@given(patterns=st.lists(st.text(alphabet="赌博网a😀𠀀\x01\ud800", min_size=1, max_size=5), min_size=1, max_size=12))
def test_pattern_encoding_in_bulk_is_the_encoding_of_each(patterns):
    """The compile's array passes (slot ranking, codes) against their
    definition, one character and one pattern at a time."""
    if "hyperscan" not in available():
        pytest.skip("hyperscan does not import here")
    from collections import Counter

    from screener.matchers.hyperscan_backend import _encode_each, _slot_codes, _slots_by_use

    uses = Counter(c for p in patterns for c in p)
    assert _slots_by_use(patterns) == sorted(uses, key=lambda c: (-uses[c], c))
    code_of_char = _slot_codes(np.arange(0x110000) % 5000)
    assert _encode_each(patterns, code_of_char) == [
        b"".join(int(code_of_char[ord(c)]).to_bytes(2, "little") for c in p) for p in patterns]


def test_large_alphabet_agrees_with_oracle():
    """Thousands of pattern characters fill high slots of the dense encoding."""
    rng = np.random.default_rng(7)
    chars = [chr(c) for c in rng.choice(np.arange(0x4E00, 0x9FA6), size=6000, replace=False)]
    patterns = ["".join(rng.choice(chars, size=int(rng.integers(1, 4)))) for _ in range(3000)]
    texts = ["".join(rng.choice(chars, size=200)) for _ in range(50)]
    expected = _scan(_build("oracle", patterns), texts)
    assert len(expected) > 100  # the case must exercise many matches
    for backend in ALL:
        assert _scan(_build(backend, patterns), texts) == expected, backend


# -- differential property test ------------------------------------------------
# Alphabets chosen to collide often: a few CJK characters, full-width and
# astral forms, Latin letters in several styles, and noise.
_CHARS = "赌博网站大麻烦我的世界𠀀𠀁ａｂAbc ，*\u200b😀①1"
_text = st.text(alphabet=_CHARS, max_size=40)
_pattern = st.text(alphabet="赌博网站大麻我的世界𠀀𠀁abc1", min_size=1, max_size=4)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(patterns=st.lists(_pattern, min_size=1, max_size=8), texts=st.lists(_text, max_size=5))
def test_backends_agree_with_oracle(patterns, texts):
    expected = _scan(_build("oracle", patterns), texts)
    for backend in ALL:
        assert _scan(_build(backend, patterns), texts) == expected, backend


def test_a_staged_build_matches_as_a_one_step_build(monkeypatch):
    """Engine.build starts compiling a large lexicon's first databases from
    its literal patterns; the last one gets every variant, and variant
    characters no literal uses get later slots. It must find what a
    one-step build of the same patterns finds."""
    if "hyperscan" not in available():
        pytest.skip("hyperscan does not import here")
    from screener.matchers import hyperscan_backend, start_matcher
    from screener.matchers.hyperscan_backend import StagedBuild

    monkeypatch.setattr(hyperscan_backend, "SPLIT_FROM", 2)
    monkeypatch.setattr(hyperscan_backend, "SHARD_PATTERNS", 3)  # three databases: two start early
    literals = ["赌博", "博彩", "网站", "大麻", "我的世界", "软件", "出租车"]
    variants = ["软体", "计程车", "资讯", "𠀀𠀁"]  # 体, 计, 程, 资, 讯 and the astral pair are new characters
    patterns = literals + variants
    texts = ["网上赌博彩票网站", "大麻我的世界", "下载软体，坐计程车", "资讯𠀀𠀁", "软件出租车"]
    staged = start_matcher("hyperscan", literals, NORMALISER.table)
    assert isinstance(staged, StagedBuild) and len(staged._early) == 2
    built = staged.finish(patterns)
    # as many databases as a one-step build: the last shard and the variants split in two
    assert len(built._dbs) == len(HyperscanMatcher(patterns, NORMALISER.table)._dbs) == 4 and built.dense
    expected = _scan(_build("oracle", patterns), texts)
    assert {pid for pid, *_ in expected} >= {7, 8, 9, 10}  # the variants are found
    assert _scan(built, texts) == _scan(HyperscanMatcher(patterns, NORMALISER.table), texts) == expected
    meta, buffers = built.state()  # and it goes through the cache like any other
    loaded = HyperscanMatcher.from_state(meta, buffers, NORMALISER.table)
    assert _scan(loaded, texts) == expected
    # an alphabet the variants push past two-byte codes: the one-step (wide) build
    monkeypatch.setattr(hyperscan_backend, "_MAX_DENSE", len(hyperscan_backend._slots_by_use(literals)))
    wide = start_matcher("hyperscan", literals, NORMALISER.table).finish(patterns)
    assert not wide.dense and _scan(wide, texts) == expected
    with pytest.raises(ValueError, match="begin with its literals"):
        start_matcher("hyperscan", literals, NORMALISER.table).finish(variants + literals)
    # nothing to start early: literals beyond two-byte codes, or too few for two databases
    monkeypatch.setattr(hyperscan_backend, "_MAX_DENSE", 3)
    for staged in (start_matcher("hyperscan", literals, NORMALISER.table),
                   start_matcher("hyperscan", literals[:1], NORMALISER.table)):
        assert staged._early == []
    assert _scan(start_matcher("hyperscan", literals, NORMALISER.table).finish(patterns), texts) == expected


@pytest.mark.parametrize("backend", ["aho", "oracle"])
def test_other_backends_build_in_one_step(backend):
    from screener.matchers import start_matcher

    staged = start_matcher(backend, ["赌博"], NORMALISER.table)
    assert _scan(staged.finish(["赌博", "网赌"]), ["网赌博"]) == [(0, 0, 1, 3), (1, 0, 0, 2)]
