"""Compiled lexicon sets and fold tables in the cache (``screener/cache.py``).

A cold start at 100k terms spends seconds compiling (Hyperscan's compile
dominates; see ``benchmarks/README.md``); a start from the cache reads one
file per lexicon version and matcher, plus one per fold configuration:

* ``fold-*.entry``: the fold table (``charmap.build_table``, ~0.5 s to build)
  of one :class:`FoldConfig`;
* ``lexicon-*.entry``: a :class:`LexiconSet` (categories, warnings, rules
  and patterns encoded as ``screener/lexicon/tables.py`` does, so that rule
  objects are made only for the rules a post hits) and its matcher's state
  (a serialised Hyperscan database, a pickled pyahocorasick automaton), and
  the set's pinyin spellings (``screener/lexicon/pinyin.py``).

Every entry's key names everything its content depends on: the lexicon
content hash and directory, the normalisation config, the matcher, screener's
version, ENGINE_REVISION and the bytes of the modules that compile (so that
editing them cannot serve a stale entry, even if nobody bumps the revision),
Python and the Unicode database, the library versions (hyperscan,
pyahocorasick, opencc, numpy), byte order, and the CPU's features (a
Hyperscan database is compiled for one CPU).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import pickle
import platform
import sys
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .cache import STATS, Cache
from .charmap import TABLE_SIZE, FoldConfig, build_table
from .errors import MatcherUnavailable
from .lexicon.load import ENGINE_REVISION, LexiconSet, content_version
from .lexicon.pinyin import PinyinPatterns
from .lexicon.tables import PatternTable, RuleTable
from .matchers import Matcher, matcher_from_state, resolve
from .normalise import NormaliseConfig, Normaliser

log = logging.getLogger("screener.cache")

#: Modules whose code shapes a compiled entry (hashed into every key).
_COMPILING = (
    "cache.py", "compiled.py", "charmap.py", "compact.py", "normalise.py", "lexicon/load.py", "lexicon/parse.py",
    "lexicon/model.py", "lexicon/tables.py", "lexicon/variants.py", "lexicon/lookalike.py", "lexicon/pinyin.py",
    "data/common_chars.txt", "data/chaizi.tsv", "data/shapes.txt", "data/variant_chars.tsv", "matchers/__init__.py",
    "matchers/aho.py", "matchers/hyperscan_backend.py", "matchers/oracle.py",
)
_PACKAGES = {"hyperscan": "hyperscan", "pyahocorasick": "ahocorasick", "opencc": "opencc", "numpy": "numpy",
             "pypinyin": "pypinyin", "jieba": "jieba"}  # look-alike readings and the dictionary-word filter


def _package_version(distribution: str, module: str) -> str:
    loaded = sys.modules.get(module)
    found = getattr(loaded, "__version__", None)
    if isinstance(found, str):
        return found
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "absent"


def _cpu() -> str:
    """What a Hyperscan database depends on: the CPU's model and features."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            fields = {}
            for line in f:
                if not line.strip():
                    break  # the first processor is enough
                name, _, value = line.partition(":")
                fields[name.strip()] = value.strip()
        text = f"{fields.get('model name', '')}|{fields.get('flags', '')}"
    except OSError:
        text = f"{platform.machine()}|{platform.processor()}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def environment() -> dict[str, str]:
    """Everything besides the lexicon that a compiled entry depends on."""
    from . import __version__

    here = Path(__file__).resolve().parent
    code = hashlib.sha256()
    for name in _COMPILING:
        try:
            code.update(name.encode() + b"\0" + (here / name).read_bytes())
        except OSError:
            code.update(name.encode() + b"\0missing")
    return {
        "screener": __version__, "engine_revision": ENGINE_REVISION, "code": code.hexdigest()[:16],
        "python": sys.version, "unicode": unicodedata.unidata_version, "byteorder": sys.byteorder,
        "machine": platform.machine(), "cpu": _cpu(),
        **{name: _package_version(name, module) for name, module in _PACKAGES.items()},
    }


# -- fold tables ------------------------------------------------------------------------
_TABLES: dict[FoldConfig, np.ndarray] = {}


def fold_table(config: FoldConfig, cache: Cache) -> np.ndarray:
    """``build_table(config)``, from the cache when it has it (and into it when not)."""
    if config in _TABLES:
        return _TABLES[config]
    table = None
    if cache.usable:
        key = {"what": "fold table", "config": repr(config), **environment()}
        sections = cache.load("fold", key)
        found = (sections or {}).get("table")  # a header is not under the digest: its names may be off
        if found is not None and found.nbytes == TABLE_SIZE * 4:
            table = np.frombuffer(found, dtype=np.uint32)
        if table is None:
            table = build_table(config)
            cache.store("fold", key, {"table": table})
    else:
        table = build_table(config)
    _TABLES[config] = table
    return table


# -- lexicon sets -----------------------------------------------------------------------
def _lexicon_key(directory: Path, matcher: str) -> dict[str, Any]:
    from .lexicon.load import _manifest

    return {
        "what": "lexicon set", "directory": str(directory), "content": content_version(directory),
        "normalise": repr(_manifest(directory).normalise), "matcher": matcher, **environment(),
    }


