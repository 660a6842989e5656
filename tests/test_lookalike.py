"""Opt-in homophone, look-alike and split spellings (issue 10, item 3).

Rows run on every matcher backend. The political category carries a neutral
placeholder term (占位词), never a real one.
"""

from __future__ import annotations

import pytest

from screener import LexiconError, Screener, load_lexicons
from screener.cli import main
from screener.explain import explain, render
from screener.judge import Engine
from screener.lexicon import lookalike
from screener.lexicon.lookalike import generate
from screener.lexicon.tables import PatternTable
from screener.segment import DEFAULT_SEGMENTER

FILES = {
    "gambling": "赌博 ; variants=homophone\n赌场 ; variants=shape\n",
    "weapons": "枪支 ; variants=split\n",
    "drugs": "冰毒 ; variants=homophone+shape+split\n",
    "spam": "微信 ; variants=homophone ; mode=substring\n代开 + 发票 ; variants=homophone\n",
    "national_security": "占位词\n占位句 ; variants=none\n",
    "fraud_illegal_services": "办证\n",  # no option: no variants
}
MANIFEST = """
[categories.national_security]
variants = ["homophone", "shape", "split"]
"""

# (text, [(matched, variant kind, term)]): the hit's original characters and what it stands for
ROWS = [
    ("今晚堵博吗", [("堵博", "homophone", "赌博")]),
    ("今晚赌博吗", [("赌博", "literal", "赌博")]),
    ("今晚睹博吗", [("睹博", "homophone", "赌博")]),  # 睹 sounds like 赌 (dǔ): the homophone option finds it
    ("去睹场玩", [("睹场", "shape", "赌场")]),  # 赌场 has shapes only
    ("去笃场玩", []),  # ... so the homophone 笃场 passes
    ("出售木仓支", [("木仓支", "split", "枪支")]),  # a split variant spans both components
    ("出售木 仓支", [("木 仓支", "split", "枪支")]),  # noise inside the split still folds away
    ("出售木仓", []),  # 木仓 alone is not the term 枪支
    ("买冰丰毋", [("冰丰毋", "split", "冰毒")]),
    ("买冰毐", [("冰毐", "shape", "冰毒")]),
    ("买兵毒", [("兵毒", "homophone", "冰毒")]),
    ("加危信聊", [("危信", "homophone", "微信")]),
    ("他很有威信", []),  # 威信 is a word: never generated
    ("可以带开发票", []),  # 带开 is a word (the combination's part keeps its homophones but not that one)
    ("可以贷开发票", [("贷开发票", "homophone", "代开+发票")]),
    ("这是站位词", [("站位词", "homophone", "占位词")]),  # the category's kinds
    ("这是卜口位词", [("卜口位词", "split", "占位词")]),
    ("这是站位句", []),  # variants=none turns the category's kinds off for this term
    ("这是占位句", [("占位句", "literal", "占位句")]),
    ("去办正", []),  # 办证 opted into nothing
]


