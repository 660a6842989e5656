"""Account-aware policy: turn kept hits plus the author's account into a verdict.

The lexicon says what a term is (category, default action); the policy says
what that means for *this* account. A policy file is plain text, one
statement per line, validated all or nothing like a lexicon (every problem as
``path:line: reason``). Syntax (documented in ``policy/README.md``)::

    # comment
    list trusted: gov-001, gov-002          a named list of values
    list denied: @denied_accounts.txt       ... or read from a file, one per line
    hit news-licensed: category=current_affairs_news account.news_license=true -> pass
    hit gov-abuse: category=abuse account.type=government -> recall
    post denied: account.id=@denied -> recall
    profile officials: category=official_names -> recall
    offenders: threshold=5 window=30d clear=true count=flag,recall

Scopes: ``hit`` rules judge each kept hit of a post, ``profile`` rules each
kept hit of a profile (name, bio), ``post`` rules the post as a whole, after
its hits. Within a scope the first rule whose conditions all hold decides; a
hit no rule matches keeps its lexicon action.

Effects: ``pass`` (a hit does not count; a post passes whatever its hits),
``flag`` and ``recall`` (a hit gets exactly this action; a post gets at least
this verdict), ``escalate`` (one step stricter: pass → flag → recall).

Conditions are ``key=value`` or ``key!=value``; a value is one word,
alternatives joined by ``,``, or ``@list``. An account attribute that is
absent matches no ``=`` and every ``!=``. ``true``/``false`` match booleans.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import LexiconError, Problem
from .files import read_regular
from .lexicon.model import SEVERITY_OF_ACTION
from .lexicon.parse import decode_lines, os_reason

SCOPES = ("hit", "post", "profile")
EFFECTS = ("pass", "flag", "recall", "escalate")
VERDICTS = ("pass", "flag", "recall")
#: Keys a condition may test, per scope, besides ``account.<attribute>``.
HIT_KEYS = {"hit": ("category", "action", "term"), "profile": ("category", "action", "term", "field"), "post": ()}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_COND = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_.]*)(?P<op>!=|=)(?P<value>\S+)$")
#: ASCII digits only (str.isdigit() accepts '²', which int() rejects), and
#: few enough that int() never sees a huge string.
#: The unit is required: window=30 was read as 30 seconds where 30 days was
#: meant, and nothing said so (found by a policy probe).
_DURATION = re.compile(r"^([0-9]{1,12})([smhd])$")
_COUNT = re.compile(r"^[0-9]{1,12}$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: Bounds of ``offenders:`` (policy/README.md). A window over a year or a
#: threshold over 1000 is a typo, not a policy: the offender state keeps every
#: violation of the window, and a window of 10^20 days overflowed datetime at
#: the first blacklist instead of failing here.
MAX_THRESHOLD = 1000
MAX_WINDOW_S = 366 * 86400


class PolicyError(LexiconError):
    """A policy file failed validation; the previous policy keeps serving."""


@dataclass(frozen=True)
class Condition:
    key: str
    negate: bool
    values: frozenset[str]
    source: str  # as written, for explain

    #: The account attribute tested (``account.type`` → ``type``), if any.
    attribute: str | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "attribute", self.key[len("account."):] if self.key.startswith("account.") else None)

    def holds(self, account: Mapping[str, Any], hit: Mapping[str, Any]) -> bool:
        # Read straight from the account object: building a facts dict per
        # post was most of the cost of post rules, which see every post.
        attribute = self.attribute
        value = account.get(attribute) if attribute is not None else hit.get(self.key)
        if value is None:
            if attribute != "blacklisted":
                return self.negate
            # Only the offender state says blacklisted (the judge drops a
            # post's own field): absent, the account is not, so
            # account.blacklisted=false holds (it never did; policy probe).
            value = False
        if value is True or value is False:
            value = "true" if value else "false"
        elif type(value) is not str:
            try:
                value = str(value)
            except RecursionError:  # nested ~1000 deep: no policy word (it stopped the batch; found by a probe)
                return self.negate
        return (value in self.values) != self.negate


@dataclass(frozen=True)
class PolicyRule:
    id: str
    scope: str
    conditions: tuple[Condition, ...]
    effect: str
    path: str
    line: int

    def matches(self, account: Mapping[str, Any], hit: Mapping[str, Any]) -> bool:
        for condition in self.conditions:
            if not condition.holds(account, hit):
                return False
        return True

    @property
    def possible(self) -> bool:
        """False when a condition tests ``=`` against an empty list: such a
        rule never matches (e.g. an operator's deny list still empty), so it
        is not evaluated and costs nothing."""
        return all(c.values or c.negate for c in self.conditions)

    @property
    def source(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class OffenderConfig:
    """Repeat offenders (Yuhang Art. 15): ``threshold`` violations within ``window_s``."""

    threshold: int = 0  # 0: off
    window_s: int = 30 * 86400
    clear: bool = False
    count: frozenset[str] = frozenset({"flag", "recall"})

    @property
    def enabled(self) -> bool:
        return self.threshold > 0


@dataclass(frozen=True)
class Policy:
    version: str
    path: str
    rules: Mapping[str, tuple[PolicyRule, ...]]  # by scope, in file order
    offenders: OffenderConfig = field(default_factory=OffenderConfig)
    #: Findings that do not stop the policy from being used, e.g. a rule for
    #: a category the lexicon set lacks (it never applies).
    warnings: tuple[Problem, ...] = ()

    def __post_init__(self) -> None:
        live = {scope: tuple(r for r in rules if r.possible) for scope, rules in self.rules.items()}
        object.__setattr__(self, "_live", live)

    @property
    def has_post_rules(self) -> bool:
        """Whether ``post`` rules can match: then every post must be judged."""
        return bool(self._live["post"])  # type: ignore[attr-defined]

    def judge_hit(self, scope: str, account: Mapping[str, Any], hit: Mapping[str, Any], action: str) -> tuple[str, PolicyRule | None]:
        """The hit's effective action (``pass`` if it does not count) and the rule that set it."""
        for rule in self._live[scope]:  # type: ignore[attr-defined]
            if rule.matches(account, hit):
                return apply_effect(rule.effect, action, for_post=False), rule
        return action, None

    def judge_post(self, account: Mapping[str, Any], verdict: str) -> tuple[str, PolicyRule | None]:
        for rule in self._live["post"]:  # type: ignore[attr-defined]
            if rule.matches(account, _NO_HIT):
                return apply_effect(rule.effect, verdict, for_post=True), rule
        return verdict, None


_NO_HIT: Mapping[str, Any] = {}
EMPTY_POLICY = Policy("none", "", {s: () for s in SCOPES})


def apply_effect(effect: str, action: str, for_post: bool) -> str:
    """A rule's effect applied to an action (of a hit) or a verdict (of a post).

    >>> apply_effect("escalate", "flag", False), apply_effect("flag", "recall", True), apply_effect("flag", "recall", False)
    ('recall', 'recall', 'flag')
    """
    if effect == "escalate":
        return VERDICTS[min(SEVERITY_OF_ACTION[action] + 1, 2)]
    if effect == "pass" or not for_post:
        return effect
    return effect if SEVERITY_OF_ACTION[effect] > SEVERITY_OF_ACTION[action] else action


def _canonical(value: Any) -> str | None:
    if value is None:
        return None
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)


