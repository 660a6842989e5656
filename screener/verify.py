"""Stage: verify. Turn candidate occurrences into hits, or say why not.

Applied per post that has candidates, in this order:

1. combinations: all parts within ``within`` normalised characters;
2. allow entries: a hit lying inside an allow occurrence is suppressed;
3. word mode: a hit must not cut through a word. At a CJK edge jieba decides
   (大麻 in 这是个大麻烦 cuts 麻烦); at a Latin letter or digit edge the
   original neighbour decides (av in "have" is inside a Latin word, but av in
   "测av试" or "AV网址" is not). Neighbours are read in the original text
   because normalisation removes spaces: "I have" would otherwise read "ihave".
   A term whose every gap holds a separator (网、贷-秒|批) skips the CJK edge
   check: jieba reads the text without the separators and would glue the term
   to its neighbour (价格网/贷), but the separators are the evasion. Latin
   edges keep theirs: it already reads the original, and a letter touching a
   separated term makes it part of a word (a v in "a very").

Before any of it, each occurrence is held to its pattern's runs: a term that
spells a repeat (时时彩) needs the post to repeat the character as often (its
pattern is 时彩, which also occurs in plain 时彩). An occurrence where the post
repeats a character more often than the term (加微微信 for 加微信) is a hit
of variant ``repeat``.

Every decision is recorded, which is what ``screener explain`` prints.

:meth:`Verifier.verify` does all of it for one post; :meth:`Verifier.verify_many`
gives the same answers for a batch's candidate posts, with the normalisation
(:mod:`screener.refold`) and the word-boundary checks (:mod:`screener.boundary`)
done as batch work. ``verify`` stays the reference a property test holds
``verify_many`` to (``tests/test_bulk_verify.py``).
"""

from __future__ import annotations

import functools
import unicodedata
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from itertools import groupby
from typing import Any, Callable, Collection, Mapping, Protocol, Sequence

import numpy as np

from . import boundary, compact
from .charmap import DELETE, MARKUP
from .lexicon import LexiconSet, Rule
from .lexicon.model import VariantKind
from .match import Candidate
from .normalise import BLOCK_TAG, Normalised
from .refold import Refolded, refold
from .segment import DEFAULT_SEGMENTER, Segmenter

#: Candidate posts of a process from which it verifies in bulk even before
#: it uses numba (:meth:`Verifier._bulk`).
BULK_FROM = 64
_alone = 0  # candidate posts this process verified per post so far

#: Why ``[start, end)`` cuts through a word, or None: one post's answers.
Cut = Callable[[int, int], "str | None"]


