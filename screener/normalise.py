"""Stage: normalise. Fold evasions away while keeping a map to the original.

Two entry points share one definition of "normalised":

* :meth:`Normaliser.normalise` folds one text and returns, for every
  normalised character, where it came from in the original. It serves lexicon
  compilation, verification of posts that have candidate hits, and
  ``screener explain``.
* :meth:`Normaliser.encode_batch` folds a whole batch of posts in one pass
  (:mod:`screener.compact`) and returns it in a matcher's alphabet, separated so
  that no match can span two posts. It keeps no per-character map: positions
  are mapped back only for the few posts that have hits, by re-running
  :meth:`normalise` on them. Both paths apply the same table and the same
  HTML rule (:func:`html_edits`; in a batch, references of posts without a
  tag are decoded in one pass, :func:`_batch_markup`), so a post's offsets
  agree between them (property tests check it).

Both also fold a run of one repeated CJK character to one (加微微信 reads
加微信; :mod:`screener.compact` says which characters and why). A normalised
character then stands for its whole run: it starts at the first character the
author wrote and ends after the last, and :attr:`Normalised.runs` says how
many there were, which verification compares with the lexicon term's own runs
(时时彩 needs two 时). Each gap between two normalised characters also records
whether the author put a separator there (:attr:`Normalised.gaps`): a term
separated in every gap is not thrown away by the word-boundary check.
"""

from __future__ import annotations

import functools
import html
import html.entities
import re
from itertools import compress
from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

import numpy as np

from .charmap import DELETE, MARKUP, FoldConfig, build_table
from .compact import COLLAPSE_FROM, compact, compact_numpy, run_heads

# -- the HTML rule -----------------------------------------------------------------
#
# Markup is deleted where a browser would not show it, and character references
# are decoded to the character they stand for (&#36172; is 赌), so that neither
# can hide a term: 赌<i title="x>y">博, 赌<!-- ... -->博 and &#0036172;&#x535A;
# fold to 赌博. What is markup follows the HTML tokenizer (WHATWG HTML,
# "Tokenization"), because what a reader sees is what a browser shows, with one
# restriction on tag names so that prose is not read as a tag:
#
# * "<" or "</", then a tag name, then whitespace, "/" or ">" is a tag. The
#   name is an ASCII letter followed by letters, digits, "-", "_", ".", ":"
#   (any length: <my-custom-element-name-long>, <o:p>). A browser takes any
#   characters up to whitespace, "/" or ">" as a name, so in x<y，所以结果>0
#   it would hide everything from "<" to ">"; here that is text. The
#   attributes follow the tokenizer (:data:`_TAG`): a ">" inside a quoted
#   value ('x>y' or "x>y", any length) does not end the tag; a quote anywhere
#   else (a"b, or b="c after a name) is just a character. "a<b and c>d" is a
#   tag (attributes "and" and "c") to a browser, which shows "ad", and it is
#   deleted here too, as it always was: keeping it would let 赌<b and c>博 and
#   赌<b x>博 through.
# * <!-- ... --> is a comment, ending at the first "-->" or "--!>" (<!--> and
#   <!---> are empty comments). "<!" + anything else (<!DOCTYPE html>,
#   <![CDATA[x]]>) and "<?" (<?x?>) are bogus comments, which a browser hides
#   up to the first ">": <![CDATA[a>b]]> hides "<![CDATA[a>" and shows "b]]>",
#   as it does outside SVG and MathML.
# * <script> and <style> hide their content, up to the first "</script" or
#   "</style" (ASCII case-insensitive) followed by whitespace, "/" or ">": the
#   element is deleted with its end tag. A script's escape states
#   ("<!--<script>" inside a script) are not modelled; other elements that a
#   browser does not render (<template>, <noscript>, <title>, anything hidden
#   by CSS) keep their content.
# * "&#" + digits and "&#x" + hex digits (any number of leading zeros, ";"
#   optional) and HTML5's named references (longest match; the legacy ones
#   such as &amp and &not also without ";") are decoded as a browser decodes
#   them in text: &#0; and out-of-range numbers are U+FFFD, &#128; is €; the
#   few that Python's html drops (&#1;, &#xFFFE;) are deleted. A reference
#   that stands for two code points (&fjlig;) stays text: one original
#   character becomes at most one normalised one.
#
# Deliberately not markup: "<" not followed by a tag name, "!" or "?" (I <3
# you, x<2且y>1, a < b, </3, <赌>); "&" not followed by "#" + digit, "#x" + hex
# digit, or a letter and a letter or digit (A&B, &&, AT&T); an unknown name
# (&foo;).
#
# Unclosed constructs are not deleted. A browser hides everything after an
# unclosed <!--, <script> or <tag, but in doubt the screener keeps text visible
# to the matcher: it must rather see too much text than too little (and a post
# is not always shown as HTML). A comment with no "-->", a bogus comment or a
# tag with no ">", a tag with a quoted value that never closes, and the content
# of a <script> or <style> with no end tag all stay text (the start tag of an
# unclosed <script>, itself complete, is deleted). Scanning resumes right after
# the "<" that failed, except in an unclosed tag: a "<" between its start and
# the quote that never closes (or the end, when no ">" follows) is text, as a
# browser reads it too (part of that tag, never a tag of its own). Without
# that exception the rule would not be linear. References are decoded
# everywhere except inside deleted markup.
#
# The rule is linear in the length of the text: a closer ("-->", ">",
# "</script") is looked for once per stretch of text (:class:`_Finder`); once
# it is absent after a point, the openers that need it are skipped by the
# opener search (:data:`_OPENERS`) instead of retried; a tag is one match of a
# regular expression that never backtracks (possessive quantifiers), whose
# characters are consumed, or skipped as above when it does not close. It runs
# only on texts that contain "<" or "&" (in a batch: only on those posts).

