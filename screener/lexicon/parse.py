"""Reading lexicon files: categories.toml and ``<category>.txt``.

Parsing never raises on content: it returns entries and problems, so the
loader can report every problem of every file at once. Syntax (documented in
``lexicons/README.md``)::

    # comment (also after an entry, as ' # ': 赌博  # gambling)
    赌博                         a term with its category's defaults
    加微信 ; mode=substring       options after ';'
    赌博 ; variants=homophone+split   opt-in look-alike spellings (lookalike.py)
    代开 + 发票 ; within=10        a combination: all parts within 10 characters
    allow: 参加微信               an allow entry: hits inside it are suppressed
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..charmap import DEFAULT_NOISE_CATEGORIES, FoldConfig
from ..errors import Problem
from ..files import read_regular
from ..normalise import NormaliseConfig
from .lookalike import LOOKALIKE_KINDS
from .model import ACTIONS, MODES, SCOPES, Category

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MANIFEST = "categories.toml"
ALLOW_PREFIX = "allow:"
DEFAULT_WITHIN = 20
#: Widest combination window, in normalised characters. A window wider than a
#: long post means "anywhere in the post"; a larger number is a typo.
MAX_WITHIN = 10_000
_OPTIONS = ("action", "mode", "within", "variants")
#: ASCII digits only: str.isdigit() accepts '²', which int() then rejects.
#: Nine digits at most, so int() never sees a huge string.
_WHOLE = re.compile(r"[0-9]{1,9}")
#: A '#' between white space (or at the end) starts a comment.
_TRAILING_COMMENT = re.compile(r"\s#(?:\s|$)")
#: Unicode general categories (``noise_categories`` must name real ones).
GENERAL_CATEGORIES = frozenset(
    "Lu Ll Lt Lm Lo Mn Mc Me Nd Nl No Pc Pd Ps Pe Pi Pf Po Sm Sc Sk So Zs Zl Zp Cc Cf Cs Co Cn".split()
)


@dataclass
class Entry:
    """One non-comment line of a lexicon file, not yet normalised."""

    path: str
    line: int
    kind: str  # term | combo | allow
    parts: list[str]
    options: dict[str, Any] = field(default_factory=dict)


def parse_line(raw: str, path: str, line: int) -> tuple[Entry | None, list[Problem]]:
    """Parse one line; ``(None, [])`` for blank and comment lines."""
    text = raw.strip()
    if not text or text.startswith("#"):
        return None, []
    if "#" in text:
        # A comment also follows an entry, as ' # ': '赌博  # gambling' was
        # read as the term 赌博gambling ('#' and spaces are noise) and never
        # matched, without an error (found by a walk-through of the docs).
        # '#' before a word stays part of the entry: 话题 #赌博 and
        # allow: #热门话题# are hashtags (found by a review).
        found = _TRAILING_COMMENT.search(text)
        if found is not None:
            text = text[:found.start()].rstrip()
    if ";" not in text and "+" not in text and not text.lower().startswith(ALLOW_PREFIX):
        return Entry(path, line, "term", [text], {}), []  # the common line: one term, no options
    body, *option_texts = [piece.strip() for piece in text.split(";")]
    problems: list[Problem] = []
    kind = "term"
    if body.lower().startswith(ALLOW_PREFIX):
        kind, body = "allow", body[len(ALLOW_PREFIX):].strip()
    parts = [p.strip() for p in body.split("+")] if kind == "term" else [body]
    if len(parts) > 1:
        kind = "combo"
    if any(not p for p in parts):
        problems.append(Problem(path, line, "empty term" if len(parts) == 1 else "empty part in combination", body))
    options: dict[str, Any] = {}
    for opt in option_texts:
        if not opt:
            continue
        key, sep, value = (s.strip() for s in opt.partition("="))
        problem = _check_option(key, sep, value, kind)
        if problem:
            problems.append(Problem(path, line, problem, body))
        elif key in options:
            problems.append(Problem(path, line, f"option {key!r} given twice", body))
        else:
            options[key] = int(value) if key == "within" else variant_kinds(value) if key == "variants" else value  # vetted
    if kind == "combo" and "within" not in options:
        options["within"] = DEFAULT_WITHIN
    return Entry(path, line, kind, parts, options), problems


def _check_option(key: str, sep: str, value: str, kind: str) -> str | None:
    if not sep:
        return f"option {key!r} needs a value (key=value)"
    if key not in _OPTIONS:
        return f"unknown option {key!r} (known: {', '.join(_OPTIONS)})"
    if kind == "allow":
        return f"option {key!r} does not apply to an allow entry"
    if key == "action" and value not in ACTIONS:
        return f"action must be one of {', '.join(ACTIONS)}, not {value!r}"
    if key == "mode" and value not in MODES:
        return f"mode must be one of {', '.join(MODES)}, not {value!r}"
    if key == "variants":
        reason = _check_variants(value.split("+") if value else [])
        return f"variants={value} {reason}" if reason else None
    if key == "within":
        if kind != "combo":
            return "within applies only to a combination (parts joined by '+')"
        if not _WHOLE.fullmatch(value) or not 1 <= int(value) <= MAX_WITHIN:
            return f"within must be a whole number of characters from 1 to {MAX_WITHIN}, not {value!r}"
    return None


def variant_kinds(value: str) -> frozenset[str]:
    """The kinds a vetted ``variants=`` value turns on (``none``: no kind)."""
    return frozenset(k.strip() for k in value.split("+")) - {"none"}


def _check_variants(names: list[str]) -> str | None:
    """Why a list of look-alike kinds is wrong, or None. ``none`` alone turns
    a category's kinds off for one term."""
    known = (*LOOKALIKE_KINDS, "none")
    names = [n.strip() for n in names]
    if not names or not all(names):
        return f"must name one or more of {', '.join(known)}, joined by '+'"
    for name in names:
        if name not in known:
            return f"names an unknown kind {name!r} (known: {', '.join(known)})"
    if len(set(names)) != len(names):
        return "names a kind twice"
    if "none" in names and len(names) > 1:
        return "cannot combine 'none' with other kinds"
    return None