# -- loading --------------------------------------------------------------------------
def load_policy(path: str | Path | None, categories: Iterable[str]) -> Policy:
    """Load and validate a policy file against the lexicon's categories.

    ``None`` or ``""`` means no policy: every hit keeps its lexicon action.
    Raises :class:`PolicyError` with every problem. A category the lexicon
    set lacks is a warning (``Policy.warnings``), not an error, so that the
    shipped policy works with an operator's own lexicons: a condition
    ``category=X`` then never holds, ``category!=X`` always does.
    """
    if not path:
        return EMPTY_POLICY
    file = Path(path)
    if not file.is_file():
        reason = "policy file not found" if not file.exists() else "is a directory" if file.is_dir() else "not a regular file"
        raise PolicyError([Problem(str(file), 0, reason)])
    try:
        data = read_regular(file)
    except OSError as exc:
        raise PolicyError([Problem(str(file), 0, f"cannot read: {os_reason(exc)}")]) from None
    lines, problems = decode_lines(data, str(file))
    warnings: list[Problem] = []
    known = set(categories)
    lists: dict[str, frozenset[str]] = {}
    rules: dict[str, list[PolicyRule]] = {s: [] for s in SCOPES}
    ids: dict[str, int] = {}
    offenders: OffenderConfig | None = None
    digest = hashlib.sha256(b"screener-policy/1\n" + data)
    for number, raw in enumerate(lines, 1):
        head, sep, body = _statement(raw)
        if not (head or sep):
            continue
        where = (str(file), number)
        words = head.split()
        if not sep:
            problems.append(Problem(*where, "expected 'list NAME: ...', 'offenders: ...' or 'SCOPE ID: CONDITIONS -> EFFECT'"))
        elif words == ["offenders"]:
            if offenders is not None:
                problems.append(Problem(*where, "offenders given twice"))
            offenders, found = _offenders(body, where)
            problems += found
        elif len(words) == 2 and words[0] == "list":
            values, found, data = _list(words[1], body, file.parent, where, lists)
            problems += found
            digest.update(data)
            lists[words[1]] = values
        elif len(words) == 2 and words[0] in SCOPES:
            rule, found, warned = _rule(words[0], words[1], body, where, lists, known)
            problems += found
            warnings += warned
            if words[1] in ids:
                problems.append(Problem(*where, f"rule id {words[1]!r} already used at line {ids[words[1]]}"))
            ids.setdefault(words[1], number)
            if rule is not None:
                rules[rule.scope].append(rule)
        else:
            problems.append(Problem(*where, f"unknown statement {head.strip()!r} (known: list NAME, offenders, {', '.join(SCOPES)} ID)"))
    if problems:
        raise PolicyError(sorted(problems, key=lambda p: (p.path, p.line)))
    return Policy(digest.hexdigest()[:16], str(file), {s: tuple(r) for s, r in rules.items()},
                  offenders or OffenderConfig(), tuple(warnings))


