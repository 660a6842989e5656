"""A directory of compiled artefacts, so that a start does not compile again.

What goes in it (``screener/compiled.py`` decides): the fold table of a
normalisation config, and a compiled lexicon set (rules, patterns and the
matcher's database) per lexicon version and matcher. Each entry is one file::

    MAGIC | header length (8 bytes, little-endian) | header (JSON) | payload

The header holds the entry's full key (lexicon content hash, screener's
engine revision and code, Python, library versions, CPU features, ...), the
lengths of the payload's sections and the SHA-256 of the payload. An entry is
used only if its key equals the one wanted and the payload hashes to the
stored digest; anything else (truncated, flipped bytes, written by another
version, unreadable) counts as a miss, is logged, and is rebuilt and replaced.
The digest guards against accidents, not attackers: see the trust rules below.

Trust. Entries are unpickled, and pickle runs code, so an entry is exactly as
trusted as the directory it is in. The directory must belong to the user
running screener and must not be writable by group or others; so must every
entry file. Anything else is refused (one log line) and the process builds
without the cache, as it also does when the directory cannot be created or
written. The cache never makes a start fail.

Writes are atomic (a temporary file in the same directory, then a rename),
so two processes starting at once both end with a whole entry, and a reader
never sees half of one. Old entries are pruned: the newest
:data:`KEEP_PER_KIND` of each kind stay.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import stat
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Mapping

log = logging.getLogger("screener.cache")

MAGIC = b"screener-cache\n"
FORMAT = 1
#: Entries kept per kind (newest first); each lexicon version makes one.
KEEP_PER_KIND = 8
#: A header is a key and a few lengths; anything larger is not ours.
_MAX_HEADER = 1 << 20
#: Largest payload read: far above a real entry (100k terms: ~0.1 GB).
MAX_PAYLOAD = 4 << 30
#: Temporary files of a write that died are removed after this long.
_STALE_TMP_S = 3600

#: What happened, by ``"<event>:<kind>"`` (``hit:lexicon``, ``miss:fold``,
#: ``bad:lexicon``, ``stored:lexicon``, ...): for tests and logs.
STATS: Counter[str] = Counter()


def default_directory() -> Path:
    """``$XDG_CACHE_HOME/screener``, else ``~/.cache/screener``."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    return Path(base if os.path.isabs(base) else Path.home() / ".cache") / "screener"


