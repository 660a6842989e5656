"""Pinyin spellings of lexicon terms (issue 10, item 2): compiled for every term.

An author who writes 赌博 as ``dubo``, ``du博``, ``赌bo`` or ``赌(dǔ)博(bó)``
has written the term; folding cannot see that, because one character became
several letters. So each term is compiled, besides its literal patterns, into
the letter strings of its readings (``dubo``), which the pinyin pass
(:mod:`screener.pinyin`) looks for in a letter stream made from the post.

Readings come from pypinyin's character table (MIT licence): every reading of
a character counts (行 gives ``xing`` and ``hang``), tone marks are dropped
(authors rarely type them, and the pass strips them from posts too), and ü is
spelt both ``v`` (what a pinyin keyboard types) and ``u`` (what people write
without one); a post's ü reads as ``v``. Pinyin initials (``db``) are never
generated: an operator who wants them writes them as ordinary terms.

Which terms get spellings: a term (each part of a combination) made of Han
characters that have a reading and of ASCII letters, with at least one Han
character and at least two units (a Han character, or a run of letters: QQ号
is ``qq`` + ``hao``). One-character terms get none: their pinyin is one
syllable, which every page of pinyin or English text contains. A term with
other characters (digits) gets none either.

A term of n characters with several readings each has their product of
spellings; at most :data:`MAX_SPELLINGS` are kept, the ones that use the
fewest secondary readings first, and ``lexicon check`` names every term that
was cut (:func:`capped_warnings`).
"""

from __future__ import annotations

import functools
import heapq
import itertools
import unicodedata
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import Problem
from .model import Rule

#: Spellings kept per term (each part of a combination). A four-character
#: term whose characters have five readings each would otherwise make 625.
MAX_SPELLINGS = 32
#: Longest term (in units) that gets spellings: the pass looks this many
#: characters around every Latin run of a post, so it bounds its work.
MAX_UNITS = 16
#: Code points the reading table covers (the CJK blocks up to Extension B and
#: beyond; pypinyin's table ends below U+32000).
READING_LIMIT = 0x32000


@functools.lru_cache(maxsize=4096)
def _strip(reading: str) -> str:
    """``lǜ`` → ``lv``: tone marks dropped, ü (with or without tone) as ``v``."""
    decomposed = unicodedata.normalize("NFD", reading).replace("u\u0308", "v").replace("U\u0308", "v")
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


@dataclass(frozen=True)
class Readings:
    """Every Han character's readings as letter strings, primary first."""

    #: code point → its spellings (heteronyms, with ü as v and as u).
    spellings: dict[int, tuple[str, ...]]
    #: the pass's view: code point → row of ``primary`` and ``sets`` (-1: no reading).
    row: np.ndarray
    #: every reading of the row's character, for ruby (赌(dǔ): the letters after 赌 spell it).
    sets: tuple[frozenset[str], ...]
    #: the row's primary reading.
    primary: tuple[str, ...]


@functools.lru_cache(maxsize=1)
def readings() -> Readings:
    """pypinyin's table, stripped (built once per process, ~0.3 s, most of
    it importing pypinyin's table)."""
    from pypinyin.pinyin_dict import pinyin_dict

    spellings: dict[int, tuple[str, ...]] = {}
    for code, joined in pinyin_dict.items():
        if code >= READING_LIMIT:
            continue
        found: list[str] = []
        for reading in joined.split(","):
            stripped = _strip(reading)
            if not stripped.isascii() or not stripped.isalpha():
                continue
            for spelt in (stripped, stripped.replace("v", "u")) if "v" in stripped else (stripped,):
                if spelt not in found:
                    found.append(spelt)
        if found:
            spellings[code] = tuple(found)
    codes = sorted(spellings)
    row = np.full(READING_LIMIT, -1, dtype=np.int32)
    row[np.array(codes, dtype=np.int64)] = np.arange(len(codes), dtype=np.int32)
    primary = [spellings[c][0] for c in codes]
    sets = tuple(frozenset(spellings[c]) for c in codes)
    return Readings(spellings, row, sets, tuple(primary))


def units(term: str) -> list[tuple[str, tuple[str, ...]]] | None:
    """The term as units (text, spellings), or None if it gets no spellings.

    >>> [u for u, _ in units("qq号")], units("行货")[0][1]
    (['qq', '号'], ('xing', 'hang', 'heng'))
    >>> units("赌"), units("3p")
    (None, None)
    """
    table = readings().spellings
    out: list[tuple[str, tuple[str, ...]]] = []
    run = ""
    for ch in term:
        if ch.isascii() and ch.isalpha():
            run += ch
            continue
        if run:
            out.append((run, (run.lower(),)))
            run = ""
        found = table.get(ord(ch))
        if found is None:
            return None
        out.append((ch, found))
    if run:
        out.append((run, (run.lower(),)))
    if len(out) < 2 or len(out) > MAX_UNITS or all(text.isascii() for text, _ in out):
        return None
    return out


