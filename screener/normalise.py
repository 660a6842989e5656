"""Stage: normalise. Fold evasions away while keeping a map to the original.

Two entry points share one definition of "normalised":

* :meth:`Normaliser.normalise` folds one text and returns, for every
  normalised character, where it came from in the original. It serves lexicon
  compilation, verification of posts that have candidate hits, and
  ``screener explain``.
* :meth:`Normaliser.encode_batch` folds a whole batch of posts in one pass
  (:mod:`screener.compact`) and returns it in a matcher's alphabet, separated so
  that no match can span two posts. It keeps no per-character map: positions
  are mapped back only for the few posts that have hits, by re-running
  :meth:`normalise` on them. Both paths apply the same table and the same
  HTML rule, so a post's offsets agree between them (a property test checks
  it).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .charmap import DELETE, MARKUP, FoldConfig, build_table
from .compact import compact, compact_numpy

# Tags and comments are deleted whole; entities are decoded to the character
# they stand for (&#36172; is 赌), so both are noise that cannot hide a term.
# The tag form is strict (a name right after "<") so that "a<b and c>d" in
# prose is not mistaken for markup.
_HTML_RE = re.compile(
    r"<!--[^\x00]{0,2000}?-->"
    r"|</?[A-Za-z][A-Za-z0-9-]{0,20}(?:\s[^<>\x00]{0,500})?/?>"
    r"|(?P<ent>&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});)"
)

#: Separator between posts in a batch; forced, not looked up, so a U+0000
#: inside a post is plain noise.
_SEP_CHAR = "\x00"


@dataclass(frozen=True)
class NormaliseConfig:
    """Settings of the normaliser; they are part of the lexicon version."""

    fold: FoldConfig = field(default_factory=FoldConfig)
    html: bool = True


@dataclass(frozen=True)
class Normalised:
    """A folded text with its map back to the original.

    ``starts[i]`` is the original index of normalised character ``i``; it ends
    at ``starts[i] + 1`` except for a decoded entity, whose original end is in
    ``extend``.

    >>> n = Normaliser().normalise("赌*博")
    >>> n.text, n.span(0, 2)
    ('赌博', (0, 3))
    """

    original: str
    text: str
    starts: list[int]
    extend: dict[int, int]

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original ``[start, end)`` of normalised ``[start, end)``; end > start."""
        last = self.starts[end - 1]
        return self.starts[start], self.extend.get(last, last + 1)

    @property
    def ends(self) -> list[int]:
        """Original end of every normalised character (built on demand)."""
        return [self.extend.get(i, i + 1) for i in self.starts]


@dataclass(frozen=True)
class Alphabet:
    """How a matcher wants the normalised text encoded.

    ``table`` maps an original code point straight to the matcher's code (the
    fold table composed with the matcher's own alphabet); ``delete`` is the
    code meaning "noise, drop it" and ``separator`` the code placed between
    posts, which no pattern may contain.
    """

    table: np.ndarray
    delete: int
    separator: int


@dataclass(frozen=True)
class EncodedBatch:
    """A batch of posts in a matcher alphabet.

    Post ``i`` occupies ``codes[starts[i]:starts[i + 1] - 1]``; the code at
    ``starts[i + 1] - 1`` is the separator.
    """

    codes: np.ndarray
    starts: np.ndarray

    def post_of(self, positions: np.ndarray) -> np.ndarray:
        """Index of the post that each code position belongs to."""
        return np.searchsorted(self.starts, positions, side="right") - 1


class Normaliser:
    """Folds text with one table lookup per character plus an HTML pass."""

    def __init__(self, config: NormaliseConfig | None = None, table: np.ndarray | None = None) -> None:
        """``table``: the fold table of ``config.fold``, if the caller has it
        (from the cache); built otherwise."""
        self.config = config or NormaliseConfig()
        self.table = build_table(self.config.fold) if table is None else table
        self.alphabet = Alphabet(self.table, int(DELETE), 0)

    # -- one text ---------------------------------------------------------
    def normalise(self, text: str) -> Normalised:
        points, extend = self._points(text)
        codes = self.table.take(points)
        kept = np.flatnonzero(codes != DELETE)
        folded = codes[kept].astype("<u4").tobytes().decode("utf-32-le")
        return Normalised(text, folded, kept.tolist(), extend)

    def fold_string(self, text: str) -> str:
        """Just the normalised text (lexicon terms, tests)."""
        return self.normalise(text).text

    def fold_many(self, texts: Sequence[str]) -> list[str]:
        """``[fold_string(t) for t in texts]`` in one batch pass (lexicon
        compilation folds every term and variant: 100k one-by-one calls took
        over a second). The HTML rule cannot reach across the separators
        (none of its matches contains U+0000), so each text folds as alone.
        """
        if not texts:
            return []
        if any("\x00" in t for t in texts):  # a NUL inside would be taken for a separator
            return [self.fold_string(t) for t in texts]
        joined = _SEP_CHAR.join([*texts, ""])
        separators = np.cumsum(np.array(list(map(len, texts)), dtype=np.int64) + 1) - 1
        points, _ = self._points(joined)
        codes, _ = compact_numpy(points, self.table, int(DELETE), 0, separators)  # numpy: no numba just for this
        folded = codes.astype("<u4", copy=False).tobytes().decode("utf-32-le").split(_SEP_CHAR)
        return folded[:-1]

    # -- a batch ------------------------------------------------------------
    def encode_batch(self, texts: Sequence[str], alphabet: Alphabet) -> EncodedBatch:
        """Fold and encode many posts in one pass, separated by ``alphabet.separator``."""
        joined = _SEP_CHAR.join([*texts, ""])  # one copy of the batch, not two
        separators = np.cumsum(np.array(list(map(len, texts)), dtype=np.int64) + 1) - 1
        points, _ = self._points(joined)
        codes, starts = compact(points, alphabet.table, alphabet.delete, alphabet.separator, separators)
        return EncodedBatch(codes, starts)

    def _points(self, text: str) -> tuple[np.ndarray, dict[int, int]]:
        """The code points to fold: ``text`` with the HTML rule applied.

        A decoded entity's code point replaces its ``&``; the rest of the
        entity, and every tag or comment, becomes :data:`MARKUP`, which folds
        to "delete" in every alphabet. Returns also the original end of
        characters that stand for more than one original character (decoded
        entities).
        """
        points = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
        extend: dict[int, int] = {}
        if self.config.html and ("<" in text or "&" in text):
            points = points.copy()
            for m in _HTML_RE.finditer(text):
                start, end = m.span()
                if m.group("ent"):
                    char = html.unescape(m.group("ent"))
                    if len(char) == 1 and char != m.group("ent"):
                        points[start] = ord(char)
                        extend[start] = end
                        start += 1
                    else:
                        continue  # unknown entity: leave the characters as text
                points[start:end] = MARKUP
        return points, extend