def _padded(length: int) -> int:
    """Sections start at multiples of 64 bytes of the payload, so that
    arrays read from them are aligned (numba's compiled loop takes only
    aligned ones)."""
    return -(-length // 64) * 64


def _key_text(key: Mapping[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _owner_problem(st: os.stat_result, what: str) -> str | None:
    """Why a file or directory with this stat is not ours alone, or None."""
    getuid = getattr(os, "getuid", None)
    if getuid is not None and st.st_uid != getuid():
        return f"{what} belongs to uid {st.st_uid}, not to this user ({getuid()})"
    if getuid is not None and st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{what} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


class Cache:
    """One cache directory, or none (``Cache(None)``: every lookup misses,
    nothing is written)."""

    def __init__(self, directory: str | os.PathLike[str] | None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self._checked: bool | None = None  # None: not yet; then whether usable
        self._write_failed = False

    @classmethod
    def from_setting(cls, value: str | None) -> "Cache":
        """The cache a ``cache_dir`` setting names: ``None`` or ``"off"``:
        none; ``""``: :func:`default_directory`; else that directory."""
        if value is None or value.strip().lower() == "off":
            return cls(None)
        try:
            return cls(Path(value).expanduser() if value else default_directory())
        except (RuntimeError, KeyError, OSError) as exc:  # no home directory to expand
            log.warning("screener: no cache directory (%s); building without the cache", exc)
            return cls(None)

    def __repr__(self) -> str:
        return f"Cache({str(self.directory) if self.directory else None!r})"

    @property
    def usable(self) -> bool:
        """Whether the directory exists (it is created), is ours alone and
        can be used. Checked once; a refusal is logged once."""
        if self._checked is None:
            self._checked = self._check()
        return self._checked

    def _check(self) -> bool:
        if self.directory is None:
            return False
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = self.directory.stat()
        except OSError as exc:
            log.warning("screener: cache directory %s cannot be used (%s); building without the cache",
                        self.directory, exc.strerror or exc)
            return False
        problem = None if stat.S_ISDIR(st.st_mode) else "not a directory"
        problem = problem or _owner_problem(st, "it")
        if problem:
            log.warning("screener: cache directory %s refused: %s; building without the cache "
                        "(cache entries are trusted code, see SCREENER_CACHE_DIR)", self.directory, problem)
            return False
        return True

    def path(self, kind: str, key: Mapping[str, Any]) -> Path:
        assert self.directory is not None
        digest = hashlib.sha256(_key_text(key).encode()).hexdigest()[:32]
        return self.directory / f"{kind}-{digest}.entry"

    # -- reading ----------------------------------------------------------------
    def load(self, kind: str, key: Mapping[str, Any]) -> dict[str, memoryview] | None:
        """The sections of the entry for ``key``, or None (a miss).

        Never raises: a missing entry is a miss; a refused, unreadable,
        corrupt or mismatched one is logged, counted as ``bad`` and a miss.
        """
        if not self.usable:
            return None
        path = self.path(kind, key)
        try:
            sections = self._read(path, key)
        except FileNotFoundError:
            STATS[f"miss:{kind}"] += 1
            return None
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with an entry, it is a miss
            STATS[f"bad:{kind}"] += 1
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            log.warning("screener: cache entry %s not used (%s); rebuilding it", path.name, reason)
            return None
        STATS[f"hit:{kind}"] += 1
        try:  # recently used entries survive pruning
            os.utime(path)
        except OSError:
            pass
        return sections

    def _read(self, path: Path, key: Mapping[str, Any]) -> dict[str, memoryview]:
        # O_NONBLOCK: a FIFO named like an entry must not block the open (it
        # stalled every command for ever; found by a hostile-input probe).
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        fd = os.open(path, flags)
        with os.fdopen(fd, "rb", buffering=0) as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise ValueError("not a regular file")
            problem = _owner_problem(st, "the file")
            if problem:
                raise ValueError(problem)
            start = f.read(len(MAGIC) + 8)
            if len(start) != len(MAGIC) + 8 or not start.startswith(MAGIC):
                raise ValueError("not a screener cache entry")
            header_len = int.from_bytes(start[len(MAGIC):], "little")
            if header_len > _MAX_HEADER:
                raise ValueError("header too large")
            raw = f.read(header_len)
            if len(raw) != header_len:
                raise ValueError("truncated header")
            header = json.loads(raw.decode("utf-8"))
            if header.get("format") != FORMAT:
                raise ValueError(f"format {header.get('format')}, not {FORMAT}")
            if _key_text(header["key"]) != _key_text(key):
                differs = sorted(k for k in {*header["key"], *key} if header["key"].get(k) != key.get(k))
                raise ValueError(f"made for another {', '.join(differs) or 'key'}")
            names, lengths = _layout(header)
            size = sum(map(_padded, lengths))
            if size > MAX_PAYLOAD:  # read whole before the digest can refuse it
                raise ValueError(f"payload of {size} bytes, over {MAX_PAYLOAD}")
            if st.st_size != len(start) + header_len + size:
                raise ValueError(f"{st.st_size} bytes, expected {len(start) + header_len + size}")
            # One writable buffer per section: arrays made from them are
            # writable, and a section nobody keeps (a Hyperscan database once
            # loaded) is freed instead of pinning the whole payload.
            digest = hashlib.sha256()
            out: dict[str, memoryview] = {}
            for name, length in zip(names, lengths):
                buffer = bytearray(_padded(length))
                view = memoryview(buffer)
                got = 0
                while got < len(buffer):
                    n = f.readinto(view[got:])
                    if not n:
                        raise ValueError("truncated payload")
                    got += n
                digest.update(buffer)
                out[name] = view[:length]
        if digest.hexdigest() != header["sha256"]:
            raise ValueError("payload digest does not match (corrupt)")
        return out

    # -- writing ------------------------------------------------------------------
    def store(self, kind: str, key: Mapping[str, Any], sections: Mapping[str, Any]) -> bool:
        """Write the entry atomically; False (and one log line per process)
        if it cannot be written. ``sections``: name → bytes-like."""
        if not self.usable or self._write_failed:
            return False
        assert self.directory is not None
        names = list(sections)
        views = [memoryview(sections[n]).cast("B") for n in names]
        digest = hashlib.sha256()
        for v in views:
            digest.update(v)
            digest.update(bytes(_padded(v.nbytes) - v.nbytes))
        header = json.dumps({
            "format": FORMAT, "key": key, "names": names, "lengths": [v.nbytes for v in views],
            "sha256": digest.hexdigest(), "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }, sort_keys=True).encode()
        path = self.path(kind, key)
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{kind}-", suffix=".tmp", dir=self.directory)  # mode 0600
            with os.fdopen(fd, "wb") as f:
                f.write(MAGIC + len(header).to_bytes(8, "little") + header)
                for v in views:
                    f.write(v)
                    f.write(bytes(_padded(v.nbytes) - v.nbytes))
            os.replace(tmp, path)
            tmp = None
        except OSError as exc:
            self._write_failed = True
            STATS[f"unwritable:{kind}"] += 1
            log.warning("screener: cannot write the cache in %s (%s); building without it",
                        self.directory, exc.strerror or exc)
            return False
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
        STATS[f"stored:{kind}"] += 1
        self._prune(kind)
        return True

    def _prune(self, kind: str) -> None:
        """Keep the newest entries of ``kind``; drop dead temporary files."""
        assert self.directory is not None
        try:
            entries = []
            now = time.time()
            for p in self.directory.iterdir():
                if p.name.startswith(f"{kind}-") and p.name.endswith(".entry"):
                    entries.append((p.stat().st_mtime, p))
                elif p.name.startswith(".") and p.name.endswith(".tmp") and now - p.stat().st_mtime > _STALE_TMP_S:
                    p.unlink()
            entries.sort(reverse=True)
            for _, p in entries[KEEP_PER_KIND:]:
                p.unlink()
        except OSError as exc:  # another process pruned first, or the like: harmless
            if exc.errno not in (errno.ENOENT,):
                log.debug("cache prune: %s", exc)


def _layout(header: Any) -> tuple[list[str], list[int]]:
    """The sections' names and lengths from a header, checked: the digest
    covers the payload, not the header, and a flipped bit in a name made
    every start fail on the missing section (found by a hostile-input probe)."""
    names, lengths = header.get("names"), header.get("lengths")
    if not (isinstance(names, list) and isinstance(lengths, list) and len(names) == len(lengths)
            and all(type(n) is str for n in names) and len(set(names)) == len(names)
            and all(type(n) is int and n >= 0 for n in lengths)):
        raise ValueError("malformed header")
    return names, lengths
