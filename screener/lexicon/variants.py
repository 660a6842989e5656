"""Regional phrasing as lexicon aliases.

Taiwan and Hong Kong texts differ from Mainland ones in whole words, not just
characters: 網際網路 for 互联网, 資訊 for 信息, 軟體 for 软件. Character folding
cannot turn four characters into three while keeping a 1:1 map to the
original, and converting every post phrase by phrase would cost the hot path
a second pass. Instead each term is converted the other way with OpenCC's
phrase dictionaries (s2twp, s2hkp, and back with tw2sp, hk2sp), folded, and
added as an alias pattern of the same rule. The post text is untouched, so
offsets stay exact.
"""

from __future__ import annotations

import functools
from typing import Callable

_CONFIGS = ("s2twp", "s2hk", "tw2sp", "hk2s")


@functools.lru_cache(maxsize=1)
def _converters() -> tuple[Callable[[str], str], ...]:
    import opencc

    return tuple(opencc.OpenCC(f"{c}.json").convert for c in _CONFIGS)


def regional_variants(terms: list[str], fold_many: Callable[[list[str]], list[str]]) -> list[list[str]]:
    """For each term, its folded spellings in other regions' wording (not itself).

    One OpenCC call per configuration over all terms joined by newlines:
    phrase rules cannot cross the separators, and 50k separate calls would
    dominate lexicon build time. Folding is batched too (``fold_many`` is
    :meth:`screener.normalise.Normaliser.fold_many`): only the terms that a
    configuration changed are folded, all in one call.
    """
    found: list[list[str]] = [[] for _ in terms]
    if not terms:
        return found
    joined = "\n".join(terms)
    changed: list[tuple[int, str]] = []
    for convert in _converters():
        converted = convert(joined).split("\n")
        if len(converted) != len(terms):  # pragma: no cover - OpenCC contract
            raise RuntimeError("OpenCC changed the number of lines")
        changed += [(i, other) for i, (term, other) in enumerate(zip(terms, converted)) if other != term]
    if not changed:
        return found
    indices = sorted({i for i, _ in changed})
    itself = dict(zip(indices, fold_many([terms[i] for i in indices])))
    for (i, _), variant in zip(changed, fold_many([other for _, other in changed])):
        if variant and variant != itself[i] and variant not in found[i]:
            found[i].append(variant)
    return found
