"""Terms written in pinyin (issue 10, item 2), on every backend.

Rows: (name, text, expected hits as (term, matched original text, variant)).
Spellings are automatic: the lexicon below is plain terms. The category
``placeholder`` stands for an operator-supplied political category; its term
is a neutral placeholder word.
"""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from screener import Screener, load_lexicons
from screener.explain import explain, render
from screener.judge import Engine
from screener.lexicon.pinyin import MAX_SPELLINGS, compile_pinyin, spellings, units

from .conftest import BACKENDS

LEXICON = {
    "gambling": """
        赌博
        allow: 打赌博
    """,
    "banking": "银行卡\n",  # 行: xing and hang
    "spam": "qq号\n",  # a Latin unit: qq + hao
    "fraud": "代开 + 发票 ; within=10\n",
    "drugs": "大麻\n麻\n",  # 麻 alone: one syllable, never spelt
    "services": "出售 ; mode=substring\n阿姨\n",
    "placeholder": "占位词\n",
    "greens": "绿茶\n",  # ü: lv or lu
    "slogans": "天天向上\n",  # a repeated character
}

WRITTEN = [
    # a part in pinyin counts as wide as its characters for within= (found by a span probe)
    ("combination, both parts in pinyin", "。daikai各类fapiao。", [("代开+发票", "daikai各类fapiao", "pinyin")]),
    ("ruby in brackets", "赌(dǔ)博(bó)", [("赌博", "赌(dǔ)博(bó)", "pinyin")]),
    ("ruby after each character", "赌dǔ博bó", [("赌博", "赌dǔ博bó", "pinyin")]),
    ("ruby, one character", "来赌(du)博吧", [("赌博", "赌(du)博", "pinyin")]),
    ("ruby, spaced", "赌 du 博 bo", [("赌博", "赌 du 博 bo", "pinyin")]),
    ("all pinyin", "一起dubo吧", [("赌博", "dubo", "pinyin")]),
    ("mixed case", "来DuBo", [("赌博", "DuBo", "pinyin")]),
    ("upper case", "来DUBO", [("赌博", "DUBO", "pinyin")]),
    ("full-width letters", "来ＤＵＢＯ", [("赌博", "ＤＵＢＯ", "pinyin")]),
    ("separator between syllables", "来du-bo", [("赌博", "du-bo", "pinyin")]),
    ("space between syllables", "来 du bo 吧", [("赌博", "du bo", "pinyin")]),
    ("tone marks", "来 dǔ bó", [("赌博", "dǔ bó", "pinyin")]),
    ("first character in pinyin", "网上du博", [("赌博", "du博", "pinyin")]),
    ("last character in pinyin", "网上赌bo", [("赌博", "赌bo", "pinyin")]),
    ("in an English sentence", "他说 I like du bo a lot", [("赌博", "du bo", "pinyin")]),
    ("three characters, middle in pinyin", "办张银hang卡", [("银行卡", "银hang卡", "pinyin")]),
    ("heteronym hang", "办yinhangka", [("银行卡", "yinhangka", "pinyin")]),
    ("heteronym xing", "办 yin xing ka", [("银行卡", "yin xing ka", "pinyin")]),
    ("Han character with its other reading", "yin行ka", [("银行卡", "yin行ka", "pinyin")]),
    ("term with a Latin unit", "加qqhao", [("qq号", "qqhao", "pinyin")]),
    ("term with a Latin unit, spaced", "加 QQ hao", [("qq号", "QQ hao", "pinyin")]),
    ("the literal term is literal", "加QQ号", [("qq号", "QQ号", "literal")]),
    ("combination part in pinyin", "代开 fapiao 找我", [("代开+发票", "代开 fapiao", "pinyin")]),
    ("substring term", "有chushou", [("出售", "chushou", "pinyin")]),
    ("placeholder term", "说 zhan wei ci", [("占位词", "zhan wei ci", "pinyin")]),
    ("ü as v", "喝lvcha", [("绿茶", "lvcha", "pinyin")]),
    ("ü as u", "喝lucha", [("绿茶", "lucha", "pinyin")]),
    ("ü written", "喝lǜ chá", [("绿茶", "lǜ chá", "pinyin")]),
    ("one-letter syllable", "请个a yi", [("阿姨", "a yi", "pinyin")]),
    ("one-letter ruby", "阿(ā)姨(yí)", [("阿姨", "阿(ā)姨(yí)", "pinyin")]),
    ("full-width brackets", "赌（dǔ）博（bó）了", [("赌博", "赌（dǔ）博（bó）", "pinyin")]),
    ("a bracket the span did not open stays out", "(赌dǔ博bó)", [("赌博", "赌dǔ博bó", "pinyin")]),
    ("repeated character, the repeat in pinyin", "天tian向上", [("天天向上", "天tian向上", "pinyin")]),
    ("repeated character with ruby", "天(tiān)天(tiān)向上", [("天天向上", "天(tiān)天(tiān)向上", "pinyin")]),
    ("a letter as a character reference", "来&#100;ubo", [("赌博", "&#100;ubo", "pinyin")]),
    ("two hits in one post", "dubo和dama", [("赌博", "dubo", "pinyin"), ("大麻", "dama", "pinyin")]),
    # tones typed as digits (found by an evasion probe)
    ("tone digits", "来du4bo2", [("赌博", "du4bo2", "pinyin")]),
    ("tone digit before a Han character", "网上du3博", [("赌博", "du3博", "pinyin")]),
    ("tone digits as ruby", "赌du3博bo2", [("赌博", "赌du3博bo2", "pinyin")]),
]