def spellings(term_units: Sequence[tuple[str, tuple[str, ...]]], cap: int = MAX_SPELLINGS) -> tuple[list[tuple[str, ...]], int]:
    """Up to ``cap`` spellings (one letter string per unit), and how many there are.

    The spelling with every primary reading comes first. When there are
    more than ``cap``, those with the fewest secondary readings are kept, so
    the cap drops the least likely ones.

    >>> spellings(units("银行"))[0][:2], spellings(units("银行"))[1]
    ([('yin', 'xing'), ('yin', 'hang')], 3)
    """
    options = [alts for _, alts in term_units]
    total = 1
    for alts in options:
        total *= len(alts)
    if total <= cap:  # nearly every term: all of them, the primary readings first
        return list(itertools.product(*options)), total
    if total <= 4 * cap:
        ranked = sorted(itertools.product(*(range(len(alts)) for alts in options)), key=sum)[:cap]
    else:  # a heap over reading indices: the product is never enumerated
        ranked = []
        start = (0,) * len(options)
        heap = [(0, start)]
        seen = {start}
        while heap and len(ranked) < cap:
            _, index = heapq.heappop(heap)
            ranked.append(index)
            for k, alts in enumerate(options):
                if index[k] + 1 < len(alts):
                    nxt = index[:k] + (index[k] + 1,) + index[k + 1:]
                    if nxt not in seen:
                        seen.add(nxt)
                        heapq.heappush(heap, (sum(nxt), nxt))
    return [tuple(map(tuple.__getitem__, options, index)) for index in ranked], total


#: Between the syllables of a stored spelling (pinyin's own syllable separator).
SYLLABLE = "'"


class PinyinPatterns:
    """The pinyin spellings of a lexicon set and the term each spells.

    Spelling ``i`` is ``texts[i]``, its units separated by :data:`SYLLABLE`
    (``du'bo``), and spells part ``part[i]`` of rule ``rule[i]``. The look-up
    the pass uses (letters → spellings) is made on first use (:meth:`lookup`).
    """

    def __init__(self, texts: list[str], rule: np.ndarray, part: np.ndarray,
                 capped: Sequence[tuple[int, int, int]] = (), longest: int = 0,
                 chars: dict[str, tuple[str, ...]] | None = None, vocabulary: Iterable[str] | None = None,
                 max_letters: int | None = None) -> None:
        self.texts = texts
        self.rule, self.part = rule, part
        #: (rule, part, spellings before the cap) of every capped term.
        self.capped = tuple(capped)
        #: The most units of any spelled term.
        self.longest = longest
        #: Every Han character of a spelled entry and its readings, primary
        #: first: all the pass needs of pypinyin (which it never loads).
        self.chars = chars or {}
        self._lookup: dict[str, list[int]] | None = None
        self._vocabulary: frozenset[str] | None = frozenset(vocabulary) if vocabulary is not None else None
        self._max_letters = max_letters
        self._char_table: CharTable | None = None

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def terms(self) -> int:
        """Terms (combination parts) that have spellings."""
        return len(set(zip(self.rule.tolist(), self.part.tolist())))

    def lookup(self) -> dict[str, list[int]]:
        """Letters (``dubo``) → the spellings that have them."""
        if self._lookup is None:
            found: dict[str, list[int]] = {}
            for i, text in enumerate(self.texts):
                found.setdefault(text.replace(SYLLABLE, ""), []).append(i)
            self._lookup = found
        return self._lookup

    @property
    def max_letters(self) -> int:
        """Letters of the longest spelling (given when made, and stored in
        the cache: the gate needs it in every batch, and finding it by
        :meth:`lookup` cost a cached start 0.9 s at 100k terms)."""
        if self._max_letters is None:
            self._max_letters = max((len(t) - t.count(SYLLABLE) for t in self.texts), default=0)
        return self._max_letters

    def vocabulary(self) -> frozenset[str]:
        """What a Latin word in a hit is made of: syllables, and the Latin units of terms (``qq``)."""
        if self._vocabulary is None:
            units = {u for text in self.texts for u in text.split(SYLLABLE)}
            self._vocabulary = frozenset(units)
        return self._vocabulary

    def char_table(self) -> "CharTable":
        """:attr:`chars` as the pass reads them (made on first use)."""
        if self._char_table is None:
            self._char_table = CharTable.of(self.chars)
        return self._char_table

    # -- the cache (screener/compiled.py) -----------------------------------
    def encode(self) -> tuple[dict[str, Any], dict[str, Any]]:
        meta = {"n": len(self.texts), "capped": self.capped, "longest": self.longest, "chars": self.chars,
                "vocabulary": sorted(self.vocabulary()), "max_letters": self.max_letters}
        return meta, {"pinyin.text": " ".join(self.texts).encode("ascii"), "pinyin.rule": self.rule,
                      "pinyin.part": self.part}

    @classmethod
    def decode(cls, meta: dict[str, Any], sections: dict[str, Any]) -> "PinyinPatterns":
        texts = bytes(sections["pinyin.text"]).decode("ascii").split(" ") if meta["n"] else []
        return cls(texts, np.frombuffer(sections["pinyin.rule"], dtype=np.int32),
                   np.frombuffer(sections["pinyin.part"], dtype=np.int32), meta["capped"], meta["longest"],
                   meta["chars"], meta["vocabulary"], meta["max_letters"])