def _list(name: str, body: str, base: Path, where: tuple[str, int],
          lists: Mapping[str, Any]) -> tuple[frozenset[str], list[Problem], bytes]:
    problems = []
    if not _ID.match(name):
        problems.append(Problem(*where, f"list name {name!r}: use letters, digits, '_', '-', '.'"))
    if name in lists:
        problems.append(Problem(*where, f"list {name!r} defined twice"))
    body = body.strip()
    if body.startswith("@"):
        target = _list_file(base, body)
        try:
            data = read_regular(target)
            # A comment starts a line or follows a space, and a BOM is
            # skipped: an id may hold '#' ("u#42" was read as "u", recalling
            # account "u"), and a BOM from Excel or Notepad made the first id
            # never match (found by a probe); "u1  # ticket 42" stays u1.
            values = [_uncommented(line) for line in data.decode("utf-8-sig").splitlines()]
        except (OSError, UnicodeDecodeError) as exc:
            reason = os_reason(exc) if isinstance(exc, OSError) else str(exc)
            return frozenset(), [*problems, Problem(*where, f"list {name!r}: cannot read {target}: {reason}")], b""
        return frozenset(v for v in values if v), problems, b"\0" + name.encode() + b"\0" + data
    return frozenset(v.strip() for v in body.split(",") if v.strip()), problems, b""


_COMMENT = re.compile(r"\s#")


def _uncommented(line: str) -> str:
    """``line`` without its comment, stripped: ``#`` starts one at the line's
    start or after a space, so a value may hold it (``u#42``; cut at the
    ``#`` it recalled account ``u``, in a list file and inline alike)."""
    return "" if line.lstrip().startswith("#") else _COMMENT.split(line, 1)[0].strip()


def _statement(raw: str) -> tuple[str, str, str]:
    """A policy line without its comment, split at its first ":" (head,
    ":" or "", body); all three empty for a blank or comment line."""
    return _uncommented(raw).partition(":")


def _list_file(base: Path, body: str) -> Path:
    """The file of ``list NAME: @file`` (relative to the policy's directory)."""
    return base / body.strip()[1:].strip()


def sources(path: str | Path | None) -> list[Path]:
    """The files a policy reads: the file itself and the list files its
    ``list NAME: @file`` lines name, for the worker's reloader to watch.
    Never raises: a file that cannot be read is just itself here (the loader
    says what is wrong with it). Only these files, not the policy's whole
    directory: a log written next to the policy made the worker rebuild and
    swap its engine every reload interval (issue 11, p99 at half load)."""
    if not path:
        return []
    file = Path(path)
    found = [file]
    try:
        text = read_regular(file).decode("utf-8", errors="replace")
    except OSError:
        return found
    for raw in text.splitlines():
        head, sep, body = _statement(raw)
        words = head.split()
        if sep and len(words) == 2 and words[0] == "list" and body.strip().startswith("@"):
            found.append(_list_file(file.parent, body))
    return found


def _rule(scope: str, rule_id: str, body: str, where: tuple[str, int], lists: Mapping[str, frozenset[str]],
          categories: set[str]) -> tuple[PolicyRule | None, list[Problem], list[Problem]]:
    """The rule of one line, its problems and its warnings."""
    problems = []
    if not _ID.match(rule_id):
        problems.append(Problem(*where, f"rule id {rule_id!r}: use letters, digits, '_', '-', '.'"))
    conds_text, arrow, effect = body.rpartition("->")
    if not arrow:
        return None, [*problems, Problem(*where, "missing '-> EFFECT'")], []
    effect = effect.strip()
    if effect not in EFFECTS:
        problems.append(Problem(*where, f"effect must be one of {', '.join(EFFECTS)}, not {effect!r}"))
    conditions = []
    for token in conds_text.split():
        condition, problem = _condition(scope, token, lists)
        if problem:
            problems.append(Problem(*where, problem))
        elif condition is not None:
            conditions.append(condition)
    if problems:
        return None, problems, []
    conditions, warnings = _absent_categories(rule_id, conditions, categories, where)
    return PolicyRule(rule_id, scope, tuple(conditions), effect, where[0], where[1]), [], warnings


