"""pyahocorasick backend: portable reference, pure C extension, no SIMD.

It walks a node's children one by one, so with the thousands of distinct first
characters of a Chinese lexicon it falls to a few MB/s. It is the backend that
works everywhere; hyperscan is the fast one.
"""

from __future__ import annotations

import pickle
from typing import Any, ClassVar, Sequence

import ahocorasick
import numpy as np

from ..charmap import DELETE
from ..normalise import Alphabet, EncodedBatch
from .base import MATCH_DTYPE, check_patterns, codes_to_str, empty_matches


class AhoMatcher:
    name: ClassVar[str] = "aho"

    def __init__(self, patterns: Sequence[str], fold_table: np.ndarray) -> None:
        check_patterns(patterns)
        # Works on the folded code points themselves (separator U+0000).
        self.alphabet = Alphabet(fold_table, int(DELETE), 0)
        self._automaton = ahocorasick.Automaton()
        for pid, pattern in enumerate(patterns):
            if not self._automaton.exists(pattern):
                self._automaton.add_word(pattern, [])
            self._automaton.get(pattern).append((pid, len(pattern)))
        if patterns:
            self._automaton.make_automaton()
        self._empty = not patterns

    # -- the compiled-lexicon cache (screener/compiled.py) ----------------------
    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {"empty": self._empty}, {"aho.automaton": pickle.dumps(self._automaton, protocol=5)}

    @classmethod
    def from_state(cls, meta: dict[str, Any], buffers: dict[str, Any], fold_table: np.ndarray) -> "AhoMatcher":
        self = cls.__new__(cls)
        self.alphabet = Alphabet(fold_table, int(DELETE), 0)
        # Trusted: our own entry in a directory only we can write (screener/cache.py).
        self._automaton = pickle.loads(buffers["aho.automaton"])
        self._empty = meta["empty"]
        return self

    def scan(self, batch: EncodedBatch) -> np.ndarray:
        if self._empty or not len(batch.codes):
            return empty_matches()
        rows = [
            (pid, end + 1 - length, end + 1)
            for end, entries in self._automaton.iter(codes_to_str(batch.codes))
            for pid, length in entries
        ]
        return np.array(rows, dtype=MATCH_DTYPE) if rows else empty_matches()
