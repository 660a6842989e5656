"""Stage: match. Run a matcher over an encoded batch; group occurrences by post.

Only posts with at least one occurrence come out of here, so everything after
this stage costs in proportion to candidate posts, not to traffic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .lexicon import LexiconSet
from .lexicon.model import VariantKind
from .matchers import Matcher
from .normalise import EncodedBatch


@dataclass(frozen=True, slots=True)
class Candidate:
    """One pattern occurrence in normalised coordinates of its post.

    ``runs``: the pattern's run lengths (empty: all one), which verification
    holds the post's runs to (:attr:`screener.lexicon.model.Pattern.runs`).
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
    return batch, group_by_post(lexicons, batch, matcher.scan(batch))


def group_by_post(
    lexicons: LexiconSet, batch: EncodedBatch, matches: np.ndarray
) -> dict[int, list[Candidate]]:
    if not len(matches):
        return {}
    posts = batch.post_of(matches[:, 1])
    local = matches[:, 1:] - batch.starts[posts][:, None]
    order = np.lexsort((matches[:, 0], local[:, 0], posts))
    patterns = lexicons.patterns
    grouped: dict[int, list[Candidate]] = {}
    for post, pid, (start, end) in zip(posts[order].tolist(), matches[order, 0].tolist(), local[order].tolist()):
        p = patterns[pid]
        grouped.setdefault(post, []).append(Candidate(p.rule, p.part, start, end, p.variant, p.runs))
    return grouped