def _absent_categories(rule_id: str, conditions: list[Condition], categories: set[str],
                       where: tuple[str, int]) -> tuple[list[Condition], list[Problem]]:
    """Conditions without the categories the lexicon set lacks, and a warning for each.

    No hit can carry an absent category, so dropping it from a condition's
    values changes nothing it decides; a ``category=`` condition left with
    no value makes the rule impossible, and impossible rules are never
    evaluated (:attr:`PolicyRule.possible`).
    """
    kept: list[Condition] = []
    warnings: list[Problem] = []
    for condition in conditions:
        absent = condition.values - categories if condition.key == "category" else frozenset()
        if absent:
            names = ", ".join(sorted(absent))
            present = condition.values - absent
            if condition.negate:
                effect = "the condition holds for every hit" if not present else "that value never excludes a hit"
            else:
                effect = f"rule {rule_id!r} never applies" if not present else "that value never matches"
            warnings.append(Problem(*where, f"condition {condition.source!r}: category {names!r} is not in the lexicon set; {effect}"))
            condition = Condition(condition.key, condition.negate, present, condition.source)
        kept.append(condition)
    return kept, warnings


def _condition(scope: str, token: str, lists: Mapping[str, frozenset[str]]) -> tuple[Condition | None, str | None]:
    m = _COND.match(token)
    if not m:
        return None, f"condition {token!r}: expected KEY=VALUE or KEY!=VALUE"
    key, value = m["key"], m["value"]
    if not (key in HIT_KEYS[scope] or (key.startswith("account.") and len(key) > len("account."))):
        allowed = ", ".join([*HIT_KEYS[scope], "account.<attribute>"])
        return None, f"condition {token!r}: a {scope} rule may test {allowed}, not {key!r}"
    if value.startswith("@"):
        if value[1:] not in lists:
            return None, f"condition {token!r}: unknown list {value[1:]!r} (define it above with 'list {value[1:]}: ...')"
        values = lists[value[1:]]
    else:
        values = frozenset(v for v in value.split(",") if v)
    # A condition that can never hold, written by mistake, was accepted
    # without a word (found by a hostile-input probe).
    if not values and not value.startswith("@"):
        return None, f"condition {token!r}: no value to compare with"
    if key == "account.blacklisted" and not values <= {"true", "false"}:
        return None, f"condition {token!r}: account.blacklisted is true or false"
    if key == "action" and not values <= {"flag", "recall"}:
        return None, f"condition {token!r}: action is flag or recall"
    if key == "field" and not values <= {"name", "bio"}:
        return None, f"condition {token!r}: field is name or bio"
    return Condition(key, m["op"] == "!=", values, token), None


def _offenders(body: str, where: tuple[str, int]) -> tuple[OffenderConfig | None, list[Problem]]:
    options: dict[str, Any] = {}
    problems = []
    for token in body.split():
        key, sep, value = token.partition("=")
        if not sep:
            problems.append(Problem(*where, f"offenders: {token!r} is not KEY=VALUE"))
        elif key == "threshold" and _COUNT.match(value) and 1 <= int(value) <= MAX_THRESHOLD:
            options["threshold"] = int(value)
        elif key == "window" and (m := _DURATION.match(value)) and 1 <= int(m[1]) * _UNITS[m[2]] <= MAX_WINDOW_S:
            options["window_s"] = int(m[1]) * _UNITS[m[2]]
        elif key == "clear" and value in ("true", "false"):
            options["clear"] = value == "true"
        elif key == "count" and value and set(value.split(",")) <= {"flag", "recall"}:
            options["count"] = frozenset(value.split(","))
        else:
            known = (f"threshold=N (1-{MAX_THRESHOLD}), window=Ns|Nm|Nh|Nd (1s-{MAX_WINDOW_S // 86400}d), "
                     "clear=true|false, count=flag,recall")
            problems.append(Problem(*where, f"offenders: bad option {token!r} (known: {known})"))
    if "threshold" not in options and not problems:
        problems.append(Problem(*where, "offenders: threshold=N is required"))
    return (OffenderConfig(**options) if not problems else None), problems


def describe(rule: PolicyRule | None) -> str:
    if rule is None:
        return "no policy rule: lexicon action"
    conds = " ".join(c.source for c in rule.conditions) or "(always)"
    return f"{rule.scope} {rule.id} ({rule.source}): {conds} -> {rule.effect}"

