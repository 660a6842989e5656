"""Verification in bulk gives exactly the answers of per-post verification.

``Verifier.verify_many`` (what screening runs) refolds a batch's candidate
posts in numpy passes (``screener.refold``) and answers every word-boundary
question in one compiled call (``screener.boundary``: jieba's dictionary as a
trie, the spanned-edge pre-filter, jieba's segmentation step for step).
``Verifier.verify`` (normalise one post, ask jieba) is the reference; these
tests hold the bulk path to it on generated posts, on every backend, and the
compiled segmentation to jieba itself.
"""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import jieba
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from screener import Screener, boundary, load_lexicons
from screener.match import find_candidates, group_by_post
from screener.normalise import Normaliser
from screener.refold import refold
from screener.segment import DEFAULT_SEGMENTER

from .conftest import BACKENDS, SHARED

pytestmark = pytest.mark.skipif(boundary.load() != "numba", reason="numba is not available: verification runs per post")

NEWS = SHARED / "corpus" / "news_1998_01.txt"


def _dictionary_words() -> list[str]:
    """jieba's words by frequency (2-16 characters), the commonest first."""
    path = Path(jieba.__file__).parent / "dict.txt"
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        word, freq, *_ = line.split(" ")
        if len(word) >= 2 and all("\u4e00" <= c <= "\u9fff" for c in word):
            rows.append((-int(freq), word))
    return [w for _, w in sorted(rows)]


ALL_WORDS = _dictionary_words()
WORDS = [w for w in ALL_WORDS if len(w) <= 4]
COMMON = WORDS[:3000]
#: Ordinary words as lexicon terms, so that running text is full of candidates
#: whose edges jieba has to judge; every shape of rule besides.
DENSE_TERMS = WORDS[200:1200:3]
LEXICON = {
    "ordinary": "\n".join(DENSE_TERMS) + "\n",
    "tricky": """
        大麻
        赌博
        麻
        冰毒 ; action=recall
        av
        sb
        fuck
        qq123
        8888
        加微信 ; mode=substring
        中国 ; mode=substring
        时时彩
        妈妈
        操你妈
        网贷秒批
        网贷
        110 ; mode=substring
        代开 + 发票 ; within=10 ; action=recall
        发展 + 经济 ; within=6
        人民 + 政府 ; within=12 ; mode=substring
        allow: 参加微信
        allow: 打赌博
        allow: 中国人民
        allow: 经济发展
    """,
}
#: Long words (5-16 characters) with a lexicon term inside, after its fourth
#: character: only they span an edge from that far away.
LONG = [w for w in ALL_WORDS if len(w) >= 5 and any(t in w[4:] for t in DENSE_TERMS)][:2000]
SENTENCES = (
    [l.strip() for l in NEWS.read_text(encoding="utf-8").splitlines() if l.strip()] if NEWS.exists() else []
)

_NOISE = ["*", " ", "\u200b", "😀", "👍🏻", "<b>", "</b>", "<br>", "<li>", "&nbsp;", "&#36172;", "&amp;", "&", "<3", "A&B", "a<b",
          "，", "。", "\ufe0f", "\r\n", "\x00", "·", "-", "+", "%", "#", "_", "."]
_LATIN = ["av", "AV", "have", "sb", "SB", "Middlesb", "fuck", "ＦＵＣＫ", "ok", "T恤", "b超", "qq123", "QQ1234"]
_DIGITS = ["1", "8888", "88888", "2026", "１２", "3.5", "٣"]
_TERM_PARTS = ["大麻", "赌博", "冰毒", "加微信", "参加微信", "代开", "发票", "打赌博", "中国人民", "经济发展", "麻烦",
               "这是个大麻烦", "我打赌博士明天会来", "人民政府", "發展經濟", "賭博",
               # repeats and separators (issue 10): terms that spell a run, their
               # collapsed forms, and text that glues to a term (价格网/贷)
               "时时彩", "时彩", "妈妈", "妈", "操你妈", "网贷秒批", "价格网贷", "网贷款", "1110", "110"]


@st.composite
def _piece(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["word", "term", "noise", "latin", "digits", "sentence", "dense", "long"]))
    if kind == "word":
        return draw(st.sampled_from(COMMON))
    if kind == "term":
        return draw(_written(draw(st.sampled_from(_TERM_PARTS))))
    if kind == "dense":
        return draw(st.sampled_from(DENSE_TERMS))
    if kind == "long":
        return draw(st.sampled_from(LONG))
    if kind == "noise":
        return draw(st.sampled_from(_NOISE))
    if kind == "latin":
        return draw(st.sampled_from(_LATIN))
    if kind == "digits":
        return draw(st.sampled_from(_DIGITS))
    if not SENTENCES:
        return draw(st.sampled_from(COMMON)) + draw(st.sampled_from(COMMON))
    line = draw(st.sampled_from(SENTENCES))
    a = draw(st.integers(0, len(line)))
    return line[a:a + draw(st.integers(1, 60))]


