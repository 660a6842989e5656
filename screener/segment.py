"""Word segmentation for the boundary check, with jieba, lazily and locally.

jieba runs at about 0.5 MB/s, so it only ever sees a small window around a
candidate hit of a post that has one. The tokenizer is private to screener and
never learns lexicon terms: if 大麻 were added to its dictionary, 这是个大麻烦
could be cut 大麻/烦 and the check would approve exactly the hit it exists to
question. HMM discovery of unknown words is off for the same reason: it glues
a term to its neighbour (请加/微信) and makes suppression depend on guesses.
"""

from __future__ import annotations

import logging
import threading

import jieba

WINDOW = 8  # characters of context on each side of a hit (jieba words rarely exceed 4)


class Segmenter:
    def __init__(self) -> None:
        self._tokenizer: jieba.Tokenizer | None = None
        self._lock = threading.Lock()

    def _get(self) -> jieba.Tokenizer:
        with self._lock:
            if self._tokenizer is None:
                jieba.setLogLevel(logging.WARNING)
                tokenizer = jieba.Tokenizer()
                tokenizer.initialize()
                self._tokenizer = tokenizer
            return self._tokenizer

    def tokens(self, text: str, start: int, end: int) -> list[tuple[str, int, int]]:
        """Tokens of the window around ``[start, end)``, in ``text`` positions."""
        lo, hi = max(0, start - WINDOW), min(len(text), end + WINDOW)
        return [
            (word, lo + s, lo + e)
            for word, s, e in self._get().tokenize(text[lo:hi], HMM=False)
        ]


DEFAULT_SEGMENTER = Segmenter()