def read_lines(path: Path) -> tuple[list[str], list[Problem]]:
    """Lines of a UTF-8 file; each undecodable line is a problem of its own.

    A file that cannot be read at all (permissions, a directory, a symlink
    loop) is one problem at line 0, never an exception.
    """
    try:
        data = read_regular(path)
    except OSError as exc:
        return [], [Problem(str(path), 0, f"cannot read: {os_reason(exc)}")]
    return decode_lines(data, str(path))


def decode_lines(data: bytes, path: str) -> tuple[list[str], list[Problem]]:
    """Lines of UTF-8 ``data`` (a leading BOM dropped); a bad line is ``""`` and a problem."""
    lines: list[str] = []
    problems: list[Problem] = []
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8").split("\n"), problems  # the common file: all of it valid
    except UnicodeDecodeError:
        pass
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            problems.append(Problem(path, number, f"invalid UTF-8 at byte {exc.start} of the line"))
            lines.append("")
    return lines, problems


def os_reason(exc: OSError) -> str:
    """The reason of an OSError without the path (messages carry it already)."""
    return exc.strerror or type(exc).__name__


def parse_file(path: Path) -> tuple[list[Entry], list[Problem]]:
    lines, problems = read_lines(path)
    entries: list[Entry] = []
    name = str(path)
    for number, raw in enumerate(lines, start=1):
        entry, found = parse_line(raw, name, number)
        problems.extend(found)
        if entry is not None and not found:
            entries.append(entry)
    return entries, problems


def default_category(key: str) -> Category:
    """A category that has a file but no manifest entry: flag, severity 1."""
    return Category(key, key, key, (), "flag", 1)


# -- categories.toml ------------------------------------------------------------------
@dataclass(frozen=True)
class Manifest:
    categories: dict[str, Category]
    normalise: NormaliseConfig
    problems: list[Problem]


