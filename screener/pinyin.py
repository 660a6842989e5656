"""Stage: match, second pass. Terms written in pinyin (issue 10, item 2).

``dubo``, ``DuBo``, ``du-bo``, ``du博``, ``赌bo``, ``赌(dǔ)博(bó)`` and
``赌 du 博 bo`` all stand for 赌博. The main pass cannot see them: one
character became several letters. This pass reads the normalised post as
*tokens* and looks runs of them up among the spellings of every term
(:mod:`screener.lexicon.pinyin`):

* a Han character is a token spelt by its primary reading; a Latin word
  (letters with nothing between them in the original, tone marks stripped,
  ü as v) is a token spelt by its letters, if it is made of pinyin syllables
  and Latin units of terms (``iphone`` is not, so it breaks runs); anything
  else breaks runs, except what normalisation deletes (spaces, ``-``,
  brackets), so ``du-bo`` and ``du bo`` are two tokens side by side;
* ruby: a Latin word right after a Han character that spells one of that
  character's readings (赌(dǔ), 赌dǔ) is the same character written twice. It
  joins that character's token, whose span takes it in, so the hit covers
  exactly what the author wrote. Such a word may also be the next character
  in pinyin (天tian向上 for 天天向上): runs with it are looked up both ways;
* each token keeps its normalised span, so a hit becomes an ordinary
  :class:`screener.match.Candidate` (variant ``pinyin``) that verification
  treats like any other (allow entries, word check at CJK edges, the term's
  mode) and maps to original offsets the same way.

A run of tokens is a hit of a spelling when its letters equal the spelling's
and

1. it starts and ends with whole tokens: "dubo" inside "dubois", "xdubo" or
   "woxiangdubo" is no hit. A word is not cut into syllables, because English
   words are full of syllable sequences (this holds in every mode, for a
   ``substring`` term too);
2. every token boundary inside it falls between two syllables ("d ubo" is
   not "du bo"), and every Han character in it is the term's own character at
   that syllable (杜bo is not 赌博: that is a homophone, an opt-in of its own);
3. the author wrote at least one of the term's Han characters as letters, or
   put ruby after one; otherwise it is the literal term, which the main pass
   reports;
4. a run of letters only (``dubo``) counts in a post that has a Han
   character somewhere. English text is full of words that spell two
   syllables (change: chang-e, base: ba-se, side: si-de); with 50k ordinary
   dictionary words as terms, 1.2 MB of English prose gave 546 such hits per
   10,000 paragraphs, and posts on a Chinese platform that spell a term in
   pinyin have Chinese around it.

Cost. Only posts with a character that folds to a Latin letter (or an ``&``,
which may start one) are refolded; only runs that hold a *seed* (a Latin word
of two letters or more made of syllables, or a Han character with ruby) are
looked up, and only up to the longest term's length around each seed. Most
Latin words of Chinese posts (``iPhone``, ``wifi``, ``lol``, ``OK``, URLs) are
no seed: a table of letter pairs that cannot occur in pinyin rejects them in
numpy before any Python runs.
"""

from __future__ import annotations

import functools
import os
import unicodedata
from typing import Sequence

import numpy as np

from . import compact
from .charmap import MARKUP, TABLE_SIZE
from .lexicon import LexiconSet
from .lexicon.pinyin import READING_LIMIT, SYLLABLE, CharTable, PinyinPatterns
from .match import Candidate
from .normalise import EncodedBatch, code_points
from .refold import Refolded, refold

#: Folded code points below this may be Latin letters (Latin blocks, and the
#: Latin Extended Additional block of ḿ).
_LATIN_LIMIT = 0x1F00
#: Longest reading (zhuang, chuang, shuang): a longer Latin word is no ruby.
_LONGEST_READING = 6


@functools.lru_cache(maxsize=1)
def latin_letters() -> np.ndarray:
    """uint8 table: code point → its base ASCII letter, lowercase (0: none).

    >>> bytes(latin_letters()[[ord("ǔ"), ord("Ü"), ord("B"), ord("ß")]])
    b'uvb\\x00'
    """
    table = np.zeros(_LATIN_LIMIT, dtype=np.uint8)
    for code in range(_LATIN_LIMIT):
        ch = chr(code)
        if not ch.isalpha():
            continue
        decomposed = unicodedata.normalize("NFD", ch)
        base = decomposed[0]
        if not (base.isascii() and base.isalpha()):
            continue
        table[code] = ord("v" if base in "uU" and "\u0308" in decomposed else base.lower())
    return table


