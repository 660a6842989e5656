"""Conformance with peer keyword-filter libraries (../shared/conformance).

Every case runs through screener in the equivalent configuration:

* noise skipping on, unless the peer case turns it off (then the noise set is
  empty: ``[normalise] noise_categories = []``);
* Latin- or digit-edged terms in ``word`` mode where the peer library has
  English word boundaries (houbb/sensitive-word by default, ToolGood's
  IllegalWordsSearch, flashtext), ``substring`` otherwise; CJK terms in
  ``substring`` mode, because no peer segments Chinese (our jieba check is an
  addition, tested in test_screening.py);
* every matcher backend answers alike (each case runs on each);
* all overlapping hits are reported; for a peer's "first hit" API the first
  of ours is compared. screener does not mask text, so ``expected_masked`` is
  not compared; the hits behind a mask are.

``DIVERGENCES`` lists, by line of peer_cases.jsonl, each case where screener
answers differently on purpose, with the reason. The test checks that those
cases really do differ, so the list cannot go stale.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from screener import Screener, load_lexicons
from screener.verify import _edge_kind

from .conftest import SHARED

CASES_FILE = SHARED / "conformance" / "peer_cases.jsonl"
CASES = (
    [json.loads(line) for line in CASES_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    if CASES_FILE.exists() else []
)

_NUMERALS = "Chinese numerals are not folded to digits: 一/二/三 are too common (一个, 一些) and folding them would corrupt jieba segmentation of every post"
_REPEAT = "repeated Latin letters are not collapsed (CJK runs are): in Latin terms a doubled letter is spelling (qq, www, book), and a collapsed qq would be a one-letter pattern firing on every q"
_CJK_REPEAT = "repeated CJK characters collapse (issue 10): 东东西 reads 东西, so 一个东西 and 有一个东西 hit too, as repeats"
_OVERLAP = "screener reports every overlapping hit (the strictest decides); it has no shortest-first, leftmost-longest or non-overlapping masking mode"
_ALNUM = "a letter next to a digit is a word boundary for screener (houbb: 1av2 hits av); ToolGood treats a whole alphanumeric run as one word"

DIVERGENCES: dict[int, str] = {
    7: _REPEAT,
    9: _NUMERALS,
    10: _NUMERALS,
    33: _OVERLAP + " (peer: fail fast, shortest word only)",
    43: "terms are normalised like text: 'http://' becomes 'http' (lexicon check warns), so the URL's http hits too",
    45: _REPEAT,
    46: _REPEAT,
    50: _ALNUM,
    52: "noise set: screener treats all punctuation as noise, so 我[爱赌]博 reads 我爱赌博 and that term hits too",
    56: _REPEAT + " (fFuck reads ffuck)",
    57: "regex-like wildcard terms ('.[赌彩]博') are not offered: lexicon terms are literals",
    58: _CJK_REPEAT + " (the first hit is then 有一个东西)",
    61: _CJK_REPEAT,
    62: _OVERLAP + " (peer: non-overlapping replace)",
    68: _OVERLAP + " (peer: flashtext leftmost-longest)",
    71: "which characters are word characters is not configurable ('/' is always a boundary)",
    72: _OVERLAP + " (peer: hutool shortest match, matched text skipped)",
    73: _OVERLAP + " (peer: hutool greedy match, matched text skipped)",
    76: _OVERLAP + " (peer: hutool greedy masking)",
    77: _OVERLAP + " (peer: hutool greedy masking)",
}

_ENGLISH_BOUNDARY_SOURCES = ("houbb/sensitive-word", "vi3k6i5/flashtext")


def _english_boundaries(case: dict) -> bool:
    config = case.get("config", {})
    condition = str(config.get("wordResultCondition", ""))
    if "alwaysTrue" in condition:
        return False
    if config.get("class") == "IllegalWordsSearch":
        return True
    return case["source"].startswith(_ENGLISH_BOUNDARY_SOURCES)


def _noise_off(case: dict) -> bool:
    config = case.get("config", {})
    return str(config.get("charIgnore", "")).startswith("none") or config.get("UseSkipWordFilter") is False


def _line(term: str, english: bool) -> str:
    latin = {_edge_kind(term[0]), _edge_kind(term[-1])} & {"latin", "digit"}
    return f"{term} ; mode={'word' if english and latin else 'substring'}"


def run_case(case: dict, tmp_path: Path, backend: str = "auto") -> dict:
    root = tmp_path / "lex"
    root.mkdir(exist_ok=True)
    english = _english_boundaries(case)
    lines = [_line(t, english) for t in case["lexicon"]] + [f"allow: {a}" for a in case.get("allowlist", [])]
    (root / "peer.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    manifest = "[normalise]\nnoise_categories = []\n" if _noise_off(case) else ""
    (root / "categories.toml").write_text(manifest + "[categories.peer]\naction = 'flag'\n", encoding="utf-8")
    lexicons = load_lexicons(root)
    hits = list(Screener(lexicons, backend).screen([case["text"]])[0].hits)
    if str(case.get("config", {}).get("method", "")).startswith("Validate"):
        hits = hits[:1]
    # A term is reported as the lexicon spells it (runs kept: 二二, not 二).
    expected = lexicons.normaliser.fold_many(list(case["expect_hits"]), collapse=False)
    return {
        "terms": sorted({h.rule.label for h in hits}),
        "expected_terms": sorted(set(expected)),
        "count": len(hits),
        "spans": sorted({h.matched for h in hits}),
    }


def _agrees(case: dict, got: dict) -> bool:
    if got["terms"] != got["expected_terms"]:
        return False
    if "expected_hit_count" in case and got["count"] != case["expected_hit_count"]:
        return False
    if "matched_spans" in case and not set(case["matched_spans"]) <= set(got["spans"]):
        return False
    return True


@pytest.mark.skipif(not CASES, reason="../shared/conformance not present")
@pytest.mark.parametrize("line", range(1, len(CASES) + 1))
def test_peer_case(line, tmp_path, backend):
    case = CASES[line - 1]
    got = run_case(case, tmp_path, backend)
    if line in DIVERGENCES:
        assert not _agrees(case, got), f"case {line} now agrees with the peer; remove it from DIVERGENCES"
    else:
        assert _agrees(case, got), f"case {line} ({case['feature']}): {got}"


def test_divergences_have_reasons():
    assert all(reason.strip() for reason in DIVERGENCES.values())
    assert all(1 <= line <= len(CASES) for line in DIVERGENCES) or not CASES