@st.composite
def _written(draw: st.DrawFn, term: str) -> str:
    """A term as evaders write it: as it is, with noise in every gap, in some
    gaps only, or with a character repeated (noise between the repeats or not)."""
    how = draw(st.sampled_from(["plain", "every gap", "some gaps", "repeat"]))
    noise = draw(st.sampled_from(_NOISE))
    if how == "every gap":
        return noise.join(term)
    if how == "some gaps" and len(term) > 2:
        i = draw(st.integers(1, len(term) - 1))
        return term[:i] + noise + term[i:]
    if how == "repeat":
        i = draw(st.integers(0, len(term) - 1))
        between = draw(st.sampled_from(["", noise]))
        return term[:i] + between.join(term[i] * draw(st.integers(2, 4))) + term[i + 1:]
    return term


_POST = st.lists(_piece(), min_size=0, max_size=12).map("".join)
_BATCH = st.lists(_POST, min_size=1, max_size=8)


@pytest.fixture(scope="module")
def screeners(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Screener]:
    root = tmp_path_factory.mktemp("lexicon")
    for name, body in LEXICON.items():
        (root / f"{name}.txt").write_text(textwrap.dedent(body), encoding="utf-8")
    lexicons = load_lexicons(root)
    return {backend: Screener(lexicons, backend) for backend in BACKENDS}


def _per_post(screener: Screener, texts: list[str]) -> dict:
    _, found = find_candidates(screener.lexicons, screener.matcher, texts)
    return {i: screener.verifier.verify(texts[i], c) for i, c in found.items()}


def _bulk(screener: Screener, texts: list[str]) -> dict:
    _, found = find_candidates(screener.lexicons, screener.matcher, texts)
    return screener.verifier.verify_many(texts, found)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(texts=_BATCH)
def test_verify_many_equals_verify_per_post(screeners, backend, texts):
    """Every hit, every decision and every reason, on every backend."""
    screener = screeners[backend]
    assert _bulk(screener, texts) == _per_post(screener, texts)


CLAUSE_SPLIT = ["昨天去赌，博客没更新", "他的儿子叫小军，火气很大", "小军，火气", "来玩赌，博，日赚千元", "他说大，麻烦你了", "这是个大。麻烦",
                "我打赌，博士明天会来", "赌\n博\n吧", "打，赌博士", "网。贷，秒。批", "大麻，烦死了"]


def test_a_clause_split_term_reads_each_edge_in_its_own_clause(screeners, backend):
    """Found by an evasion probe: jieba read 小军，火气 without the comma and
    kept 军火 (小/军火/气). Each edge is now read within its clause, in bulk
    as per post."""
    screener = screeners[backend]
    assert _bulk(screener, CLAUSE_SPLIT) == _per_post(screener, CLAUSE_SPLIT)
    kept = {i: [d.hit.matched for d in decisions if d.kept] for i, (_, decisions) in _bulk(screener, CLAUSE_SPLIT).items()}
    assert "赌，博" not in kept.get(0, [])  # 去/赌博/客 read whole; 博客 in its own clause
    assert "赌，博" in kept.get(3, [])  # 来玩赌，博，日赚千元: taken apart, and kept


def _unfiltered(screener: Screener, texts: list[str]) -> dict:
    """Candidates as the matcher reports them, before ``drop_short_runs``."""
    batch = screener.lexicons.normaliser.encode_batch(texts, screener.matcher.alphabet)
    return group_by_post(screener.lexicons, batch, screener.matcher.scan(batch))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(texts=_BATCH)
def test_runs_are_checked_alike_before_and_in_verification(screeners, backend, texts, monkeypatch):
    """Both verification paths hold raw candidates to their runs alike, and
    dropping short runs before verification (``find_candidates``, here made
    to drop from the first occurrence) changes no answer, only the work."""
    from screener import match

    monkeypatch.setattr(match, "_DROP_FROM", 1)
    screener = screeners[backend]
    raw = _unfiltered(screener, texts)
    per_post = {i: screener.verifier.verify(texts[i], c) for i, c in raw.items()}
    assert screener.verifier.verify_many(texts, raw) == per_post
    decided = {i: answer for i, answer in per_post.items() if answer != ([], [])}
    assert {i: answer for i, answer in _per_post(screener, texts).items() if answer != ([], [])} == decided


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(texts=_BATCH)
def test_jieba_after_the_prefilter_equals_verify_per_post(screeners, texts, monkeypatch):
    """``SCREENER_SEGMENT=jieba``: the pre-filter in bulk, then jieba itself."""
    monkeypatch.setenv("SCREENER_SEGMENT", "jieba")
    screener = screeners[BACKENDS[0]]
    assert _bulk(screener, texts) == _per_post(screener, texts)


