"""The per-code-point folding table behind normalisation.

Every evasion that is a property of a single character (full-width forms,
case, circled/parenthesised/mathematical letters and digits, Traditional and
regional variant characters, invisible or decorative characters) is folded by
one lookup in a table indexed by code point. A table lookup is what lets the
hot path normalise a whole batch with one numpy gather instead of a Python loop
per character; it also makes the map back to the original text trivial: each
original character becomes at most one normalised character.

Multi-character evasions (HTML entities) and phrase-level regional wording
(網際網路 for 互联网) are handled elsewhere: entities in ``normalise``, regional
phrases by expanding lexicon terms (``lexicon.variants``).
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

#: Table value for "delete this character" (noise).
DELETE = np.uint32(0xFFFFFFFF)
N_CODEPOINTS = 0x110000
#: One index past the last code point, always folded to DELETE: the
#: normaliser writes it over characters the HTML rule removes, so that a
#: single table lookup deletes them in every alphabet (numpy and fused paths).
MARKUP = N_CODEPOINTS
TABLE_SIZE = N_CODEPOINTS + 1

#: Unicode general categories treated as noise by default: separators,
#: controls and format characters (zero-width, bidi), combining marks
#: (variation selectors, zalgo), punctuation and symbols (emoji are So/Sk),
#: private-use and unassigned code points (Co, Cn: they render as boxes or a
#: platform's own icons, and 赌\ue000博 passed every term; an emoji newer
#: than this Python's Unicode is unassigned here, and noise like the others).
#: Unassigned points of the ideographic planes 2 and 3 stay: later Unicode
#: versions fill them with CJK characters (Extension H is unassigned in 14.0).
DEFAULT_NOISE_CATEGORIES: tuple[str, ...] = (
    "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn", "Mn", "Me",
    "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po",
    "Sm", "Sc", "Sk", "So",
)

#: Unicode's Default_Ignorable_Code_Point ranges (DerivedCoreProperties.txt):
#: invisible by definition, so noise whatever their general category. Most
#: are format characters or marks, noise already; but the Hangul fillers
#: (U+115F, U+1160, U+3164, U+FFA0) are letters (Lo), and unassigned ones
#: (Cn) are in no noise category: 赌\u3164博 passed every term (found by a
#: hostile-input probe). ``noise_keep`` still keeps any of them.
DEFAULT_IGNORABLE: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
    (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)
_IGNORABLE = frozenset(chr(cp) for lo, hi in DEFAULT_IGNORABLE for cp in range(lo, hi + 1))
#: CJK strokes written as separators (冰丶毒, 冰丨毒, 标题丨副标题): letters (Lo)
#: by category, so no noise category covers them; in posts they are never
#: words (found by an evasion probe). ``noise_keep`` still keeps them.
SEPARATOR_STROKES = "丶丨"
#: Letters and numerals drawn as a stroke, dot or dash, which evaders put
#: between characters (赌ǀ博, 约ꞏ炮, 冰ー毒): the click ǀ, the sinological
#: dot ꞏ, the bopomofo tone marks ˉˊˇˋ, the Hangzhou numeral 〡, the kana
#: iteration marks ヽヾ and the prolonged sound mark ー (found by evasion
#: probes, 12 of 12 such posts missed). Chinese text does not spell words
#: with them; Hangul and kana letters (ㅣ, ノ) spell Korean and Japanese and
#: stay. ``noise_keep`` still keeps any.
SEPARATOR_LETTERS = "ǀꞏˉˊˇˋ〡ヽヾー"
_ALWAYS_NOISE = _IGNORABLE | frozenset(SEPARATOR_STROKES) | frozenset(SEPARATOR_LETTERS)

#: Styled Latin letters NFKC leaves as they are: negative circled and
#: negative squared capitals (🅥🅧, 🆅🆇, s🅱) and small capitals (ᴠx, ꜱʙ),
#: which evaders write for 加vx and sb (found by an evasion probe). There is
#: no small capital x. Also the lunate sigmas ϲ Ϲ, drawn like c, which NFKC
#: would turn into ς and Σ (fuϲk; found by a second probe).
_STYLED_LATIN: dict[str, str] = {
    **{chr(0x1F150 + i): chr(0x61 + i) for i in range(26)},
    **{chr(0x1F170 + i): chr(0x61 + i) for i in range(26)},
    **dict(zip("ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘꞯʀꜱᴛᴜᴠᴡʏᴢ", "abcdefghijklmnopqrstuvwyz", strict=True)),
    "ϲ": "c", "Ϲ": "c",
}
#: Greek capitals drawn like Latin ones, before case folding: their small
#: letters are drawn otherwise (Ν is N, but ν is v; Β is B, β is not).
#: Lower-cased first, ΤΝΤ read tvt and ΣΒ stayed Greek (found by a second
#: evasion probe). Cyrillic capitals look like their small letters, which
#: :data:`LATIN_LOOKALIKES` folds.
CAPITAL_LOOKALIKES: dict[str, str] = dict(zip(
    "ΑΒΕΖΗΙΚΜΝΟΡΤΥΧ", "abezhikmnoptyx", strict=True))
#: Cyrillic and Greek letters drawn like Latin ones, after case folding
#: (ТNТ → тnт → tnt): evaders write vх, fuсk, аv网址 and ѕb with them, and
#: NFKC keeps them (found by an evasion probe, 14 of 14 missed). Text in those
#: scripts folds the same way on both sides (a Cyrillic term still matches
#: its own spelling); only which Latin terms it can spell changes.
LATIN_LOOKALIKES: dict[str, str] = dict(zip(
    "авекмнорстухѕіјԛԝһӏԁьѵ" "αεικνοτρχ",
    "abekmhopctyxsijqwhldbv" "aeikvotpx", strict=True))

#: Planes 2 and 3, whose unassigned points later Unicode versions fill with
#: CJK ideographs: not noise as Cn (DEFAULT_NOISE_CATEGORIES).
_IDEOGRAPHIC_PLANES = ("\U00020000", "\U00040000")

# Code point ranges whose characters can change under folding. Everything
# outside them (unassigned planes, private use) maps to itself; skipping them
# keeps table construction well under a second.
_FOLD_RANGES = ((0x0000, 0x40000), (0xE0000, 0xE1000))
#: Within those, planes 2 and 3 but for the compatibility ideographs
#: (U+2F800-2FA1F): CJK ideographs (Lo) and unassigned points (Cn, never noise
#: there) that NFKC, case and the look-alike tables all leave alone. Each
#: folds to itself unless the config names it (an alias, ``noise_extra``,
#: ``noise_keep``) or makes Lo noise, so :func:`build_table` only asks for
#: their category. With the same shortcut for unassigned points elsewhere,
#: a cold start's fold table took 0.24 s instead of 0.36 (measured; a test
#: checks the table against the long way).
_PLAIN_IDEOGRAPHS = ((0x20000, 0x2F800), (0x2FA20, 0x40000))


@dataclass(frozen=True)
class FoldConfig:
    """What single-character folding does. Part of the lexicon version."""

    noise_categories: tuple[str, ...] = DEFAULT_NOISE_CATEGORIES
    #: Extra characters that are noise whatever their category.
    noise_extra: str = ""
    #: Characters that are never noise (e.g. keep "+" or "#" meaningful).
    noise_keep: str = ""
    traditional: bool = True
    compatibility: bool = True  # NFKC: full-width, styled letters, ① → 1
    casefold: bool = True
    #: (character, what it stands for) pairs, applied to a character and to
    #: every character that folds as it does (so ＋ and ﹢ follow +), before
    #: noise is judged: ("+", "加") reads +vx as 加vx. Sorted pairs, so that
    #: the config stays hashable and its repr stable.
    aliases: tuple[tuple[str, str], ...] = ()


def _compat_fold(ch: str, is_noise: Callable[[str], bool]) -> str:
    """NFKC of one character, kept only if it is still one character.

    ⒡ and ⑴ decompose to "(f)" and "(1)": the parentheses are noise, so the
    letter inside is what the author meant. ⑩ becomes "10", two characters,
    which a 1:1 table cannot express; it stays as it is.
    """
    folded = unicodedata.normalize("NFKC", ch)
    if len(folded) > 1:
        folded = "".join(c for c in folded if not is_noise(c))
    return folded if len(folded) == 1 else ch


def variant_chars() -> dict[str, str]:
    """Variant characters OpenCC leaves alone (砲 for 炮, 愽 for 博, the
    Japanese 売 for 卖), from ``screener/data/variant_chars.tsv``."""
    from importlib.resources import files

    text = files("screener").joinpath("data", "variant_chars.tsv").read_text(encoding="utf-8")
    return dict(line.split("\t") for line in text.splitlines() if line and not line.startswith("#"))


def _opencc_char_map(chars: list[str]) -> dict[str, str]:
    """Character-level Traditional/Taiwan/Hong Kong → Simplified from OpenCC.

    One ``convert`` call over all candidates joined by newlines: OpenCC's
    phrase rules cannot fire across the separators, so each line is the
    character-level answer.
    """
    import opencc

    mapping: dict[str, str] = {}
    if not chars:  # every Han character noise (noise_categories with "Lo"): "".split gives one line, not none
        return mapping
    joined = "\n".join(chars)
    for config in ("t2s", "tw2s", "hk2s"):
        converter = opencc.OpenCC(f"{config}.json")
        converted = converter.convert(joined).split("\n")
        if len(converted) != len(chars):  # pragma: no cover - OpenCC contract
            raise RuntimeError(f"OpenCC {config} changed the line count")
        for src, dst in zip(chars, converted):
            if dst != src and len(dst) == 1 and src not in mapping:
                mapping[src] = dst
    return mapping


@functools.lru_cache(maxsize=8)
def build_table(config: FoldConfig = FoldConfig()) -> np.ndarray:
    """Return the uint32 table: code point → folded code point or DELETE.

    It has one entry more than there are code points: :data:`MARKUP`.
    """
    return _build(config)


def _build(config: FoldConfig, shortcuts: bool = True) -> np.ndarray:
    """:func:`build_table`; ``shortcuts=False`` folds every point the long
    way (the tests' reference for the shortcuts)."""
    categories = frozenset(config.noise_categories)
    extra, keep = frozenset(config.noise_extra), frozenset(config.noise_keep)

    def is_noise(c: str) -> bool:
        if c in keep:
            return False
        if c in extra or c in _ALWAYS_NOISE:
            return True
        category = unicodedata.category(c)
        return category in categories and not (category == "Cn" and _IDEOGRAPHIC_PLANES[0] <= c < _IDEOGRAPHIC_PLANES[1])

    aliases = dict(config.aliases)
    table = np.arange(TABLE_SIZE, dtype=np.uint32)
    table[MARKUP] = DELETE
    cjk: list[str] = []
    def fold(ch: str) -> str:
        # Fold before judging noise: circled letters (ⓕ) are symbols (So)
        # but stand for letters, so they must fold, not vanish.
        out = _STYLED_LATIN.get(ch) or _compat_fold(ch, is_noise) if config.compatibility else ch
        if config.compatibility:
            out = CAPITAL_LOOKALIKES.get(out, out)
        if config.casefold:
            low = out.lower()
            out = low if len(low) == 1 else out
        if config.compatibility:
            out = LATIN_LOOKALIKES.get(out, out)
        return out

    # An alias applies to its key and to every character that folds as the
    # key does ("V" to Ｖ, 𝐕, Ⓥ and v; found by a review), and before the
    # characters that are always noise ("ー" = "一" had been ignored).
    by_fold = {fold(key): value for key, value in aliases.items()}
    named = {*aliases, *by_fold, *extra, *keep, *_ALWAYS_NOISE}
    plain = [(lo, hi) for lo, hi in _PLAIN_IDEOGRAPHS if shortcuts and not any(lo <= ord(c) < hi for c in named)]
    lo_noise = "Lo" in categories
    for lo, hi in plain:
        for cp in range(lo, hi):
            ch = chr(cp)
            if unicodedata.category(ch) == "Lo":
                if lo_noise:
                    table[cp] = DELETE
                elif config.traditional:
                    cjk.append(ch)
    cn_noise = "Cn" in categories
    for lo, hi in _FOLD_RANGES:
        for cp in _skipping(lo, hi, plain):
            ch = chr(cp)
            # Unassigned (a third of the points here): nothing folds them.
            if shortcuts and cp < 0x20000 and unicodedata.category(ch) == "Cn" and ch not in named:
                if cn_noise:
                    table[cp] = DELETE
                continue
            alias = aliases.get(ch)
            if alias is None and (ch in extra or ch in _ALWAYS_NOISE) and ch not in keep:
                table[cp] = DELETE
                continue
            out = fold(ch)
            out = alias or by_fold.get(out, out)
            if is_noise(out):
                table[cp] = DELETE
                continue
            table[cp] = ord(out)
            if config.traditional and unicodedata.category(out) == "Lo" and ord(out) >= 0x2E80:
                cjk.append(out)
    _outside_ranges(table, categories, keep)
    for ch, out in aliases.items():  # a key outside the ranges above (private use, say)
        if not any(lo <= ord(ch) < hi for lo, hi in _FOLD_RANGES):
            table[ord(ch)] = DELETE if is_noise(out) else ord(out)
            cjk.append(out)
    if config.traditional:
        # Traditional → Simplified on top of compatibility folding, so that
        # full-width or compatibility forms of traditional characters fold
        # too; variant characters OpenCC does not know as well.
        t2s = {**variant_chars(), **_opencc_char_map(sorted(set(cjk)))}
        remap = np.arange(TABLE_SIZE, dtype=np.uint32)
        for src, dst in t2s.items():
            remap[ord(src)] = ord(dst)
        live = table != DELETE
        table[live] = remap[table[live]]
    return _close(table)


def _skipping(lo: int, hi: int, skipped: list[tuple[int, int]]) -> Iterator[int]:
    """``range(lo, hi)`` without the ``skipped`` ranges."""
    for start, stop in sorted(skipped):
        if start >= hi or stop <= lo:
            continue
        yield from range(lo, max(lo, start))
        lo = max(lo, stop)
    yield from range(lo, hi)


def _outside_ranges(table: np.ndarray, categories: frozenset[str], keep: frozenset[str]) -> None:
    """Noise among the code points the loop skips: planes 4-13 and the rest
    of 14 are unassigned (Cn), planes 15 and 16 private use (Co) but for
    their last two points (Cn). ``keep`` wins, as in the loop."""
    if "Cn" in categories:
        table[0x40000:0xE0000] = DELETE
        table[0xE1000:0xF0000] = DELETE
        for plane in (0xF0000, 0x100000):
            table[plane + 0xFFFE:plane + 0x10000] = DELETE
    if "Co" in categories:
        table[0xF0000:0xFFFFE] = DELETE
        table[0x100000:0x10FFFE] = DELETE
    for ch in keep:
        if not any(lo <= ord(ch) < hi for lo, hi in _FOLD_RANGES):
            table[ord(ch)] = ord(ch)


def _close(table: np.ndarray) -> np.ndarray:
    """Make folding idempotent: fold(fold(c)) == fold(c).

    Lexicon terms and post text are folded by the same table; if a→b and b→c,
    a term written with b would no longer match text written with a.
    """
    for _ in range(8):
        live = table != DELETE
        nxt = table.copy()
        nxt[live] = table[table[live]]
        if np.array_equal(nxt, table):
            return table
        table = nxt
    raise RuntimeError("character folding does not converge")  # pragma: no cover