class _Words:
    """What can be a Latin token: words made of a vocabulary (syllables, and
    the Latin units of terms), with a numpy pre-filter on letter pairs."""

    def __init__(self, vocabulary: frozenset[str]) -> None:
        self.vocabulary = vocabulary
        self.longest = max(map(len, vocabulary), default=0)
        first = np.zeros(128, dtype=bool)
        last = np.zeros(128, dtype=bool)
        pair = np.zeros((128, 128), dtype=bool)
        for item in vocabulary:
            codes = item.encode("ascii")
            first[codes[0]] = last[codes[-1]] = True
            for a, b in zip(codes, codes[1:]):
                pair[a, b] = True
        pair |= last[:, None] & first[None, :]  # across two items
        self.first, self.last, self.pair = first, last, pair

    @functools.lru_cache(maxsize=65536)  # noqa: B019 - one instance per lexicon set; words repeat
    def made_of_vocabulary(self, word: str) -> bool:
        """Whether ``word`` splits into vocabulary items (``woxiangdubo``: yes)."""
        n = len(word)
        ok = [True] + [False] * n
        for end in range(1, n + 1):
            for start in range(max(0, end - self.longest), end):
                if ok[start] and word[start:end] in self.vocabulary:
                    ok[end] = True
                    break
        return ok[n]


class _Token:
    __slots__ = ("letters", "start", "end", "char", "ruby", "seed", "split")

    def __init__(self, letters: str, start: int, end: int, char: str, ruby: bool, seed: bool,
                 split: bool = False) -> None:
        self.letters, self.start, self.end = letters, start, end
        self.char, self.ruby, self.seed = char, ruby, seed  # char: "" for a Latin word
        self.split = split  # a ruby word read as a word of its own (no run starts there)


