"""Word segmentation for the boundary check, with jieba, lazily and locally.

jieba runs at about 0.5 MB/s, so it only ever sees a small window around a
candidate hit of a post that has one. The tokenizer is private to screener and
never learns lexicon terms: if 大麻 were added to its dictionary, 这是个大麻烦
could be cut 大麻/烦 and the check would approve exactly the hit it exists to
question. HMM discovery of unknown words is off for the same reason: it glues
a term to its neighbour (请加/微信) and makes suppression depend on guesses.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jieba

    from .boundary import WordTrie

log = logging.getLogger("screener.segment")

WINDOW = 8  # characters of context on each side of a hit (jieba words rarely exceed 4)
MAX_WORD = 16  # longest word considered when checking whether a boundary is spanned


def _digest(path: Path) -> str | None:
    try:
        with path.open("rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest() if hasattr(hashlib, "file_digest") else \
                hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def _unseal(cache: Path) -> None:
    """Remove jieba's dictionary cache unless it is the file :func:`_seal`
    saw jieba write: jieba loads any marshal file there without a check,
    and a damaged one gave it another dictionary silently (found by a
    hostile-input probe). jieba then builds it again (~0.5 s)."""
    seal = cache.with_name(cache.name + ".sha256")
    try:
        expected = seal.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        expected = ""
    if cache.exists() and _digest(cache) != expected:
        for path in (cache, seal):
            with contextlib.suppress(OSError):
                path.unlink()


def _seal(cache: Path) -> None:
    """Record the digest of the cache jieba has (just written, or checked)."""
    digest = _digest(cache)
    seal = cache.with_name(cache.name + ".sha256")
    if digest is None:
        return
    with contextlib.suppress(OSError):
        if seal.exists() and seal.read_text(encoding="ascii").strip() == digest:
            return
        tmp = seal.with_name(f"{seal.name}.{os.getpid()}.tmp")
        tmp.write_text(digest + "\n", encoding="ascii")
        os.replace(tmp, seal)


class _DumpFailures(logging.Handler):
    """Stands in for jieba's console handler while it loads: a failed dump of
    its cache (a full disk) is an error with a traceback there, on every
    start; here it is noted, and the partial file removed."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen = False

    def emit(self, record: logging.LogRecord) -> None:
        self.seen = True


def _drop_partial(directory: Path, before: set[str]) -> None:
    """Remove the temporary file jieba left when it could not write its cache."""
    for name in set(os.listdir(directory)) - before:
        if name.startswith("tmp"):
            with contextlib.suppress(OSError):
                (directory / name).unlink()
    log.info("jieba could not write its dictionary cache in %s; it is built on each start until it can", directory)


class Segmenter:
    """jieba, imported and its dictionary loaded only when a hit first needs
    a word-boundary check (import ~0.1 s, dictionary 0.5-1 s)."""

    def __init__(self) -> None:
        self._tokenizer: jieba.Tokenizer | None = None
        self._trie: WordTrie | None = None
        self._lock = threading.Lock()
        self._cache_dir: Path | None = None
        self._private: tempfile.TemporaryDirectory[str] | None = None

    def use_cache(self, directory: Path | None) -> None:
        """Keep jieba's dictionary cache (a marshal file) in screener's cache
        directory, which :mod:`screener.cache` checked is ours alone, instead
        of the shared temporary directory. Named by jieba's version, because
        jieba reuses a cache of its default dictionary without checking it."""
        self._cache_dir = directory

    def _get(self) -> jieba.Tokenizer:
        with self._lock:
            if self._tokenizer is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                tokenizer = jieba.Tokenizer()
                sealed: Path | None = None
                if self._cache_dir is not None and os.access(self._cache_dir, os.W_OK):
                    tokenizer.tmp_dir = os.fspath(self._cache_dir)
                    tokenizer.cache_file = f"jieba-{getattr(jieba, '__version__', 'unknown')}.cache"
                    sealed = self._cache_dir / tokenizer.cache_file
                    _unseal(sealed)
                else:
                    # Not jieba's default, $TMPDIR/jieba.cache, which it reuses
                    # unchecked: any local user could plant a dictionary there
                    # (found by a hostile-input probe: 大麻 in 这是个大麻烦 recalled).
                    self._private = tempfile.TemporaryDirectory(prefix="screener-jieba-")
                    tokenizer.tmp_dir = self._private.name
                # jieba logs a failed dump of its cache (a full disk) with a
                # traceback, on every run, and leaves its partial temporary
                # file: the cache is an optimisation, so one quiet line and
                # the file removed (found by a hostile-input probe).
                before = set(os.listdir(tokenizer.tmp_dir)) if sealed is not None else set()
                failed = _DumpFailures()
                jlog = jieba.default_logger
                handlers, propagate = jlog.handlers, jlog.propagate
                jlog.handlers, jlog.propagate = [failed], False  # nor through the worker's root handler
                try:
                    tokenizer.initialize()
                finally:
                    jlog.handlers, jlog.propagate = handlers, propagate
                if sealed is not None:
                    _seal(sealed)
                    if failed.seen:
                        _drop_partial(Path(tokenizer.tmp_dir), before)
                self._tokenizer = tokenizer
            return self._tokenizer

    def trie(self) -> WordTrie:
        """The tokenizer's dictionary as arrays, for :mod:`screener.boundary`
        (built on first use, ~0.7 s, then kept for the process)."""
        if self._trie is None:
            tokenizer = self._get()
            with self._lock:
                if self._trie is None:
                    from .boundary import build_trie  # numpy work only verification in bulk needs

                    self._trie = build_trie(tokenizer.FREQ, tokenizer.total)
        return self._trie

    def spanned(self, text: str, boundary: int) -> bool:
        """Whether some dictionary word covers ``text[boundary-1:boundary+1]``.

        With HMM off, jieba's tokens are dictionary words or single characters,
        so a boundary no dictionary word spans is a token boundary in every
        segmentation: no need to segment. jieba's FREQ holds every prefix of
        every word (with frequency 0), which bounds the scan.
        """
        freq = self._get().FREQ
        for left in range(boundary - 1, max(-1, boundary - MAX_WORD), -1):
            prefix = text[left:boundary]
            if prefix not in freq:
                continue  # no word starts here and reaches the boundary
            for right in range(boundary + 1, min(len(text), left + MAX_WORD) + 1):
                word = text[left:right]
                if word not in freq:
                    break
                if freq[word]:
                    return True
        return False

    def is_word(self, text: str) -> bool:
        """Whether ``text`` is a word of the dictionary (not just a prefix)."""
        return bool(self._get().FREQ.get(text))

    def tokens(self, text: str, start: int, end: int) -> list[tuple[str, int, int]]:
        """Tokens of the window around ``[start, end)``, in ``text`` positions."""
        lo, hi = max(0, start - WINDOW), min(len(text), end + WINDOW)
        return [
            (word, lo + s, lo + e)
            for word, s, e in self._get().tokenize(text[lo:hi], HMM=False)
        ]


DEFAULT_SEGMENTER = Segmenter()