def parse_manifest(path: Path) -> Manifest:
    """Categories and the ``[normalise]`` table of ``categories.toml``.

    Every value is checked against its type: TOML has strings, integers,
    booleans, arrays and tables, and a value of the wrong one (``severity =
    "high"``, ``traditional = "yes"``) is a problem at the line of its key,
    never a silent coercion or a crash later.
    """
    try:
        text = read_regular(path).decode("utf-8")
        doc = tomllib.loads(text)
    except OSError as exc:
        return Manifest({}, NormaliseConfig(), [Problem(str(path), 0, f"cannot read: {os_reason(exc)}")])
    except UnicodeDecodeError as exc:
        return Manifest({}, NormaliseConfig(), [Problem(str(path), 1, f"not UTF-8 (byte {exc.start})")])
    except tomllib.TOMLDecodeError as exc:
        # lineno: Python 3.14; before, only the message says "(at line 223, column 5)"
        at = re.search(r"at line (\d+)", str(exc))
        line = getattr(exc, "lineno", None) or (int(at.group(1)) if at else 1)
        return Manifest({}, NormaliseConfig(), [Problem(str(path), line, f"not valid TOML: {exc}")])
    where = _KeyLines(str(path), text)
    problems: list[Problem] = []
    for key in sorted(set(doc) - {"categories", "normalise"}):
        problems.append(where.problem((key,), None, f"unknown table [{key}]"))
    categories: dict[str, Category] = {}
    specs = doc.get("categories", {})
    if not isinstance(specs, dict):
        problems.append(where.problem((), "categories", "categories must be a table ([categories.KEY])"))
        specs = {}
    for key, spec in specs.items():
        category, found = _category(key, spec, where)
        problems += found
        if category is not None:
            categories[key] = category
    normalise, found = _normalise(doc.get("normalise", {}), where)
    return Manifest(categories, normalise, problems + found)


class _KeyLines:
    """Best-effort line of a TOML key, for ``path:line`` messages.

    tomllib keeps no positions, so the text is searched: the key's line
    inside its ``[table]``, else the table's header, else line 1.
    """

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def problem(self, table: tuple[str, ...], key: str | None, reason: str) -> Problem:
        return Problem(self.path, self.line(table, key), reason)

    def line(self, table: tuple[str, ...], key: str | None) -> int:
        header = self._header(table) if table else 0
        if key is not None and (header or not table):
            for number in range(header + 1, len(self.lines) + 1):
                text = self.lines[number - 1].strip()
                if text.startswith("[") and number != header:
                    break  # the next table
                if "=" in text and _unquote(text.split("=", 1)[0]) == key:
                    return number
        if header:
            return header
        if len(table) > 1:  # [categories] holding `gambling = {...}` or dotted keys
            return self.line(table[:-1], table[-1])
        return 1

    def _header(self, table: tuple[str, ...]) -> int:
        for number, raw in enumerate(self.lines, 1):
            text = raw.strip()
            if text.startswith("[") and not text.startswith("[[") and "]" in text:
                names = tuple(_unquote(n) for n in text[1:text.index("]")].split("."))
                if names == table:
                    return number
        return 0


def _unquote(name: str) -> str:
    return name.strip().strip("\"'")


def _describe(value: Any) -> str:
    """A TOML value and its type, for messages: ``3 (an integer)``."""
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array", dict: "a table"}
    kind = next((name for t, name in kinds.items() if isinstance(value, t)), type(value).__name__)
    if isinstance(value, bool):
        shown = "true" if value else "false"  # as TOML spells it
    else:
        shown = "a table" if isinstance(value, dict) else repr(value)
    return shown if shown == kind else f"{shown} ({kind})"