NOT_HITS = [
    ("inside a longer Latin word", "Mr dubois"),
    ("letters before it", "xdubo"),
    ("pinyin run without spaces", "woxiangdubo"),
    ("syllable cut by a space", "du b o"),
    ("word boundary inside a syllable", "d ubo"),
    ("homophone character", "杜bo"),  # the opt-in homophone feature, not pinyin
    ("initials are never generated", "db"),
    ("one-character term", "mama ma"),
    ("English word holding the letters", "Ladamas"),
    ("allow entry written in pinyin", "打du博"),
    ("all letters in a post without Han characters", "I like dubo"),
    ("allow entry in ruby", "打赌(dǔ)博"),
    ("the word check at a CJK edge", "du博彩"),  # cuts through 博彩
    ("literal term is not a pinyin hit", "赌博"),
    ("a number is no tone", "来du45bo"),
    ("a digit out of the tone range", "来du7bo"),
]


@pytest.fixture(scope="module")
def screeners(tmp_path_factory) -> dict[str, Screener]:
    root = tmp_path_factory.mktemp("pinyin")
    for name, body in LEXICON.items():
        (root / f"{name}.txt").write_text(textwrap.dedent(body), encoding="utf-8")
    lexicons = load_lexicons(root)
    return {backend: Screener(lexicons, backend) for backend in BACKENDS}


def _hits(screener: Screener, text: str) -> list[tuple[str, str, str]]:
    hits = screener.screen([text])[0].hits
    assert all(h.matched == text[h.start:h.end] for h in hits)  # offsets point at what the author wrote
    return [(h.rule.label, h.matched, h.variant) for h in hits if h.variant == "pinyin"]


@pytest.mark.parametrize(("name", "text", "expected"), WRITTEN, ids=[r[0] for r in WRITTEN])
def test_written_in_pinyin(screeners, backend, name, text, expected):
    hits = screeners[backend].screen([text])[0].hits
    assert [(h.rule.label, h.matched, h.variant) for h in hits] == expected
    assert all(h.matched == text[h.start:h.end] for h in hits)


@pytest.mark.parametrize(("name", "text"), NOT_HITS, ids=[r[0] for r in NOT_HITS])
def test_not_a_pinyin_hit(screeners, backend, name, text):
    assert _hits(screeners[backend], text) == []