@pytest.fixture(scope="module")
def lexicon_dir(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("lookalike")
    for name, body in FILES.items():
        (root / f"{name}.txt").write_text(body, encoding="utf-8")
    (root / "categories.toml").write_text(MANIFEST, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def lexicons(lexicon_dir):
    return load_lexicons(lexicon_dir)


@pytest.mark.parametrize(("text", "expected"), ROWS, ids=[r[0] for r in ROWS])
def test_each_kind_matches_with_the_authors_span(lexicons, backend, text, expected):
    screening = Screener(lexicons, matcher=backend).screen([text])[0]
    got = [(h.matched, h.variant, h.rule.label) for h in screening.hits]
    assert got == expected
    for hit in screening.hits:
        assert text[hit.start:hit.end] == hit.matched  # offsets point at exactly what the author wrote


def test_dictionary_words_are_never_generated(lexicons):
    texts = {p.text for p in lexicons.patterns}
    assert "威信" not in texts and "带开" not in texts
    # ... though the tables alone would make them: the filter is what stops them
    unfiltered = {v for v, _ in generate([("微信", frozenset({"homophone"}))], is_word=lambda w: False).variants[0]}
    assert "威信" in unfiltered
    # the peers' complaint: a name 如琪 in the lexicon flagged every 如其 (rú qí)
    [ruqi] = generate([("如琪", frozenset({"homophone"}))], DEFAULT_SEGMENTER.is_word).variants
    [unfiltered_ruqi] = generate([("如琪", frozenset({"homophone"}))], is_word=lambda w: False).variants
    assert "如其" in {v for v, _ in unfiltered_ruqi} and "如其" not in {v for v, _ in ruqi}
    for p in lexicons.patterns:
        if p.variant in ("homophone", "shape", "split"):
            assert not DEFAULT_SEGMENTER.is_word(p.text), p.text


def test_no_variants_unless_opted_in(make_lexicon):
    plain = load_lexicons(make_lexicon({"gambling": "赌博\n枪支\n"}))
    assert {p.variant for p in plain.patterns} <= {"literal", "regional"}
    assert plain.lookalikes is None


def test_per_term_cap_keeps_every_character_in_turn():
    [found] = generate([("赌博", frozenset({"homophone"}))], is_word=lambda w: False, per_term=4).variants
    assert len(found) == 4
    changed = {next(i for i, (a, b) in enumerate(zip("赌博", v)) if a != b) for v, _ in found}
    assert changed == {0, 1}  # both characters, not four spellings of the first


def test_caps_are_reported():
    terms = [(t, frozenset({"homophone"})) for t in ("赌博", "冰毒", "黄色")]
    per_term = generate(terms, is_word=lambda w: False, per_term=3)
    assert per_term.capped == [0, 1, 2] and all(len(v) == 3 for v in per_term.variants)
    shared = generate(terms, is_word=lambda w: False, per_term=3, per_set=6)
    assert shared.share == 2 and [len(v) for v in shared.variants] == [2, 2, 2]  # an equal share, not 3, 3, 0
    assert shared.capped == [0, 1, 2] and shared.set_capped_at is None
    starved = generate(terms, is_word=lambda w: False, per_term=3, per_set=2)  # fewer than one a term
    assert starved.share == 1 and [len(v) for v in starved.variants] == [1, 1, 0]
    assert starved.set_capped_at == 2


def test_lexicon_check_reports_counts_and_caps(make_lexicon, monkeypatch, capsys):
    root = make_lexicon({"gambling": "赌博 ; variants=homophone+shape\n冰毒 ; variants=split\n"})
    monkeypatch.setattr(lookalike, "PER_TERM", 4)
    assert main(["lexicon", "check", str(root)]) == 0
    out = capsys.readouterr().out
    # shapes first, so a cap keeps the few curated ones before the many homophones
    assert f"look-alike variants: 4 shape, 2 split (cap 4 a term, {lookalike.PER_SET} a set)" in out  # 毒 splits two ways
    assert f"1 terms reached the cap of 4 variants: {root / 'gambling.txt'}:1 赌博" in out


def test_set_cap_shares_out_and_is_a_warning(make_lexicon, monkeypatch, capsys):
    root = make_lexicon({"gambling": "赌博 ; variants=homophone\n冰毒 ; variants=homophone\n黄色 ; variants=homophone\n"})
    monkeypatch.setattr(lookalike, "PER_SET", 12)
    assert main(["lexicon", "check", "--strict", str(root)]) == 1
    captured = capsys.readouterr()
    assert (f"{root / 'gambling.txt'}:1: 3 terms ask for look-alike variants: to stay within the set's cap of 12, "
            "each gets at most 4 instead of 32") in captured.err
    assert "look-alike variants: 12 homophone (cap 4 a term, 12 a set)" in captured.out


BAD = [
    ("赌博 ; variants=", "variants= must name one or more of split, shape, homophone, none, joined by '+'"),
    ("赌博 ; variants=sound", "variants=sound names an unknown kind 'sound' (known: split, shape, homophone, none)"),
    ("赌博 ; variants=homophone+homophone", "variants=homophone+homophone names a kind twice"),
    ("赌博 ; variants=none+split", "variants=none+split cannot combine 'none' with other kinds"),
    ("赌博 ; variants=split+", "variants=split+ must name one or more"),
    ("allow: 赌博网 ; variants=split", "option 'variants' does not apply to an allow entry"),
]


@pytest.mark.parametrize(("line", "reason"), BAD, ids=[b[0] for b in BAD])
def test_bad_variants_option_is_path_line_reason(make_lexicon, line, reason):
    root = make_lexicon({"gambling": f"冰毒\n{line}\n"})
    with pytest.raises(LexiconError) as caught:
        load_lexicons(root)
    assert f"{root / 'gambling.txt'}:2: {reason}" in str(caught.value)


BAD_MANIFESTS = [
    ('variants = "homophone"', "category 'gambling': variants must be an array of 'split', 'shape', 'homophone', not 'homophone' (a string)"),
    ('variants = ["sound"]', "category 'gambling': variants names an unknown kind 'sound'"),
    ('variants = ["split", "split"]', "category 'gambling': variants names a kind twice"),
    ("variants = [1]", "category 'gambling': variants must be an array of"),
]


@pytest.mark.parametrize(("field", "reason"), BAD_MANIFESTS, ids=[b[0] for b in BAD_MANIFESTS])
def test_bad_variants_field_is_path_line_reason(make_lexicon, field, reason):
    root = make_lexicon({"gambling": "冰毒\n"}, f"[categories.gambling]\naction = \"flag\"\n{field}\n")
    with pytest.raises(LexiconError) as caught:
        load_lexicons(root)
    assert f"{root / 'categories.toml'}:3: {reason}" in str(caught.value)


def test_same_term_with_other_variants_is_a_conflict(make_lexicon):
    root = make_lexicon({"gambling": "赌博 ; variants=split\n赌博 ; variants=homophone\n"})
    with pytest.raises(LexiconError) as caught:
        load_lexicons(root)
    assert "gambling.txt:2: term '赌博' conflicts with" in str(caught.value)
    assert "(variants split/homophone)" in str(caught.value)


def test_the_variant_kinds_survive_the_compiled_cache(lexicons):
    table = PatternTable.of(list(lexicons.patterns))
    decoded = PatternTable.decode(len(table), {k: memoryview(bytes(v)) for k, v in table.encode().items()})
    assert list(decoded) == list(lexicons.patterns)
    assert {"homophone", "shape", "split"} <= {p.variant for p in decoded}


def test_a_cached_set_keeps_its_summary(lexicon_dir, tmp_path):
    from screener.cache import Cache
    from screener.compiled import load_compiled, store_compiled
    from screener.matchers import build_matcher

    fresh = load_lexicons(lexicon_dir)
    cache = Cache(tmp_path / "cache")
    assert store_compiled(fresh, build_matcher("aho", fresh.patterns.texts, fresh.normaliser.table), cache)
    loaded = load_compiled(lexicon_dir, "aho", cache)
    assert loaded is not None and loaded[0].lookalikes == fresh.lookalikes


def test_explain_names_the_kind_and_the_term(lexicons):
    report = explain(Engine.of(Screener(lexicons)), "出售木仓支")
    assert [(c["term"], c["variant"], c["matched"]) for c in report["candidates"]] == [("枪支", "split", "木仓支")]
    assert "'木仓支' = '枪支' written as split" in render(report)


def test_the_documented_data_and_caps_match_the_shipped_files():
    """README and lexicons/README.md quote sizes and caps; they must not drift."""
    from .conftest import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    lexicons_readme = (ROOT / "lexicons" / "README.md").read_text(encoding="utf-8")
    data = ROOT / "screener" / "data"

    def rows(name: str) -> int:
        return sum(1 for line in (data / name).read_text(encoding="utf-8").splitlines() if line and not line.startswith("#"))

    assert f"{rows('chaizi.tsv'):,} characters split into two components" in readme
    assert f"{rows('shapes.txt')} groups of look-alike characters" in readme
    assert f"the {rows('common_chars.txt'):,} most frequent characters" in readme
    assert f"each term gets at most {lookalike.PER_TERM} variants and the set\n  {lookalike.PER_SET:,}" in readme
    assert f"beyond {lookalike.PER_SET // lookalike.PER_TERM:,} opted-in terms" in readme
    assert f"At most {lookalike.PER_TERM} variants a term" in lexicons_readme
    assert f"at most {lookalike.PER_SET:,} for the\n  set" in lexicons_readme
    assert "CC BY 3.0" in (data / "chaizi.tsv").read_text(encoding="utf-8").split("\n", 3)[1]


def test_the_evasion_benchmark_smoke_run(tmp_path):
    """benchmarks/evasion.py --quick: runs, writes its table, JSON and PNG, and
    its own gate (plain terms between words are found) holds."""
    import json
    import subprocess
    import sys

    from .conftest import ROOT

    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "evasion.py"), "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "evasion-quick.json").read_text(encoding="utf-8"))
    rows = {r["transform"]: r for r in result["rows"]}
    assert {"literal", "homophone", "split", "shape (UTS #39)", "pinyin for all", "repeat"} <= rows.keys()
    assert rows["literal"]["recall"] >= 0.9 and rows["homophone"]["plants"] > 0
    assert result["clean"]["options on"]["posts"] == 1000
    assert "| transform | plants | recall | exact span |" in (tmp_path / "evasion-quick.md").read_text(encoding="utf-8")
    assert (tmp_path / "evasion-quick.png").stat().st_size > 10_000
