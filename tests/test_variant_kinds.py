"""Every hit says how the author wrote it (issue 10, item 5), on every backend.

Rows: (text, the hit's matched original text, variant kind). The lexicon's
terms are written in Simplified characters; the posts write them as the row
says. Kinds made by other passes (repeat, pinyin, homophone, split, shape)
have their own tests next to those passes.
"""

from __future__ import annotations

import jsonschema
import orjson
import pytest

from screener import Screener, load_lexicons
from screener.explain import explain, render
from screener.judge import Engine
from screener.lexicon.model import VARIANT_KINDS

from .conftest import ROOT

LEXICON = {"gambling": "赌博\n", "spam": "互联网 ; mode=substring\n", "abuse": "傻逼\n"}

ROWS = [
    ("我要赌博", "赌博", "literal"),
    ("我要ＤＵ赌博", "赌博", "literal"),  # width folds elsewhere in the post change nothing
    ("我要賭博", "賭博", "traditional"),
    ("我要賭-博", "賭-博", "traditional"),
    ("上網際網路看看", "網際網路", "regional"),
    ("上互聯網看看", "互聯網", "traditional"),
    ("你个傻逼", "傻逼", "literal"),
]


@pytest.fixture(scope="module")
def lexicon_dir(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("variants")
    for name, body in LEXICON.items():
        (root / f"{name}.txt").write_text(body, encoding="utf-8")
    return root


@pytest.mark.parametrize(("text", "matched", "kind"), ROWS)
def test_each_hit_carries_its_variant_kind(lexicon_dir, backend, text, matched, kind):
    screening = Screener(load_lexicons(lexicon_dir), matcher=backend).screen([text])[0]
    assert [(h.matched, h.variant) for h in screening.hits] == [(matched, kind)]
    assert screening.hits[0].to_event()["variant"] == kind
    assert kind in VARIANT_KINDS


def test_traditional_characters_are_those_the_table_folds_to_another_cjk_character(lexicon_dir):
    """The set ``_traditional`` tests against, checked code point by code
    point against the rule it stands for: a CJK character (from U+2E80)
    whose fold is another CJK character; width, case and noise folds do not
    count (Ｄ, 〇 stay literal)."""
    from screener.verify import Verifier

    verifier = Verifier(load_lexicons(lexicon_dir))
    table = verifier._table
    expected = {chr(cp) for cp in range(0x2E80, 0x110000) if cp != int(table[cp]) and 0x2E80 <= int(table[cp]) < 0x110000}
    assert verifier._refolded_cjk == expected
    assert {"賭", "聯", "裏"} <= expected and not {"赌", "Ｄ", "a"} & expected
    assert verifier._traditional("上互聯網") and not verifier._traditional("上互联网ＤＵ")


def test_a_patterns_kind_survives_the_compiled_cache(lexicon_dir):
    from screener.lexicon.tables import PatternTable

    patterns = load_lexicons(lexicon_dir).patterns
    kinds = {p.variant for p in patterns}
    assert {"literal", "regional"} <= kinds
    table = PatternTable.of(list(patterns))
    decoded = PatternTable.decode(len(table), {k: memoryview(bytes(v)) for k, v in table.encode().items()})
    assert list(decoded) == list(patterns)


def test_events_with_a_variant_kind_meet_the_schema(lexicon_dir):
    schema = orjson.loads((ROOT / "screener" / "schema" / "event.schema.json").read_bytes())
    hit_schema = {**schema["$defs"]["hit"], "$defs": schema["$defs"]}
    hit = Screener(load_lexicons(lexicon_dir)).screen(["賭博"])[0].hits[0]
    jsonschema.validate(hit.to_event(), hit_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**hit.to_event(), "variant": "unheard-of"}, hit_schema)


def test_explain_says_how_the_hit_was_written(lexicon_dir):
    report = explain(Engine.of(Screener(load_lexicons(lexicon_dir))), "我要賭博")
    assert [(c["term"], c["variant"]) for c in report["candidates"]] == [("赌博", "traditional")]
    assert "= '赌博' written as traditional" in render(report)
