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
    verdict: Verdict = "pass"
    for hit in hits:
        if SEVERITY_OF_ACTION[hit.rule.action] > SEVERITY_OF_ACTION[verdict]:
            verdict = hit.rule.action
    return verdict
