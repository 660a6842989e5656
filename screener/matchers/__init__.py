"""Matcher backends behind one interface, and the rule ``auto`` follows.

``auto`` picks hyperscan when it imports (SIMD literal matching, 200-1000 MB/s
measured here) and pyahocorasick otherwise (portable, 6-17 MB/s on Chinese).
The choice is reported, never silent: :func:`build_matcher` returns the
backend, whose ``name`` says what was picked.
"""

from __future__ import annotations

import importlib
from typing import Any, Literal, Protocol, Sequence

import numpy as np

from ..errors import MatcherUnavailable
from .base import Matcher

MatcherName = Literal["auto", "aho", "hyperscan", "oracle"]
BACKENDS: tuple[str, ...] = ("hyperscan", "aho")


def _load(name: str) -> type:
    modules = {
        "aho": ("aho", "AhoMatcher"),
        "hyperscan": ("hyperscan_backend", "HyperscanMatcher"),
        "oracle": ("oracle", "OracleMatcher"),
    }
    if name not in modules:
        raise MatcherUnavailable(f"unknown matcher {name!r}; choose auto, aho or hyperscan")
    module, cls = modules[name]
    try:
        return getattr(importlib.import_module(f"{__name__}.{module}"), cls)
    except ImportError as exc:
        raise MatcherUnavailable(f"matcher {name!r} is not available here: {exc}") from exc


def available() -> list[str]:
    """Backends that import on this machine, fastest first."""
    names = []
    for name in BACKENDS:
        try:
            _load(name)
        except MatcherUnavailable:
            continue
        names.append(name)
    return names


def resolve(name: str) -> str:
    """The concrete backend ``name`` stands for (``auto`` → fastest available)."""
    if name != "auto":
        _load(name)
        return name
    found = available()
    if not found:  # pragma: no cover - pyahocorasick is a hard dependency
        raise MatcherUnavailable("no matcher backend imports")
    return found[0]


def build_matcher(name: str, patterns: Sequence[str], fold_table: np.ndarray) -> Matcher:
    return _load(resolve(name))(patterns, fold_table)


class Staged(Protocol):
    """A matcher being built: :meth:`finish` returns it; :meth:`abandon`
    waits for what was started, when the build failed before ``finish``."""

    def finish(self, patterns: Sequence[str]) -> Matcher: ...

    def abandon(self) -> None: ...


class _OneStep:
    """A backend with nothing to do before every pattern is known."""

    def __init__(self, backend: type, fold_table: np.ndarray) -> None:
        self._backend, self._fold_table = backend, fold_table

    def finish(self, patterns: Sequence[str]) -> Matcher:
        return self._backend(patterns, self._fold_table)

    def abandon(self) -> None:
        pass


def start_matcher(name: str, literals: Sequence[str], fold_table: np.ndarray) -> Staged:
    """Begin building a matcher from the patterns a lexicon knows first (its
    terms as written); ``finish(patterns)`` completes it with all of them,
    which must begin with ``literals``. Hyperscan starts compiling a large
    lexicon's databases at once (:class:`~.hyperscan_backend.StagedBuild`);
    other backends build in ``finish``."""
    backend = _load(resolve(name))
    staged = getattr(backend, "staged", None)
    return staged(literals, fold_table) if staged is not None else _OneStep(backend, fold_table)


def matcher_from_state(name: str, meta: dict[str, Any], buffers: dict[str, Any], fold_table: np.ndarray) -> Matcher:
    """A matcher ``name`` (concrete, not ``auto``) from its :meth:`Matcher.state`."""
    return _load(name).from_state(meta, buffers, fold_table)  # type: ignore[attr-defined]


__all__ = ["Matcher", "MatcherName", "BACKENDS", "Staged", "available", "resolve", "build_matcher", "start_matcher",
           "matcher_from_state"]
