"""Load, validate and compile a lexicon directory: all or nothing.

Every file is read and every entry normalised before anything is built; if any
problem is found, :class:`LexiconError` lists them all as ``path:line: reason``
and no lexicon set exists. A caller that already serves a set simply keeps it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

from ..charmap import FoldConfig
from ..errors import LexiconError, Problem
from ..normalise import NormaliseConfig, Normaliser
from .model import Category, Pattern, Rule
from .parse import MANIFEST, Entry, default_category, parse_file, parse_manifest
from .variants import regional_variants

#: Bump when the meaning of a lexicon changes without its files changing
#: (normalisation rules, variant expansion), so versions stay honest.
ENGINE_REVISION = "1"


@dataclass(frozen=True)
class LexiconSet:
    """A complete, validated, compiled lexicon set. Immutable once built."""

    directory: str
    version: str
    categories: Mapping[str, Category]
    rules: tuple[Rule, ...]
    patterns: tuple[Pattern, ...]
    normaliser: Normaliser
    warnings: tuple[Problem, ...]
    #: The kind of message this view screens (see :meth:`for_scope`).
    scope: str = "post"

    @property
    def term_count(self) -> int:
        return sum(1 for r in self.rules if r.kind != "allow")

    def for_scope(self, scope: str) -> "LexiconSet":
        """The set as one kind of message sees it.

        ``post``: without profile-only categories. ``profile``: without
        post-only categories, and every rule in substring mode: a name is
        short and chosen, so 赌博 must be found even where it would cut
        through a word of running text (Gejiu Art. 7's stricter name rules).
        Rule and pattern indices stay those of the full set, so both views
        share one compiled matcher and report the same rule ids.
        """
        rules = self.rules
        if scope == "profile":
            rules = tuple(replace(r, mode="substring") if r.kind != "allow" else r for r in rules)
        return replace(self, rules=rules, scope=scope)

    @property
    def out_of_scope(self) -> frozenset[str]:
        """Categories this view does not screen (their candidates are dropped).

        Patterns stay those of the full set, so post and profile views share
        one compiled matcher."""
        return frozenset(k for k, c in self.categories.items() if c.scope not in (self.scope, "both"))


def load_lexicons(directory: str | Path) -> LexiconSet:
    """Load ``directory`` or raise :class:`LexiconError` with every problem."""
    root = Path(directory)
    if not root.is_dir():
        raise LexiconError([Problem(str(root), 0, "not a directory")])
    problems: list[Problem] = []
    warnings: list[Problem] = []
    categories, norm_spec, found = _manifest(root)
    problems += found
    normaliser, found = _normaliser(root / MANIFEST, norm_spec)
    problems += found
    entries: list[tuple[str, Entry]] = []
    for path in sorted(root.glob("*.txt")):
        key = path.stem
        if key not in categories:
            if (root / MANIFEST).exists():
                warnings.append(Problem(str(path), 1, f"category {key!r} is not in {MANIFEST}; using defaults (flag, severity 1)"))
            categories[key] = default_category(key)
        parsed, found = parse_file(path)
        problems += found
        entries += [(key, e) for e in parsed]
    rules, found, warned = _compile_rules(entries, categories, normaliser)
    problems += found
    warnings += warned
    if problems:
        raise LexiconError(sorted(problems, key=lambda p: (p.path, p.line)))
    patterns = _patterns(rules, normaliser)
    return LexiconSet(
        str(root), content_version(root), dict(categories), tuple(rules), tuple(patterns),
        normaliser, tuple(sorted(warnings, key=lambda p: (p.path, p.line))),
    )


def _manifest(root: Path) -> tuple[dict[str, Category], dict[str, Any], list[Problem]]:
    path = root / MANIFEST
    if not path.exists():
        return {}, {}, []
    return parse_manifest(path)


def _normaliser(path: Path, spec: Mapping[str, Any]) -> tuple[Normaliser, list[Problem]]:
    fold_keys = {f.name for f in fields(FoldConfig)}
    problems = [
        Problem(str(path), 1, f"[normalise]: unknown setting {k!r}")
        for k in spec if k not in fold_keys | {"html"}
    ]
    fold_args: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in spec.items() if k in fold_keys}
    try:
        config = NormaliseConfig(FoldConfig(**fold_args), bool(spec.get("html", True)))
    except TypeError as exc:  # pragma: no cover - guarded by the key check
        return Normaliser(), [Problem(str(path), 1, f"[normalise]: {exc}")]
    return Normaliser(config), problems


def _compile_rules(
    entries: list[tuple[str, Entry]], categories: Mapping[str, Category], normaliser: Normaliser
) -> tuple[list[Rule], list[Problem], list[Problem]]:
    problems: list[Problem] = []
    warnings: list[Problem] = []
    rules: list[Rule] = []
    seen: dict[tuple[str, tuple[str, ...]], Rule] = {}
    for key, entry in entries:
        rule, found, warned = _rule(key, entry, categories[key], normaliser)
        problems += found
        warnings += warned
        if rule is None:
            continue
        identity = (rule.kind, rule.parts)
        first = seen.get(identity)
        if first is None:
            seen[identity] = rule
            rules.append(rule)
            continue
        where = f"{first.path}:{first.line}"
        if rule.kind == "allow" or (first.category, first.action, first.mode, first.within) == (
            rule.category, rule.action, rule.mode, rule.within
        ):
            warnings.append(Problem(entry.path, entry.line, f"duplicate of {where}", rule.label))
        elif first.category != rule.category:
            problems.append(Problem(entry.path, entry.line, f"term {rule.label!r} is already in category {first.category!r} at {where}", rule.label))
        else:
            problems.append(Problem(entry.path, entry.line, f"term {rule.label!r} conflicts with {where} (action {first.action}/{rule.action}, mode {first.mode}/{rule.mode})", rule.label))
    warnings += _allow_warnings(rules)
    return rules, problems, warnings


def _rule(
    key: str, entry: Entry, category: Category, normaliser: Normaliser
) -> tuple[Rule | None, list[Problem], list[Problem]]:
    parts = tuple(normaliser.fold_string(p) for p in entry.parts)
    written = " + ".join(entry.parts)
    if any(not p for p in parts):
        return None, [Problem(entry.path, entry.line, "term is empty after normalisation (only noise characters)", written)], []
    warnings = []
    for raw, folded in zip(entry.parts, parts):
        if folded != raw:
            warnings.append(Problem(entry.path, entry.line, f"term changes under normalisation: {raw!r} → {folded!r}", raw))
        if len(folded) == 1 and entry.kind != "allow":
            warnings.append(Problem(entry.path, entry.line, f"one-character term {folded!r} will match very often", raw))
    default_mode = "substring" if entry.kind == "combo" else category.mode
    digest = hashlib.sha1(f"{entry.kind}\x1f{'+'.join(parts)}".encode()).hexdigest()[:10]
    rule = Rule(
        id=f"{key}/{digest}", kind=entry.kind, category=key, written=written, parts=parts,  # type: ignore[arg-type]
        action=entry.options.get("action", category.action), mode=entry.options.get("mode", default_mode),
        within=entry.options.get("within"), path=entry.path, line=entry.line,
    )
    return rule, [], warnings


def _allow_warnings(rules: list[Rule]) -> list[Problem]:
    allowed = {r.parts[0]: r for r in rules if r.kind == "allow"}
    return [
        Problem(r.path, r.line, f"term {r.label!r} is always suppressed by allow entry at {allowed[r.parts[0]].path}:{allowed[r.parts[0]].line}", r.label)
        for r in rules
        if r.kind == "term" and r.parts[0] in allowed
    ]


def _patterns(rules: list[Rule], normaliser: Normaliser) -> list[Pattern]:
    parts = [(index, part_no, part) for index, rule in enumerate(rules) for part_no, part in enumerate(rule.parts)]
    variants = regional_variants([p for _, _, p in parts], normaliser.fold_string)
    patterns: list[Pattern] = []
    for (index, part_no, part), alts in zip(parts, variants):
        patterns.append(Pattern(part, index, part_no))
        patterns += [Pattern(v, index, part_no, True) for v in alts]
    return patterns


def content_version(root: Path) -> str:
    """Content hash of the set: file names and bytes, plus the engine revision."""
    digest = hashlib.sha256(f"screener-lexicon/{ENGINE_REVISION}\n".encode())
    for path in sorted([*root.glob("*.txt"), root / MANIFEST]):
        if path.exists():
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
