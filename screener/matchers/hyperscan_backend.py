"""Hyperscan backend: SIMD literal matching (Intel's FDR/Teddy engines).

Hyperscan matches bytes, so the text must be encoded. UTF-8 would work but
costs three bytes per CJK character. Instead the backend gives every character
that occurs in some pattern a dense slot and encodes each character in two
bytes: a first byte from ``0x80-0xFF`` and a second from ``0x01-0x7F``.
Because the two byte positions draw from disjoint ranges, a pattern can never
match starting in the middle of a character (measured: with a plain 16-bit
encoding, 50k patterns gave 29k misaligned false matches on 6.7 MB). No byte is
ever 0x00: the Python binding measures literal patterns with strlen, so a NUL
would silently cut a pattern short. Every other character becomes the one code
(slot 0) that no pattern contains, which is also the post separator. This packs
up to 16,255 distinct pattern characters; a lexicon with more falls back to
four bytes per code point (escaped as a regex, because of the NULs) and drops
misaligned matches.

Which character gets which slot matters for speed, not for answers. Slots in
code-point order, numbered consecutively, leave one of the two bytes with few
distinct values (7,422 characters use 59 of them), and Hyperscan's literal engine then lets most text
positions through its filter to the exact check. Ranking characters by how
many patterns use them and spreading the ranks so that both bytes vary
(:func:`_slot_codes`) halved the scan time at 50k terms, on the generated
corpus and on real news text alike (measured: 9.1 → 4.5 ms and 6.9 → 3.5 ms,
`python3 dev.py bench-encoding`).

A large lexicon compiles into two databases or more (:data:`SPLIT_FROM`),
compiled in parallel and scanned one after the other over the same encoded
batch. Compile time grows faster than the number of patterns, so halves
compile in less than half the time, and split by last character two
databases scan as fast as one (:func:`_shard_ids`). At 100k terms that took
the compile from 4.5 to 2.3 s on two cores. A cold build starts all but the
last of them from the terms as written, before their variants are made
(:class:`StagedBuild`).
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar, Sequence

import hyperscan
import numpy as np

from ..charmap import DELETE, N_CODEPOINTS
from ..normalise import Alphabet, EncodedBatch
from ..threads import Background
from .base import MATCH_DTYPE, check_patterns, empty_matches

_SECOND = 127  # second byte 0x01-0x7F
_FIRST = 128  # first byte 0x80-0xFF
_DELETE_CODE = 0xFFFF  # second byte 0xFF is outside 0x01-0x7F: never a character's code
_MAX_DENSE = _SECOND * _FIRST - 1  # slot 0 = "other"/separator
#: Lexicons of this many patterns compile into two databases or more, one
#: per :data:`SHARD_PATTERNS` begun (see :func:`_shard_ids`). Hyperscan's
#: literal compile grows faster than the pattern count, and the databases
#: compile in parallel: at 100k terms 4.5 s in one database, 2.3 s in two on
#: two cores; at 50k 1.9 and 0.9 s. Two scan as fast as one (three: 5-15%
#: slower), measured on generated, user-written and news text
#: (``python3 dev.py bench`` checks it end to end).
SPLIT_FROM = 20_000
SHARD_PATTERNS = 100_000
_SPREAD = 19  # mixes the second byte into the first; best of 1, 19, 37, 53, 91, 101 (measured)


def _slot_codes(slots: np.ndarray) -> np.ndarray:
    """uint16 codes (little-endian byte pairs) of dense slots.

    The second byte is ``slot % 127``; the first adds ``19 * second`` to
    ``slot // 127`` modulo 128, so that low slots (the busiest characters)
    differ in both bytes. For a fixed second byte the map is a bijection, so
    distinct slots keep distinct codes.
    """
    slots = slots.astype(np.int64)
    second = slots % _SECOND
    first = (slots // _SECOND + _SPREAD * second) % _FIRST
    return ((0x80 + first) | ((1 + second) << 8)).astype(np.uint16)


def _slots_by_use(patterns: Sequence[str]) -> list[str]:
    """Pattern characters, the most used first (ties in code-point order).

    Counted by one ``bincount`` over the joined patterns (a generator into a
    Counter took 0.14 s at 100k terms, and the compile waits for it)."""
    uses = np.bincount(_joined_points(patterns))
    used = np.flatnonzero(uses)
    return [chr(c) for c in used[np.lexsort((used, -uses[used]))].tolist()]


def _joined_points(patterns: Sequence[str]) -> np.ndarray:
    # surrogatepass: lexicon files are decoded strictly, but an API caller may pass any str.
    return np.frombuffer("".join(patterns).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _encode_each(patterns: Sequence[str], code_of_char: np.ndarray) -> list[bytes]:
    """Each pattern's two-byte codes: one array pass over all patterns
    joined, then a slice each (at 100k terms 0.17 → 0.04 s, measured; the
    matcher compiles only after this, so it delays every cold build)."""
    lengths = np.fromiter(map(len, patterns), dtype=np.int64, count=len(patterns))
    data = code_of_char[_joined_points(patterns)].astype("<u2").tobytes()
    ends = np.cumsum(lengths) * 2
    return [data[start:end] for start, end in zip((ends - 2 * lengths).tolist(), ends.tolist())]


def _regex_bytes(data: bytes) -> bytes:
    return b"".join(b"\\x%02x" % b for b in data)


class HyperscanMatcher:
    name: ClassVar[str] = "hyperscan"

    def __init__(self, patterns: Sequence[str], fold_table: np.ndarray, *, max_dense: int = _MAX_DENSE,
                 shards: int | None = None) -> None:
        check_patterns(patterns)
        chars = _slots_by_use(patterns)
        self.dense = len(chars) <= min(max_dense, _MAX_DENSE)
        if self.dense:
            self.alphabet, encoded = self._dense_alphabet(patterns, chars, fold_table)
            self._unit = 2
        else:
            self.alphabet = Alphabet(fold_table, int(DELETE), 0)
            encoded = [_regex_bytes(p.encode("utf-32-le")) for p in patterns]
            self._unit = 4
        self._lengths = np.fromiter((len(p) for p in patterns), dtype=MATCH_DTYPE, count=len(patterns))
        self._dbs: list[hyperscan.Database] = _compile_shards(
            encoded, _shard_ids(patterns, shards if shards is not None else _shard_count(len(patterns))),
            literal=self.dense)
        self._local = threading.local()

    # -- the compiled-lexicon cache (screener/compiled.py) ----------------------
    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(small metadata, named buffers) from which :meth:`from_state`
        rebuilds this matcher without compiling. The databases are
        ``hs_serialize_database``'s bytes: specific to this Hyperscan version
        and CPU, both in the cache key."""
        meta = {"dense": self.dense, "unit": self._unit, "delete": self.alphabet.delete,
                "separator": self.alphabet.separator, "databases": len(self._dbs)}
        buffers: dict[str, Any] = {"hs.lengths": self._lengths}
        if self.dense:
            buffers["hs.alphabet"] = self.alphabet.table
        for i, db in enumerate(self._dbs):
            buffers[f"hs.database.{i}"] = hyperscan.dumpb(db)
        return meta, buffers

    @classmethod
    def from_state(cls, meta: dict[str, Any], buffers: dict[str, Any], fold_table: np.ndarray) -> "HyperscanMatcher":
        self = cls.__new__(cls)
        self.dense, self._unit = meta["dense"], meta["unit"]
        table = np.frombuffer(buffers["hs.alphabet"], dtype=np.uint16) if self.dense else fold_table
        self.alphabet = Alphabet(table, meta["delete"], meta["separator"])
        self._lengths = np.frombuffer(buffers["hs.lengths"], dtype=MATCH_DTYPE)
        self._dbs = []
        self._local = threading.local()
        for i in range(meta["databases"]):
            db = hyperscan.loadb(bytes(buffers[f"hs.database.{i}"]), hyperscan.HS_MODE_BLOCK)
            db.scratch = hyperscan.Scratch(db)  # loadb, unlike compile, allocates none
            # A database for another CPU or Hyperscan fails here, not in the first batch.
            db.scan(b"\x80\x01" * 4, match_event_handler=lambda *_: None)
            self._dbs.append(db)
        return self

    @staticmethod
    def _dense_alphabet(
        patterns: Sequence[str], chars: list[str], fold_table: np.ndarray
    ) -> tuple[Alphabet, list[bytes]]:
        code_of_char = _code_of_char(chars)
        return _alphabet(code_of_char, fold_table), _encode_each(patterns, code_of_char)

    @classmethod
    def _assembled(cls, alphabet: Alphabet, lengths: np.ndarray, dbs: list[hyperscan.Database]) -> "HyperscanMatcher":
        """A dense matcher from parts compiled elsewhere (:class:`StagedBuild`)."""
        self = cls.__new__(cls)
        self.dense, self._unit, self.alphabet, self._lengths, self._dbs = True, 2, alphabet, lengths, dbs
        self._local = threading.local()
        return self

    @classmethod
    def staged(cls, literals: Sequence[str], fold_table: np.ndarray) -> "StagedBuild":
        """Begin compiling from the patterns known first (:class:`StagedBuild`)."""
        return StagedBuild(literals, fold_table)

    def _scratches(self) -> list[Any]:
        """This thread's scratch space, one per database. A scratch serves
        one scan at a time and the scan releases the GIL, so two threads
        sharing one (a rescan beside the worker's batches, after a reload)
        failed with ``ScratchInUseError``."""
        found = getattr(self._local, "scratches", None)
        if found is None:
            found = self._local.scratches = [db.scratch.clone() for db in self._dbs]
        return found

    def scan(self, batch: EncodedBatch) -> np.ndarray:
        if not self._dbs or not len(batch.codes):
            return empty_matches()
        found: list[tuple[int, int]] = []
        add = found.append

        def on_match(pid: int, _from: int, to: int, _flags: int, _ctx: object) -> None:
            add((pid, to))

        data = batch.codes.tobytes()
        for db, scratch in zip(self._dbs, self._scratches()):
            db.scan(data, match_event_handler=on_match, scratch=scratch)
        if not found:
            return empty_matches()
        raw = np.array(found, dtype=MATCH_DTYPE)
        if not self.dense:
            raw = raw[raw[:, 1] % self._unit == 0]
        ends = raw[:, 1] // self._unit
        pids = raw[:, 0]
        return np.stack((pids, ends - self._lengths[pids], ends), axis=1)


