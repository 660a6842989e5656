"""Stage: match. Run a matcher over an encoded batch; group occurrences by post.

Only posts with at least one occurrence come out of here, so everything after
this stage costs in proportion to candidate posts, not to traffic.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from .lexicon import LexiconSet
from .lexicon.model import VariantKind
from .matchers import Matcher
from .normalise import EncodedBatch


class Candidate(NamedTuple):
    """One pattern occurrence in normalised coordinates of its post.

    ``runs``: the pattern's run lengths (empty: all one), which verification
    holds the post's runs to (:attr:`screener.lexicon.model.Pattern.runs`).

    A named tuple, not a frozen dataclass: a lexicon of ordinary words makes
    one per occurrence, ~170k per second of dense news, and a tuple is made
    in a third of the time (0.4 against 1.3 us, measured).
    """

    rule: int
    part: int
    start: int
    end: int
    variant: VariantKind
    runs: tuple[int, ...] = ()


def find_candidates(
    lexicons: LexiconSet, matcher: Matcher, texts: Sequence[str]
) -> tuple[EncodedBatch, dict[int, list[Candidate]]]:
    batch = lexicons.normaliser.encode_batch(texts, matcher.alphabet)
    return batch, group_by_post(lexicons, batch, drop_short_runs(lexicons, batch, matcher.scan(batch), texts))


#: Fewer occurrences of run-spelling patterns than this in a batch are left
#: to verification, which drops them too: refolding their posts here costs
#: more than the objects it saves (a lexicon of rare terms has a few per
#: batch; one of ordinary words has thousands).
_DROP_FROM = 256


def drop_short_runs(lexicons: LexiconSet, batch: EncodedBatch, matches: np.ndarray,
                    texts: Sequence[str]) -> np.ndarray:
    """``matches`` without the occurrences of patterns that spell a run (天天
    is the pattern 天) where the post does not repeat the character as often.

    Verification drops them too (``screener.verify``); here it costs numpy
    passes instead of an object per occurrence, which matters for a lexicon
    of ordinary words: hundreds of its terms spell a run, and their patterns
    (天, 做饭) occur in most posts. The posts concerned are refolded (their
    run lengths are not kept by the batch fold).
    """
    if not len(matches):
        return matches
    spells, offsets, runs = lexicons.patterns.run_columns()
    at = np.flatnonzero(spells[matches[:, 0]])
    if len(at) < _DROP_FROM:
        return matches
    from .refold import refold  # only where some pattern spells a run

    pid, start, end = matches[at, 0], matches[at, 1], matches[at, 2]
    post = batch.post_of(start)
    posts, which = np.unique(post, return_inverse=True)
    folded = refold(lexicons.normaliser, [texts[i] for i in posts.tolist()])
    lengths = end - start
    owner = np.repeat(np.arange(len(at)), lengths)
    offset = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    have = folded.runs[folded.nstart[which[owner]] + (start - batch.starts[post])[owner] + offset]
    need = runs[offsets[pid[owner]] + offset]
    keep = np.ones(len(matches), dtype=bool)
    keep[at[np.unique(owner[have < need])]] = False
    return matches[keep]


def group_by_post(
    lexicons: LexiconSet, batch: EncodedBatch, matches: np.ndarray
) -> dict[int, list[Candidate]]:
    if not len(matches):
        return {}
    posts = batch.post_of(matches[:, 1])
    local = matches[:, 1:] - batch.starts[posts][:, None]
    patterns = lexicons.patterns
    order = np.lexsort((patterns.ranks()[matches[:, 0]], local[:, 0], posts))
    grouped: dict[int, list[Candidate]] = {}
    for post, pid, (start, end) in zip(posts[order].tolist(), matches[order, 0].tolist(), local[order].tolist()):
        p = patterns[pid]
        grouped.setdefault(post, []).append(Candidate(p.rule, p.part, start, end, p.variant, p.runs))
    return grouped