def test_allow_entry_suppresses_the_pinyin_hit_with_a_reason(screeners):
    decisions = screeners["aho"].screen(["打dubo"])[0].decisions  # 打 is Han: rule 4 holds
    assert [(d.hit.rule.label, d.kept) for d in decisions] == [("赌博", False)]
    assert "allow entry" in decisions[0].reason


def test_word_check_applies_at_a_cjk_edge(screeners):
    decisions = screeners["aho"].screen(["du博彩"])[0].decisions
    assert [(d.hit.variant, d.kept) for d in decisions] == [("pinyin", False)]
    assert "博彩" in decisions[0].reason


def test_many_posts_in_one_batch_keep_their_own_offsets(screeners, backend):
    texts = ["普通的一天", "来dubo", "iPhone很好用", "网上du博", "", "赌(dǔ)博(bó)", "OK lol wifi", "dubo"]
    results = screeners[backend].screen(texts)
    assert [[h.matched for h in r.hits] for r in results] == [[], ["dubo"], [], ["du博"], [], ["赌(dǔ)博(bó)"], [], []]


def test_bulk_and_per_post_verification_agree(screeners):
    screener = screeners["aho"]
    texts = ["来dubo", "打du博", "du博彩", "我想 yin hang ka", "赌dǔ博bó好", "说zhanweici", "杜bo"]
    found = screener.pinyin.find(texts)
    assert found  # the pass found candidates to verify
    bulk = screener.verifier.verify_many(texts, found)
    for index, candidates in found.items():
        assert screener.verifier.verify(texts[index], candidates) == bulk[index]


def test_no_latin_letters_no_work(screeners):
    """Posts without a seed never reach the pass's refold (the gate)."""
    p = screeners["aho"].pinyin
    assert p.gated(["今天天气不错", "iPhone很好用", "OK", "lol"]) == []
    assert p.gated(["今天天气不错", "我要du博"]) == [1]
    assert p.gated(["阿a姨", "大a"]) == [0]  # one letter after a term's character it is a reading of (ruby)


ACTIONS = [
    # written wholly in pinyin a term is ambiguous (no tones): a recall term only flags
    ("pinyin only", "来dubo", "flag"),
    ("pinyin only, spaced", "来 du bo 吧", "flag"),
    ("a character of the term kept", "来du博", "recall"),
    ("ruby keeps the characters", "赌(dǔ)博(bó)", "recall"),
    ("a flag term stays a flag", "买yinhangka", "flag"),
    ("a combination wholly in pinyin, + between", "。daikai+各类+fapiao。", "flag"),
    # the kept character is read folded (a review: 賭bo and &#36172;bo had been capped)
    ("a traditional character of the term kept", "来賭bo", "recall"),
    ("a character of the term as a reference", "来&#36172;bo", "recall"),
]


@pytest.mark.parametrize(("name", "text", "action"), ACTIONS, ids=[r[0] for r in ACTIONS])
def test_a_term_written_wholly_in_pinyin_flags_at_most(make_lexicon, backend, name, text, action):
    root = make_lexicon({"gambling": "赌博 ; action=recall\n", "banking": "银行卡\n", "fraud": "代开 + 发票 ; action=recall\n"})
    screening = Screener(load_lexicons(root), backend).screen([text])[0]
    assert [h.variant for h in screening.hits] == ["pinyin"]
    assert (screening.action, [h.to_event()["action"] for h in screening.hits]) == (action, [action])


def test_explain_says_why_a_pinyin_hit_asks_less_than_its_term(make_lexicon):
    """Found by a review: explain showed the capped flag as the lexicon's own."""
    screener = Screener(load_lexicons(make_lexicon({"gambling": "赌博 ; action=recall\n"})), "aho")
    report = explain(Engine.of(screener), "来 du bo 吧")
    assert [(c["action"], c["term_action"]) for c in report["candidates"]] == [("flag", "recall")]
    assert "flag: the term says recall, but it is written wholly in pinyin" in render(report)