def _shard_count(n_patterns: int) -> int:
    """Databases for ``n_patterns`` (:data:`SPLIT_FROM`)."""
    return 1 if n_patterns < SPLIT_FROM else max(2, -(-n_patterns // SHARD_PATTERNS))


def _shard_ids(patterns: Sequence[str], shards: int) -> list[list[int]]:
    """Pattern ids per database, split by a pattern's last character (all
    patterns ending in one character share a database), the largest groups
    first into the emptiest database. Patterns split this way cost no more to
    scan than one database of them all; split at random, two databases
    scanned ~20% slower (measured at 100k terms)."""
    if shards <= 1 or len(patterns) < 2:
        return [list(range(len(patterns)))] if patterns else []
    by_last: dict[str, list[int]] = {}
    for i, p in enumerate(patterns):
        by_last.setdefault(p[-1], []).append(i)
    out: list[list[int]] = [[] for _ in range(shards)]
    for group in sorted(by_last.values(), key=len, reverse=True):
        min(out, key=len).extend(group)
    return [sorted(ids) for ids in out if ids]


def _compile(expressions: list[bytes], ids: list[int], *, literal: bool) -> hyperscan.Database:
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(expressions=expressions, ids=ids, elements=len(ids), flags=0, literal=literal)
    return db


def _compile_shards(encoded: Sequence[bytes], shards: list[list[int]], *, literal: bool,
                    ids: Sequence[int] | None = None) -> list[hyperscan.Database]:
    """One database per shard (positions in ``encoded``), compiled in
    threads: the compile releases the GIL. The pattern at position ``i``
    reports ``ids[i]`` (default ``i``)."""

    def compile_one(group: list[int]) -> hyperscan.Database:
        return _compile([encoded[i] for i in group], group if ids is None else [ids[i] for i in group], literal=literal)

    others = [Background(compile_one, f"hyperscan-compile-{k}").start(ids) for k, ids in enumerate(shards[1:], 1)]
    first = [compile_one(shards[0])] if shards else []
    return first + [job.result() for job in others]


def _code_of_char(chars: Sequence[str]) -> np.ndarray:
    """Code point → two-byte code: ``chars[i]`` gets slot ``i + 1``, the rest slot 0."""
    by_char = np.zeros(N_CODEPOINTS, dtype=np.int64)
    by_char[np.array([ord(c) for c in chars], dtype=np.int64)] = np.arange(1, len(chars) + 1, dtype=np.int64)
    return _slot_codes(by_char)


def _alphabet(code_of_char: np.ndarray, fold_table: np.ndarray) -> Alphabet:
    live = fold_table != DELETE
    table = np.full(len(fold_table), _DELETE_CODE, dtype=np.uint16)
    table[live] = code_of_char[fold_table[live]]
    return Alphabet(table, _DELETE_CODE, int(_slot_codes(np.array([0]))[0]))


class StagedBuild:
    """A large lexicon's databases, compiled from its literal patterns before
    the rest are known.

    A cold build knows the terms as written (the literal patterns) about a
    second before their regional and look-alike variants (OpenCC over every
    term, at 100k terms), and the compile used to wait for those while the
    machine's second core sat idle. So the databases of all shards but the
    last start compiling from the literals at once, and :meth:`finish`
    compiles the last shard's literals with every variant, split by last
    character into as many databases as the whole set would have (opted-in
    look-alike variants can outnumber the literals several times; in one
    database they took 2.7 s longer to compile and 15-25% longer to scan,
    found by a review). Variant characters no literal uses get the slots
    after the literals' (only speed depends on slots). Where staging cannot
    work (one database, an alphabet too large for two-byte codes),
    :meth:`finish` builds the matcher the one-step way.
    """

    def __init__(self, literals: Sequence[str], fold_table: np.ndarray) -> None:
        check_patterns(literals)
        self._literals = list(literals)
        self._fold_table = fold_table
        self._early: list[Background] = []
        self._chars = _slots_by_use(self._literals)
        shards = _shard_count(len(self._literals))
        if shards < 2 or len(self._chars) > _MAX_DENSE:
            return
        self._encoded = _encode_each(self._literals, _code_of_char(self._chars))
        ids = _shard_ids(self._literals, shards)
        self._late = ids[-1]
        self._early = [Background(self._compile_ids, f"hyperscan-compile-{k}").start(shard)
                       for k, shard in enumerate(ids[:-1])]

    def _compile_ids(self, ids: list[int]) -> hyperscan.Database:
        return _compile([self._encoded[i] for i in ids], ids, literal=True)

    def finish(self, patterns: Sequence[str]) -> HyperscanMatcher:
        """The matcher of ``patterns``, whose first patterns are the literals."""
        try:
            return self._finish(patterns)
        finally:
            self.abandon()  # every early database is waited for, whatever happened here

    def abandon(self) -> None:
        """Wait for the early databases and drop what they raise: a build that
        failed after they started leaves no compile running unowned (it would
        take a core from the worker whose reload failed)."""
        for job in self._early:
            try:
                job.result()
            except Exception:  # noqa: BLE001 - the build's own error is the one reported
                pass

    def _finish(self, patterns: Sequence[str]) -> HyperscanMatcher:
        n = len(self._literals)
        if list(patterns[:n]) != self._literals:
            raise ValueError("a staged build's patterns must begin with its literals")
        known = set(self._chars)
        chars = self._chars + [c for c in _slots_by_use(patterns[n:]) if c not in known]
        if not self._early or len(chars) > _MAX_DENSE:  # the early databases' encoding will not do
            return HyperscanMatcher(patterns, self._fold_table)
        check_patterns(patterns[n:])
        code_of_char = _code_of_char(chars)
        late = self._late + list(range(n, len(patterns)))
        encoded = [self._encoded[i] for i in self._late] + _encode_each(patterns[n:], code_of_char)
        databases = max(1, _shard_count(len(patterns)) - len(self._early))
        groups = _shard_ids([patterns[i] for i in late], databases)
        last = _compile_shards(encoded, groups, literal=True, ids=late)
        lengths = np.fromiter(map(len, patterns), dtype=MATCH_DTYPE, count=len(patterns))
        return HyperscanMatcher._assembled(_alphabet(code_of_char, self._fold_table), lengths,
                                           [job.result() for job in self._early] + last)