_ENTITY_START = r"&(?=#[0-9]|#[xX][0-9A-Fa-f]|[A-Za-z][A-Za-z0-9])"
#: Where markup can start, by what can still close: anything; anything but a
#: comment (no "-->" or "--!>" left); only entities (no ">" left).
_OPENERS = (
    re.compile(r"<(?=[A-Za-z!?]|/[A-Za-z])|" + _ENTITY_START),
    re.compile(r"<(?=[A-Za-z?]|/[A-Za-z]|!(?!--))|" + _ENTITY_START),
    re.compile(_ENTITY_START),
)
_ANY, _NO_COMMENT, _ENTITIES_ONLY = 0, 1, 2
#: A start or end tag, as the tokenizer reads it once its name (a letter, then
#: letters, digits, "-", "_", ".", ":") ends at whitespace, "/" or ">": then
#: separators (whitespace, or a "/" that a ">" does not follow) and attributes. An
#: attribute name may start with "="; after it (and whitespace), "=" must be
#: followed by a value: "quoted", 'quoted', unquoted (up to whitespace or ">",
#: not starting with a quote) or none (right before ">"). Possessive: it never
#: backtracks, and always matches (what it consumed is what it examined, but
#: for a quoted value that never closes: to the end of the text). Without
#: group ``tag`` it is not a tag (the name ends otherwise). Group ``end`` is
#: the closing ">"; without it the tag is unclosed, and the match stops at the
#: attribute whose quoted value never closes, or at the end of the text.
_TAG = re.compile(
    r"</?[A-Za-z][A-Za-z0-9_.:-]*+"
    r"(?P<tag>(?=[\t\n\f\r />])"
    r"(?:[\t\n\f\r /]++"
    r"|[^\t\n\f\r />][^\t\n\f\r />=]*+"
    r"(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+(?:\"[^\"]*+\"|'[^']*+'|[^\t\n\f\r >\"'][^\t\n\f\r >]*+|(?=>))"
    r"|(?![\t\n\f\r ]*+=)))*+"
    r"(?P<end>>)?)?"
)
#: From the attribute where an unclosed tag stopped to its opening quote.
_UNCLOSED_VALUE = re.compile(r"[^\t\n\f\r />][^\t\n\f\r />=]*+[\t\n\f\r ]*+=[\t\n\f\r ]*+")
_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]*+")
#: What closes a construct, by name: the raw-text elements' end tags, and
#: literals (looked for with ``str.find``, many times faster than ``re``).
_CLOSERS: dict[str, str | re.Pattern[str]] = {
    **{name: re.compile(rf"</{name}[\t\n\f\r />]", re.IGNORECASE | re.ASCII) for name in ("script", "style")},
    **{literal: literal for literal in (">", "-->", "--!>")},
}
_RAW_TEXT = ("script", "style")
_NUMERIC = re.compile(r"#(?:[xX]0*+([0-9A-Fa-f]*+)|0*+([0-9]*+));?")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{0,31}")
_ENTITIES = html.entities.html5
_LEGACY_LONGEST = max(len(k) for k in _ENTITIES if not k.endswith(";"))
_MANY = 64  # edits of one text past which they are written with numpy


class HtmlEdits(NamedTuple):
    """What the HTML rule does to one text, in that text's positions.

    ``markup`` ranges ``[start, end)`` (increasing, disjoint) become
    :data:`MARKUP`; ``chars[i]`` is the code point that a decoded entity puts
    at its ``&`` (position ``i``), and ``extend[i]`` that entity's original end
    (its other characters are in ``markup``).
    """

    markup: list[tuple[int, int]]
    chars: dict[int, int]
    extend: dict[int, int]


class _Finder:
    """Next match of a closer at or after a position, searching each stretch once.

    A query at or after the previous one is answered from the previous answer
    while that answer is still ahead of it (or was "none"); the scanner's
    queries rise, so the text is searched about once per closer.
    """

    __slots__ = ("_closer", "_text", "_lo", "_hit")

    def __init__(self, text: str, closer: str | re.Pattern[str]) -> None:
        self._text = text
        self._closer = closer
        self._lo, self._hit = 0, -2  # nothing known yet

    def __call__(self, pos: int) -> int:
        """Start of the first match at or after ``pos``, or -1."""
        hit = self._hit
        if pos >= self._lo and (hit == -1 or hit >= pos):
            return hit
        if isinstance(self._closer, str):
            hit = self._text.find(self._closer, pos)
        else:
            m = self._closer.search(self._text, pos)
            hit = m.start() if m else -1
        self._lo, self._hit = pos, hit
        return hit


