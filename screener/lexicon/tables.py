"""The rules and patterns of a lexicon set, as sequences made on demand.

A 100k-term set has 100k :class:`Rule` and ~100k :class:`Pattern` objects.
Unpickling them took 0.6 s, more than everything else a cached start does,
and a post only ever needs the few rules it hits. So a set loaded from the
cache (``screener/compiled.py``) keeps its rules and patterns encoded (one
string of row texts, offsets and small integer columns) and makes an object
the first time an index is asked for. A freshly built set holds its objects
from the start. Both behave as read-only sequences (``rules[i]``, ``len``,
iteration, slices, ``==`` with a tuple), so callers cannot tell them apart.

The profile view of a set (every term in substring mode) is another lazy
table over the same rows, not 100k copies made up front (0.7 s at 100k).
"""

from __future__ import annotations

import operator
import pickle
from typing import Any, Iterator, Sequence, overload

import numpy as np

from .model import VARIANT_KINDS, Pattern, Rule

#: Separators inside an encoded rule row; a rule whose text holds one is
#: stored pickled instead (see :meth:`RuleTable.encode`).
_FIELD, _PART = "\x1f", "\x1e"
_ABSENT = -1  # "within" of rules without one
_KIND_CODE = {kind: code for code, kind in enumerate(VARIANT_KINDS)}