def _category(key: str, spec: Any, where: _KeyLines) -> tuple[Category | None, list[Problem]]:
    table = ("categories", key)
    if not isinstance(spec, dict):
        return None, [where.problem(("categories",), key, f"category {key!r} must be a table, not {_describe(spec)}")]
    problems: list[Problem] = []

    def bad(field_name: str, reason: str) -> None:
        problems.append(where.problem(table, field_name, f"category {key!r}: {field_name} {reason}"))

    known = {"title_zh", "title_en", "basis", "action", "severity", "mode", "operator_supplied", "scope", "variants"}
    for extra in sorted(set(spec) - known):
        problems.append(where.problem(table, extra, f"category {key!r}: unknown field {extra!r} (known: {', '.join(sorted(known))})"))
    for name in ("title_zh", "title_en"):
        if not isinstance(spec.get(name, key), str):
            bad(name, f"must be a string, not {_describe(spec[name])}")
    basis = spec.get("basis", [])
    if not isinstance(basis, list) or not all(isinstance(b, str) for b in basis):
        bad("basis", f"must be an array of strings, not {_describe(basis)}")
    for name, choices, default in (("action", ACTIONS, "flag"), ("mode", MODES, "word"), ("scope", SCOPES, "both")):
        value = spec.get(name, default)
        if not (isinstance(value, str) and value in choices):
            bad(name, f"must be {' or '.join(choices)}, not {_describe(value)}")
    severity = spec.get("severity", 1)
    if type(severity) is not int or not 1 <= severity <= 5:  # type(): a bool is an int
        bad("severity", f"must be a whole number 1-5, not {_describe(severity)}")
    if not isinstance(spec.get("operator_supplied", False), bool):
        bad("operator_supplied", f"must be true or false, not {_describe(spec['operator_supplied'])}")
    variants = spec.get("variants", [])
    if not isinstance(variants, list) or not all(isinstance(v, str) for v in variants):
        bad("variants", f"must be an array of {', '.join(map(repr, LOOKALIKE_KINDS))}, not {_describe(variants)}")
    elif variants and (reason := _check_variants(variants)):
        bad("variants", reason)
    if problems:
        return None, problems
    return Category(
        key, spec.get("title_zh", key), spec.get("title_en", key), tuple(basis),
        spec.get("action", "flag"), severity, spec.get("mode", "word"),
        spec.get("operator_supplied", False), spec.get("scope", "both"),
        frozenset(variants) - {"none"},
    ), []


_BOOL_SETTINGS = ("traditional", "compatibility", "casefold", "html")
_STR_SETTINGS = ("noise_extra", "noise_keep")


def _normalise(spec: Any, where: _KeyLines) -> tuple[NormaliseConfig, list[Problem]]:
    """The ``[normalise]`` table as a :class:`NormaliseConfig`; defaults where absent."""
    table = ("normalise",)
    if not isinstance(spec, dict):
        return NormaliseConfig(), [where.problem((), "normalise", f"normalise must be a table ([normalise]), not {_describe(spec)}")]
    problems: list[Problem] = []

    def bad(name: str, reason: str) -> None:
        problems.append(where.problem(table, name, f"[normalise]: {name} {reason}"))

    known = ("noise_categories", "aliases", *_STR_SETTINGS, *_BOOL_SETTINGS)
    for name in spec:
        if name not in known:
            problems.append(where.problem(table, name, f"[normalise]: unknown setting {name!r} (known: {', '.join(known)})"))
    for name in _BOOL_SETTINGS:
        if name in spec and not isinstance(spec[name], bool):
            bad(name, f"must be true or false, not {_describe(spec[name])}")
    for name in _STR_SETTINGS:
        if name in spec and not isinstance(spec[name], str):
            bad(name, f"must be a string of characters, not {_describe(spec[name])}")
    noise = spec.get("noise_categories", list(DEFAULT_NOISE_CATEGORIES))
    if not isinstance(noise, list) or not all(isinstance(c, str) for c in noise):
        bad("noise_categories", f"must be an array of Unicode general categories (\"Zs\", \"Po\", ...), not {_describe(noise)}")
    elif unknown := sorted(set(noise) - GENERAL_CATEGORIES):
        bad("noise_categories", f"unknown Unicode general categor{'ies' if len(unknown) > 1 else 'y'} {', '.join(map(repr, unknown))}")
    aliases = spec.get("aliases", {})
    if reason := _aliases_problem(aliases):
        bad("aliases", reason)
    if problems:
        return NormaliseConfig(), problems
    fold: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in spec.items() if k != "html"}
    fold["aliases"] = tuple(sorted(aliases.items()))
    return NormaliseConfig(FoldConfig(**fold), spec.get("html", True)), []


def _aliases_problem(aliases: Any) -> str | None:
    """Why ``aliases`` is no table of one character to another, or None.

    >>> _aliases_problem({"+": "加"}) is None, _aliases_problem({"+": "加号"})
    (True, "must map one character to one character: '+' = '加号'")
    """
    if not isinstance(aliases, dict):
        return f'must be a table of one character to another ({{ "+" = "加" }}), not {_describe(aliases)}'
    for key, value in aliases.items():
        if not isinstance(value, str):
            return f"{key!r} must map to a string, not {_describe(value)}"
        if len(key) != 1 or len(value) != 1:
            return f"must map one character to one character: {key!r} = {value!r}"
        if key == value:
            return f"{key!r} is mapped to itself"
    return None
