"""What a compiled lexicon set is made of."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Action = Literal["flag", "recall"]
Mode = Literal["word", "substring"]
Kind = Literal["term", "combo", "allow"]
Scope = Literal["post", "profile", "both"]
#: How a pattern spells its rule's term: as written, or a generated variant.
VariantKind = Literal["literal", "traditional", "regional", "repeat", "pinyin", "homophone", "split", "shape"]
VARIANT_KINDS: tuple[VariantKind, ...] = ("literal", "traditional", "regional", "repeat", "pinyin", "homophone", "split", "shape")

ACTIONS: tuple[Action, ...] = ("flag", "recall")
MODES: tuple[Mode, ...] = ("word", "substring")
SCOPES: tuple[Scope, ...] = ("post", "profile", "both")
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

    @property
    def label(self) -> str:
        """The term as events report it: normalised, parts joined by '+'."""
        return "+".join(self.parts)


@dataclass(frozen=True)
class Pattern:
    """A string the matcher looks for, and the rule it belongs to.

    A rule has one pattern per part, plus variants of each part (regional
    wording, opt-in look-alike spellings) that report as the same rule;
    ``variant`` says which kind of spelling the pattern is.
    """

    text: str
    rule: int
    part: int
    variant: VariantKind = "literal"