def _column(values: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Dictionary-encode a column of few distinct strings."""
    names = list(dict.fromkeys(values))
    index = {name: i for i, name in enumerate(names)}
    return names, np.fromiter((index[v] for v in values), dtype=np.int32, count=len(values))


class _Table:
    """What both tables share: memoised items and sequence behaviour."""

    __slots__ = ("_memo", "_n")

    def __init__(self, n: int, items: Sequence[Any] | None = None) -> None:
        self._n = n
        self._memo: list[Any] = list(items) if items is not None else [None] * n

    def _make(self, index: int) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def __len__(self) -> int:
        return self._n

    def _item(self, index: int) -> Any:
        item = self._memo[index]
        if item is None:
            item = self._memo[index] = self._make(index)
        return item

    def __getitem__(self, index: Any) -> Any:
        if type(index) is int:  # the hot path (verification asks per candidate): one list look-up
            try:
                item = self._memo[index]
            except IndexError:
                raise IndexError(f"{type(self).__name__} index out of range") from None
            if item is None:
                item = self._memo[index] = self._make(index % self._n)
            return item
        if isinstance(index, slice):
            return tuple(self._item(i) for i in range(*index.indices(self._n)))
        index = operator.index(index)
        if index < 0:
            index += self._n
        if not 0 <= index < self._n:
            raise IndexError(f"{type(self).__name__} index out of range")
        return self._item(index)

    def __iter__(self) -> Iterator[Any]:
        return (self._item(i) for i in range(self._n))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (_Table, tuple, list)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._n}>"


class RuleTable(_Table, Sequence[Rule]):
    """A set's rules. :meth:`of` wraps objects; :meth:`decode` reads the
    encoding :meth:`encode` wrote, making rules on demand."""

    __slots__ = ("_rows", "_base", "_mode", "_term_count", "_categories")

    def __init__(self, n: int, items: Sequence[Rule] | None = None) -> None:
        super().__init__(n, items)
        self._rows: _Rows | None = None
        self._base: RuleTable | None = None
        self._mode: str | None = None
        self._term_count: int | None = None
        self._categories: tuple[list[str], np.ndarray] | None = None

    @classmethod
    def of(cls, rules: Sequence[Rule]) -> "RuleTable":
        if isinstance(rules, RuleTable):
            return rules
        return cls(len(rules), rules)

    @overload
    def __getitem__(self, index: int) -> Rule: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Rule, ...]: ...
    def __getitem__(self, index: Any) -> Any:
        return _Table.__getitem__(self, index)

    def _make(self, index: int) -> Rule:
        if self._base is not None:
            return substring(self._base._item(index), self._mode)  # type: ignore[arg-type]
        assert self._rows is not None
        return self._rows.rule(index)

    # -- what screening asks of all rules, without making them ---------------------
    @property
    def term_count(self) -> int:
        """Rules that are not allow entries."""
        if self._base is not None:
            return self._base.term_count
        if self._term_count is None:
            self._term_count = sum(1 for r in self if r.kind != "allow")
        return self._term_count

    def indices_in(self, categories: frozenset[str]) -> frozenset[int]:
        """Indices of the rules of these categories."""
        if not categories:
            return frozenset()
        if self._base is not None:
            return self._base.indices_in(categories)
        if self._categories is None:
            self._categories = _column([r.category for r in self])
        names, codes = self._categories
        wanted = [i for i, name in enumerate(names) if name in categories]
        return frozenset(np.flatnonzero(np.isin(codes, wanted)).tolist())

    def word_checked(self) -> list[bool]:
        """Per rule, whether it is checked for word boundaries: a term or
        combination in word mode. From the stored columns when the rules are
        encoded: a cached start must not make 100k rules for it (1.1 s)."""
        if self._base is not None:  # every rule but allow entries is in the view's mode
            return [self._mode == "word" and not allow for allow in self._base.is_allow()]
        return [word and not allow for word, allow in zip(self._has("mode", "word"), self.is_allow())]

    def is_allow(self) -> list[bool]:
        """Per rule, whether it is an allow entry."""
        if self._base is not None:
            return self._base.is_allow()
        return self._has("kind", "allow")

    def _has(self, field: str, value: str) -> list[bool]:
        """Per rule, whether ``field`` is ``value``: from the stored column
        when the rules are encoded, else from the objects."""
        if self._rows is not None:
            names = self._rows.meta[field]
            code = names.index(value) if value in names else -1  # -1: no row has it
            return (self._rows.codes[field] == code).tolist()
        return [getattr(r, field) == value for r in self]

    def with_mode(self, mode: str) -> "RuleTable":
        """The same rules, every one but allow entries in ``mode`` (made on demand)."""
        view = RuleTable(self._n)
        view._base, view._mode = self, mode
        return view

    # -- the cache's encoding -----------------------------------------------------
    def encode(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(small metadata, named byte buffers) for ``compiled.py``."""
        if self._base is not None:
            raise ValueError("encode the full table, not a view")
        rules = list(self)
        texts = [_FIELD.join((r.id, r.written, _PART.join(r.parts))) for r in rules]
        if any(t.count(_FIELD) != 2 or any(_FIELD in p or _PART in p for p in r.parts) for t, r in zip(texts, rules)):
            # Separators inside the text (a control character in a lexicon
            # file): store the objects themselves; correct, just not lazy.
            return {"encoding": "pickle", "n": len(rules)}, {"rules.pickle": pickle.dumps(tuple(rules), protocol=5)}
        meta: dict[str, Any] = {"encoding": "rows", "n": len(rules), "term_count": self.term_count}
        arrays: dict[str, Any] = {}
        for name in ("kind", "category", "action", "mode", "path"):
            meta[name], arrays[f"rules.{name}"] = _column([getattr(r, name) for r in rules])
        arrays["rules.line"] = np.fromiter((r.line for r in rules), dtype=np.int64, count=len(rules))
        arrays["rules.within"] = np.fromiter((_ABSENT if r.within is None else r.within for r in rules),
                                             dtype=np.int64, count=len(rules))
        arrays["rules.offsets"] = np.concatenate(([0], np.cumsum([len(t) for t in texts], dtype=np.int64)))
        arrays["rules.text"] = "".join(texts).encode("utf-8")
        return meta, arrays

    @classmethod
    def decode(cls, meta: dict[str, Any], sections: dict[str, memoryview]) -> "RuleTable":
        n = meta["n"]
        if meta["encoding"] == "pickle":
            # Trusted: see screener/cache.py (our own file, in a directory only we can write).
            return cls(n, pickle.loads(sections["rules.pickle"]))
        table = cls(n)
        table._rows = _Rows(meta, sections)
        table._term_count = meta["term_count"]
        table._categories = (meta["category"], table._rows.codes["category"])
        return table


def substring(rule: Rule, mode: str) -> Rule:
    """``dataclasses.replace(rule, mode=mode)`` for terms and combinations, at a
    tenth of its cost (no __init__ checks: only the mode changes)."""
    if rule.kind == "allow" or rule.mode == mode:
        return rule
    copy = object.__new__(Rule)
    copy.__dict__.update(rule.__dict__)
    copy.__dict__["mode"] = mode
    return copy


class _Rows:
    """Encoded rules: row texts (id, written, parts) + integer columns."""

    __slots__ = ("meta", "offsets", "_raw", "_text", "codes", "line", "within")

    def __init__(self, meta: dict[str, Any], sections: dict[str, memoryview]) -> None:
        self.meta = meta
        self.offsets = np.frombuffer(sections["rules.offsets"], dtype=np.int64)
        self._raw = sections["rules.text"]
        self._text: str | None = None
        self.codes = {name: np.frombuffer(sections[f"rules.{name}"], dtype=np.int32)
                      for name in ("kind", "category", "action", "mode", "path")}
        self.line = np.frombuffer(sections["rules.line"], dtype=np.int64)
        self.within = np.frombuffer(sections["rules.within"], dtype=np.int64)

    def rule(self, i: int) -> Rule:
        if self._text is None:
            self._text = bytes(self._raw).decode("utf-8")
            self._raw = memoryview(b"")  # decoded: the bytes are not needed again
        rid, written, parts = self._text[int(self.offsets[i]):int(self.offsets[i + 1])].split(_FIELD)
        within = int(self.within[i])
        m, c = self.meta, self.codes
        return Rule(
            id=rid, kind=m["kind"][c["kind"][i]], category=m["category"][c["category"][i]], written=written,
            parts=tuple(parts.split(_PART)), action=m["action"][c["action"][i]], mode=m["mode"][c["mode"][i]],
            within=None if within == _ABSENT else within, path=m["path"][c["path"][i]], line=int(self.line[i]),
        )


class PatternTable(_Table, Sequence[Pattern]):
    """A set's patterns; :attr:`texts` is what a matcher is built from."""

    __slots__ = ("_texts", "_raw", "_offsets", "_rule", "_part", "_variant", "_runs", "_run_columns", "_ranks")

    def __init__(self, n: int, items: Sequence[Pattern] | None = None) -> None:
        super().__init__(n, items)
        self._texts: list[str] | None = [p.text for p in items] if items is not None else None
        self._raw: memoryview | None = None
        self._offsets = self._rule = self._part = self._variant = self._runs = np.empty(0, dtype=np.int64)
        self._run_columns: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._ranks: np.ndarray | None = None

    @classmethod
    def of(cls, patterns: Sequence[Pattern]) -> "PatternTable":
        if isinstance(patterns, PatternTable):
            return patterns
        return cls(len(patterns), patterns)

    @overload
    def __getitem__(self, index: int) -> Pattern: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Pattern, ...]: ...
    def __getitem__(self, index: Any) -> Any:
        return _Table.__getitem__(self, index)

    @property
    def texts(self) -> list[str]:
        if self._texts is None:
            assert self._raw is not None
            text = bytes(self._raw).decode("utf-8")
            self._texts = [text[a:b] for a, b in zip(self._offsets[:-1].tolist(), self._offsets[1:].tolist())]
            self._raw = None
        return self._texts

    def run_columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(spells_a_run, offsets, runs)``: per pattern whether it has runs,
        and every pattern's run lengths one after the other (pattern ``i``:
        ``runs[offsets[i]:offsets[i + 1]]``), for checks over many matches."""
        if self._run_columns is None:
            if self._texts is None and len(self._offsets):  # decoded from the cache: columns as stored
                offsets = self._offsets
                runs = self._runs if len(self._runs) else np.ones(int(offsets[-1]), dtype=np.uint16)
            else:
                items = list(self)
                offsets = np.concatenate(([0], np.cumsum([len(p.text) for p in items], dtype=np.int64)))
                runs = np.array([r for p in items for r in (p.runs or (1,) * len(p.text))], dtype=np.uint16)
            spells = np.maximum.reduceat(runs, offsets[:-1]) > 1 if len(runs) else np.zeros(self._n, dtype=bool)
            self._run_columns = (spells, offsets, runs)
        return self._run_columns

    def ranks(self) -> np.ndarray:
        """Per pattern, its place in the order (rule, part, the literal before
        its variants, table order): how a post's candidates at one position are
        ordered (:func:`screener.match.group_by_post`), and so which of them
        answers first where several could (the variant a combination
        reports, the allow entry named). The table lists every literal before
        any variant (a cold build compiles them first); this keeps the order
        a part's variants following it gave."""
        if self._ranks is None:
            if len(self._rule) or not self._n:  # decoded from the cache: the stored columns
                rule, part, variant = self._rule, self._part, self._variant != _KIND_CODE["literal"]
            else:
                items = list(self)
                rule = np.fromiter((p.rule for p in items), dtype=np.int64, count=self._n)
                part = np.fromiter((p.part for p in items), dtype=np.int64, count=self._n)
                variant = np.fromiter((p.variant != "literal" for p in items), dtype=bool, count=self._n)
            ranks = np.empty(self._n, dtype=np.int64)
            ranks[np.lexsort((np.arange(self._n), variant, part, rule))] = np.arange(self._n)
            self._ranks = ranks
        return self._ranks

    def _make(self, index: int) -> Pattern:
        runs: tuple[int, ...] = ()
        if len(self._runs):  # stored only when some pattern has a run
            lo, hi = int(self._offsets[index]), int(self._offsets[index + 1])
            if self._runs[lo:hi].max(initial=1) > 1:
                runs = tuple(self._runs[lo:hi].tolist())
        return Pattern(self.texts[index], int(self._rule[index]), int(self._part[index]),
                       VARIANT_KINDS[int(self._variant[index])], runs)

    def encode(self) -> dict[str, Any]:
        items = list(self)
        texts = [p.text for p in items]
        n = len(items)
        runs: dict[str, Any] = {}
        if any(p.runs for p in items):  # one count per character, aligned with the texts
            runs["patterns.runs"] = np.array(
                [r for p in items for r in (p.runs or (1,) * len(p.text))], dtype=np.uint16)
        return {
            **runs,
            "patterns.text": "".join(texts).encode("utf-8"),
            "patterns.offsets": np.concatenate(([0], np.cumsum([len(t) for t in texts], dtype=np.int64))),
            "patterns.rule": np.fromiter((p.rule for p in items), dtype=np.int64, count=n),
            "patterns.part": np.fromiter((p.part for p in items), dtype=np.int64, count=n),
            "patterns.variant": np.fromiter((_KIND_CODE[p.variant] for p in items), dtype=np.int8, count=n),
        }

    @classmethod
    def decode(cls, n: int, sections: dict[str, memoryview]) -> "PatternTable":
        table = cls(n)
        table._raw = sections["patterns.text"]
        table._offsets = np.frombuffer(sections["patterns.offsets"], dtype=np.int64)
        table._rule = np.frombuffer(sections["patterns.rule"], dtype=np.int64)
        table._part = np.frombuffer(sections["patterns.part"], dtype=np.int64)
        table._variant = np.frombuffer(sections["patterns.variant"], dtype=np.int8)
        if "patterns.runs" in sections:
            table._runs = np.frombuffer(sections["patterns.runs"], dtype=np.uint16)
        return table