class PinyinPass:
    """The pinyin pass of one lexicon set."""

    def __init__(self, lexicons: LexiconSet) -> None:
        assert lexicons.pinyin is not None  # LexiconSet makes it
        self.lexicons = lexicons
        self.patterns: PinyinPatterns = lexicons.pinyin
        self._gate: np.ndarray | None = None
        self._words: _Words | None = None
        #: ``SCREENER_PINYIN=off`` skips the pass (the throughput benchmark's
        #: ``scan-no-pinyin``, to measure what it costs side by side).
        self.enabled = os.environ.get("SCREENER_PINYIN", "").lower() != "off"

    # -- what is built on first use ------------------------------------------------
    def letters_of(self) -> np.ndarray:
        """uint8 per code point: the ASCII letter it folds to (0: none)."""
        if self._gate is None:
            fold = self.lexicons.normaliser.table
            small = fold < _LATIN_LIMIT
            gate = np.zeros(TABLE_SIZE, dtype=np.uint8)
            gate[small] = latin_letters()[fold[small]]
            self._gate = gate
        return self._gate

    def warm(self) -> None:
        """Make now what the first batch with Latin letters would (the letter
        tables, the characters' readings: ~0.1 s at 50k terms), so a worker's
        first batches do not wait for it."""
        self.letters_of()
        self.words()
        self.patterns.char_table()

    def words(self) -> _Words:
        if self._words is None:
            self._words = _Words(self.patterns.vocabulary())
        return self._words

    # -- the pass --------------------------------------------------------------------
    def gated(self, texts: Sequence[str], batch: EncodedBatch | None = None) -> list[int]:
        """Indices of the texts that may hold a seed (see the module docstring):
        a Latin word of two letters or more whose letter pairs can occur in
        pinyin, or one letter right after a Han character it is a reading of.

        ``batch``: the main pass's encoding of ``texts``, whose code points
        (after the HTML rule) it reads instead of encoding the texts again.
        """
        if not texts:
            return []
        if batch is not None and batch.points is not None and batch.separators is not None:
            points, separators = batch.points, batch.separators
        else:
            joined = "\x00".join([*texts, ""])
            points = code_points(joined)
            separators = np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)) + 1) - 1
        gate = self.letters_of()
        words = self.words()
        fused = compact.letter_word_seeds(points, gate, words.first, words.last, words.pair,
                                          self.patterns.char_table().single, self.patterns.max_letters, MARKUP)
        if fused is not None:  # the passes below, compiled into one (same answer: tests/test_pinyin.py)
            return np.unique(np.searchsorted(separators, fused)).tolist() if len(fused) else []
        at = compact.marked(points, gate)
        if not len(at):
            return []
        code = gate.take(points[at])
        follows = np.zeros(len(at), dtype=bool)
        # One word: side by side, or with only markup between (a decoded
        # character reference, &#100;ubo, leaves its letter at the "&" and
        # markup after it). Only markup: "see</p>" and the next post's
        # "<b>bo" were one word "seebo", across the post boundary, and the
        # later post's pinyin went unseen (found by a hostile-input probe).
        adjacent = at[1:] == at[:-1] + 1
        follows[1:] = adjacent
        maybe = np.flatnonzero(~adjacent & (points[at[:-1] + 1] == MARKUP) & (points[at[1:] - 1] == MARKUP))
        if len(maybe):  # a pass over the batch only when some letters have markup between them
            text = np.cumsum(points != MARKUP, dtype=np.int32)  # non-markup points up to each position
            follows[maybe + 1] = text[at[maybe + 1] - 1] == text[at[maybe]]
        first = np.flatnonzero(~follows)
        last = np.concatenate((first[1:], [len(at)])) - 1
        length = last - first + 1
        bad = np.zeros(len(at) + 1, dtype=np.int64)
        bad[2:] = np.cumsum(follows[1:] & ~words.pair[code[:-1], code[1:]])
        possible = (words.first[code[first]] & words.last[code[last]] & (bad[last + 1] - bad[first + 1] == 0)
                    & (length >= 2) & (length <= self.patterns.max_letters))
        single = np.flatnonzero((length == 1) & (at[first] > 0))
        if len(single):
            before = points[at[first[single]] - 1]
            single_of = self.patterns.char_table().single
            mask = np.where(before < READING_LIMIT, single_of[np.minimum(before, READING_LIMIT - 1)], 0)
            possible[single] = (mask >> (code[first[single]].astype(np.int32) - 96)) & 1 == 1
        seeds = at[first[possible]]
        if not len(seeds):
            return []
        return np.unique(np.searchsorted(separators, seeds)).tolist()

    def find(self, texts: Sequence[str], batch: EncodedBatch | None = None) -> dict[int, list[Candidate]]:
        """Pinyin candidates per text index, in normalised positions of that text
        (``batch``: see :meth:`gated`)."""
        if not (self.enabled and len(self.patterns)):
            return {}
        gated = self.gated(texts, batch)
        if not gated:
            return {}
        posts = refold(self.lexicons.normaliser, [texts[i] for i in gated])
        found: dict[int, list[Candidate]] = {}
        for post, candidate in self._candidates(posts):
            found.setdefault(gated[post], []).append(candidate)
        return found

    def _candidates(self, posts: Refolded) -> list[tuple[int, Candidate]]:
        codes, kept, ends = posts.codes, posts.kept, posts.ends
        n = len(codes)
        if not n:
            return []
        table = self.patterns.char_table()
        words = self.words()
        post_of = np.repeat(np.arange(len(posts.nstart) - 1), np.diff(posts.nstart))
        letter = np.zeros(n, dtype=np.uint8)
        small = codes < _LATIN_LIMIT
        letter[small] = latin_letters()[codes[small]]
        latin = letter > 0
        if not latin.any():
            return []
        row = np.full(n, -1, dtype=np.int64)
        cjk = codes < READING_LIMIT
        row[cjk] = table.row[codes[cjk]]
        han = row >= 0  # a Han character of some spelled entry (no other can be in a hit)
        same_post = np.zeros(n, dtype=bool)
        same_post[1:] = post_of[1:] == post_of[:-1]
        # Latin words: letters with nothing between them in the original.
        joined = np.zeros(n + 1, dtype=bool)
        joined[1:n] = latin[:-1] & latin[1:] & same_post[1:] & (ends[:-1] == kept[1:])
        starts = np.flatnonzero(latin & ~joined[:n])
        stops = np.flatnonzero(latin & ~joined[1:]) + 1
        toned = self._tone_digits(stops, codes, kept, ends, same_post)
        # Words that may be made of the vocabulary: every letter pair possible,
        # first and last letters possible (numpy, before any Python).
        bad = np.zeros(n + 1, dtype=np.int64)
        bad[2:] = np.cumsum(joined[1:n] & ~words.pair[letter[:-1], letter[1:]])
        length = stops - starts
        possible = (words.first[letter[starts]] & words.last[letter[stops - 1]]
                    & (bad[stops] - bad[starts + 1] == 0) & (length <= self.patterns.max_letters))
        after_han = np.zeros(len(starts), dtype=bool)
        inside = starts > 0
        after_han[inside] = han[starts[inside] - 1] & same_post[starts[inside]]
        # Every possible word becomes a token; seeds are found among them below.
        ask = possible
        if not ask.any():
            return []
        raw = letter.tobytes().decode("ascii", errors="replace")
        tokens_at: dict[int, tuple[str, int, bool]] = {}  # word start → (letters, stop, ruby of the Han before)
        any_seed = False
        sets = table.sets
        for start, stop, tone, follows in zip(starts[ask].tolist(), stops[ask].tolist(), toned[ask].tolist(),
                                              after_han[ask].tolist()):
            text = raw[start:stop]
            ruby = follows and stop - start <= _LONGEST_READING and text in sets[int(row[start - 1])]
            if ruby or words.made_of_vocabulary(text):
                tokens_at[start] = (text, stop + tone, ruby)
                any_seed = any_seed or ruby or stop - start >= 2
        if not any_seed:
            return []
        # Han characters per post: an all-Latin hit needs one (see _check).
        ideograph = (((codes >= 0x3400) & (codes < 0xA000)) | ((codes >= 0xF900) & (codes < 0xFB00))
                     | ((codes >= 0x20000) & (codes < 0x30000)))
        with_han = np.bincount(post_of[ideograph], minlength=len(posts.nstart) - 1) > 0
        return self._runs(posts, tokens_at, han, row, post_of, table, with_han)

    @staticmethod
    def _tone_digits(stops: np.ndarray, codes: np.ndarray, kept: np.ndarray, ends: np.ndarray,
                     same_post: np.ndarray) -> np.ndarray:
        """1 where a Latin word is followed, with nothing between, by one tone
        digit (1-5) that is not part of a number: du4bo2 is du bo with its
        tones, as pinyin is typed where tone marks cannot be (found by an
        evasion probe). The digit joins the word's span, as a tone mark
        would; a number (du45, qq123) is no tone."""
        n = len(codes)
        at = stops[stops < n]
        tone = np.zeros(len(stops), dtype=np.int64)
        if not len(at):
            return tone
        digit = (codes[at] >= 0x31) & (codes[at] <= 0x35) & same_post[at] & (ends[at - 1] == kept[at])
        nxt = at + 1
        inside = nxt < n
        more = np.zeros(len(at), dtype=bool)  # another digit right after: a number
        more[inside] = (codes[nxt[inside]] >= 0x30) & (codes[nxt[inside]] <= 0x39) & same_post[nxt[inside]]
        tone[: len(at)] = digit & ~more
        return tone

    def _runs(self, posts: Refolded, tokens_at: dict[int, tuple[str, int, bool]], han: np.ndarray,
              row: np.ndarray, post_of: np.ndarray, table: CharTable, with_han: np.ndarray
              ) -> list[tuple[int, Candidate]]:
        """Walk the tokens around every seed; look up every run that holds one."""
        reach = max(self.patterns.longest - 1, 1)
        codes = posts.codes
        ending_at = {stop: start for start, (_, stop, _) in tokens_at.items()}
        out: list[tuple[int, Candidate]] = []
        done_until = -1
        for seed_start in sorted(tokens_at):
            _, stop, ruby = tokens_at[seed_start]
            if seed_start < done_until or not (ruby or stop - seed_start >= 2):
                continue
            at = seed_start - 1 if ruby else seed_start  # ruby: the seed is its Han character
            post = int(post_of[at])
            lo, hi = int(posts.nstart[post]), int(posts.nstart[post + 1])
            left: list[_Token] = []
            pos = at
            while len(left) < reach and pos > lo:
                start = ending_at.get(pos)
                if start is not None and tokens_at[start][2]:
                    start -= 1  # a ruby word: the token is its Han character
                elif start is None:
                    start = pos - 1
                token = self._token_at(start, hi, tokens_at, han, row, codes, table)
                if token is None or token.end != pos:
                    break
                left.append(token)
                pos = start
            left.reverse()
            right: list[_Token] = []
            pos, count = at, 0
            while count <= reach:  # extends past every seed it meets
                token = self._token_at(pos, hi, tokens_at, han, row, codes, table)
                if token is None:
                    break
                right.append(token)
                count = 0 if token.seed else count + 1
                pos = token.end
            done_until = pos
            cluster = left + right
            found = self._lookups(cluster, lo, bool(with_han[post]))
            if any(token.ruby for token in cluster):
                # A reading right after its character may also be the next
                # character of a term written in pinyin (天tian向上 for 天天向上);
                # where both readings find a term, the one with ruby wins.
                split = self._lookups(self._without_ruby(cluster, tokens_at), lo, bool(with_han[post]))
                found += [c for c in split if not any(
                    f.rule == c.rule and f.start < c.end and c.start < f.end for f in found)]
            out += [(post, c) for c in found]
        return out

    @staticmethod
    def _without_ruby(cluster: list[_Token], tokens_at: dict[int, tuple[str, int, bool]]) -> list[_Token]:
        """``cluster`` with every ruby read as a word of its own."""
        out = []
        for token in cluster:
            if not token.ruby:
                out.append(token)
                continue
            word = tokens_at[token.start + 1][0]
            out.append(_Token(token.letters, token.start, token.start + 1, token.char, False, False))
            out.append(_Token(word, token.start + 1, token.end, "", False, True, True))
        return out

    @staticmethod
    def _token_at(pos: int, hi: int, tokens_at: dict[int, tuple[str, int, bool]], han: np.ndarray,
                  row: np.ndarray, codes: np.ndarray, table: CharTable) -> _Token | None:
        if pos >= hi:
            return None
        if han[pos]:
            r = int(row[pos])
            letters = table.primary[r]
            following = tokens_at.get(pos + 1)
            if following is not None and following[2]:
                return _Token(letters, pos, following[1], chr(codes[pos]), True, True)
            return _Token(letters, pos, pos + 1, chr(codes[pos]), False, False)
        word = tokens_at.get(pos)
        if word is None or word[2]:
            return None
        text, stop, _ = word
        return _Token(text, pos, stop, "", False, stop - pos >= 2)

    def _lookups(self, cluster: list[_Token], base: int, with_han: bool) -> list[Candidate]:
        """Every run of ``cluster`` that holds a seed and spells a term."""
        lookup = self.patterns.lookup()
        longest = self.patterns.max_letters
        seeds = [0]
        for token in cluster:
            seeds.append(seeds[-1] + token.seed)
        out = []
        for i in range(len(cluster)):
            if cluster[i].split:
                continue  # its character is the term's: a run holds both or neither
            letters = ""
            for j in range(i, len(cluster)):
                letters += cluster[j].letters
                if len(letters) > longest:
                    break
                if seeds[j + 1] == seeds[i]:
                    continue
                for spelling in lookup.get(letters, ()):
                    candidate = self._check(cluster[i:j + 1], spelling, base, with_han)
                    if candidate is not None:
                        out.append(candidate)
        return out

    def _check(self, run: list[_Token], spelling: int, base: int, with_han: bool) -> Candidate | None:
        """Rules 2-4 of the module docstring for one run and spelling."""
        patterns = self.patterns
        rule, part = int(patterns.rule[spelling]), int(patterns.part[spelling])
        at_unit = _unit_starts(patterns.texts[spelling])
        term_units = _unit_texts(self.lexicons.rules[rule].parts[part])
        as_letters = sum(1 for u in term_units if not u.isascii())
        ruby = False
        at = 0
        for token in run:
            found = at_unit.get(at)
            if found is None:
                return None
            k = found
            at += len(token.letters)
            if token.char:
                if term_units[k] != token.char or at_unit.get(at) != k + 1:
                    return None
                as_letters -= 1
                ruby = ruby or token.ruby
        if as_letters <= 0 and not ruby:
            return None  # the literal term: the main pass has it
        if not with_han and not any(token.char for token in run):
            return None  # all letters, in a post of only Latin text: rule 4
        return Candidate(rule, part, run[0].start - base, run[-1].end - base, "pinyin")


@functools.lru_cache(maxsize=65536)
def _unit_starts(spelling: str) -> dict[int, int]:
    """Letter offset → unit index of a stored spelling (``du'bo``: {0: 0, 2: 1, 4: 2})."""
    out = {}
    at = 0
    for k, syllable in enumerate(spelling.split(SYLLABLE)):
        out[at] = k
        at += len(syllable)
    out[at] = spelling.count(SYLLABLE) + 1
    return out


@functools.lru_cache(maxsize=65536)
def _unit_texts(term: str) -> tuple[str, ...]:
    """The units of a spelled term as :func:`screener.lexicon.pinyin.units`
    cuts them (a run of ASCII letters, or one character), without readings."""
    out: list[str] = []
    for ch in term:
        if ch.isascii() and ch.isalpha() and out and out[-1].isascii() and out[-1].isalpha():
            out[-1] += ch
        else:
            out.append(ch)
    return tuple(out)
