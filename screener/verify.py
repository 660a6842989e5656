"""Stage: verify. Turn candidate occurrences into hits, or say why not.

Applied per post that has candidates, in this order:

1. combinations: all parts within ``within`` normalised characters;
2. allow entries: a hit lying inside an allow occurrence is suppressed;
3. word mode: a hit must not cut through a word. At a CJK edge jieba decides
   (大麻 in 这是个大麻烦 cuts 麻烦); at a Latin letter or digit edge the
   original neighbour decides (av in "have" is inside a Latin word, but av in
   "测av试" or "AV网址" is not). Neighbours are read in the original text
   because normalisation removes spaces: "I have" would otherwise read "ihave".

Every decision is recorded, which is what ``screener explain`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from typing import Sequence

from .charmap import DELETE
from .lexicon import LexiconSet, Rule
from .match import Candidate
from .normalise import Normalised
from .segment import DEFAULT_SEGMENTER, Segmenter


@dataclass(frozen=True, slots=True)
class Hit:
    rule: Rule
    start: int  # original code-point offsets, end exclusive
    end: int
    matched: str
    norm_start: int
    norm_end: int

    def to_event(self) -> dict[str, object]:
        return {
            "term": self.rule.label, "category": self.rule.category, "action": self.rule.action,
            "start": self.start, "end": self.end, "matched": self.matched, "rule_id": self.rule.id,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """What verification did with one candidate hit (for explain and audit)."""

    hit: Hit
    kept: bool
    reason: str


def _edge_kind(ch: str) -> str:
    if ch.isascii() and ch.isalpha():
        return "latin"
    if ch.isdigit():
        return "digit"
    if ch.isalpha():
        # Latin letters beyond ASCII (é) behave like Latin, not like CJK.
        return "latin" if ord(ch) < 0x2E80 else "cjk"
    return "other"


class Verifier:
    def __init__(self, lexicons: LexiconSet, segmenter: Segmenter = DEFAULT_SEGMENTER) -> None:
        self.lexicons = lexicons
        self.segmenter = segmenter
        self._table = lexicons.normaliser.table

    def verify(self, text: str, candidates: Sequence[Candidate]) -> tuple[list[Hit], list[Decision]]:
        norm = self.lexicons.normaliser.normalise(text)
        rules = self.lexicons.rules
        allow = [c for c in candidates if rules[c.rule].kind == "allow"]
        proposed = self._terms(norm, candidates) + self._combos(norm, candidates)
        decisions = [self._decide(norm, hit, allow) for hit in proposed]
        decisions.sort(key=lambda d: (d.hit.start, d.hit.end, d.hit.rule.id))
        return [d.hit for d in decisions if d.kept], decisions

    # -- proposing hits -------------------------------------------------------
    def _hit(self, norm: Normalised, rule: Rule, start: int, end: int) -> Hit:
        o_start, o_end = norm.span(start, end)
        return Hit(rule, o_start, o_end, norm.original[o_start:o_end], start, end)

    def _terms(self, norm: Normalised, candidates: Sequence[Candidate]) -> list[Hit]:
        seen: set[tuple[int, int, int]] = set()
        hits = []
        for c in candidates:
            rule = self.lexicons.rules[c.rule]
            key = (c.rule, c.start, c.end)
            if rule.kind == "term" and key not in seen:
                seen.add(key)
                hits.append(self._hit(norm, rule, c.start, c.end))
        return hits

    def _combos(self, norm: Normalised, candidates: Sequence[Candidate]) -> list[Hit]:
        rules = self.lexicons.rules
        parts = sorted((c for c in candidates if rules[c.rule].kind == "combo"), key=lambda c: c.rule)
        hits = []
        for index, group in groupby(parts, key=lambda c: c.rule):
            rule = rules[index]
            found = list(group)
            if rule.mode == "word":
                found = [c for c in found if self._cut(norm, c.start, c.end) is None]
            span = _smallest_window(found, len(rule.parts), rule.within or 0)
            if span is not None:
                hits.append(self._hit(norm, rule, *span))
        return hits

    # -- judging hits ---------------------------------------------------------
    def _decide(self, norm: Normalised, hit: Hit, allow: Sequence[Candidate]) -> Decision:
        for a in allow:
            if a.start <= hit.norm_start and hit.norm_end <= a.end:
                entry = self.lexicons.rules[a.rule]
                return Decision(hit, False, f"inside allow entry {entry.label!r} ({entry.path}:{entry.line})")
        if hit.rule.mode == "word" and hit.rule.kind == "term":
            cut = self._cut(norm, hit.norm_start, hit.norm_end)
            if cut is not None:
                return Decision(hit, False, cut)
        return Decision(hit, True, "kept" if hit.rule.mode == "substring" else "kept: on word boundaries")

    def _cut(self, norm: Normalised, start: int, end: int) -> str | None:
        """Why ``[start, end)`` cuts through a word, or None if it does not."""
        text = norm.text
        first, last = _edge_kind(text[start]), _edge_kind(text[end - 1])
        o_start, o_end = norm.span(start, end)
        before, after = self._folded(norm.original, o_start - 1), self._folded(norm.original, o_end)
        for kind, neighbour, index in ((first, before, o_start - 1), (last, after, o_end)):
            if kind in ("latin", "digit") and neighbour and _edge_kind(neighbour) == kind:
                what = "Latin word" if kind == "latin" else "number"
                return f"inside a {what} (next to {norm.original[index]!r})"
        # A CJK edge next to punctuation, space or the end of the post is a
        # word boundary already, and so is one that no dictionary word spans;
        # only the rest needs jieba (the costly part of verification).
        check_start = first == "cjk" and bool(before) and self.segmenter.spanned(text, start)
        check_end = last == "cjk" and bool(after) and self.segmenter.spanned(text, end)
        if check_start or check_end:
            tokens = self.segmenter.tokens(text, start, end)
            for word, s, e in tokens:
                if (check_start and s < start < e) or (check_end and s < end < e):
                    return f"cuts through the word {word!r} ({' / '.join(t[0] for t in tokens)})"
        return None

    def _folded(self, original: str, index: int) -> str:
        """The folded original character at ``index`` ('' if none or noise)."""
        if not 0 <= index < len(original):
            return ""
        code = self._table[ord(original[index])]
        return "" if code == DELETE else chr(code)


def _smallest_window(found: Sequence[Candidate], n_parts: int, within: int) -> tuple[int, int] | None:
    """Smallest ``[start, end)`` holding every part, if no wider than ``within``."""
    occurrences = sorted(found, key=lambda c: (c.start, c.end))
    best: tuple[int, int] | None = None
    for i, first in enumerate(occurrences):
        latest: dict[int, Candidate] = {}
        for c in occurrences[i:]:
            latest.setdefault(c.part, c)
            if len(latest) == n_parts:
                end = max(x.end for x in latest.values())
                if end - first.start <= within and (best is None or end - first.start < best[1] - best[0]):
                    best = (first.start, end)
                break
    return best