class _HtmlScanner:
    """One left-to-right pass of the HTML rule over one text (see above)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.edits = HtmlEdits([], {}, {})
        self._finders: dict[str, _Finder] = {}
        self._end_tags: dict[int, int] = {}  # where a raw-text end tag ends (-1: unclosed)

    def finder(self, closer: str) -> _Finder:
        found = self._finders.get(closer)
        if found is None:
            found = self._finders[closer] = _Finder(self.text, _CLOSERS[closer])
        return found

    def run(self) -> HtmlEdits:
        text, n, markup = self.text, len(self.text), self.edits.markup
        gt = self.gt = self.finder(">")
        openers = _OPENERS[_ANY]
        tags_from = 0  # a "<" before this is inside a tag that did not close: text
        pos = 0
        # The next "<" and "&" (-1: none left), found with str.find, which is
        # 100 times faster than a regular expression's search: the opener
        # pattern then only confirms them, or skips the implausible ones.
        lt = amp = -2
        while True:
            if lt != -1 and lt < pos:
                lt = text.find("<", pos) if openers is not _OPENERS[_ENTITIES_ONLY] else -1
            if amp != -1 and amp < pos:
                amp = text.find("&", pos)
            if lt < 0 and amp < 0:
                return self.edits
            m = openers.search(text, amp if lt < 0 or 0 <= amp < lt else lt)
            if m is None:
                return self.edits
            i = m.start()
            if text[i] == "&":
                pos = self.entity(i)
                continue
            pos = i + 1
            if i < tags_from:
                continue
            if gt(i) < 0:  # every "<" construct ends with ">": none can close any more
                openers = _OPENERS[_ENTITIES_ONLY]
                continue
            after = text[i + 1]  # there is one: the opener pattern looked at it
            if after == "!" and text.startswith("--", i + 2):
                end = self.comment_end(i)
                if end < 0:  # no comment can close any more: "<!--" is text from here on
                    openers = _OPENERS[_NO_COMMENT]
                    continue
            elif after == "!" or after == "?":
                end = gt(i + 2) + 1  # a bogus comment; a ">" follows (checked above)
            else:  # "<" + letter or "</" + letter: a tag, if a name follows
                end, stop = _match_tag(text, i)
                if end < 0:  # not a tag, or unclosed: text, and so is every "<" inside it
                    if stop == n:
                        openers = _OPENERS[_ENTITIES_ONLY]
                    tags_from = max(tags_from, stop)
                    continue
                if after == "s" or after == "S":
                    end = self.raw_text(i, end)
            markup.append((i, end))
            pos = end

    def raw_text(self, start: int, end: int) -> int:
        """End of a <script> or <style> element whose start tag is ``[start, end)``.

        Just ``end`` for any other tag, and when the element has no end tag
        that closes: its content stays text.
        """
        name = _TAG_NAME.match(self.text, start + 1).group()  # type: ignore[union-attr]  # the tag matched here
        if name.lower() not in _RAW_TEXT:
            return end
        close = self.finder(name.lower())(end)
        if close < 0:
            return end
        closed = self._end_tags.get(close)
        if closed is None:  # unclosed starts can share one end tag: match it once
            closed = self._end_tags[close] = _match_tag(self.text, close)[0] if self.gt(close) >= 0 else -1
        return closed if closed >= 0 else end

    def comment_end(self, start: int) -> int:
        """End of the comment whose "<!--" is at ``start``, or -1."""
        a = self.finder("-->")(start + 2)  # from "<!" on: "<!-->" and "<!--->" are comments
        b = self.finder("--!>")(start + 4)
        if a < 0 and b < 0:
            return -1
        return a + 3 if b < 0 or 0 <= a < b else b + 4

    def entity(self, amp: int) -> int:
        """Decode the character reference at ``amp`` if it is one; where to go on."""
        text = self.text
        m = _NUMERIC.match(text, amp + 1)
        if m:
            hex_digits = m.group(1)
            char = _numeric_char(hex_digits, 16) if hex_digits is not None else _numeric_char(m.group(2), 10)
            end = m.end()
        else:
            m = _NAME.match(text, amp + 1)  # there is one: the opener pattern looked at it
            assert m is not None
            name = _named_entity(m.group(), text.startswith(";", m.end()))
            char = _ENTITIES.get(name, "")
            if len(char) != 1:  # unknown, or two code points: text
                return amp + 1
            end = amp + 1 + len(name)
        edits = self.edits
        if char:
            edits.chars[amp] = ord(char)
            edits.extend[amp] = end
            edits.markup.append((amp + 1, end))
        else:
            edits.markup.append((amp, end))
        return end


def _match_tag(text: str, start: int) -> tuple[int, int]:
    """``(end, -1)`` of the tag at ``start``, or ``(-1, stop)`` if it does not close.

    ``stop`` is the opening quote of the value that never closes, or the end
    of the text; -1 if there is no tag at ``start``. Call it only when a ">"
    follows ``start`` (else the match runs to the end of the text, and so on
    for every "<" after it).
    """
    m = _TAG.match(text, start)
    assert m is not None  # every group of the pattern is optional: it always matches
    if m.group("tag") is None:
        return -1, -1
    if m.group("end"):
        return m.end(), -1
    stop = m.end()
    if stop < len(text):  # stopped at the attribute whose quoted value never closes
        stop = _UNCLOSED_VALUE.match(text, stop).end()  # type: ignore[union-attr]  # it matched at stop
    return -1, stop


def _named_entity(name: str, semicolon: bool) -> str:
    """The longest entity (key of ``html5``) that ``name`` (+ ";") starts with, or ""."""
    if semicolon and name + ";" in _ENTITIES:
        return name + ";"
    for k in range(min(len(name), _LEGACY_LONGEST), 1, -1):
        if name[:k] in _ENTITIES:
            return name[:k]
    return ""


def _numeric_char(digits: str, base: int) -> str:
    """What a browser shows for a numeric reference ("" where Python's html drops it).

    ``digits`` come without leading zeros. Past 8 of them the value is out of
    range whatever they are (and ``int`` of a million digits would be slow).
    """
    return _code_point_char(int(digits, base) if 0 < len(digits) <= 8 else (0x110000 if digits else 0))


@functools.lru_cache(maxsize=1024)
def _code_point_char(value: int) -> str:
    return html.unescape(f"&#{min(value, 0x110000)};")


def html_edits(text: str) -> HtmlEdits:
    """The HTML rule applied to ``text``: what becomes markup, what is decoded.

    The one definition of the rule: :meth:`Normaliser.normalise` and
    :meth:`Normaliser.encode_batch` both apply it through :func:`_apply`.
    """
    return _HtmlScanner(text).run()


def _apply(points: np.ndarray, edits: HtmlEdits, offset: int = 0) -> None:
    """Write ``edits`` of a text that starts at ``points[offset]``."""
    markup = edits.markup
    if len(markup) <= _MANY:
        for start, end in markup:
            points[offset + start:offset + end] = MARKUP
    else:  # one numpy pass instead of many slice assignments: dense markup
        points[offset + _covered(markup)] = MARKUP
    chars = edits.chars
    if len(chars) <= _MANY:
        for i, char in chars.items():
            points[offset + i] = char
    else:
        where = np.fromiter(chars.keys(), dtype=np.int64, count=len(chars))
        points[where + offset] = np.fromiter(chars.values(), dtype=np.uint32, count=len(chars))


def _covered(ranges: list[tuple[int, int]]) -> np.ndarray:
    """Every position in the ``[start, end)`` ranges, in numpy passes whose
    cost follows the covered length, not the span from first to last: the
    references of a whole batch are a few characters each, spread over
    megabytes (a mask over the span cost 7 ms a batch of user text).

    >>> _covered([(1, 3), (3, 4), (8, 10)]).tolist()
    [1, 2, 3, 8, 9]
    """
    bounds = np.array(ranges, dtype=np.int64).reshape(-1, 2)
    lengths = bounds[:, 1] - bounds[:, 0]
    before = np.cumsum(lengths) - lengths  # covered positions ahead of each range
    return np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(bounds[:, 0] - before, lengths)


#: Separator between posts in a batch; forced, not looked up, so a U+0000
#: inside a post is plain noise.
_SEP_CHAR = "\x00"


@dataclass(frozen=True)
class NormaliseConfig:
    """Settings of the normaliser; they are part of the lexicon version."""

    fold: FoldConfig = field(default_factory=FoldConfig)
    html: bool = True


#: Tags a browser shows as a line or block break (the start of one): the
#: word check reads no neighbour across them (fuck<br>you, <li>sb</li><li>),
#: where it reads across inline ones (h<b>av</b>e is have; found by a review).
BLOCK_TAG = re.compile(
    r"<\s*/?\s*(?:br|p|div|li|ul|ol|dl|dt|dd|tr|td|th|table|thead|tbody|tfoot|caption|h[1-6]|blockquote|pre|hr"
    r"|section|article|header|footer|nav|aside|figure|figcaption|main|form|fieldset|legend|address|details"
    r"|summary|center|option|select|textarea|iframe|img|video|audio)(?![A-Za-z0-9])", re.IGNORECASE)


#: Deleted characters that are not evidence of an evasion when they separate
#: the characters of a term: the marks that end a sentence or clause, and line
#: breaks. Words never run across them, so a term split by one is more often
#: two clauses (买了一张网。贷款很难) than a disguise; every other deleted
#: character (spaces, 、, middle dots, dashes, symbols, emoji, zero-width
#: characters, markup) between two characters of a term is the author taking
#: it apart. The ASCII marks count as clause marks too: posts typed on phones
#: end sentences with them (50元.交通方便; 时间,人 would otherwise hit 援交
#: and 贱人 through a homophone, measured by bench-evasion on real reviews).
CLAUSE_MARKS = "，。！？；：｡,.!?;:\n\r\u2028\u2029"
#: Whether a code point is a clause mark, as a table: one ``take`` instead of
#: ``np.isin``, which compares every point with each mark in turn (21 passes).
#: Points at or above its end read its last entry, which is False.
_CLAUSE = np.zeros(max(map(ord, CLAUSE_MARKS)) + 2, dtype=bool)
_CLAUSE[[ord(ch) for ch in CLAUSE_MARKS]] = True
_CJK_FROM = 0x2E80  # CJK radicals onwards, as verify's "CJK" edge (kana and Hangul too)


@dataclass(frozen=True)
class Folded:
    """Joined texts folded, in flat arrays over their normalised characters.

    ``codes``: folded code points (runs collapsed); ``starts``: original
    position of each (the first character of its run); ``ends``: original end
    (after the run's last character, or its decoded entity); ``runs``: how many
    characters the run had; ``gaps``: whether an evidence separator (a deleted
    character not in :data:`CLAUSE_MARKS`) lies between this character and the
    next; ``clauses``: whether a deleted clause mark does, between two CJK
    characters. All positions are in the joined points.
    """

    codes: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    runs: np.ndarray
    gaps: np.ndarray
    clauses: np.ndarray


def fold_points(table: np.ndarray, points: np.ndarray, extend: dict[int, int],
                separators: np.ndarray | None = None) -> Folded:
    """The one definition of a folded text with its map, for one text
    (:meth:`Normaliser.normalise`) and for many joined at ``separators``
    (:func:`screener.refold.refold`), so the two cannot disagree. The runs
    follow the rule of the batch loop (:func:`screener.compact.run_heads`)."""
    folded = table.take(points)
    deleted = folded == DELETE
    if separators is not None and len(separators):
        folded[separators] = 0  # live, never collapsing: no run crosses a post
        deleted[separators] = False
    live = np.flatnonzero(~deleted)
    keys = folded[live]
    heads = np.flatnonzero(run_heads(keys))
    nexts = np.append(heads[1:], len(live)) if len(heads) else heads
    if separators is not None and len(separators):
        boundary = np.zeros(len(points), dtype=bool)  # a mask, not np.isin: no sort
        boundary[separators] = True
        real = ~boundary[live[heads]]
        heads, nexts = heads[real], nexts[real]
    starts = live[heads]
    lasts = live[nexts - 1]
    ends = lasts + 1
    if extend:
        at = np.fromiter(extend, dtype=np.int64, count=len(extend))
        where = np.searchsorted(lasts, at)
        hit = where < len(lasts)
        hit[hit] = lasts[where[hit]] == at[hit]
        ends[where[hit]] = np.fromiter(extend.values(), dtype=np.int64, count=len(extend))[hit]
    clause = _CLAUSE.take(np.minimum(points, len(_CLAUSE) - 1))
    codes = keys[heads]
    gaps, clauses = _between(deleted & ~clause, starts, ends), _between(deleted & clause, starts, ends)
    # Only between two CJK characters: Latin words have no clause inside
    # them, and f.u.c.k is an evasion (so is Ⓕ.ⓤ-c⒦).
    cjk = codes >= _CJK_FROM
    clauses[:-1] &= cjk[:-1] & cjk[1:]
    return Folded(codes, starts, ends, nexts - heads, gaps, clauses)


def _between(marked: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Whether a ``marked`` point lies between each kept character and the next."""
    seen = np.zeros(len(marked) + 1, dtype=np.int64)
    np.cumsum(marked, out=seen[1:])
    out = np.zeros(len(starts), dtype=bool)
    if len(starts) > 1:
        out[:-1] = seen[starts[1:]] > seen[ends[:-1]]
    return out


@dataclass(frozen=True)
class Normalised:
    """A folded text with its map back to the original.

    Normalised character ``i`` came from ``original[starts[i]:ends[i]]``: one
    character, a decoded entity, or a run of ``runs[i]`` repeated ones (with
    deleted characters between them, if the author put any). ``gaps[i]``:
    whether a separator lies between it and the next, ``clauses[i]`` whether
    a clause mark does (see :class:`Folded`).

    >>> n = Normaliser().normalise("赌*赌博")
    >>> n.text, n.span(0, 2), n.runs
    ('赌博', (0, 4), [2, 1])
    """

    original: str
    text: str
    starts: list[int]
    ends: list[int]
    runs: list[int]
    gaps: list[bool]
    clauses: list[bool]
    #: The original's code points with the HTML rule applied (a decoded
    #: character reference at its ``&``, :data:`MARKUP` over the rest and
    #: over tags): what the word check reads a neighbour from.
    points: np.ndarray = field(compare=False, repr=False)

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original ``[start, end)`` of normalised ``[start, end)``; end > start."""
        return self.starts[start], self.ends[end - 1]

    def runs_of(self, start: int, end: int) -> list[int]:
        """Run lengths of normalised ``[start, end)``, or ``[]`` if each is one."""
        runs = self.runs[start:end]
        return runs if max(runs, default=1) > 1 else []

    def separated(self, start: int, end: int) -> bool:
        """Whether the author put a separator in every gap of normalised
        ``[start, end)`` (which has at least two characters)."""
        return end - start > 1 and all(self.gaps[start:end - 1])

    def clause_split(self, start: int, end: int) -> bool:
        """Whether a clause mark lies in a gap of normalised ``[start, end)``
        and some other gap holds nothing: two clauses (再加，微信支付), not a
        term taken apart (加。微。信, 加 微，信). See :data:`CLAUSE_MARKS`."""
        if end - start < 3:  # one gap: marked or not, never both
            return False
        marks = self.clauses[start:end - 1]
        return any(marks) and not all(m or g for m, g in zip(marks, self.gaps[start:end - 1]))

    def marked_gaps(self, start: int, end: int) -> list[int]:
        """The gaps of normalised ``[start, end)`` that hold a clause mark, as
        offsets into it (gap ``k`` lies after its character ``k``)."""
        return [k for k, marked in enumerate(self.clauses[start:end - 1]) if marked]

    def norm_text(self, start: int, end: int) -> str:
        return self.text[start:end]


@dataclass(frozen=True)
class Alphabet:
    """How a matcher wants the normalised text encoded.

    ``table`` maps an original code point straight to the matcher's code (the
    fold table composed with the matcher's own alphabet); ``delete`` is the
    code meaning "noise, drop it" and ``separator`` the code placed between
    posts, which no pattern may contain.
    """

    table: np.ndarray
    delete: int
    separator: int


@dataclass(frozen=True)
class EncodedBatch:
    """A batch of posts in a matcher alphabet.

    Post ``i`` occupies ``codes[starts[i]:starts[i + 1] - 1]``; the code at
    ``starts[i + 1] - 1`` is the separator.
    """

    codes: np.ndarray
    starts: np.ndarray
    #: The code points that were folded (the HTML rule applied), joined with a
    #: separator after each post at ``separators``: kept for the pinyin pass's
    #: gate (``screener/pinyin.py``), which would otherwise encode the batch again.
    points: np.ndarray | None = None
    separators: np.ndarray | None = None

    def post_of(self, positions: np.ndarray) -> np.ndarray:
        """Index of the post that each code position belongs to."""
        return np.searchsorted(self.starts, positions, side="right") - 1


class Normaliser:
    """Folds text with one table lookup per character plus an HTML pass."""

    def __init__(self, config: NormaliseConfig | None = None, table: np.ndarray | None = None) -> None:
        """``table``: the fold table of ``config.fold``, if the caller has it
        (from the cache); built otherwise."""
        self.config = config or NormaliseConfig()
        self.table = build_table(self.config.fold) if table is None else table
        self.alphabet = Alphabet(self.table, int(DELETE), 0)

    # -- one text ---------------------------------------------------------
    def normalise(self, text: str) -> Normalised:
        points, extend = self._points(text)
        f = fold_points(self.table, points, extend)
        folded = f.codes.astype("<u4").tobytes().decode("utf-32-le")
        return Normalised(text, folded, f.starts.tolist(), f.ends.tolist(), f.runs.tolist(), f.gaps.tolist(),
                          f.clauses.tolist(), points)

    def fold_string(self, text: str) -> str:
        """Just the normalised text (lexicon terms, tests)."""
        return self.normalise(text).text

    def fold_many(self, texts: Sequence[str], collapse: bool = True) -> list[str]:
        """``[fold_string(t) for t in texts]`` in one batch pass (lexicon
        compilation folds every term and variant: 100k one-by-one calls took
        over a second). The HTML rule runs on each text alone
        (:meth:`batch_points`), so each folds as it would alone.
        ``collapse=False`` keeps runs: a term as the lexicon spells it
        (:func:`collapse_runs` then gives its pattern and its runs).
        """
        if not texts:
            return []
        if any("\x00" in t for t in texts):  # a NUL inside would be taken for a separator
            folded = [self.fold_string(t) for t in texts] if collapse else [
                "".join(chr(c) for c in self.table.take(self._points(t)[0]) if c != DELETE) for t in texts]
            return folded
        joined = _SEP_CHAR.join([*texts, ""])
        separators = np.cumsum(np.array(list(map(len, texts)), dtype=np.int64) + 1) - 1
        points, _ = self.batch_points(texts, joined, separators)
        codes, _ = compact_numpy(points, self.table, int(DELETE), 0, separators,  # numpy: no numba just for this
                                 self.table if collapse else None)
        folded = codes.astype("<u4", copy=False).tobytes().decode("utf-32-le").split(_SEP_CHAR)
        return folded[:-1]

    # -- a batch ------------------------------------------------------------
    def encode_batch(self, texts: Sequence[str], alphabet: Alphabet) -> EncodedBatch:
        """Fold and encode many posts in one pass, separated by ``alphabet.separator``.

        The HTML rule runs on each post that may hold a tag on its own
        (:func:`html_edits`, as in :meth:`normalise`), patching that post's
        region of the points; references elsewhere are decoded in one pass
        over the batch (:func:`_batch_markup`); every other post goes
        straight to the fold.
        """
        joined = _SEP_CHAR.join([*texts, ""])  # one copy of the batch, not two
        separators = np.cumsum(np.array(list(map(len, texts)), dtype=np.int64) + 1) - 1
        points, _ = self.batch_points(texts, joined, separators)
        codes, starts = compact(points, alphabet.table, alphabet.delete, alphabet.separator, separators, self.table)
        return EncodedBatch(codes, starts, points, separators)

    def batch_points(self, texts: Sequence[str], joined: str,
                     separators: np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
        """:meth:`_points` of ``joined`` (``texts`` joined, each followed by a
        separator at ``separators``), with the HTML rule applied to each text
        as it would be alone (:func:`_batch_markup`): markup never reaches from one text
        into the next (an unclosed ``<i title="`` would otherwise swallow the
        start of the next post). ``extend`` is in ``joined`` positions.
        """
        points = code_points(joined)
        extend: dict[int, int] = {}
        if self.config.html:
            tagged, references = _batch_markup(joined, points, separators)
            for k in tagged:
                start = int(separators[k - 1]) + 1 if k else 0
                edits = html_edits(texts[k])
                _apply(points, edits, start)
                extend.update({start + i: start + end for i, end in edits.extend.items()})
            if references is not None:
                _apply(points, references)
                extend.update(references.extend)
        return points, extend

    def _points(self, text: str) -> tuple[np.ndarray, dict[int, int]]:
        """The code points to fold: ``text`` with the HTML rule applied.

        A decoded entity's code point replaces its ``&``; the rest of the
        entity, and all other markup, becomes :data:`MARKUP`, which folds to
        "delete" in every alphabet. Returns also the original end of
        characters that stand for more than one original character (decoded
        entities).
        """
        points = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
        if not (self.config.html and ("<" in text or "&" in text)):
            return points, {}
        points = points.copy()
        edits = html_edits(text)
        _apply(points, edits)
        return points, edits.extend


def code_points(text: str) -> np.ndarray:
    """The code points of ``text``, in an array of its own (writable).

    Through numpy's string scalar: one copy of the string's own buffer,
    where ``str.encode("utf-32-le")`` checks every character and
    ``np.frombuffer`` of it needs a second copy to be written to (0.08
    against 1.3 ms for a batch of 4,096 posts). Slicing to the length keeps
    the empty string empty (numpy's smallest string has one character).

    A lone surrogate raises :class:`UnicodeEncodeError`, as the encoder
    does on the one-text path (:meth:`Normaliser._points`): numpy would take
    it, and the batch and the text alone must not disagree (found by review).

    >>> code_points("a\\x00😀").tolist(), code_points("").tolist()
    ([97, 0, 128512], [])
    """
    points = np.array(text).reshape(1).view(np.uint32)[:len(text)]
    if ((points & 0xFFFFF800) == 0xD800).any():  # U+D800..U+DFFF; 0.06 ms a batch
        text.encode("utf-32-le")  # raises, naming the character and where it is
    return points


def _tag_posts(points: np.ndarray, separators: np.ndarray) -> list[int]:
    """Indices of the posts of joined ``points`` that may hold a tag or
    comment: a "<" that may open one (followed by a letter, "!", "?" or "/"
    and a letter: the "<" half of ``_OPENERS[_ANY]``) with a ">" after it in its
    post (every such construct ends with one; without, the rule reads the
    rest of the post as text and references, as :class:`_HtmlScanner` does
    when ``gt`` finds none). ``a<b`` and ``I <3 u`` in running text are not.
    Numpy passes: user text has a "<" in many posts."""
    opens = np.flatnonzero(points == 0x3C)
    if not len(opens):
        return []
    closes = np.flatnonzero(points == 0x3E)
    if not len(closes):
        return []
    # The last point is a separator, so o + 2 may read past it only where
    # o + 1 is that separator, and then the first test is false already.
    after = points[opens + 1]
    letter = _ASCII_LETTER.take(np.minimum(after, 0x80))
    slash = after == 0x2F
    later = points[np.minimum(opens[slash] + 2, len(points) - 1)]
    letter[slash] = _ASCII_LETTER.take(np.minimum(later, 0x80))
    opens = opens[letter | (after == 0x21) | (after == 0x3F)]
    post = separators.searchsorted(opens)
    closing = closes.searchsorted(opens)
    ok = closing < len(closes)
    ok[ok] = closes[closing[ok]] < separators[post[ok]]
    return np.unique(post[ok]).tolist()


#: Whether an ASCII code (or 0x80: anything else) is a letter.
_ASCII_LETTER = np.zeros(0x81, dtype=bool)
_ASCII_LETTER[[*range(0x41, 0x5B), *range(0x61, 0x7B)]] = True


def _batch_markup(joined: str, points: np.ndarray, separators: np.ndarray) -> tuple[list[int], HtmlEdits | None]:
    """The HTML rule over a joined batch: the posts that may hold a tag or
    comment (each then runs the whole rule on its own, :func:`html_edits`),
    and the edits of every other post's character references, in ``joined``
    positions (None: there are none).

    Only "<" makes the rule more than left-to-right decoding of references:
    inside deleted markup nothing is decoded, and an unclosed construct
    changes how the rest is read. A post without a tag opener therefore gets
    exactly the edits :func:`html_edits` gives it from one decoding pass over
    the batch, a few microseconds a reference instead of a scanner a post;
    user text is full of "&amp;" and "A&B" (``benchmarks/throughput.py``,
    regime ``user-text``: 17,182 of 20,000 posts have "<" or "&", 109 a tag
    opener). References cannot run from one post into the next: the
    separator ends any name or number.
    """
    tagged = _tag_posts(points, separators) if joined.find("<") >= 0 else []  # str.find: the cheap test first
    if joined.find("&") < 0:
        return tagged, None
    found = [(m.start(), m.group()) for m in _REFERENCE.finditer(joined)]
    if not found:
        return tagged, None
    starts, tokens = zip(*found)
    at = np.array(starts, dtype=np.int64)
    if tagged:  # their own pass decodes them
        own = np.zeros(len(separators), dtype=bool)
        own[tagged] = True
        mine = ~own[separators.searchsorted(at)]
        at, tokens = at[mine], tuple(compress(tokens, mine.tolist()))
    # Each distinct token decoded once a batch; then array passes, not a
    # Python loop per reference (user text has thousands a batch).
    decoded = {token: _decoded(token) for token in set(tokens)}
    char, length = np.array(list(map(decoded.__getitem__, tokens)), dtype=np.int64).reshape(-1, 2).T
    real = length > 0
    at, char = at[real], char[real]
    end = at + length[real]
    if not len(at):
        return tagged, None
    named = char > 0  # decoded to a character at its "&"; the rest of it is markup
    named_at = at[named].tolist()
    return tagged, HtmlEdits(list(zip((at + named).tolist(), end.tolist())),
                             dict(zip(named_at, char[named].tolist())), dict(zip(named_at, end[named].tolist())))


def _decoded(token: str) -> tuple[int, int]:
    """:func:`_reference` of a token, cached only when it is short: a
    reference may run to the length of a post (&#000...0065;), and 4,096 of
    those kept would hold a gigabyte (found by review)."""
    return _reference(token) if len(token) <= _CACHED_TOKEN else _reference.__wrapped__(token)


#: A reference as :meth:`_HtmlScanner.entity` reads it at an opener: the
#: opener, then the longest numeric reference or name that it may decode
#: (with its ";"). Names and numbers hold no "&", so references never
#: overlap and each decodes as it would in a left-to-right scan.
_REFERENCE = re.compile(_ENTITY_START + r"(?:" + _NUMERIC.pattern + r"|" + _NAME.pattern + r";?)")


#: Longest reference :func:`_reference` caches (&CounterClockwiseContourIntegral; is 33).
_CACHED_TOKEN = 40


@functools.lru_cache(maxsize=4096)
def _reference(token: str) -> tuple[int, int]:
    """(code point or 0 if deleted, characters consumed; 0: not a reference)
    of a :data:`_REFERENCE` match: what :meth:`_HtmlScanner.entity` does with
    it, asked of the scanner itself so that the two cannot disagree."""
    scanner = _HtmlScanner(token)
    end = scanner.entity(0)
    if not scanner.edits.markup:
        return 0, 0
    return scanner.edits.chars.get(0, 0), end


#: A character twice in a row: without one, nothing collapses.
_DOUBLED = re.compile(r"(.)\1", re.DOTALL)


def collapse_runs(folded: str) -> tuple[str, tuple[int, ...]]:
    """A folded text (runs kept) as the matcher sees it, and its run lengths:
    ``collapse_runs("时时彩") == ("时彩", (2, 1))``. The rule of the fold loop
    (:data:`screener.compact.COLLAPSE_FROM`): only CJK characters collapse."""
    if _DOUBLED.search(folded) is None:  # nearly every term: one C pass instead of a loop (0.2 s at 100k)
        return folded, (1,) * len(folded)
    text: list[str] = []
    runs: list[int] = []
    for ch in folded:
        if text and ch == text[-1] and ord(ch) >= COLLAPSE_FROM:
            runs[-1] += 1
        else:
            text.append(ch)
            runs.append(1)
    return "".join(text), tuple(runs)
