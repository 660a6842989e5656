"""Hyperscan backend: SIMD literal matching (Intel's FDR/Teddy engines).

Hyperscan matches bytes, so the text must be encoded. UTF-8 would work but
costs three bytes per CJK character. Instead the backend gives every character
that occurs in some pattern a dense id and encodes each character in two
bytes, low byte first: ``0x01-0x7F`` then ``0x80-0xFF``. Because the two byte
positions draw from disjoint ranges, a pattern can never match starting in the
middle of a character (measured: with a plain 16-bit encoding, 50k patterns gave
29k misaligned false matches on 6.7 MB). No byte is ever 0x00: the Python
binding measures literal patterns with strlen, so a NUL would silently cut a
pattern short. Every other character becomes the one code (id 0) that no
pattern contains, which is also the post separator. This packs up to 16,254
distinct pattern characters; a lexicon with more falls back to four bytes per
code point (escaped as a regex, because of the NULs) and drops misaligned
matches.
"""

from __future__ import annotations

from typing import ClassVar, Sequence

import hyperscan
import numpy as np

from ..charmap import DELETE, N_CODEPOINTS
from ..normalise import Alphabet, EncodedBatch
from .base import MATCH_DTYPE, check_patterns, empty_matches

_LOW = 127  # low byte 0x01-0x7F
_DELETE_CODE = 0xFFFF  # hi 0xFF, lo 0x7F: the last id, never given to a character
_MAX_DENSE = _LOW * 128 - 2  # id 0 = "other"/separator, last id = delete


def _dense_code(ids: np.ndarray) -> np.ndarray:
    ids = ids.astype(np.uint32)
    return (((0x80 + ids // _LOW) << 8) | (1 + ids % _LOW)).astype(np.uint16)


def _regex_bytes(data: bytes) -> bytes:
    return b"".join(b"\\x%02x" % b for b in data)


class HyperscanMatcher:
    name: ClassVar[str] = "hyperscan"

    def __init__(self, patterns: Sequence[str], fold_table: np.ndarray, *, max_dense: int = _MAX_DENSE) -> None:
        check_patterns(patterns)
        chars = sorted({c for p in patterns for c in p})
        self.dense = len(chars) <= min(max_dense, _MAX_DENSE)
        if self.dense:
            self.alphabet, encoded = self._dense_alphabet(patterns, chars, fold_table)
            self._unit = 2
        else:
            self.alphabet = Alphabet(fold_table, int(DELETE), 0)
            encoded = [_regex_bytes(p.encode("utf-32-le")) for p in patterns]
            self._unit = 4
        self._lengths = np.fromiter((len(p) for p in patterns), dtype=MATCH_DTYPE, count=len(patterns))
        self._db: hyperscan.Database | None = None
        if patterns:
            self._db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            self._db.compile(
                expressions=encoded, ids=list(range(len(encoded))),
                elements=len(encoded), flags=0, literal=self.dense,
            )

    @staticmethod
    def _dense_alphabet(
        patterns: Sequence[str], chars: list[str], fold_table: np.ndarray
    ) -> tuple[Alphabet, list[bytes]]:
        ids = np.arange(1, len(chars) + 1, dtype=np.uint32)
        by_char = np.full(N_CODEPOINTS, 0, dtype=np.uint32)
        by_char[np.array([ord(c) for c in chars], dtype=np.int64)] = ids
        code_of_char = _dense_code(by_char)
        live = fold_table != DELETE
        table = np.full(N_CODEPOINTS, _DELETE_CODE, dtype=np.uint16)
        table[live] = code_of_char[fold_table[live]]
        encoded = [code_of_char[np.array([ord(c) for c in p])].astype("<u2").tobytes() for p in patterns]
        return Alphabet(table, _DELETE_CODE, int(_dense_code(np.array([0]))[0])), encoded

    def scan(self, batch: EncodedBatch) -> np.ndarray:
        if self._db is None or not len(batch.codes):
            return empty_matches()
        found: list[tuple[int, int]] = []
        add = found.append

        def on_match(pid: int, _from: int, to: int, _flags: int, _ctx: object) -> None:
            add((pid, to))

        self._db.scan(batch.codes.tobytes(), match_event_handler=on_match)
        if not found:
            return empty_matches()
        raw = np.array(found, dtype=MATCH_DTYPE)
        if not self.dense:
            raw = raw[raw[:, 1] % self._unit == 0]
        ends = raw[:, 1] // self._unit
        pids = raw[:, 0]
        return np.stack((pids, ends - self._lengths[pids], ends), axis=1)
