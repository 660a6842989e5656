"""The screening core: normalise → match → verify → decide, one batch at a time.

This is the single path every front end uses (``scan``, ``explain``, the
Kafka worker): it takes texts and knows nothing of where they came from.

>>> from screener import Screener, load_lexicons
>>> s = Screener(load_lexicons("lexicons"))
>>> [r.action for r in s.screen(["今天天气不错", "网上赌*博，稳赚不赔"])]
['pass', 'recall']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .decide import Verdict, decide
from .lexicon import LexiconSet
from .match import find_candidates
from .matchers import Matcher, build_matcher
from .pinyin import PinyinPass
from .verify import Decision, Hit, Verifier


@dataclass(frozen=True, slots=True)
class Screening:
    """The outcome for one post: its action, kept hits and every decision."""

    action: Verdict
    hits: tuple[Hit, ...] = ()
    decisions: tuple[Decision, ...] = ()


PASS = Screening("pass")


class Screener:
    """Screens batches of texts against one compiled lexicon set.

    Build it once per lexicon version (matcher compilation is the expensive
    part); ``screen`` is then safe to call from one thread at a time.
    """

    def __init__(self, lexicons: LexiconSet, matcher: str = "auto", compiled: Matcher | None = None) -> None:
        """``compiled``: a matcher already built for the same lexicon set (the
        post and profile views share one)."""
        self.lexicons = lexicons
        self.matcher = compiled or build_matcher(matcher, lexicons.patterns.texts, lexicons.normaliser.table)
        self.verifier = Verifier(lexicons)
        #: Terms written in pinyin: a second pass over posts with Latin letters.
        self.pinyin = PinyinPass(lexicons)
        self._skip = lexicons.rules.indices_in(lexicons.out_of_scope)
        # Front ends that keep a screener for the life of the process freeze
        # it out of the cyclic GC's sight (screener.cli, stream.run, the
        # reload path): a process-wide act, not one for a constructor that
        # tests and explain call many times.

    @property
    def matcher_name(self) -> str:
        return self.matcher.name

    @property
    def version(self) -> str:
        return self.lexicons.version

    def screen(self, texts: Sequence[str]) -> list[Screening]:
        """One :class:`Screening` per text, in order. Batch for speed."""
        results = [PASS] * len(texts)
        for index, screening in self.screen_sparse(texts).items():
            results[index] = screening
        return results

    def screen_sparse(self, texts: Sequence[str]) -> dict[int, Screening]:
        """Screenings of only the texts that had candidate hits; all others pass.

        The hot path of the front ends: work after matching is proportional to
        candidate posts, not to the batch.
        """
        batch, candidates = find_candidates(self.lexicons, self.matcher, texts)
        for index, found in self.pinyin.find(texts, batch).items():
            candidates.setdefault(index, []).extend(found)
        if self._skip:
            candidates = {i: kept for i, found in candidates.items() if (kept := [c for c in found if c.rule not in self._skip])}
        return {
            index: Screening(decide(hits), tuple(hits), tuple(decisions))
            for index, (hits, decisions) in self.verifier.verify_many(texts, candidates).items()
        }
