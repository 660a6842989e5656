"""The normalised text of many posts at once, with the map back to the original.

:meth:`Normaliser.encode_batch` keeps no per-character map, and its codes are
in a matcher's alphabet (Hyperscan's is not reversible), so verification used
to call :meth:`Normaliser.normalise` again for every post with candidates: a
dozen numpy calls and a Python list per post. :func:`refold` does the same
work for all of a batch's candidate posts in one set of numpy passes, and
:class:`Refolded` answers the questions verification asks (text, span,
neighbours) for any of them.

It applies the normaliser's own table and HTML rule to the joined posts,
exactly as ``encode_batch`` does, so each post reads as
``Normaliser.normalise(text)`` would (``tests/test_bulk_verify.py`` checks it).

This belongs in ``screener/normalise.py`` as ``Normaliser.normalise_many``;
it lives here while that module is being edited elsewhere, and uses its
private ``_points`` (the HTML rule) rather than copying it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .charmap import MARKUP
from .normalise import BLOCK_TAG, Normaliser, fold_points

_SEP = "\x00"  # as encode_batch: no HTML construct may contain it


@dataclass(frozen=True)
class Refolded:
    """Posts ``0..n-1``, normalised, in flat arrays.

    Original characters of post ``p``: ``points[ostart[p]:ostart[p + 1] - 1]``
    (with the HTML rule applied: a decoded character reference's character at
    its ``&``, :data:`~screener.charmap.MARKUP` over the rest and over tags);
    its normalised characters: flat indices ``nstart[p]:nstart[p + 1]``, each
    with its folded code (``codes``), its original position (``kept``: the
    first character of its run) and the original end (``ends``: after the
    run's last character, or its decoded entity), all in joined coordinates,
    its run length (``runs``), whether a separator follows it (``gaps``)
    and whether a clause mark does (``clauses``),
    as :class:`screener.normalise.Normalised` has them.
    """

    originals: Sequence[str]
    text: str  # every post's normalised text, one after the other
    points: np.ndarray  # uint32 code points of the joined originals, HTML rule applied
    codes: np.ndarray  # uint32 folded code per normalised character
    kept: np.ndarray  # int64
    ends: np.ndarray  # int64
    ostart: np.ndarray  # int64, one per post and one past the end (and its separator)
    nstart: np.ndarray  # int64, one per post and one past the end
    runs: np.ndarray  # int64
    gaps: np.ndarray  # bool
    clauses: np.ndarray  # bool: a clause mark follows
    barriers: np.ndarray | None = None  # where a block tag starts (BLOCK_TAG), if any

    @property
    def repeats(self) -> np.ndarray:
        """Runs longer than one before each normalised character (one more
        entry than characters): a span without any is answered in O(1)."""
        cached = self.__dict__.get("_repeats")
        if cached is None:
            cached = np.zeros(len(self.runs) + 1, dtype=np.int64)
            np.cumsum(self.runs > 1, out=cached[1:])
            object.__setattr__(self, "_repeats", cached)
        return cached

    @property
    def clause_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Clause marks, and gaps holding a clause mark or a separator,
        before each normalised character (cumulative): every hit asks
        :meth:`RefoldedPost.clause_split`, in O(1) with these."""
        cached = self.__dict__.get("_clause_counts")
        if cached is None:
            marks = np.zeros(len(self.clauses) + 1, dtype=np.int64)
            np.cumsum(self.clauses, out=marks[1:])
            apart = np.zeros(len(self.clauses) + 1, dtype=np.int64)
            np.cumsum(self.clauses | self.gaps, out=apart[1:])
            cached = (marks, apart)
            object.__setattr__(self, "_clause_counts", cached)
        return cached

    def past_markup(self, before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:func:`screener.verify._past_markup` of each of ``before`` (going
        back) and ``after`` (going on), in numpy passes. A post separator is
        no markup, so no answer leaves its post by more than that separator."""
        markup = self.points == MARKUP
        if not markup.any():  # the common case: no tag, no character reference
            return before, after
        if self.barriers is not None:  # a block tag's '<' stops the walk: no neighbour across it
            markup[self.barriers] = False
        at = np.arange(len(markup), dtype=np.int64)
        back = np.maximum.accumulate(np.where(markup, -1, at))
        on = np.minimum.accumulate(np.where(markup, len(markup), at)[::-1])[::-1]
        inside = (before >= 0) & (before < len(markup))
        before = np.where(inside, back[np.clip(before, 0, len(markup) - 1)], before)
        inside = (after >= 0) & (after < len(markup))
        after = np.where(inside, on[np.clip(after, 0, len(markup) - 1)], after)
        return before, after

    def post_text(self, p: int) -> str:
        return self.text[self.nstart[p]:self.nstart[p + 1]]

    def post(self, p: int) -> "RefoldedPost":
        """Post ``p`` with ``original`` and ``span``, as a :class:`Normalised` has them."""
        return RefoldedPost(self, p)

    def span(self, p: int, start: int, end: int) -> tuple[int, int]:
        """As :meth:`Normalised.span`: original ``[start, end)`` of normalised ``[start, end)`` of post ``p``."""
        base, origin = int(self.nstart[p]), int(self.ostart[p])
        return int(self.kept[base + start]) - origin, int(self.ends[base + end - 1]) - origin


class RefoldedPost:
    """One post of a :class:`Refolded` batch (see :meth:`Refolded.post`)."""

    __slots__ = ("_posts", "_p", "original")

    def __init__(self, posts: Refolded, p: int) -> None:
        self._posts, self._p, self.original = posts, p, posts.originals[p]

    def span(self, start: int, end: int) -> tuple[int, int]:
        return self._posts.span(self._p, start, end)

    def runs_of(self, start: int, end: int) -> list[int]:
        posts = self._posts
        base = int(posts.nstart[self._p])
        if posts.repeats[base + end] == posts.repeats[base + start]:
            return []  # every run one: the common case, without a slice
        return posts.runs[base + start:base + end].tolist()

    def separated(self, start: int, end: int) -> bool:
        base = int(self._posts.nstart[self._p])
        return end - start > 1 and bool(self._posts.gaps[base + start:base + end - 1].all())

    def clause_split(self, start: int, end: int) -> bool:
        if end - start < 3:  # one gap: marked or not, never both (most terms)
            return False
        marks, apart = self._posts.clause_counts
        lo = int(self._posts.nstart[self._p]) + start
        hi = lo + end - start - 1  # the gaps of [start, end)
        return marks[hi] > marks[lo] and apart[hi] - apart[lo] < hi - lo

    def marked_gaps(self, start: int, end: int) -> list[int]:
        base = int(self._posts.nstart[self._p]) + start
        return np.flatnonzero(self._posts.clauses[base:base + end - start - 1]).tolist()

    def norm_text(self, start: int, end: int) -> str:
        base = int(self._posts.nstart[self._p])
        return self._posts.text[base + start:base + end]


def refold(normaliser: Normaliser, texts: Sequence[str]) -> Refolded:
    """Every text normalised, as one :class:`Refolded`.

    >>> posts = refold(Normaliser(), ["赌*博", "&#36172;博"])
    >>> posts.post_text(1), posts.span(1, 0, 2)
    ('赌博', (0, 9))
    """
    joined = _SEP.join([*texts, ""])
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    ostart = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths + 1, out=ostart[1:])
    points, extend = normaliser.batch_points(texts, joined, ostart[1:] - 1)
    f = fold_points(normaliser.table, points, extend, ostart[1:] - 1)
    nstart = np.searchsorted(f.starts, ostart)
    text = f.codes.astype("<u4").tobytes().decode("utf-32-le")
    barriers = None
    if normaliser.config.html and "<" in joined:
        barriers = np.fromiter((m.start() for m in BLOCK_TAG.finditer(joined)), dtype=np.int64)
    return Refolded(texts, text, points, f.codes, f.starts, f.ends, ostart, nstart, f.runs, f.gaps, f.clauses,
                    barriers)
