"""Reading lexicon files: categories.toml and ``<category>.txt``.

Parsing never raises on content: it returns entries and problems, so the
loader can report every problem of every file at once. Syntax (documented in
``lexicons/README.md``)::

    # comment
    赌博                         a term with its category's defaults
    加微信 ; mode=substring       options after ';'
    代开 + 发票 ; within=10        a combination: all parts within 10 characters
    allow: 参加微信               an allow entry: hits inside it are suppressed
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Problem
from .model import ACTIONS, MODES, SCOPES, Category

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MANIFEST = "categories.toml"
ALLOW_PREFIX = "allow:"
DEFAULT_WITHIN = 20
_OPTIONS = ("action", "mode", "within")


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
            options[key] = int(value) if key == "within" else value
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
    if key == "within":
        if kind != "combo":
            return "within applies only to a combination (parts joined by '+')"
        if not value.isdigit() or int(value) < 1:
            return f"within must be a positive whole number of characters, not {value!r}"
    return None


def read_lines(path: Path) -> tuple[list[str], list[Problem]]:
    """Lines of a UTF-8 file; each undecodable line is a problem of its own."""
    lines: list[str] = []
    problems: list[Problem] = []
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            problems.append(Problem(str(path), number, f"invalid UTF-8 at byte {exc.start} of the line"))
            lines.append("")
    return lines, problems


def parse_file(path: Path) -> tuple[list[Entry], list[Problem]]:
    lines, problems = read_lines(path)
    entries: list[Entry] = []
    for number, raw in enumerate(lines, start=1):
        entry, found = parse_line(raw, str(path), number)
        problems.extend(found)
        if entry is not None and not found:
            entries.append(entry)
    return entries, problems


def default_category(key: str) -> Category:
    """A category that has a file but no manifest entry: flag, severity 1."""
    return Category(key, key, key, (), "flag", 1)


def parse_manifest(path: Path) -> tuple[dict[str, Category], dict[str, Any], list[Problem]]:
    """Categories and the ``[normalise]`` table of ``categories.toml``."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", 1) or 1
        return {}, {}, [Problem(str(path), line, f"not valid TOML: {exc}")]
    problems: list[Problem] = []
    categories: dict[str, Category] = {}
    for key, spec in doc.get("categories", {}).items():
        category, problem = _category(key, spec)
        if problem:
            problems.append(Problem(str(path), _line_of(path, key), problem))
        else:
            categories[key] = category
    unknown = set(doc) - {"categories", "normalise"}
    for key in sorted(unknown):
        problems.append(Problem(str(path), _line_of(path, key), f"unknown table [{key}]"))
    return categories, doc.get("normalise", {}), problems


def _category(key: str, spec: dict[str, Any]) -> tuple[Category, str | None]:
    known = {"title_zh", "title_en", "basis", "action", "severity", "mode", "operator_supplied", "scope"}
    extra = sorted(set(spec) - known)
    if extra:
        return default_category(key), f"category {key!r}: unknown field(s) {', '.join(extra)}"
    action = spec.get("action", "flag")
    if action not in ACTIONS:
        return default_category(key), f"category {key!r}: action must be flag or recall, not {action!r}"
    mode = spec.get("mode", "word")
    if mode not in MODES:
        return default_category(key), f"category {key!r}: mode must be word or substring, not {mode!r}"
    severity = spec.get("severity", 1)
    if not isinstance(severity, int) or not 1 <= severity <= 5:
        return default_category(key), f"category {key!r}: severity must be a whole number 1-5"
    scope = spec.get("scope", "both")
    if scope not in SCOPES:
        return default_category(key), f"category {key!r}: scope must be post, profile or both, not {scope!r}"
    basis = spec.get("basis", [])
    return Category(
        key, spec.get("title_zh", key), spec.get("title_en", key), tuple(basis),
        action, severity, mode, bool(spec.get("operator_supplied", False)), scope,
    ), None


def _line_of(path: Path, key: str) -> int:
    """Best-effort line of a TOML key, for ``path:line`` messages."""
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if f".{key}]" in line or f"[{key}]" in line or line.strip().startswith(f"{key} "):
            return number
    return 1
