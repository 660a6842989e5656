"""screener: rule-based content screening for Chinese social-media posts.

Data flows one way: source → decode → normalise → match → verify → decide →
emit → commit; each stage is a module of that name (``match``, ``verify``...).
"""

from .errors import ConfigError, LexiconError, MatcherUnavailable, Problem, ScreenerError
from .lexicon import LexiconSet, load_lexicons
from .pipeline import Screener, Screening

__version__ = "0.1.0"

__all__ = [
    "Screener", "Screening", "LexiconSet", "load_lexicons",
    "ScreenerError", "LexiconError", "MatcherUnavailable", "ConfigError", "Problem",
]
