"""Stage: match, second pass. Terms written in pinyin (issue 10, item 2).

``dubo``, ``DuBo``, ``du-bo``, ``du博``, ``赌bo``, ``赌(dǔ)博(bó)`` and
``赌 du 博 bo`` all stand for 赌博. The main pass cannot see them: one
character became several letters. This pass turns the part of a post around
its Latin letters into a *letter stream* and looks there for the letter
patterns of every term (:mod:`screener.lexicon.pinyin`):

* a Han character becomes the letters of its primary reading; a Latin letter
  stays itself, tone marks stripped (ǔ is u, ü is v); everything else breaks
  the stream, except what normalisation deletes (spaces, ``-``, brackets),
  which vanishes, so ``du-bo`` and ``du bo`` read ``dubo``;
* ruby: a Latin word right after a Han character that spells one of that
  character's readings (赌(dǔ), 赌dǔ) is the same character written twice. Its
  letters leave the stream, and the character's span takes them in, so the
  hit covers exactly what the author wrote;
* every letter keeps the normalised position it came from, so a hit becomes
  an ordinary :class:`screener.match.Candidate` (variant ``pinyin``) that
  verification treats like any other (allow entries, word check at CJK
  edges, the term's mode) and maps to original offsets the same way.

A letter-stream occurrence becomes a candidate only if

1. it starts and ends on a token boundary: a Han character, or a Latin word
   (letters with nothing between them in the original). "dubo" inside
   "dubois", "xdubo" or "woxiangdubo" is not a hit: a run of letters is not
   cut into syllables, because English words are full of syllable sequences.
   This holds in every mode (a pinyin hit of a ``substring`` term too);
2. every boundary inside it (between Latin words, at Han characters) falls
   between two syllables of the spelling ("d ubo" is not "du bo");
3. every Han character in it is the term's own character at that syllable
   (杜bo is not 赌博: that is a homophone, an opt-in of its own);
4. the author wrote at least one of the term's Han characters as letters, or
   put ruby after one; otherwise it is the literal term, which the main pass
   reports.

Only posts with a character that folds to a Latin letter (or an ``&``, which
may start one) enter the pass, and only their Han characters within
:attr:`PinyinPatterns.longest` characters of a Latin letter enter the stream:
the cost is in proportion to the Latin text of a batch, not to its size.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .charmap import TABLE_SIZE
from .lexicon import LexiconSet
from .lexicon.pinyin import READING_LIMIT, PinyinPatterns, Readings, readings, units
from .match import Candidate
from .normalise import EncodedBatch
from .refold import Refolded, refold

#: Folded code points that are Latin letters, as their ASCII lowercase letter
#: (0: not one). ü in any tone is v, as in the lexicon's spellings.
_LATIN_LIMIT = 0x1F00
#: Longest reading (zhuang, chuang, shuang): a Latin word longer than this cannot be ruby.
_LONGEST_READING = 6


@functools.lru_cache(maxsize=1)
def latin_letters() -> np.ndarray:
    """uint8 table: code point → its base ASCII letter, lowercase (0: none).

    >>> bytes(latin_letters()[[ord("ǔ"), ord("Ü"), ord("B"), ord("ß")]])
    b'uvb\\x00'
    """
    table = np.zeros(_LATIN_LIMIT, dtype=np.uint8)
    for code in range(_LATIN_LIMIT):
        ch = chr(code)
        if not ch.isalpha():
            continue
        decomposed = unicodedata.normalize("NFD", ch)
        base = decomposed[0]
        if not (base.isascii() and base.isalpha()):
            continue
        letter = "v" if base in "uU" and "\u0308" in decomposed else base.lower()
        table[code] = ord(letter)
    return table


@dataclass(frozen=True)
class LetterStream:
    """The letter stream of a batch of posts (see the module docstring).

    ``codes[k]``: an ASCII letter, or 0 where the stream breaks. For every
    letter: ``item[k]``, the normalised position (flat, in the refolded
    batch) of the character it came from, and ``token[k]``, whether a token
    (a Han character, a Latin word) starts there.
    """

    codes: np.ndarray  # uint8
    item: np.ndarray  # int64, -1 at breaks
    token: np.ndarray  # bool
    end: np.ndarray  # int64 per flat normalised position: where that character's span ends (ruby included)
    ruby: np.ndarray  # bool per flat normalised position: a Han character with ruby after it
    han: np.ndarray  # bool per flat normalised position


def letter_stream(posts: Refolded, table: Readings, window: int) -> LetterStream | None:
    """The stream of ``posts``: Latin letters, and Han characters within ``window`` of one."""
    codes, kept, ends = posts.codes, posts.kept, posts.ends
    n = len(codes)
    if not n:
        return None
    post_of = np.repeat(np.arange(len(posts.nstart) - 1), np.diff(posts.nstart))
    letters = latin_letters()
    letter = np.zeros(n, dtype=np.uint8)
    small = codes < _LATIN_LIMIT
    letter[small] = letters[codes[small]]
    row = np.full(n, -1, dtype=np.int64)
    cjk = codes < READING_LIMIT
    row[cjk] = table.row[codes[cjk]]
    latin, han = letter > 0, row >= 0
    if not latin.any():
        return None
    same_post = np.zeros(n, dtype=bool)
    same_post[1:] = post_of[1:] == post_of[:-1]
    # A Latin word: letters with nothing between them in the original.
    joined = np.zeros(n, dtype=bool)
    joined[1:] = latin[:-1] & same_post[1:] & (ends[:-1] == kept[1:])
    word_start = latin & ~joined
    end = np.arange(1, n + 1, dtype=np.int64)
    ruby = _ruby(letter, latin, han, row, word_start, same_post, table, end)
    counts = np.concatenate(([0], np.cumsum(latin)))
    lo, hi = np.maximum(np.arange(n) - window, 0), np.minimum(np.arange(n) + window + 1, n)
    near = counts[hi] - counts[lo] > 0
    ruby_letter = np.zeros(n, dtype=bool)
    starts = np.flatnonzero(ruby)
    if len(starts):  # the letters each ruby took, from the character's next position to its new end
        depth = np.zeros(n + 1, dtype=np.int64)
        np.add.at(depth, starts + 1, 1)
        np.add.at(depth, end[starts], -1)
        ruby_letter = np.cumsum(depth[:-1]) > 0
    items = np.flatnonzero((han & near) | (latin & ~ruby_letter))
    if not len(items):
        return None
    length = np.where(han[items], table.offsets[row[items] + 1] - table.offsets[row[items]], 1)
    brk = np.ones(len(items), dtype=bool)
    brk[1:] = (items[1:] != end[items[:-1]]) | (post_of[items[1:]] != post_of[items[:-1]])
    first = np.cumsum(length + brk) - length  # stream index of each item's first letter (its break before it)
    total = int(first[-1] + length[-1]) + 1  # and a break at the end
    out = np.zeros(total, dtype=np.uint8)
    item = np.full(total, -1, dtype=np.int64)
    token = np.zeros(total, dtype=bool)
    which = np.repeat(np.arange(len(items)), length)
    offset = np.arange(len(which)) - np.repeat(np.cumsum(length) - length, length)
    at = first[which] + offset
    pos = items[which]
    is_han = han[pos]
    out[at] = np.where(is_han, table.letters[np.where(is_han, table.offsets[np.maximum(row[pos], 0)] + offset, 0)],
                       letter[pos])
    item[at] = pos
    token[at] = (offset == 0) & (is_han | word_start[pos])
    return LetterStream(out, item, token, end, ruby, han)


def _ruby(letter: np.ndarray, latin: np.ndarray, han: np.ndarray, row: np.ndarray, word_start: np.ndarray,
          same_post: np.ndarray, table: Readings, end: np.ndarray) -> np.ndarray:
    """Han positions followed by a Latin word that spells one of their readings
    (sets ``end`` of each to the end of its ruby)."""
    ruby = np.zeros(len(letter), dtype=bool)
    after_han = np.flatnonzero(word_start[1:] & han[:-1] & same_post[1:]) + 1
    if not len(after_han):
        return ruby
    word_ends = np.flatnonzero(latin & np.concatenate((word_start[1:] | ~latin[1:], [True]))) + 1
    stop = word_ends[np.searchsorted(word_ends, after_han, side="right")]
    short = stop - after_han <= _LONGEST_READING
    raw = letter.tobytes()
    for start, finish in zip(after_han[short].tolist(), stop[short].tolist()):
        if raw[start:finish].decode("ascii") in table.sets[row[start - 1]]:
            ruby[start - 1] = True
            end[start - 1] = finish
    return ruby


@functools.lru_cache(maxsize=65536)
def _unit_texts(term: str) -> tuple[str, ...]:
    found = units(term)
    return tuple(text for text, _ in found) if found else ()


class PinyinPass:
    """The pinyin pass of one lexicon set and matcher backend."""

    def __init__(self, lexicons: LexiconSet, backend: str) -> None:
        assert lexicons.pinyin is not None  # LexiconSet makes it
        self.lexicons = lexicons
        self.patterns: PinyinPatterns = lexicons.pinyin
        self.backend = backend
        self._gate: np.ndarray | None = None

    def gate(self) -> np.ndarray:
        """uint8 per code point: 1 where it folds to a Latin letter, or is '&'."""
        if self._gate is None:
            fold = self.lexicons.normaliser.table
            letters = latin_letters()
            small = fold < _LATIN_LIMIT
            gate = np.zeros(TABLE_SIZE, dtype=np.uint8)
            gate[small] = letters[fold[small]] > 0
            gate[ord("&")] = 1
            self._gate = gate
        return self._gate

    def gated(self, texts: Sequence[str]) -> list[int]:
        """Indices of the texts that may hold a Latin letter after folding."""
        if not texts:
            return []
        joined = "\x00".join(texts)
        points = np.frombuffer(joined.encode("utf-32-le"), dtype="<u4")
        found = np.flatnonzero(self.gate().take(points))
        if not len(found):
            return []
        separators = np.flatnonzero(points == 0)
        return np.unique(np.searchsorted(separators, found)).tolist()  # type: ignore[no-any-return]

    def find(self, texts: Sequence[str]) -> dict[int, list[Candidate]]:
        """Pinyin candidates per text index, in normalised positions of that text."""
        if not len(self.patterns):
            return {}
        gated = self.gated(texts)
        if not gated:
            return {}
        posts = refold(self.lexicons.normaliser, [texts[i] for i in gated])
        stream = letter_stream(posts, readings(), self.patterns.longest)
        if stream is None:
            return {}
        matcher = self.patterns.matcher(self.backend)
        encoded = matcher.alphabet.table[stream.codes]
        matches = matcher.scan(EncodedBatch(encoded, np.array([0, len(encoded)], dtype=np.int64)))
        if not len(matches):
            return {}
        s, e = matches[:, 1], matches[:, 2]
        edges = stream.token[s] & ((stream.codes[e] == 0) | stream.token[np.minimum(e, len(stream.token) - 1)])
        found: dict[int, list[Candidate]] = {}
        for pid, start, stop in matches[edges].tolist():
            candidate = self._check(posts, stream, pid, start, stop)
            if candidate is not None:
                post, c = candidate
                found.setdefault(gated[post], []).append(c)
        return found

    def _check(self, posts: Refolded, stream: LetterStream, pid: int, start: int, stop: int
               ) -> tuple[int, Candidate] | None:
        """Rules 2-4 of the module docstring for one occurrence."""
        patterns = self.patterns
        bounds = patterns.bounds(pid)
        rule, part = int(patterns.rule[pid]), int(patterns.part[pid])
        term_units = _unit_texts(self.lexicons.rules[rule].parts[part])
        at_bound = {b: k for k, b in enumerate(bounds)}
        written_as_letters = sum(1 for u in term_units if not u.isascii())
        with_ruby = False
        for k in np.flatnonzero(stream.token[start + 1:stop]).tolist():
            if k + 1 not in at_bound:
                return None
        item, codes = stream.item, posts.codes
        for offset in range(0, stop - start):
            k = start + offset
            if not stream.token[k]:
                continue
            pos = int(item[k])
            if not stream.han[pos]:
                continue
            unit = at_bound.get(offset)
            if unit is None or unit + 1 >= len(bounds) or term_units[unit] != chr(codes[pos]):
                return None
            after = start + bounds[unit + 1]  # the character's letters must be exactly that syllable
            if after > stop or item[after - 1] != pos or (after < stop and item[after] == pos):
                return None
            written_as_letters -= 1
            with_ruby = with_ruby or bool(stream.ruby[pos])
        if written_as_letters <= 0 and not with_ruby:
            return None  # the literal term: the main pass has it
        first, last = int(item[start]), int(item[stop - 1])
        post = int(np.searchsorted(posts.nstart, first, side="right")) - 1
        base = int(posts.nstart[post])
        return post, Candidate(rule, part, first - base, int(stream.end[last]) - base, "pinyin")