@dataclass(frozen=True, slots=True)
class Hit:
    rule: Rule
    start: int  # original code-point offsets, end exclusive
    end: int
    matched: str
    norm_start: int
    norm_end: int
    #: How the author wrote it (:data:`screener.lexicon.model.VariantKind`);
    #: ``rule.label`` is the lexicon term it stands for.
    variant: VariantKind = "literal"
    #: What this hit asks for: its term's action, but at most ``flag`` for a
    #: term written wholly in pinyin (:meth:`Verifier._hit`). Set once:
    #: every stage reads it. Empty: the term's action.
    action: str = ""

    def __post_init__(self) -> None:
        if not self.action:
            object.__setattr__(self, "action", self.rule.action)

    def to_event(self) -> dict[str, object]:
        return {
            "term": self.rule.label, "category": self.rule.category, "action": self.action,
            "start": self.start, "end": self.end, "matched": self.matched, "rule_id": self.rule.id,
            "variant": self.variant,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """What verification did with one candidate hit (for explain and audit)."""

    hit: Hit
    kept: bool
    reason: str


class PostText(Protocol):
    """What hits are made from: a post's original text and the map to it
    (:class:`screener.normalise.Normalised`, or :class:`screener.refold.RefoldedPost`)."""

    @property
    def original(self) -> str: ...

    def span(self, start: int, end: int) -> tuple[int, int]: ...

    def runs_of(self, start: int, end: int) -> list[int]:
        """Run lengths of normalised ``[start, end)``, or ``[]`` if each is one."""
        ...

    def separated(self, start: int, end: int) -> bool: ...

    def clause_split(self, start: int, end: int) -> bool: ...

    def marked_gaps(self, start: int, end: int) -> list[int]: ...

    def norm_text(self, start: int, end: int) -> str: ...


_KINDS = ("other", "latin", "digit", "cjk")


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
        #: Word ends of a hit's text read alone (_between_words), by text.
        self._word_bounds: dict[str, frozenset[int]] = {}
        #: Rules whose hits (or parts) must not cut through a word.
        self._word_checked = lexicons.rules.word_checked()

    def warm(self) -> None:
        """Load now what the first batch would: jieba's dictionary and, for
        verification in bulk, its trie (~1.5 s together), and the
        characters that mark a hit as traditional (~10 ms; a worker's first
        flagged post must not wait for them)."""
        self.segmenter.tokens("预热", 0, 1)
        self._refolded_cjk  # noqa: B018 - computed and kept (cached_property)
        if boundary.load() == "numba":
            self.segmenter.trie()

    def verify(self, text: str, candidates: Sequence[Candidate]) -> tuple[list[Hit], list[Decision]]:
        """One post: its kept hits and every decision (the reference path)."""
        norm = self.lexicons.normaliser.normalise(text)
        return self._verify(norm, candidates, lambda start, end: self._cut(norm, start, end))

    def verify_many(self, texts: Sequence[str], found: Mapping[int, Sequence[Candidate]]
                    ) -> dict[int, tuple[list[Hit], list[Decision]]]:
        """:meth:`verify` of ``texts[i]`` for every ``i`` in ``found``, as batch work."""
        if not found:
            return {}
        if not self._bulk(len(found)):
            return {i: self.verify(texts[i], c) for i, c in found.items()}
        order = list(found)
        posts = refold(self.lexicons.normaliser, [texts[i] for i in order])
        # Runs first: an occurrence the post's runs do not honour (the 妈 of
        # a 妈妈 pattern) is no candidate, and costs no word-boundary check.
        written = _all_as_written(posts, [found[i] for i in order])
        cuts = self._cuts(posts, written)
        return {index: self._verify(posts.post(k), written[k], _cut_of(cuts, k), True) for k, index in enumerate(order)}

    @staticmethod
    def _bulk(posts: int) -> bool:
        """Whether to verify ``posts`` candidate posts in bulk: where numba
        runs already, or once this process has had :data:`BULK_FROM`
        candidate posts, which repay loading it (~0.4 s; a ``scan`` of one
        post must not wait for that)."""
        global _alone
        if compact.current() != "numba" and not boundary.loaded() and _alone + posts < BULK_FROM:
            _alone += posts
            return False
        return boundary.load() == "numba"

    def _verify(self, post: PostText, candidates: Sequence[Candidate], cut: Cut,
                written: bool = False) -> tuple[list[Hit], list[Decision]]:
        """``written``: the candidates are :func:`_as_written` already."""
        rules = self.lexicons.rules
        if not written:
            candidates = _as_written(post, candidates)
        allow = _Allowed.of([c for c in candidates if rules[c.rule].kind == "allow"])
        proposed = self._terms(post, candidates) + self._combos(post, candidates, cut)
        decisions = [self._decide(post, hit, allow, cut) for hit in proposed]
        decisions.sort(key=lambda d: (d.hit.start, d.hit.end, d.hit.rule.id))
        return [d.hit for d in decisions if d.kept], decisions

    # -- proposing hits -------------------------------------------------------
    def _hit(self, post: PostText, rule: Rule, start: int, end: int, variant: VariantKind = "literal") -> Hit:
        o_start, o_end = post.span(start, end)
        if variant == "pinyin":
            o_end = _close_ruby(post.original, o_start, o_end)
        original = post.original
        if o_end < len(original) and not "\u4e00" <= original[o_end] <= "\u9fff":  # CJK: no mark (the common case)
            o_end = _past_extenders(original, o_end)
        matched = original[o_start:o_end]
        if variant == "literal" and self._traditional(matched):
            variant = "traditional"
        action = rule.action
        if variant == "pinyin" and action == "recall" and set(post.norm_text(start, end)).isdisjoint(rule.label.replace("+", "")):
            # Without tones pinyin is ambiguous (xuexi is 学习 far more often
            # than 血洗, bingdu is 病毒): written wholly in it, a term goes to a
            # reviewer. 冰du, 賭bo, &#36172;bo and du博 keep a character of the
            # term (read folded), which is evidence enough; a combination's hit
            # also holds the text between its parts (daikai各类fapiao).
            action = "flag"
        return Hit(rule, o_start, o_end, matched, start, end, variant, action)

    def _traditional(self, matched: str) -> bool:
        """Whether the author wrote a CJK character that folds to another one
        (賭 for 赌, 裏 for 里): width and case folds do not count."""
        return not self._refolded_cjk.isdisjoint(matched)

    @functools.cached_property
    def _refolded_cjk(self) -> frozenset[str]:
        """The characters :meth:`_traditional` looks for, found once: a set
        test per hit instead of a table look-up per character in Python
        (every hit of every flagged post asks)."""
        table = self._table[:0x110000].astype(np.int64)  # the last entry is MARKUP's, no character
        points = np.arange(len(table), dtype=np.int64)
        cjk = (points >= 0x2E80) & (table != points) & (table >= 0x2E80) & (table < 0x110000)
        return frozenset(map(chr, np.flatnonzero(cjk).tolist()))

    def _terms(self, norm: PostText, candidates: Sequence[Candidate]) -> list[Hit]:
        seen: set[tuple[int, int, int]] = set()
        hits = []
        for c in candidates:
            rule = self.lexicons.rules[c.rule]
            key = (c.rule, c.start, c.end)
            if rule.kind == "term" and key not in seen:
                seen.add(key)
                hits.append(self._hit(norm, rule, c.start, c.end, c.variant))
        return hits

    def _combos(self, norm: PostText, candidates: Sequence[Candidate], cut: Cut) -> list[Hit]:
        rules = self.lexicons.rules
        parts = sorted((c for c in candidates if rules[c.rule].kind == "combo"), key=lambda c: c.rule)
        hits = []
        for index, group in groupby(parts, key=lambda c: c.rule):
            rule = rules[index]
            found = list(group)
            if rule.mode == "word":
                found = [c for c in found if cut(c.start, c.end) is None]
            span = _smallest_window(found, rule.parts, rule.within or 0)
            if span is not None:
                hits.append(self._hit(norm, rule, *span, _combo_variant(found, *span)))
        return hits

    # -- judging hits ---------------------------------------------------------
    def _decide(self, post: PostText, hit: Hit, allow: "_Allowed", cut: Cut) -> Decision:
        a = allow.covering(hit.norm_start, hit.norm_end)
        if a is not None:
            entry = self.lexicons.rules[a.rule]
            return Decision(hit, False, f"inside allow entry {entry.label!r} ({entry.path}:{entry.line})")
        if hit.rule.kind == "term" and hit.variant != "pinyin" and post.clause_split(hit.norm_start, hit.norm_end) \
                and self._between_words(post, hit.norm_start, hit.norm_end):
            return Decision(hit, False, "a clause mark between two of its words and none in another gap: two clauses")
        if hit.rule.mode == "substring":
            return Decision(hit, True, "kept")
        if hit.rule.kind == "term":
            why = cut(hit.norm_start, hit.norm_end)
            if why is not None:
                return Decision(hit, False, why)
            if post.separated(hit.norm_start, hit.norm_end):
                return Decision(hit, True, "kept: a separator in every gap (CJK edges not checked)")
        return Decision(hit, True, "kept: on word boundaries")

    def _between_words(self, post: PostText, start: int, end: int) -> bool:
        """Whether every clause mark in ``[start, end)`` falls between two
        words of the term as jieba reads it alone: 再加，微信 (加 / 微信) is two
        clauses; 海洛.因 and 加微，信 cut a word apart, which is an evasion
        (found by a review: one mark anywhere had dropped any term)."""
        text = post.norm_text(start, end)
        bounds = self._word_bounds.get(text)
        if bounds is None:
            bounds = self._word_bounds[text] = frozenset(e for _, _, e in self.segmenter.tokens(text, 0, len(text)))
        return all(k + 1 in bounds for k in post.marked_gaps(start, end))

    def _cut(self, norm: Normalised, start: int, end: int) -> str | None:
        """Why ``[start, end)`` cuts through a word, or None if it does not."""
        text = norm.text
        first, last = _edge_kind(text[start]), _edge_kind(text[end - 1])
        o_start, o_end = norm.span(start, end)
        barriers = _barriers(norm.original) if "<" in norm.original and self.lexicons.normaliser.config.html else ()
        b_index = _past_markup(norm.points, o_start - 1, -1, barriers)
        a_index = _past_markup(norm.points, o_end, 1, barriers)
        before, after = self._folded(norm.points, b_index), self._folded(norm.points, a_index)
        for kind, neighbour, index in ((first, before, b_index), (last, after, a_index)):
            if kind in ("latin", "digit") and neighbour and _edge_kind(neighbour) == kind:
                what = "Latin word" if kind == "latin" else "number"
                return f"inside a {what} (next to {chr(norm.points[index])!r})"
        # A CJK edge next to punctuation, space or the end of the post is a
        # word boundary already, and so is one that no dictionary word spans;
        # only the rest needs jieba (the costly part of verification). A term
        # separated in every gap is not checked there at all (module docstring).
        if norm.separated(start, end):
            return None
        # Each edge is read within its own clause (_clause_bounds): the start
        # edge in the text up to the first clause mark inside, the end edge
        # from the last one; without a mark, both in the whole text.
        marks = norm.marked_gaps(start, end)
        left = text[:start + marks[0] + 1] if marks else text
        at = start + marks[-1] + 1 if marks else 0
        right = text[at:]
        check_start = first == "cjk" and bool(before) and self.segmenter.spanned(left, start)
        check_end = last == "cjk" and bool(after) and self.segmenter.spanned(right, end - at)
        if not (check_start or check_end):
            return None
        if not marks:
            return _cut_by(self.segmenter.tokens(text, start, end), start, end, check_start, check_end)
        why = None
        if check_start:
            why = _cut_by(self.segmenter.tokens(left, start, len(left)), start, len(left), True, False)
        if why is None and check_end:
            tokens = [(w, s + at, e + at) for w, s, e in self.segmenter.tokens(right, 0, end - at)]
            why = _cut_by(tokens, at, end, False, True)
        return why

    def _cuts(self, posts: Refolded, found: Sequence[Sequence[Candidate]]) -> dict[tuple[int, int, int], str | None]:
        """:meth:`_cut` of every word-mode candidate of every post, keyed
        ``(post, start, end)``: numpy passes for the neighbours, one compiled
        call for the CJK edges (:func:`screener.boundary.check_edges`)."""
        checked = self._word_checked
        asked = list(dict.fromkeys((k, c.start, c.end) for k, cs in enumerate(found) for c in cs if checked[c.rule]))
        out: dict[tuple[int, int, int], str | None] = dict.fromkeys(asked)
        if not asked:
            return out
        post, start, end = np.array(asked, dtype=np.int64).T
        gs, ge = posts.nstart[post] + start, posts.nstart[post] + end
        o_start, o_end = posts.kept[gs], posts.ends[ge - 1]
        # The folded original neighbours, as _folded reads them (DELETE: none
        # or noise), past markup (_past_markup).
        b_index, a_index = posts.past_markup(o_start - 1, o_end)
        points = posts.points
        before = np.where(b_index >= posts.ostart[post], self._table.take(points[np.maximum(b_index, 0)]), DELETE)
        after = np.where(a_index < posts.ostart[post + 1] - 1,
                         self._table.take(points[np.minimum(a_index, len(points) - 1)]), DELETE)
        k_first, k_last, k_before, k_after = _kinds(posts.codes[gs], posts.codes[ge - 1], before, after)
        at_start = np.isin(k_first, (1, 2)) & (k_before == k_first)
        latin = at_start | (np.isin(k_last, (1, 2)) & (k_after == k_last))
        for q in np.flatnonzero(latin).tolist():
            index, kind = (b_index[q], k_first[q]) if at_start[q] else (a_index[q], k_last[q])
            out[asked[q]] = f"inside a {'Latin word' if kind == 1 else 'number'} (next to {chr(points[index])!r})"
        # A CJK edge next to punctuation, space or the end of the post is a
        # word boundary already, and a term separated in every gap is not
        # checked there; the others go to the pre-filter and jieba.
        need = ((k_first == 3) & (before != DELETE)) * 1 + ((k_last == 3) & (after != DELETE)) * 2
        separated = np.zeros(len(posts.gaps) + 1, dtype=np.int64)
        np.cumsum(posts.gaps, out=separated[1:])
        apart = (ge - gs > 1) & (separated[ge - 1] - separated[gs] == ge - 1 - gs)
        ask = np.flatnonzero(need * ~latin * ~apart)
        if len(ask):
            lo, hi, qs, qe, qneed, ask = _clause_bounds(posts, post, gs, ge, need, ask)
            segment = not boundary.jieba_only()
            answers = boundary.check_edges(self.segmenter.trie(), posts.codes, lo, hi, qs, qe, qneed, segment)
            keys = [asked[q] for q in ask.tolist()]
            if segment:
                out.update(_reasons(posts.text, answers, keys))
            else:
                for j in np.flatnonzero(answers.checked).tolist():  # a start edge's query comes last, and wins
                    k, base = keys[j][0], int(posts.nstart[keys[j][0]])
                    flags, s, e = int(answers.checked[j]), int(qs[j]) - base, int(qe[j]) - base
                    at = int(lo[j]) - base
                    text = posts.post_text(k)[at:int(hi[j]) - base]
                    tokens = [(w, a + at, b + at) for w, a, b in self.segmenter.tokens(text, s - at, e - at)]
                    why = _cut_by(tokens, s, e, bool(flags & 1), bool(flags & 2))
                    if why is not None:
                        out[keys[j]] = why
        return out

    def _folded(self, points: np.ndarray, index: int) -> str:
        """The folded original character at ``index`` ('' if none or noise)."""
        if not 0 <= index < len(points):
            return ""
        code = self._table[points[index]]
        return "" if code == DELETE else chr(code)


def _past_extenders(original: str, end: int) -> int:
    """``end`` moved past the characters that extend the one before it into
    one grapheme and that the fold deletes (combining marks, variation
    selectors, skin tones, ZWJ): a span ended inside 博\u0301 or 赌博\ufe0f,
    and dropped the last tone mark of NFD pinyin (found by a span probe).
    Being noise, they leave the hit as it reads."""
    while end < len(original) and _extends(original[end]):
        end += 1
    return end


def _extends(ch: str) -> bool:
    return ch == "\u200d" or "\U0001f3fb" <= ch <= "\U0001f3ff" or unicodedata.category(ch) in ("Mn", "Me")


@functools.lru_cache(maxsize=256)  # asked once per candidate of a post
def _barriers(original: str) -> frozenset[int]:
    """Where the block tags of ``original`` start (:data:`~screener.normalise.BLOCK_TAG`)."""
    return frozenset(m.start() for m in BLOCK_TAG.finditer(original))


def _past_markup(points: np.ndarray, index: int, step: int, barriers: Collection[int] = ()) -> int:
    """``index``, or the first position from it in direction ``step`` that is
    not markup. A neighbour is read as a browser shows the text: a decoded
    character reference (大麻&#28902; is 大麻烦) and past a tag (<b>大麻</b>烦).
    Reading the raw ``;`` or ``>`` as the neighbour skipped the word check
    (a span probe: the README's own 这是个大麻烦 was recalled written so).
    A block tag's ``<`` (``barriers``) stops the walk: it reads as a break,
    and markup folds to nothing, so there is no neighbour (fuck<br>you)."""
    while 0 <= index < len(points) and points[index] == MARKUP and index not in barriers:
        index += step
    return index


def _clause_bounds(posts: Refolded, post: np.ndarray, gs: np.ndarray, ge: np.ndarray, need: np.ndarray,
                   ask: np.ndarray) -> tuple[np.ndarray, ...]:
    """The edge queries for ``ask``: (window start, window end, query start,
    query end, edges, index into the candidates) per query.

    A term with a clause mark in a gap (its kept ones have one in every gap
    that holds nothing) has each edge read within its own clause: the start
    edge in the text up to the first mark, the end edge from the last one.
    Read whole, jieba glued the term across the mark, 小军，火气 as 军火 (an
    evasion probe); words never run across clause marks. Such a query
    becomes two, the end edge's first, so that where both cut the start
    edge's reason is the one kept (as the per-post path: start first)."""
    lo, hi = posts.nstart[post[ask]], posts.nstart[post[ask] + 1]
    qs, qe, qneed = gs[ask], ge[ask], need[ask]
    marks = np.flatnonzero(posts.clauses)
    if not len(marks):
        return lo, hi, qs, qe, qneed, ask
    first = np.searchsorted(marks, qs)  # the first mark at or after the start
    last = np.searchsorted(marks, qe - 1) - 1  # the last mark before the end's gap
    split = (first < len(marks)) & (marks[np.minimum(first, len(marks) - 1)] < qe - 1)
    if not split.any():
        return lo, hi, qs, qe, qneed, ask
    c1, c2 = marks[np.minimum(first, len(marks) - 1)] + 1, marks[np.maximum(last, 0)] + 1
    whole = ~split
    ends = split & (qneed & 2 > 0)
    starts = split & (qneed & 1 > 0)
    parts = (
        (lo[whole], hi[whole], qs[whole], qe[whole], qneed[whole], ask[whole]),
        (c2[ends], hi[ends], c2[ends], qe[ends], np.full(ends.sum(), 2, dtype=np.int64), ask[ends]),
        (lo[starts], c1[starts], qs[starts], c1[starts], np.full(starts.sum(), 1, dtype=np.int64), ask[starts]),
    )
    return tuple(np.concatenate(column) for column in zip(*parts))


def _reasons(text: str, answers: boundary.EdgeAnswers, keys: Sequence[tuple[int, int, int]]
             ) -> dict[tuple[int, int, int], str]:
    """The reason of every query the compiled segmentation found cut (``text``:
    the batch's normalised text, which token positions index)."""
    cut = np.flatnonzero(answers.cut >= 0)
    if not len(cut):
        return {}
    starts, ends = answers.tok_s.tolist(), answers.tok_e.tolist()
    out = {}
    for j, c, lo, n in zip(cut.tolist(), answers.cut[cut].tolist(), answers.tok_off[cut].tolist(),
                           answers.tok_n[cut].tolist()):
        words = [text[a:b] for a, b in zip(starts[lo:lo + n], ends[lo:lo + n])]
        out[keys[j]] = _cut_reason(text[starts[c]:ends[c]], words)
    return out


def _kinds(*codes: np.ndarray) -> np.ndarray:
    """:func:`_edge_kind` of every code, as an index of ``_KINDS`` (-1 for DELETE)."""
    stacked = np.stack(codes)
    unique, inverse = np.unique(stacked, return_inverse=True)
    table = np.array([-1 if c == DELETE else _KINDS.index(_edge_kind(chr(c))) for c in unique.tolist()], dtype=np.int64)
    return table[inverse.reshape(stacked.shape)]


def _cut_by(tokens: Sequence[tuple[str, int, int]], start: int, end: int, check_start: bool, check_end: bool) -> str | None:
    for word, s, e in tokens:
        if (check_start and s < start < e) or (check_end and s < end < e):
            return _cut_reason(word, [t[0] for t in tokens])
    return None


def _cut_reason(word: str, words: Sequence[str]) -> str:
    return f"cuts through the word {word!r} ({' / '.join(words)})"


def _as_written(post: PostText, candidates: Sequence[Candidate]) -> list[Candidate]:
    """The candidates whose runs the post honours, a repeat marked as such.

    A post's run must be at least as long as the pattern's for every
    character (妈 alone is not 妈妈); where it is longer somewhere (加微微信),
    the author repeated a character, and a literal pattern's occurrence
    becomes a ``repeat`` (a pattern's own kind, regional and the evasions, is
    stronger). Nothing is recorded for an occurrence that fails: like a
    pattern that did not match, it is no hit at all.
    """
    out = []
    for c in candidates:
        runs = post.runs_of(c.start, c.end)
        if runs or c.runs:  # else: every run one, in the post and in the term
            runs = runs or [1] * (c.end - c.start)
            want = c.runs or (1,) * len(runs)
            if any(have < need for have, need in zip(runs, want)):
                continue
            if c.variant == "literal" and runs != list(want):
                c = Candidate(c.rule, c.part, c.start, c.end, "repeat", c.runs)
        out.append(c)
    return out


def _all_as_written(posts: Refolded, found: Sequence[Sequence[Candidate]]) -> list[list[Candidate]]:
    """:func:`_as_written` of every post of a refolded batch, in numpy passes:
    a lexicon of ordinary words has hundreds of terms that spell a run (天天,
    做做饭), whose patterns (天, 做饭) occur in most posts and fail here."""
    flat = [c for cs in found for c in cs]
    if not flat:
        return [[] for _ in found]
    post = np.repeat(np.arange(len(found)), [len(cs) for cs in found])
    start = np.fromiter((c.start for c in flat), dtype=np.int64, count=len(flat))
    end = np.fromiter((c.end for c in flat), dtype=np.int64, count=len(flat))
    base = posts.nstart[post]
    repeated = posts.repeats[base + end] > posts.repeats[base + start]  # some run longer than one
    failed = np.zeros(len(flat), dtype=bool)
    with_runs = np.fromiter((bool(c.runs) for c in flat), dtype=bool, count=len(flat))
    if with_runs.any():  # every character against its required run
        which = np.flatnonzero(with_runs)
        lengths = end[which] - start[which]
        owner = np.repeat(which, lengths)
        offset = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        have = posts.runs[base[owner] + start[owner] + offset]
        need = np.fromiter((r for q in which.tolist() for r in flat[q].runs), dtype=np.int64, count=len(owner))
        failed[owner[have < need]] = True
        repeated[which] = False
        repeated[owner[have > need]] = True
    out: list[list[Candidate]] = [[] for _ in found]
    for c, k, bad, more in zip(flat, post.tolist(), failed.tolist(), repeated.tolist()):
        if bad:
            continue
        if more and c.variant == "literal":
            c = Candidate(c.rule, c.part, c.start, c.end, "repeat", c.runs)
        out[k].append(c)
    return out


_CLOSERS = {"(": ")", "（": "）", "[": "]", "【": "】", "〔": "〕"}


def _close_ruby(original: str, start: int, end: int) -> int:
    """End of a pinyin hit with the bracket that closes its last ruby: the
    author wrote 赌(dǔ)博(bó), and the span covers all of it, not 赌(dǔ)博(bó."""
    text = original[start:end]
    for opener, closer in _CLOSERS.items():
        if text.count(opener) > text.count(closer) and original.startswith(closer, end):
            return end + 1
    return end


def _combo_variant(found: Sequence[Candidate], start: int, end: int) -> VariantKind:
    """A combination is written as its least literal part inside the window."""
    kinds = [c.variant for c in found if start <= c.start and c.end <= end and c.variant != "literal"]
    return kinds[0] if kinds else "literal"


class _Allowed:
    """A post's allow occurrences, found by position.

    A hit asks only those that start within the longest one's length before
    the hit's end (any other ends before it, or starts after it): asking
    every one, a post of 20,000 allow occurrences around 20,000 hits took
    9.6 s (found by a hostile-input probe). Of several that cover a hit, the
    first in post order answers, as the loop over all of them had it.
    """

    __slots__ = ("_allow", "_order", "_starts", "_longest")

    def __init__(self, allow: Sequence[Candidate]) -> None:
        self._allow = allow
        self._order = sorted(range(len(allow)), key=lambda i: allow[i].start)
        self._starts = [allow[i].start for i in self._order]
        self._longest = max((c.end - c.start for c in allow), default=0)

    @classmethod
    def of(cls, allow: Sequence[Candidate]) -> "_Allowed":
        """Nearly every post has no allow occurrence: one shared empty index
        for those, not a new one per candidate post (the per-post path)."""
        return cls(allow) if allow else _NOTHING_ALLOWED

    def covering(self, start: int, end: int) -> Candidate | None:
        """The first allow occurrence holding ``[start, end)``, if any."""
        if not self._allow:
            return None
        first = None
        for j in range(bisect_left(self._starts, end - self._longest), bisect_right(self._starts, start)):
            i = self._order[j]
            if self._allow[i].end >= end and (first is None or i < first):
                first = i
        return None if first is None else self._allow[first]


_NOTHING_ALLOWED = _Allowed(())


def _smallest_window(found: Sequence[Candidate], parts: Sequence[str], within: int) -> tuple[int, int] | None:
    """Smallest ``[start, end)`` holding every part, if no wider than ``within``.

    A part written in pinyin counts as wide as the part itself: daikai and
    fapiao are two characters each, so 。daikai各类fapiao。 fits
    ``within=12`` as 代开各类发票 does (counted in letters it was 14 and
    never hit; found by a span probe).

    From each occurrence the scan stops at the first one starting ``within``
    or more after it (no window with that one fits): scanning on to the
    first occurrence of the missing part, 20,000 of one part then 20,000 of
    the other took 24 s (found by a hostile-input probe).
    """
    occurrences = sorted(found, key=lambda c: (c.start, c.end))

    def extra(c: Candidate) -> int:  # letters beyond the part's own width
        return max(0, c.end - c.start - len(parts[c.part]))

    # A window holds one occurrence per part, so it discounts at most that
    # many times the widest extra: one holding an occurrence that starts
    # ``within + discount`` after ``first`` is too wide (0 without pinyin:
    # the early stop is as it was). The sum over every occurrence was no
    # bound worth having: 16,000 daikai made the scan quadratic again, 26 s
    # for one post (found by a review).
    discount = len(parts) * max(map(extra, occurrences), default=0)
    best: tuple[int, int] | None = None
    best_width = 0
    n = len(occurrences)
    for i, first in enumerate(occurrences):
        latest: dict[int, Candidate] = {}
        for j in range(i, n):  # not occurrences[i:]: a copy of the rest per occurrence is quadratic again
            c = occurrences[j]
            if c.start - first.start - discount >= within:
                break
            latest.setdefault(c.part, c)
            if len(latest) == len(parts):
                end = max(x.end for x in latest.values())
                width = end - first.start - sum(map(extra, latest.values()))
                if width <= within and (best is None or width < best_width):
                    best, best_width = (first.start, end), width
                break
    return best


def _cut_of(cuts: dict[tuple[int, int, int], Any], k: int) -> Any:
    """The bulk answers of post ``k`` as the per-post ``cut(start, end)``."""
    return lambda start, end: cuts[(k, start, end)]