def test_explain_shows_the_pinyin_hit(screeners):
    report = explain(Engine.of(screeners["aho"]), "来 du bo 吧")
    assert [(c["term"], c["matched"], c["variant"], c["kept"]) for c in report["candidates"]] == [
        ("赌博", "du bo", "pinyin", True)]
    assert "'du bo' = '赌博' written as pinyin" in render(report)


def test_scan_reports_pinyin_hits(tmp_path, capsys, screeners):
    import orjson

    from screener.cli import main

    root = screeners["aho"].lexicons.directory
    posts = tmp_path / "posts.jsonl"
    posts.write_bytes(b"".join(orjson.dumps({"id": i, "text": t}) + b"\n"
                               for i, t in enumerate(["来dubo", "普通的一天", "赌(dǔ)博(bó)"])))
    assert main(["scan", "--progress", "off", "--policy", "none", "--lexicons", root, str(posts)]) == 0
    events = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["post_id"], [(h["term"], h["matched"], h["variant"]) for h in e["hits"]]) for e in events] == [
        (0, [("赌博", "dubo", "pinyin")]), (2, [("赌博", "赌(dǔ)博(bó)", "pinyin")])]


# -- compiling spellings ------------------------------------------------------------
def test_heteronyms_give_every_reading():
    found = units("银行")
    assert found is not None
    spelt, total = spellings(found)
    assert total == 3 and {"".join(s) for s in spelt} == {"yinxing", "yinhang", "yinheng"}
    assert spelt[0] == ("yin", "xing")  # the primary reading first


def test_which_terms_get_spellings():
    assert units("赌") is None  # one character
    assert units("3p") is None and units("一夜3次") is None  # digits
    assert units("sb") is None  # no Han character
    assert [u for u, _ in units("k粉")] == ["k", "粉"]  # type: ignore[union-attr]


def test_the_cap_keeps_the_likeliest_and_is_reported(make_lexicon, capsys):
    from screener.cli import main

    root = make_lexicon({"x": "重重行行\n银行\n"})
    spelt = compile_pinyin(load_lexicons(root).rules)
    assert spelt.capped and spelt.capped[0][2] == 81  # 3 x 3 x 3 x 3 readings
    assert sum(1 for r in spelt.rule.tolist() if r == 0) == MAX_SPELLINGS
    assert spelt.texts[0] == "zhong'zhong'xing'xing"
    assert main(["lexicon", "check", str(root)]) == 0
    out, err = capsys.readouterr()
    assert "term '重重行行' has 81 pinyin spellings" in err
    assert f"OK: pinyin: {MAX_SPELLINGS + 3} spellings of 2 entries, 1 capped at {MAX_SPELLINGS}" in out


def test_spellings_survive_the_cache_encoding(screeners):
    from screener.lexicon.pinyin import PinyinPatterns

    spelt = screeners["aho"].lexicons.pinyin
    meta, sections = spelt.encode()
    back = PinyinPatterns.decode(meta, {k: memoryview(bytes(v)) for k, v in sections.items()})
    assert back.texts == spelt.texts and back.capped == spelt.capped and back.longest == spelt.longest
    assert back.rule.tolist() == spelt.rule.tolist() and back.part.tolist() == spelt.part.tolist()
    assert back.chars == spelt.chars and back.chars["行"] == ("xing", "hang", "heng")
    assert back.vocabulary() == spelt.vocabulary() >= {u for t in spelt.texts for u in t.split("'")}