def load_compiled(directory: str | Path, matcher: str, cache: Cache) -> tuple[LexiconSet, Matcher] | None:
    """The compiled set of ``directory`` and its ``matcher``, from the cache, or None.

    Never raises: whatever is wrong with an entry makes it a miss (and
    :func:`store_compiled` replaces it after the build).
    """
    if not cache.usable or not Path(directory).is_dir():
        return None
    started = time.perf_counter()
    try:
        name = resolve(matcher)
    except MatcherUnavailable:
        return None  # the build reports it, after validating the lexicons
    try:
        key = _lexicon_key(Path(directory), name)
    except Exception:  # noqa: BLE001 - an unreadable manifest and the like: the loader reports it
        return None
    sections = cache.load("lexicon", key)
    if sections is None:
        return None
    try:
        found = _decode(sections, cache)
    except Exception as exc:  # noqa: BLE001 - a valid digest over content we cannot use: rebuild
        STATS["hit:lexicon"] -= 1
        STATS["bad:lexicon"] += 1
        log.warning("screener: cache entry for %s not used (%s: %s); rebuilding it", directory, type(exc).__name__, exc)
        return None
    log.info("lexicon %s version %s (%s) loaded from the cache in %.3f s",
             directory, found[0].version, name, time.perf_counter() - started)
    return found


def _decode(sections: dict[str, memoryview], cache: Cache) -> tuple[LexiconSet, Matcher]:
    # Trusted: an entry this user's screener wrote, in a directory only this
    # user can write (screener/cache.py refuses anything else), as trusted as
    # the lexicon files themselves.
    meta = pickle.loads(sections["meta"])
    config: NormaliseConfig = meta["normalise"]
    normaliser = Normaliser(config, fold_table(config.fold, cache))
    pinyin = PinyinPatterns.decode(meta["pinyin"], sections)
    lexicons = LexiconSet(
        meta["directory"], meta["version"], meta["categories"],
        RuleTable.decode(meta["rules"], sections), PatternTable.decode(meta["patterns"], sections),
        normaliser, meta["warnings"], meta["scope"], meta.get("lookalikes"), pinyin,
    )
    matcher = matcher_from_state(meta["matcher"], meta["matcher_state"], sections, normaliser.table)
    return lexicons, matcher


@dataclass
class Encoded:
    """A freshly built set, encoded for the cache (:func:`encode_compiled`),
    waiting for its matcher."""

    key: dict[str, Any]
    meta: dict[str, Any]
    sections: dict[str, Any]


def encode_compiled(lexicons: LexiconSet, matcher_name: str, cache: Cache) -> Encoded | None:
    """The set's part of its cache entry (None: not to be cached). Made
    apart from the matcher's part so that a build can encode the set while
    its matcher still compiles (at 100k terms ~0.3 s out of the cold start).
    Never raises."""
    if not cache.usable:
        return None
    try:
        key = _lexicon_key(Path(lexicons.directory), matcher_name)
        if key["content"] != lexicons.version:
            log.info("lexicon %s changed while it was compiled; not caching it", lexicons.directory)
            return None
        rules_meta, rule_sections = lexicons.rules.encode()
        assert lexicons.pinyin is not None  # LexiconSet makes it
        pinyin_meta, pinyin_sections = lexicons.pinyin.encode()
        meta = {
            "directory": lexicons.directory, "version": lexicons.version, "categories": dict(lexicons.categories),
            "warnings": lexicons.warnings, "scope": lexicons.scope, "normalise": lexicons.normaliser.config,
            "lookalikes": lexicons.lookalikes,
            "rules": rules_meta, "patterns": len(lexicons.patterns),
            "matcher": matcher_name,
            "pinyin": pinyin_meta,
        }
        return Encoded(key, meta, {**rule_sections, **lexicons.patterns.encode(), **pinyin_sections})
    except Exception as exc:  # noqa: BLE001 - the cache must never fail a start
        log.warning("screener: cannot cache lexicon %s (%s: %s)", lexicons.directory, type(exc).__name__, exc)
        return None


def store_compiled(lexicons: LexiconSet, matcher: Matcher, cache: Cache, encoded: Encoded | None = None) -> bool:
    """Put a freshly built set and its matcher in the cache (``encoded``:
    the set's part, made earlier by :func:`encode_compiled`). Never raises."""
    if encoded is None:
        encoded = encode_compiled(lexicons, matcher.name, cache)
    if encoded is None:
        return False
    if encoded.meta["matcher"] != matcher.name:
        log.warning("screener: cannot cache lexicon %s (the set was encoded for matcher %s, not %s)",
                    lexicons.directory, encoded.meta["matcher"], matcher.name)
        return False
    try:
        matcher_meta, matcher_sections = matcher.state()
        meta = {**encoded.meta, "matcher_state": matcher_meta}
        sections = {"meta": pickle.dumps(meta, protocol=5), **encoded.sections, **matcher_sections}
    except Exception as exc:  # noqa: BLE001 - the cache must never fail a start
        log.warning("screener: cannot cache lexicon %s (%s: %s)", lexicons.directory, type(exc).__name__, exc)
        return False
    return cache.store("lexicon", encoded.key, sections)
