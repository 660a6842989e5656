"""Deterministic benchmark data: posts and lexicons built from jieba's dictionary.

Posts are sentences of dictionary words drawn by frequency (so character and
word statistics look like Chinese text), 20-200 characters with punctuation.
About 1% of posts carry a lexicon term, three quarters of them obfuscated (noise between
characters, Traditional characters, full-width forms) the way evaders write.

Lexicon terms join two mid-frequency words (ranks 3,000-150,000): realistic
characters and prefixes, but rarely occurring by accident. The benchmark never
trusts that "rarely": expected counts come from an independent oracle.
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass
from pathlib import Path

import jieba

SEED = 20261122
PUNCT = "，。！？、；："
NOISE = ["*", " ", "\u200b", ".", "·", "-", "😀"]


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
        import opencc

        return opencc.OpenCC("s2t.json").convert(term)
    return term[0] + "\u200b" + term[1:]


def make_posts(dictionary: Dictionary, terms: list[str], count: int, rate: float = 0.01, seed: int = SEED) -> tuple[list[str], set[int]]:
    """Generated posts, and the indices of those that carry a planted term.

    Plants sit between punctuation, as a spammer writes them.
    """
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
        posts.append("".join(words))
    return plant(posts, terms, rate, seed, "，")


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
