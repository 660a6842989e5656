"""One root exception; each domain adds its own subclass.

Per-post problems (bad JSON, oversize posts) are *data* (dead-letter records),
never exceptions: a run must not stop because one line is malformed.
"""

from __future__ import annotations

from dataclasses import dataclass


class ScreenerError(Exception):
    """Root of every error screener raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One finding about a lexicon file, reported as ``path:line: reason``."""

    path: str
    line: int
    reason: str
    term: str | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


class LexiconError(ScreenerError):
    """A lexicon set failed validation; nothing of it is used.

    ``problems`` holds every problem found, not just the first, so an operator
    fixes a file in one round trip.
    """

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class MatcherUnavailable(ScreenerError):
    """A matcher backend was asked for by name but cannot be used here."""


class ConfigError(ScreenerError):
    """Settings are inconsistent or out of range."""


class InputError(ScreenerError):
    """An input file or stream cannot be read (missing, unreadable, closed)."""


class OutputError(ScreenerError):
    """An output (events, dead letters, audit log, state, checkpoint) cannot
    be written. The run stops: what was written before is complete and in
    order (audit records and dead letters before the events they go with)."""


class BrokerError(ScreenerError):
    """A command that reads or writes Kafka could not (broker unreachable, ...)."""
