"""A trivially correct matcher (``str.find`` per pattern), for tests only.

Quadratic in patterns × text; it exists so that property tests can compare
the fast backends with something obviously right.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np

from ..charmap import DELETE
from ..normalise import Alphabet, EncodedBatch
from .base import MATCH_DTYPE, check_patterns, codes_to_str, empty_matches


class OracleMatcher:
    name: ClassVar[str] = "oracle"

    def __init__(self, patterns: Sequence[str], fold_table: np.ndarray) -> None:
        check_patterns(patterns)
        self.patterns = list(patterns)
        self.alphabet = Alphabet(fold_table, int(DELETE), 0)

    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {"patterns": self.patterns}, {}

    @classmethod
    def from_state(cls, meta: dict[str, Any], buffers: dict[str, Any], fold_table: np.ndarray) -> "OracleMatcher":
        return cls(meta["patterns"], fold_table)

    def scan(self, batch: EncodedBatch) -> np.ndarray:
        text = codes_to_str(batch.codes)
        rows = []
        for pid, pattern in enumerate(self.patterns):
            at = text.find(pattern)
            while at >= 0:
                rows.append((pid, at, at + len(pattern)))
                at = text.find(pattern, at + 1)
        return np.array(rows, dtype=MATCH_DTYPE) if rows else empty_matches()
