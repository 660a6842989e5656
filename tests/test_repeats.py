"""Repeated characters and separators as evidence (issue 10, items 1 and 4), on every backend.

Rows: (name, text, expected hits as (term, matched original text, variant)).
Every hit's offsets are checked too: ``text[start:end] == matched``.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from screener import Screener, load_lexicons
from screener.cli import main
from screener.lexicon.tables import PatternTable
from screener.compact import COLLAPSE_FROM
from screener.normalise import Normaliser, collapse_runs

LEXICON = {
    "spam": """
        加微信
        allow: 参加微信
    """,
    "abuse": """
        操你妈
        妈妈
        哈哈 ; mode=substring
    """,
    "gambling": """
        时时彩
        赌博
        代开 + 发票 ; within=10
    """,
    "fraud": """
        网贷秒批
        110 ; mode=substring
        qq ; mode=substring
        fuck
    """,
}

ROWS = [
    # -- item 1: a repeated character, anywhere in the term ------------------------------
    ("repeat inside", "加微微信", [("加微信", "加微微信", "repeat")]),
    ("repeat inside, in a sentence", "有事加微微信", [("加微信", "加微微信", "repeat")]),
    ("repeat before: the span starts at the first", "操操操你妈", [("操你妈", "操操操你妈", "repeat")]),
    ("trailing run: the span ends after the last", "赌博博博", [("赌博", "赌博博博", "repeat")]),
    ("noise between repeats", "加微*微信", [("加微信", "加微*微信", "repeat")]),
    ("a run with separators around it", "赌-赌-博", [("赌博", "赌-赌-博", "repeat")]),
    ("Traditional and repeats: repeat is the stronger kind", "賭賭博", [("赌博", "賭賭博", "repeat")]),
    ("a Traditional run of a Simplified character", "賭赌博", [("赌博", "賭赌博", "repeat")]),
    ("Traditional, no repeat", "賭博", [("赌博", "賭博", "traditional")]),
    ("literal stays literal", "加微信", [("加微信", "加微信", "literal")]),
    # -- terms whose meaning needs the doubling --------------------------------------------
    ("时时彩 as spelled", "买时时彩", [("时时彩", "时时彩", "literal")]),
    ("时彩 is not 时时彩", "买时彩", []),
    ("时时时彩 is 时时彩 repeated", "买时时时彩", [("时时彩", "时时时彩", "repeat")]),
    ("时-时彩: as spelled, with a separator", "时-时彩", [("时时彩", "时-时彩", "literal")]),
    ("妈妈 as spelled", "妈妈", [("妈妈", "妈妈", "literal")]),
    ("妈 alone is not 妈妈", "我妈", []),
    ("妈妈妈 is 妈妈 repeated", "妈妈妈", [("妈妈", "妈妈妈", "repeat")]),
    ("哈 is not 哈哈", "哈", []),
    ("哈哈哈哈 is 哈哈 repeated", "哈哈哈哈", [("哈哈", "哈哈哈哈", "repeat")]),
    # -- combinations and allow entries see the collapsed text -----------------------------
    ("a combination with a repeated part", "代代开各类发票", [("代开+发票", "代代开各类发票", "repeat")]),
    ("an allow entry covers a repeated hit", "参加微微信", []),
    # -- Latin letters and digits never collapse -------------------------------------------
    ("digits: 110 inside 1110 (substring)", "拨1110", [("110", "110", "literal")]),
    ("digits: 10 is not 110", "拨10", []),
    ("letters: qq inside qqq (substring, two occurrences)", "加qqq",
     [("qq", "qq", "literal"), ("qq", "qq", "literal")]),
    ("letters: fuuuck is not fuck", "fuuuck", []),
    # -- item 4: separators in every gap are evidence ----------------------------------
    ("glued, no separators: jieba suppresses", "价格网贷秒批", []),
    ("a separator in every gap next to text that glues", "价格网、贷-秒|批", [("网贷秒批", "网、贷-秒|批", "literal")]),
    ("spaces in every gap", "价格网 贷 秒 批", [("网贷秒批", "网 贷 秒 批", "literal")]),
    ("a separator in some gaps only: the check applies", "价格网贷-秒|批", []),
    ("separators in every gap but the run's", "价格网网、贷-秒|批", [("网贷秒批", "网网、贷-秒|批", "repeat")]),
    ("a full stop in a gap is a sentence end, not a disguise", "价格网。贷、秒、批", []),
    ("separated at the end, glued after it", "赌-博彩", [("赌博", "赌-博", "literal")]),
]


@pytest.fixture(scope="module")
def lexicon_dir(tmp_path_factory: pytest.TempPathFactory):
    import textwrap

    root = tmp_path_factory.mktemp("repeats")
    for name, body in LEXICON.items():
        (root / f"{name}.txt").write_text(textwrap.dedent(body), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def lexicons(lexicon_dir):
    return load_lexicons(lexicon_dir)


@pytest.mark.parametrize(("name", "text", "expected"), ROWS, ids=[r[0] for r in ROWS])
def test_table(lexicons, backend, name, text, expected):
    screening = Screener(lexicons, matcher=backend).screen([text])[0]
    got = sorted((h.rule.label, h.matched, h.variant) for h in screening.hits)
    assert got == sorted(expected), name
    for hit in screening.hits:
        assert text[hit.start:hit.end] == hit.matched


@pytest.mark.parametrize("drop_from", [1, 256], ids=["dropped-before-verification", "dropped-in-verification"])
@pytest.mark.parametrize(("name", "text", "expected"), ROWS, ids=[r[0] for r in ROWS])
def test_table_in_one_batch(lexicons, backend, name, text, expected, drop_from, monkeypatch):
    """The same rows screened together (bulk verification), between other
    posts; short runs dropped by ``match.drop_short_runs`` (which a batch with
    many such occurrences does) or left to verification (a batch with few)."""
    from screener import match

    monkeypatch.setattr(match, "_DROP_FROM", drop_from)
    texts = ["时", text, "妈"]
    screening = Screener(lexicons, matcher=backend).screen(texts)[1]
    assert sorted((h.rule.label, h.matched, h.variant) for h in screening.hits) == sorted(expected), name


def test_why_a_separated_hit_was_kept(lexicons):
    from screener.verify import Verifier
    from screener.match import find_candidates

    screener = Screener(lexicons)
    text = "价格网、贷-秒|批"
    _, found = find_candidates(lexicons, screener.matcher, [text])
    _, decisions = Verifier(lexicons).verify(text, found[0])
    assert [(d.hit.rule.label, d.kept, d.reason) for d in decisions] == [
        ("网贷秒批", True, "kept: a separator in every gap (CJK edges not checked)")
    ]


def test_patterns_are_collapsed_and_keep_their_runs(lexicons):
    by_label = {lexicons.rules[p.rule].label: p for p in lexicons.patterns}
    assert (by_label["时时彩"].text, by_label["时时彩"].runs) == ("时彩", (2, 1))
    assert (by_label["妈妈"].text, by_label["妈妈"].runs) == ("妈", (2,))
    assert (by_label["加微信"].text, by_label["加微信"].runs) == ("加微信", ())
    assert (by_label["110"].text, by_label["110"].runs) == ("110", ())  # digits never collapse
    # and the compiled cache keeps the runs
    table = PatternTable.of(list(lexicons.patterns))
    decoded = PatternTable.decode(len(table), {k: memoryview(bytes(v)) for k, v in table.encode().items()})
    assert list(decoded) == list(lexicons.patterns)


def test_lexicon_check_reports_every_collapsed_term(lexicon_dir, capsys):
    assert main(["lexicon", "check", "--strict", str(lexicon_dir)]) == 0  # notes do not fail --strict
    notes = [line for line in capsys.readouterr().err.splitlines() if line.endswith("[note]")]
    assert notes == [
        f"{lexicon_dir / 'abuse.txt'}:3: term '妈妈' is matched as '妈': repeated characters fold to one; "
        "a post must still repeat them (2 妈) [note]",
        f"{lexicon_dir / 'abuse.txt'}:4: term '哈哈' is matched as '哈': repeated characters fold to one; "
        "a post must still repeat them (2 哈) [note]",
        f"{lexicon_dir / 'gambling.txt'}:2: term '时时彩' is matched as '时彩': repeated characters fold to one; "
        "a post must still repeat them (2 时) [note]",
    ]


@pytest.mark.parametrize(("folded", "expected"), [
    ("时时彩", ("时彩", (2, 1))),
    ("操操操你妈", ("操你妈", (3, 1, 1))),
    ("1100", ("1100", (1, 1, 1, 1))),
    ("qq", ("qq", (1, 1))),
    ("a赌赌a", ("a赌a", (1, 2, 1))),
    ("", ("", ())),
    ("赌博网站", ("赌博网站", (1, 1, 1, 1))),  # nothing doubled: the fast path
    ("a\n\nb", ("a\n\nb", (1, 1, 1, 1))),
])
def test_collapse_runs(folded, expected):
    assert collapse_runs(folded) == expected


def _collapse_reference(folded: str) -> tuple[str, tuple[int, ...]]:
    """The rule by runs (not the module's loop): a run of a CJK character
    is one character with its length, any other run stays as written."""
    text: list[str] = []
    runs: list[int] = []
    for ch, group in itertools.groupby(folded):
        n = len(list(group))
        collapses = ord(ch) >= COLLAPSE_FROM
        text += [ch] if collapses else [ch] * n
        runs += [n] if collapses else [1] * n
    return "".join(text), tuple(runs)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="赌博时彩aq1\n 𠀀", max_size=12))
def test_collapse_runs_fast_path_is_the_rule(folded):
    assert collapse_runs(folded) == _collapse_reference(folded)


def test_collapse_runs_is_the_fold_loops_rule():
    """The lexicon's collapse (Python) and the post fold (numpy/numba) agree."""
    n = Normaliser()
    for text in ["时时彩", "賭赌博博", "1100qq", "妈-妈", "ａａ赌赌", "哈哈哈哈"]:
        folded = n.fold_many([text], collapse=False)[0]
        assert collapse_runs(folded) == (n.fold_string(text), tuple(n.normalise(text).runs))


def test_explain_says_a_hit_was_written_with_repeats(lexicons):
    from screener.explain import explain, render
    from screener.judge import Engine

    report = explain(Engine.of(Screener(lexicons)), "有事加微微信")
    assert [(c["term"], c["variant"], c["start"], c["end"]) for c in report["candidates"]] == [("加微信", "repeat", 2, 6)]
    assert "[2,6) '加微微信' = '加微信' written as repeat" in render(report)