def compile_pinyin(rules: Iterable[Rule]) -> PinyinPatterns:
    """Spellings of every term, combination part and allow entry of ``rules``.

    Allow entries are spelt too, so that 打dubo is as allowed as 打赌博
    (``allow: 打赌博``): a suppression must not depend on how it was written.
    """
    texts: list[str] = []
    rule_ids: list[int] = []
    parts: list[int] = []
    capped: list[tuple[int, int, int]] = []
    longest = 0
    chars: dict[str, tuple[str, ...]] = {}
    vocabulary: set[str] = set()
    memo: dict[str, tuple[list[str], int] | None] = {}
    for index, rule in enumerate(rules):
        for part_no, part in enumerate(rule.parts):
            if part in memo:
                made = memo[part]
            else:
                found = units(part)
                made = None
                if found is not None:
                    spelt, total = spellings(found)
                    made = ([SYLLABLE.join(s) for s in spelt], total)
                    longest = max(longest, len(found))
                    for text, alts in found:
                        if text not in chars:
                            chars[text] = alts
                            vocabulary.update(alts)
                memo[part] = made
            if made is None:
                continue
            spelt_texts, total = made
            if total > len(spelt_texts) and rule.kind != "allow":
                capped.append((index, part_no, total))
            texts += spelt_texts
            rule_ids += [index] * len(spelt_texts)
            parts += [part_no] * len(spelt_texts)
    chars = {text: alts for text, alts in chars.items() if not text.isascii()}  # Latin units are not characters
    return PinyinPatterns(texts, np.array(rule_ids, dtype=np.int32), np.array(parts, dtype=np.int32), capped,
                          longest, chars, vocabulary)


@dataclass(frozen=True)
class CharTable:
    """The Han characters of spelled entries, as the pass reads them."""

    #: code point (below :data:`READING_LIMIT`) → row (-1: not a character of a spelled entry).
    row: np.ndarray
    primary: tuple[str, ...]  # per row: the primary reading
    sets: tuple[frozenset[str], ...]  # per row: every reading (ruby)
    #: per code point: bit ``1 + letter - 'a'`` set where that one letter is a
    #: reading of the character (阿: a), for one-letter ruby; 0 elsewhere.
    single: np.ndarray

    @classmethod
    def of(cls, chars: dict[str, tuple[str, ...]]) -> "CharTable":
        row = np.full(READING_LIMIT, -1, dtype=np.int32)
        single = np.zeros(READING_LIMIT, dtype=np.int32)
        primary: list[str] = []
        sets: list[frozenset[str]] = []
        for ch, alts in chars.items():
            code = ord(ch)
            if code >= READING_LIMIT:
                continue
            row[code] = len(primary)
            primary.append(alts[0])
            sets.append(frozenset(alts))
            single[code] = sum(2 << (ord(a) - 97) for a in alts if len(a) == 1)
        return cls(row, tuple(primary), tuple(sets), single)


def capped_warnings(patterns: PinyinPatterns, rules: Sequence[Rule]) -> list[Problem]:
    """One warning per term whose spellings were cut to :data:`MAX_SPELLINGS`."""
    out = []
    for index, part_no, total in patterns.capped:
        rule = rules[index]
        term = rule.parts[part_no]
        out.append(Problem(rule.path, rule.line, f"term {term!r} has {total} pinyin spellings (heteronyms); "
                           f"only the first {MAX_SPELLINGS} are matched", term))
    return out