@pytest.mark.skipif(not SENTENCES, reason="../shared/corpus not present")
def test_news_corpus_verifies_the_same_in_bulk(screeners):
    """A real-text sweep: 2,000 news lines in batches, against the dense lexicon."""
    screener = screeners[BACKENDS[0]]
    lines = random.Random(12).sample(SENTENCES, 2000)
    for i in range(0, len(lines), 500):
        batch = lines[i:i + 500]
        assert _bulk(screener, batch) == _per_post(screener, batch)


# -- the compiled segmentation is jieba's -------------------------------------------------
_ALPHABET = st.sampled_from(
    list("大麻烦这是个赌博士打我明天会来中国人民经济发展的了和在有不") + list("abcXYZ019+#&._%-")
    + [" ", "\r", "\n", "\r\n", "，", "。", "😀", "\u9fd6", "\u9fa5", "\u3400", "ａ", "é", "٣"]
)
_WINDOW = st.lists(st.one_of(_ALPHABET, st.sampled_from(COMMON)), max_size=30).map("".join)


@settings(max_examples=1000, deadline=None)
@given(text=_WINDOW)
def test_compiled_segmentation_is_jiebas(text):
    tokenizer = DEFAULT_SEGMENTER._get()
    expected = [(s, e) for _, s, e in tokenizer.tokenize(text, HMM=False)]
    assert boundary.tokenize(DEFAULT_SEGMENTER.trie(), text) == expected


@pytest.mark.skipif(not SENTENCES, reason="../shared/corpus not present")
def test_compiled_segmentation_is_jiebas_on_news():
    tokenizer = DEFAULT_SEGMENTER._get()
    trie = DEFAULT_SEGMENTER.trie()
    for line in random.Random(7).sample(SENTENCES, 1000):
        assert boundary.tokenize(trie, line) == [(s, e) for _, s, e in tokenizer.tokenize(line, HMM=False)], line


# -- the batch's normalised form is each post's --------------------------------------------
_RAW = st.lists(st.one_of(st.sampled_from(_NOISE + _LATIN + _TERM_PARTS), st.text(max_size=5),
                          st.sampled_from(_TERM_PARTS).flatmap(_written)), max_size=8).map("".join)


@settings(max_examples=500, deadline=None)
@given(texts=st.lists(_RAW, min_size=1, max_size=6))
def test_refold_reads_each_post_as_normalise_does(texts):
    normaliser = Normaliser()
    posts = refold(normaliser, texts)
    for p, text in enumerate(texts):
        norm = normaliser.normalise(text)
        assert posts.post_text(p) == norm.text
        n = len(norm.text)
        assert [posts.span(p, i, j) for i in range(n) for j in range(i + 1, min(n, i + 3) + 1)] == [
            norm.span(i, j) for i in range(n) for j in range(i + 1, min(n, i + 3) + 1)
        ]
        post = posts.post(p)
        assert posts.runs[posts.nstart[p]:posts.nstart[p + 1]].tolist() == norm.runs
        assert [post.runs_of(i, j) for i in range(n) for j in range(i + 1, n + 1)] == [
            norm.runs_of(i, j) for i in range(n) for j in range(i + 1, n + 1)
        ]
        assert [post.separated(i, j) for i in range(n) for j in range(i + 1, n + 1)] == [
            norm.separated(i, j) for i in range(n) for j in range(i + 1, n + 1)
        ]


def test_bulk_runs_here_and_a_few_posts_never_load_numba(monkeypatch):
    """The property tests above compare the bulk path, not per post with
    itself: numba's loops are loaded in this module, so every batch goes in
    bulk. A process that has not loaded them verifies per post until it has
    had ``BULK_FROM`` candidate posts (one post must not wait ~0.4 s for
    numba), in one batch or over several, and then loads them."""
    from screener import compact, verify
    from screener.verify import BULK_FROM, Verifier

    assert Verifier._bulk(1)
    loads: list[int] = []
    monkeypatch.setattr(boundary, "_warm", lambda: loads.append(1))
    for batches in ([BULK_FROM], [BULK_FROM - 10, 9, 1]):
        monkeypatch.setattr(boundary, "_STATE", None)
        monkeypatch.setattr(compact, "_IMPLEMENTATION", None)
        monkeypatch.setattr(verify, "_alone", 0)
        loads.clear()
        assert [Verifier._bulk(n) for n in batches] == [False] * (len(batches) - 1) + [True]
        assert loads == [1] and boundary.loaded() and Verifier._bulk(1)
    monkeypatch.setattr(boundary, "_STATE", None)
    monkeypatch.setattr(compact, "_IMPLEMENTATION", "numba")  # a process that folds with numba: bulk at once
    monkeypatch.setattr(verify, "_alone", 0)
    assert Verifier._bulk(1)
