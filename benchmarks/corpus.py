"""Deterministic benchmark data: posts and lexicons built from jieba's dictionary.

Posts are sentences of dictionary words drawn by frequency (so character and
word statistics look like Chinese text), 20-200 characters with punctuation.
About 1% of posts carry a lexicon term, three quarters of them obfuscated (noise between
characters, Traditional characters, full-width forms) the way evaders write.

Lexicon terms join two mid-frequency words (ranks 3,000-150,000): realistic
characters and prefixes, but rarely occurring by accident. The benchmark never
trusts that "rarely": expected counts come from an independent oracle.

Two harder regimes (issue 12):

* **dense** (:func:`make_ordinary_terms`): the lexicon is ordinary dictionary
  words, as real drug, weapon and spam lexicons are, so running text is full
  of candidates whose word boundaries must be checked. Its text is the news
  corpus in ``../shared/corpus`` (:data:`NEWS`) or, without it, generated
  sentences (:func:`make_sentences`).
* **user-text** (:func:`make_user_posts`): posts as users write them, with
  ``&``, ``<``, ``<3``, ``A&B``, emoji, Latin words and digits between the
  words, rare terms planted in running text, and about one malformed JSON line
  in 3,000.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jieba

SEED = 20261122
PUNCT = "，。！？、；："
NOISE = ["*", " ", "\u200b", ".", "·", "-", "😀"]
#: Real news text, one post per line, when the shared data sits beside the repository.
NEWS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "news_1998_01.txt"
#: Where ordinary words start in jieba's frequency order (words of 2-4 Han
#: characters). Real screening terms live there (冰毒 is the 93,782nd, 办证 the
#: 72,157th, 假币 the 66,458th): ordinary words, not the commonest function
#: words. With 50k words from here about half of the news lines carry a
#: candidate (53%, 1.1 occurrences a line), the regime issue 12 measured.
ORDINARY_FROM_RANK = 100_000
#: What users put between words: markup-like characters (which send a post
#: through the HTML rule), emoji, Latin, digits.
USER_BITS = ["&", "<", "<3", "A&B", "a<b", "R&D", "&amp;", "😀", "😂", "👍🏻", "❤️", "🙏", "lol", "OK", "iPhone",
             "wifi", "2026", "3.5", "100%", "12:30", "@小王", "#话题#", "https://t.cn/A6x9", "~~", "!!!", "？？", "……"]
#: One malformed JSON line in about this many (a dead letter for ``scan``).
MALFORMED_EVERY = 3000


@dataclass(frozen=True)
class Dictionary:
    words: list[str]
    cumulative: list[float]

    def sample(self, rng: random.Random) -> str:
        return self.words[bisect.bisect_left(self.cumulative, rng.random() * self.cumulative[-1])]


def load_dictionary() -> tuple[Dictionary, list[str]]:
    """(frequency-weighted sampler, words by descending frequency)."""
    path = Path(jieba.__file__).parent / "dict.txt"
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        word, freq, *_ = line.split(" ")
        if all("\u4e00" <= c <= "\u9fff" for c in word):
            rows.append((int(freq), word))
    rows.sort(reverse=True)
    words = [w for _, w in rows]
    cumulative = list(itertools.accumulate(f for f, _ in rows))
    return Dictionary(words, cumulative), words


def make_terms(by_rank: list[str], count: int, seed: int = SEED) -> list[str]:
    rng = random.Random(seed + count)
    pool = by_rank[3000:150000]
    terms: set[str] = set()
    while len(terms) < count:
        term = rng.choice(pool) + rng.choice(pool)
        if 2 <= len(term) <= 8:
            terms.add(term)
    return sorted(terms)


def make_ordinary_terms(by_rank: list[str], count: int, start: int = ORDINARY_FROM_RANK) -> list[str]:
    """``count`` ordinary words: 2-4 Han characters, in frequency order from rank
    ``start`` (every size holds the smaller ones)."""
    words = [w for w in by_rank if 2 <= len(w) <= 4]
    return sorted(words[start:start + count])


def write_lexicon(directory: Path, terms: list[str], categories: int = 4) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(categories):
        body = "\n".join(terms[i::categories])
        (directory / f"bench{i}.txt").write_text(f"# benchmark terms\n{body}\n", encoding="utf-8")


def _obfuscate(term: str, rng: random.Random) -> str:
    style = rng.randrange(4)
    if style == 0:
        return term
    if style == 1:
        return rng.choice(NOISE).join(term)
    if style == 2:
        return _traditional().convert(term)
    return term[0] + "\u200b" + term[1:]


@functools.lru_cache(maxsize=1)
def _traditional() -> Any:
    """One converter for all plants: building one per plant (dictionaries
    loaded each time) made generating 100k posts take minutes."""
    import opencc

    return opencc.OpenCC("s2t.json")


def make_posts(dictionary: Dictionary, terms: list[str], count: int, rate: float = 0.01, seed: int = SEED) -> tuple[list[str], set[int]]:
    """Generated posts, and the indices of those that carry a planted term.

    Plants sit between punctuation, as a spammer writes them.
    """
    return plant(make_sentences(dictionary, count, seed), terms, rate, seed, "，")


def make_sentences(dictionary: Dictionary, count: int, seed: int = SEED, extra: list[str] | None = None,
                   extra_rate: float = 0.0) -> list[str]:
    """Sentences of 20-200 characters: words drawn by frequency, punctuation,
    and (at ``extra_rate`` per word) one of ``extra``."""
    rng = random.Random(seed)
    posts: list[str] = []
    for _ in range(count):
        target = rng.randint(20, 200)
        words: list[str] = []
        length = 0
        while length < target:
            word = dictionary.sample(rng)
            words.append(word)
            length += len(word)
            if rng.random() < 0.12:
                words.append(rng.choice(PUNCT))
            if extra and rng.random() < extra_rate:
                words.append(rng.choice(extra))
        posts.append("".join(words))
    return posts


def make_user_posts(dictionary: Dictionary, terms: list[str], count: int, seed: int = SEED
                    ) -> tuple[list[str], set[int], list[tuple[int, bytes]]]:
    """User-written posts, the planted ones (in running text), and malformed
    JSON lines as ``(index of the post they precede, raw line)``."""
    texts = make_sentences(dictionary, count, seed + 2, USER_BITS, 0.15)
    posts, planted = plant(texts, terms, seed=seed + 2)
    broken = [b'{"id": "broken-%d", "text": "\xe6\x9c\xaa\xe5\xae\x8c', b'{"id": %d, "text": "x",}', b'{"id": %d "text": "x"}']
    malformed = [(i, broken[k % len(broken)].replace(b"%d", str(i).encode()))
                 for k, i in enumerate(range(MALFORMED_EVERY // 2, count, MALFORMED_EVERY))]
    return posts, planted, malformed


def plant(posts: list[str], terms: list[str], rate: float = 0.01, seed: int = SEED, around: str = "") -> tuple[list[str], set[int]]:
    """Insert a (possibly obfuscated) term into about ``rate`` of the posts.

    With ``around=""`` the term lands at a random character of running text, so
    some plants cut through a word and word-boundary verification suppresses
    them, as it should.
    """
    rng = random.Random(seed + 1)
    out, planted = list(posts), set()
    for index, post in enumerate(posts):
        if rng.random() < rate:
            at = rng.randrange(len(post) + 1)
            out[index] = post[:at] + around + _obfuscate(rng.choice(terms), rng) + around + post[at:]
            planted.add(index)
    return out, planted


def read_corpus(path: Path, limit: int | None = None) -> list[str]:
    lines = [l.strip() for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]
    return lines[:limit] if limit else lines
