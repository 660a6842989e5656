"""Load, validate and compile a lexicon directory: all or nothing.

Every file is read and every entry normalised before anything is built; if any
problem is found, :class:`LexiconError` lists them all as ``path:line: reason``
and no lexicon set exists. A caller that already serves a set simply keeps it.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
from dataclasses import dataclass, replace
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import LexiconError, Problem
from ..files import read_regular
from ..source import source_name
from ..normalise import NormaliseConfig, Normaliser, collapse_runs
from .lookalike import DATA_FILES, Generated, LookalikeKind, LookalikeSummary, generate
from .model import Category, Pattern, Rule
from .parse import MANIFEST, Entry, Manifest, default_category, os_reason, parse_file, parse_manifest
from .pinyin import PinyinPatterns, capped_warnings, compile_pinyin
from .tables import PatternTable, RuleTable
from .variants import regional_variants

if TYPE_CHECKING:
    from ..cache import Cache

#: Longest term (each part of a combination, each allow entry) after
#: normalisation. Real terms are words and short phrases (the shipped ones
#: have at most five characters; 256 leaves room for long URLs and slogans);
#: a much longer "term" is a pasted paragraph or a broken file. The matchers
#: have limits of their own, checked only when they are built: Hyperscan
#: refuses a term of ~8,200 characters ("Pattern length exceeds limit") when
#: `scan` starts, after `lexicon check`, which builds no matcher, had said OK;
#: pyahocorasick missed such a term without a word (measured). So the limit
#: is checked here, where it can be reported as path:line.
MAX_TERM_CHARS = 256

#: Bump when the meaning of a lexicon changes without its files changing
#: (normalisation rules, variant expansion), so versions stay honest.
# 9: ' # ' after an entry starts a comment ('赌博  # gambling' had been the term 赌博gambling);
# 8: letters are one word for the pinyin pass only with nothing but markup
# between them (a post's pinyin no longer missed after a neighbour's tag);
# 7: [normalise] aliases, a clause mark in one gap of a term splits it,
# Greek capitals fold by their own look, variant characters OpenCC leaves
# alone fold (screener/data/variant_chars.tsv), private-use and unassigned
# points and letters drawn as separators (ǀ ー) are noise; 6: the strokes 丶丨 are noise, styled Latin letters NFKC keeps (🅥, ᴠ) and
# Cyrillic/Greek letters drawn like Latin ones (х, ν) fold to Latin; 5:
# default-ignorable characters (Hangul fillers) are noise; 4: runs of a
# repeated CJK character fold to one, pinyin patterns (issue 10); 2: HTML rule of issue 9
ENGINE_REVISION = "9"


@dataclass(frozen=True)
class LexiconSet:
    """A complete, validated, compiled lexicon set. Immutable once built."""

    directory: str
    version: str
    categories: Mapping[str, Category]
    #: Read-only sequences (``screener/lexicon/tables.py``): rule and pattern
    #: objects are made on first use in a set loaded from the cache.
    rules: RuleTable
    patterns: PatternTable
    normaliser: Normaliser
    warnings: tuple[Problem, ...]
    #: The kind of message this view screens (see :meth:`for_scope`).
    scope: str = "post"
    #: What the opt-in look-alike variants added (``lexicon check`` prints it).
    lookalikes: LookalikeSummary | None = None
    #: Every term's pinyin spellings (``screener/lexicon/pinyin.py``); made
    #: from the rules when not given.
    pinyin: PinyinPatterns | None = None
    #: What ``lexicon check`` reports without calling it a problem: every
    #: term whose repeated characters collapse (时时彩 is matched as 时彩
    #: with two 时 required).
    notes: tuple[Problem, ...] = ()

    def __post_init__(self) -> None:
        # Callers may pass plain tuples; screening asks the tables' questions.
        object.__setattr__(self, "rules", RuleTable.of(self.rules))
        object.__setattr__(self, "patterns", PatternTable.of(self.patterns))
        if self.pinyin is None:
            object.__setattr__(self, "pinyin", compile_pinyin(self.rules))

    @property
    def term_count(self) -> int:
        return self.rules.term_count

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
            rules = rules.with_mode("substring")  # rules made on demand: 100k copies took 0.7 s
        return replace(self, rules=rules, scope=scope)

    @property
    def out_of_scope(self) -> frozenset[str]:
        """Categories this view does not screen (their candidates are dropped).

        Patterns stay those of the full set, so post and profile views share
        one compiled matcher."""
        return frozenset(k for k, c in self.categories.items() if c.scope not in (self.scope, "both"))


#: See :func:`load_lexicons`.
OnPatterns = Callable[[Sequence[str], np.ndarray, Mapping[str, Category]], None]


def load_lexicons(directory: str | Path, cache: "Cache | None" = None,
                  on_patterns: OnPatterns | None = None, on_literals: OnPatterns | None = None) -> LexiconSet:
    """Load ``directory`` or raise :class:`LexiconError` with every problem.

    ``cache``: where the fold table may come from (and goes to); the set
    itself is cached by :func:`screener.compiled.load_compiled`.
    ``on_literals(texts, fold_table, categories)``: called as soon as the
    set is valid, with the texts of its literal patterns (each term and
    part as written, folded), which begin the set's patterns; so a caller
    can check its policy against the categories and start compiling its
    matcher while the variants are made (:meth:`screener.judge.Engine.build`).
    ``on_patterns(texts, fold_table, categories)``: called once every
    pattern text is known, before the pinyin spellings are made.
    What either raises, this raises.
    """
    with collector_paused():
        return _load(Path(directory), cache, on_patterns, on_literals)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a load, and back on after.

    Hundreds of thousands of objects are made in a load and kept: at 100k
    terms the collector ran 7 full passes over them, found 5 objects to free
    and cost ~0.3 s of a 2 s load (measured). Reference counting still
    frees everything that is not in a cycle.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _load(root: Path, cache: "Cache | None",
          on_patterns: OnPatterns | None = None, on_literals: OnPatterns | None = None) -> LexiconSet:
    if not root.is_dir():
        raise LexiconError([Problem(str(root), 0, "not a directory" if root.exists() else "no such directory")])
    try:
        files = category_files(root)
    except OSError as exc:
        raise LexiconError([Problem(str(root), 0, f"cannot list the directory: {os_reason(exc)}")]) from None
    problems: list[Problem] = []
    warnings: list[Problem] = []
    # Linux allows any bytes in a name; a category is named by its file, and
    # such a name crashed every command that loads the set (found by a probe).
    unnamed = [f for f in files if source_name(f.name) != f.name]
    if unnamed:
        raise LexiconError([Problem(source_name(str(f)), 0, "file name is not UTF-8: rename it (it names the category)")
                            for f in unnamed])
    manifest = _manifest(root)
    categories = manifest.categories
    problems += manifest.problems
    if cache is not None:
        from ..compiled import fold_table

        normaliser = Normaliser(manifest.normalise, fold_table(manifest.normalise.fold, cache))
    else:
        normaliser = Normaliser(manifest.normalise)
    entries: list[tuple[str, Entry]] = []
    for path in files:
        key = path.stem
        if key not in categories:
            if _present(root / MANIFEST):
                warnings.append(Problem(str(path), 1, f"category {key!r} is not in {MANIFEST}; using defaults (flag, severity 1)"))
            categories[key] = default_category(key)
        parsed, found = parse_file(path)
        problems += found
        entries += [(key, e) for e in parsed]
    rules, kinds, found, warned = _compile_rules(entries, categories, normaliser)
    problems += found
    warnings += warned
    if not problems and not any(r.kind != "allow" for r in rules):
        # An empty set would pass every post without a word; that is never
        # what an operator meant (a wrong --lexicons path, a failed copy).
        problems.append(Problem(str(root), 0, "no terms: every post would pass"))
    if problems:
        raise LexiconError(sorted(problems, key=lambda p: (p.path, p.line)))
    literals = _literal_patterns(rules)
    if on_literals is not None:
        on_literals([p.text for p in literals], normaliser.table, categories)
    variants, summary, warned = _variant_patterns(rules, kinds, normaliser)
    warnings += warned
    table = PatternTable.of(literals + variants)
    if on_patterns is not None:
        on_patterns(table.texts, normaliser.table, categories)
    pinyin = compile_pinyin(rules)
    warnings += capped_warnings(pinyin, rules)
    return LexiconSet(
        str(root), content_version(root), dict(categories), RuleTable.of(rules), table,
        normaliser, tuple(sorted(warnings, key=lambda p: (p.path, p.line))), lookalikes=summary, pinyin=pinyin,
        notes=tuple(_collapse_notes(rules)),
    )


@functools.lru_cache(maxsize=1)
def data_digest() -> str:
    """Digest of ``screener/data/`` (the look-alike tables), read once."""
    digest = hashlib.sha256()
    for name in DATA_FILES:
        digest.update(name.encode() + b"\0" + files("screener").joinpath("data", name).read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def _present(path: Path) -> bool:
    """Whether a directory entry exists, even a broken symlink or a loop
    (``Path.exists`` says False for those, which would skip the manifest
    silently instead of reporting it unreadable)."""
    return path.exists() or path.is_symlink()


def _manifest(root: Path) -> Manifest:
    path = root / MANIFEST
    if not _present(path):
        return Manifest({}, NormaliseConfig(), [])
    return parse_manifest(path)


def _compile_rules(
    entries: list[tuple[str, Entry]], categories: Mapping[str, Category], normaliser: Normaliser
) -> tuple[list[Rule], list[frozenset[str]], list[Problem], list[Problem]]:
    """Rules in file order, with duplicates resolved, and each rule's
    look-alike kinds (its ``variants=`` option, else its category's).

    * The same term in two categories: both rules live (operators merge
      published lists, which overlap); a hit then counts in both categories
      and the strictest action decides the post. A warning says so.
    * The same term twice in one category with the same options: one rule
      and a warning (a duplicate line).
    * The same term twice in one category with different options (action,
      mode, window, look-alike kinds): an error. The operator gave two contradicting
      instructions for one term in a file they control; picking one silently
      would hide the mistake, and the fix is one line.
    """
    problems: list[Problem] = []
    warnings: list[Problem] = []
    rules: list[Rule] = []
    kinds: list[frozenset[str]] = []
    kinds_of: dict[str, frozenset[str]] = {}  # rule id → kinds, for the conflict check
    in_category: dict[tuple[str, str, tuple[str, ...]], Rule] = {}  # (category, kind, parts) → rule
    first: dict[tuple[str, tuple[str, ...]], Rule] = {}  # (kind, parts) → first rule, any category
    # One batch, not 100k calls; runs kept: a rule is the term as the lexicon
    # spells it (时时彩), its patterns are collapsed (_collapsed).
    folded = iter(normaliser.fold_many([p for _, entry in entries for p in entry.parts], collapse=False))
    for key, entry in entries:
        parts = tuple(next(folded) for _ in entry.parts)
        rule, found, warned = _rule(key, entry, categories[key], parts)
        problems += found
        warnings += warned
        if rule is None:
            continue
        wanted = frozenset() if rule.kind == "allow" else entry.options.get("variants", categories[key].variants)
        identity = (rule.kind, rule.parts)
        category_key = ("" if rule.kind == "allow" else rule.category, *identity)  # allow entries have no category
        same = in_category.get(category_key)
        if same is not None:
            where = f"{same.path}:{same.line}"
            before = kinds_of[same.id]
            if rule.kind == "allow" or (same.action, same.mode, same.within, before) == (rule.action, rule.mode, rule.within, wanted):
                warnings.append(Problem(rule.path, rule.line, f"duplicate of {where}", rule.label))
            else:
                differs = ", ".join(f"{name} {getattr(same, name)}/{getattr(rule, name)}" for name in ("action", "mode", "within")
                                    if getattr(same, name) != getattr(rule, name))
                if before != wanted:
                    differs = ", ".join(filter(None, (differs, f"variants {_kinds(before)}/{_kinds(wanted)}")))
                problems.append(Problem(rule.path, rule.line, (
                    f"term {rule.label!r} conflicts with {where} ({differs}); give both the same options or delete one"
                ), rule.label))
            continue
        other = first.get(identity)
        if other is not None:
            warnings.append(Problem(
                rule.path, rule.line,
                f"term {rule.label!r} is also in category {other.category!r} at {other.path}:{other.line}; kept in both",
                rule.label,
            ))
        first.setdefault(identity, rule)
        in_category[category_key] = rule
        rules.append(rule)
        kinds.append(wanted)
        kinds_of[rule.id] = wanted
    warnings += _allow_warnings(rules)
    return rules, kinds, problems, warnings


def _kinds(kinds: frozenset[str]) -> str:
    return "+".join(sorted(kinds)) or "none"


def _rule(
    key: str, entry: Entry, category: Category, parts: tuple[str, ...]
) -> tuple[Rule | None, list[Problem], list[Problem]]:
    """The rule of one entry, whose ``parts`` are already normalised."""
    written = " + ".join(entry.parts)
    if len(parts) == 1:  # nearly every entry: the checks below without three generators
        only = parts[0]
        if only and len(only) <= MAX_TERM_CHARS and "\x00" not in only:
            return _checked_rule(key, entry, category, parts, written)
    if any(not p for p in parts):
        return None, [Problem(entry.path, entry.line, "term is empty after normalisation (only noise characters)", written)], []
    if any(len(p) > MAX_TERM_CHARS for p in parts):
        longest = max(map(len, parts))
        reason = f"term longer than {MAX_TERM_CHARS} characters ({longest} after normalisation)"
        return None, [Problem(entry.path, entry.line, reason, written[:40])], []
    if any("\x00" in p for p in parts):  # possible when noise_categories leaves out Cc
        return None, [Problem(entry.path, entry.line, "term contains U+0000, which separates posts in a batch", written)], []
    return _checked_rule(key, entry, category, parts, written)


def _checked_rule(
    key: str, entry: Entry, category: Category, parts: tuple[str, ...], written: str
) -> tuple[Rule, list[Problem], list[Problem]]:
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
        Problem(r.path, r.line, f"term {r.label!r} is always suppressed by allow entry at "
                f"{allowed[r.parts[0]].path}:{allowed[r.parts[0]].line}", r.label)
        for r in rules
        if r.kind == "term" and r.parts[0] in allowed
    ]


def _literal_patterns(rules: list[Rule]) -> list[Pattern]:
    """Each part as the lexicon spells it: the set's first patterns, known
    before their variants (a cold build starts compiling them)."""
    return [_collapsed(Pattern(part, index, part_no)) for index, rule in enumerate(rules)
            for part_no, part in enumerate(rule.parts)]


def _variant_patterns(
    rules: list[Rule], kinds: list[frozenset[str]], normaliser: Normaliser
) -> tuple[list[Pattern], LookalikeSummary | None, list[Problem]]:
    """Each part's regional aliases and, where opted in, its look-alike
    spellings; every one a pattern of the part's rule."""
    parts = [(index, part_no, part) for index, rule in enumerate(rules) for part_no, part in enumerate(rule.parts)]
    variants = regional_variants([p for _, _, p in parts], lambda t: normaliser.fold_many(t, collapse=False))
    lookalikes, summary, warnings = _lookalikes(rules, kinds, parts, normaliser)
    patterns: list[Pattern] = []
    for (index, part_no, _), alts, looks in zip(parts, variants, lookalikes):
        patterns += [Pattern(v, index, part_no, "regional") for v in alts]
        patterns += [Pattern(v, index, part_no, kind) for v, kind in looks if v not in alts]
    return [_collapsed(p) for p in patterns], summary, warnings


def _lookalikes(
    rules: list[Rule], kinds: list[frozenset[str]], parts: list[tuple[int, int, str]], normaliser: Normaliser
) -> tuple[list[list[tuple[str, LookalikeKind]]], LookalikeSummary | None, list[Problem]]:
    """Per part, its folded look-alike variants (``lookalike.py``), and what
    ``lexicon check`` reports. Nothing is loaded unless some rule opted in."""
    if not any(kinds):
        return [[] for _ in parts], None, []
    from ..segment import DEFAULT_SEGMENTER

    generated: Generated = generate([(part, kinds[index]) for index, _, part in parts], DEFAULT_SEGMENTER.is_word)
    flat = [(i, text, kind) for i, found in enumerate(generated.variants) for text, kind in found]
    # As a post would be (赌博 folds 賭 too), runs kept: _collapsed folds them.
    folded = normaliser.fold_many([text for _, text, _ in flat], collapse=False)
    out: list[list[tuple[str, LookalikeKind]]] = [[] for _ in parts]
    seen: list[set[str]] = [{part} for _, _, part in parts]
    counts: dict[str, int] = {}
    for (i, _, kind), text in zip(flat, folded):
        if text and text not in seen[i]:
            seen[i].add(text)
            out[i].append((text, kind))
            counts[kind] = counts.get(kind, 0) + 1
    capped = tuple(f"{rules[parts[i][0]].path}:{rules[parts[i][0]].line} {parts[i][2]}" for i in generated.capped)
    warnings = []
    if generated.share < generated.per_term:
        rule = rules[next(index for index, _, _ in parts if kinds[index])]
        opted = sum(1 for index, _, _ in parts if kinds[index])
        warnings.append(Problem(rule.path, rule.line, (
            f"{opted} terms ask for look-alike variants: to stay within the set's cap of {generated.per_set}, "
            f"each gets at most {generated.share} instead of {generated.per_term}"), rule.label))
    if generated.set_capped_at is not None:
        rule = rules[parts[generated.set_capped_at][0]]
        warnings.append(Problem(rule.path, rule.line, (
            f"look-alike variants reached the cap of {generated.per_set} for the set here: "
            f"this and later terms get fewer or none"), rule.label))
    return out, LookalikeSummary(counts, capped, generated.share, generated.per_set), warnings


def _collapsed(pattern: Pattern) -> Pattern:
    """The pattern as the matcher sees post text: runs folded to one, their
    lengths kept for verification (see :class:`Pattern`)."""
    text, runs = collapse_runs(pattern.text)
    if text == pattern.text:
        return pattern
    return Pattern(text, pattern.rule, pattern.part, pattern.variant, runs)


def _collapse_notes(rules: list[Rule]) -> list[Problem]:
    """``path:line`` of every term (part, allow entry) whose runs collapse."""
    notes = []
    for rule in rules:
        for part in rule.parts:
            text, runs = collapse_runs(part)
            if text != part:
                needs = ", ".join(f"{n} {ch}" for ch, n in zip(text, runs) if n > 1)
                notes.append(Problem(rule.path, rule.line, (
                    f"term {part!r} is matched as {text!r}: repeated characters fold to one; "
                    f"a post must still repeat them ({needs})"), part))
    return notes


def category_files(root: Path) -> list[Path]:
    """The set's lexicon files: ``*.txt``, but not hidden ones. pathlib's
    glob matches ``.x.txt``, so an editor's lock file (``.#drugs.txt``, a
    dangling link) or a copy's AppleDouble file (``._drugs.txt``, binary)
    was read as a category, and rejected the whole set (found by a
    hostile-input probe)."""
    return sorted(path for path in root.glob("*.txt") if not path.name.startswith("."))


def content_version(root: Path) -> str:
    """Content hash of the set: file names and bytes, plus the engine revision
    and the look-alike data (a new shape group changes what an opted-in set
    matches without its files changing)."""
    digest = hashlib.sha256(f"screener-lexicon/{ENGINE_REVISION}/{data_digest()}\n".encode())
    for path in sorted([*category_files(root), root / MANIFEST]):  # the order every version so far was hashed in
        if not _present(path):
            continue
        try:
            data = read_regular(path)
        except OSError as exc:
            # Hash the failure instead of raising: the watcher then sees a new
            # version and the loader reports the file as path:0.
            data = f"unreadable: {os_reason(exc)}".encode()
        digest.update(path.name.encode() + b"\0" + data + b"\0")
    return digest.hexdigest()[:16]
