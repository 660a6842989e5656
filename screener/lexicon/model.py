"""What a compiled lexicon set is made of."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

Action = Literal["flag", "recall"]
Mode = Literal["word", "substring"]
Kind = Literal["term", "combo", "allow"]
Scope = Literal["post", "profile", "both"]
#: How an author wrote a hit, relative to the lexicon term it stands for.
#: "literal" and "traditional" (Traditional characters folded to the term) are
#: told apart at verification; the others come from the pattern that matched.
VariantKind = Literal["literal", "traditional", "regional", "repeat", "pinyin", "homophone", "split", "shape"]

ACTIONS: tuple[Action, ...] = ("flag", "recall")
MODES: tuple[Mode, ...] = ("word", "substring")
SCOPES: tuple[Scope, ...] = ("post", "profile", "both")
#: Every variant kind, in a fixed order: the cache stores a pattern's kind as
#: its index here, and metrics use these as a bounded label.
VARIANT_KINDS: tuple[VariantKind, ...] = (
    "literal", "traditional", "regional", "repeat", "pinyin", "homophone", "split", "shape",
)
#: Strictness order used by the decision stage: the strictest hit wins.
SEVERITY_OF_ACTION = {"pass": 0, "flag": 1, "recall": 2}


@dataclass(frozen=True)
class Category:
    key: str
    title_zh: str
    title_en: str
    basis: tuple[str, ...]
    action: Action
    severity: int
    mode: Mode = "word"
    #: True for categories whose terms the operator must supply (political
    #: speech, rumours, religion): we ship them empty on purpose.
    operator_supplied: bool = False
    #: Which messages the category screens: posts, profiles (names and bios,
    #: Gejiu Art. 7) or both.
    scope: Scope = "both"
    #: Look-alike kinds (homophone, shape, split) every term of the category
    #: is also matched in, unless the term says otherwise (``variants=``).
    variants: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Rule:
    """One entry of a lexicon file (a term, a combination or an allow entry)."""

    id: str
    kind: Kind
    category: str
    written: str  # as the operator wrote it
    parts: tuple[str, ...]  # normalised; one part unless kind == "combo"
    action: Action
    mode: Mode
    within: int | None
    path: str
    line: int

    @functools.cached_property
    def label(self) -> str:
        """The term as events report it: normalised, parts joined by '+'
        (kept: every hit's event, audit record and offender entry asks)."""
        return "+".join(self.parts)


@dataclass(frozen=True)
class Pattern:
    """A string the matcher looks for, and the rule it belongs to.

    A rule has one pattern per part (``variant`` "literal"), plus variants of
    each part (regional wording, and the opt-in kinds) that report as the
    same rule; ``variant`` says which kind made the pattern.

    ``text`` is folded with runs collapsed, as post text is (时时彩 is 时彩);
    ``runs`` says how many of each character the term spells (``(2, 1)``),
    or is empty when every run is one. A post must repeat each character at
    least as often (verification checks it): 时彩 alone is not 时时彩.
    """

    text: str
    rule: int
    part: int
    variant: VariantKind = "literal"
    runs: tuple[int, ...] = ()
