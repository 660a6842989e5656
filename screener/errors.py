"""One root exception; each domain adds its own subclass.

Per-post problems (bad JSON, oversize posts) are *data* (dead-letter records),
never exceptions: a run must not stop because one line is malformed.
"""

from __future__ import annotations

import os
import sys
import traceback
from dataclasses import dataclass

#: Exit statuses: a problem a user, a file or a setting caused (the message
#: says which), and a bug of ours.
USAGE, INTERNAL = 2, 70
#: What the ``stream`` extra installs (pyproject.toml) that some command may import.
STREAM_MODULES = frozenset({"prometheus_client", "kafka", "confluent_kafka", "lz4", "snappy", "zstandard"})


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


def debugging() -> bool:
    """``SCREENER_DEBUG`` set to anything but empty, 0, false, no or off
    (``SCREENER_DEBUG=0`` had turned tracebacks on: found by a hostile-input probe)."""
    return os.environ.get("SCREENER_DEBUG", "").strip().lower() not in ("", "0", "false", "no", "off")


def report(exc: Exception, command: str) -> int:
    """Write ``exc`` to stderr as ``screener COMMAND`` reports errors, and
    return the exit status: :data:`USAGE` for what the user can fix (one
    line, or one per lexicon/policy problem), :data:`INTERNAL` for a bug of
    ours (one line; the traceback only with ``SCREENER_DEBUG``).

    The command line and each ``run --workers`` child use it, so a bad
    setting reads the same in both (a child printed a traceback and was
    restarted for ever)."""
    if isinstance(exc, LexiconError):  # PolicyError too: every problem, one per line
        for problem in exc.problems:
            print(f"{problem} [error]", file=sys.stderr)
        what = "policy" if type(exc).__name__ == "PolicyError" else "lexicon"
        print(f"screener: {what} rejected: {len(exc.problems)} problem(s)", file=sys.stderr)
        return USAGE
    if isinstance(exc, ScreenerError):
        print(f"screener: {exc}", file=sys.stderr)
        return USAGE
    if isinstance(exc, ModuleNotFoundError) and exc.name in STREAM_MODULES:  # not a bug: an install without it
        print(f"screener {command}: needs the stream extra ({exc.name} does not import here): "
              "pip install 'screener[stream]'", file=sys.stderr)
        return USAGE
    if debugging():
        traceback.print_exception(exc)
    print(f"screener: internal error: {type(exc).__name__}: {exc} (SCREENER_DEBUG=1 shows the traceback; "
          "please report it)", file=sys.stderr)
    return INTERNAL
