"""Lexicons: the operator's data, validated all-or-nothing and compiled."""

from .load import LexiconSet, load_lexicons
from .model import ACTIONS, MODES, Action, Category, Mode, Pattern, Rule

__all__ = ["LexiconSet", "load_lexicons", "Action", "Mode", "Category", "Rule", "Pattern", "ACTIONS", "MODES"]