def test_the_pass_never_loads_pypinyin(tmp_path):
    """From the compiled cache, screening needs no pypinyin (its table costs ~0.3 s to load)."""
    import subprocess
    import sys

    from .conftest import LEXICONS

    code = ("import sys; from screener.judge import Engine; "
            f"e = Engine.build({str(LEXICONS)!r}, None, 'aho', {str(tmp_path)!r}); "
            "print(e.posts.screen(['来dubo'])[0].hits[0].variant, 'pypinyin' in sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)  # fills the cache
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.split() == ["pinyin", "False"]


# -- properties -----------------------------------------------------------------------
_PIECES = ["赌", "博", "银", "行", "卡", "阿", "姨", "打", "彩", "杜", "du", "bo", "DU", "yin", "hang", "xing",
           "ka", "a", "yi", "da", "dǔ", "bó", " ", "-", "(", ")", "x", "iPhone", "，", "3", "&#100;", "<b>", "</p>"]
_POSTS = st.lists(st.lists(st.sampled_from(_PIECES), max_size=12).map("".join), min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(texts=_POSTS)
def test_batches_and_verification_agree_on_pinyin(screeners, texts):
    """A post's pinyin candidates do not depend on its batch, both
    verification paths agree on them, and every hit is what the author wrote."""
    screener = screeners["aho"]
    found = screener.pinyin.find(texts)
    for i, text in enumerate(texts):
        alone = screener.pinyin.find([text]).get(0, [])
        assert found.get(i, []) == alone
        norm = screener.lexicons.normaliser.normalise(text).text
        assert all(0 <= c.start < c.end <= len(norm) for c in alone)
    bulk = screener.verifier.verify_many(texts, found)
    for i, candidates in found.items():
        assert screener.verifier.verify(texts[i], candidates) == bulk[i]
        assert all(h.matched == texts[i][h.start:h.end] for h in bulk[i][0])


@pytest.mark.parametrize("before,post,hit", [
    ("<p>see</p>", "赌<b>bo</b>", "赌<b>bo"),
    ("<b>OK</b>", "来<b>du</b>bo", "du</b>bo"),
    ("&#107;", "&#20320;dubo", "dubo"),
    ("x</i>", "来<i>dubo", "dubo"),
])
@pytest.mark.parametrize("gate", ["numpy", "compiled"])
def test_a_pinyin_hit_does_not_depend_on_the_post_before(screeners, before, post, hit, gate, monkeypatch):
    """Letters joined by markup are one word only when nothing but markup is
    between them: "see</p>" and the next post's "<b>bo" were read as one
    word "seebo" across the post boundary, and the second post's pinyin was
    missed (found by a hostile-input probe; in the worker too, where two
    posts of one author often share a poll batch). Both gates: the compiled
    one once numba folds."""
    from screener import compact

    if gate == "numpy":
        monkeypatch.setattr(compact, "letter_word_seeds", lambda *args: None)
    elif compact.load() != "numba":
        pytest.skip("numba does not import here")
    for screener in screeners.values():
        for texts in ([post], [before, post], [before, "一", post]):
            [result] = [r for i, r in enumerate(screener.screen(texts)) if i == len(texts) - 1]
            assert [(h.rule.label, h.matched, h.variant) for h in result.hits] == [("赌博", hit, "pinyin")], texts


_GATE_PIECES = [*_PIECES, "zhuang", "lol", "OK", "wifi", "b", "ǔ", "&amp;", "<b>", "\x00", "ü", "ａ", "Ｄｕ", "q",
                "&#98;o", "赌d", "博b", "😀"]


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(st.lists(st.sampled_from(_GATE_PIECES), max_size=14).map("".join), min_size=1, max_size=8))
def test_the_compiled_gate_is_the_numpy_gate(screeners, texts):
    """compact.letter_word_seeds (once numba folds) picks the posts the numpy
    passes of PinyinPass.gated pick, on the main pass's encoding and without."""
    from screener import compact

    if compact.load() != "numba":
        pytest.skip("numba does not import here")
    screener = screeners["aho"]
    batch = screener.lexicons.normaliser.encode_batch(texts, screener.matcher.alphabet)
    compiled = (screener.pinyin.gated(texts, batch), screener.pinyin.gated(texts))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compact, "letter_word_seeds", lambda *args: None)
        assert (screener.pinyin.gated(texts, batch), screener.pinyin.gated(texts)) == compiled
