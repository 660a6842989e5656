"""Stage: decide. The strictest surviving hit decides the post's action."""

from __future__ import annotations

from typing import Literal, Sequence

from .lexicon.model import SEVERITY_OF_ACTION
from .verify import Hit

Verdict = Literal["pass", "flag", "recall"]


def decide(hits: Sequence[Hit]) -> Verdict:
    """``recall`` beats ``flag`` beats ``pass``.

    >>> decide([])
    'pass'
    """
    return strictest([hit.action for hit in hits])


def strictest(actions: Sequence[str]) -> Verdict:
    """The strictest of ``actions`` (``pass`` when empty); the one ordering
    every stage uses (hits, policy effects, rescans)."""
    return max(actions, key=SEVERITY_OF_ACTION.__getitem__, default="pass")  # type: ignore[arg-type]
