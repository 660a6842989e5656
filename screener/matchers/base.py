"""The one interface every matcher backend implements.

A backend is built from normalised patterns (pattern id = index) and the fold
table, chooses the alphabet it wants the text in, and reports every occurrence
of every pattern (overlapping ones included) as ``(pattern_id, start, end)``
rows in positions of the encoded batch. Everything after that (which post, the
original offsets, verification) is shared code, so backends differ only in
speed, never in answers.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, Sequence

import numpy as np

from ..normalise import Alphabet, EncodedBatch

#: Row layout of :meth:`Matcher.scan` results.
MATCH_DTYPE = np.int64


class Matcher(Protocol):
    name: ClassVar[str]
    alphabet: Alphabet

    def scan(self, batch: EncodedBatch) -> np.ndarray:
        """All occurrences, shape ``(n, 3)``: pattern id, start, end (exclusive)."""
        ...

    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(picklable metadata, name → bytes-like) that ``from_state`` (a
        classmethod taking them and the fold table) turns back into this
        matcher without compiling; for the cache (``screener/compiled.py``)."""
        ...


def empty_matches() -> np.ndarray:
    return np.empty((0, 3), dtype=MATCH_DTYPE)


def codes_to_str(codes: np.ndarray) -> str:
    """Decode a uint32 code-point array (the fold alphabet) to a str."""
    return codes.astype("<u4", copy=False).tobytes().decode("utf-32-le")


def check_patterns(patterns: Sequence[str]) -> None:
    for i, p in enumerate(patterns):
        if not p:
            raise ValueError(f"pattern {i} is empty")
        if "\x00" in p:
            raise ValueError(f"pattern {i} contains U+0000, the batch separator")
