#!/usr/bin/env python3
"""How the numbering of pattern characters changes Hyperscan's scan time.

    python3 dev.py bench-encoding                 # 50k terms; generated corpus (+ news corpus if present)

The dense alphabet of ``screener/matchers/hyperscan_backend.py`` gives each
pattern character a slot and each slot a two-byte code. Answers never depend
on the numbering; speed does. This compares, on the same normalised batches
and the same 50k-term lexicon, in one run (median ms of the scan alone):

* ``consecutive``: slots in code-point order, codes consecutive (the encoding
  before the change);
* ``spread``: code-point order, codes spread over both bytes;
* ``shipped``: slots by use in patterns, spread (what the backend does);
* ``text-frequency``: slots by frequency in the scanned text itself, codes
  consecutive (the intuitive choice; it is the worst).

Every variant must report the same number of matches.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import corpus as bench_corpus  # noqa: E402

NEWS = bench_corpus.NEWS


def consecutive_codes(slots: np.ndarray) -> np.ndarray:
    slots = slots.astype(np.int64)
    return ((0x80 + slots // 127) << 8 | (1 + slots % 127)).astype(np.uint16)


def main() -> int:
    import hyperscan

    from screener import load_lexicons
    from screener.matchers.hyperscan_backend import _slot_codes, _slots_by_use

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--terms", type=int, default=50000)
    parser.add_argument("--posts", type=int, default=20000)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()

    dictionary, by_rank = bench_corpus.load_dictionary()
    terms = bench_corpus.make_terms(by_rank, args.terms)
    lexdir = Path(tempfile.mkdtemp(prefix="screener-enc-"))
    bench_corpus.write_lexicon(lexdir, terms)
    lexicons = load_lexicons(lexdir)
    patterns = [p.text for p in lexicons.patterns]
    norm = lexicons.normaliser
    corpora = {"generated": bench_corpus.make_posts(dictionary, terms[:1000], args.posts)[0]}
    if NEWS.exists():
        corpora["news"] = bench_corpus.read_corpus(NEWS)
    batches = {name: [norm.encode_batch(texts[i:i + 2048], norm.alphabet).codes for i in range(0, len(texts), 2048)]
               for name, texts in corpora.items()}

    by_code_point = sorted({c for p in patterns for c in p})
    freq = collections.Counter({c: int(n) for c, n in zip(*np.unique(np.concatenate(batches["generated"]), return_counts=True))})
    by_text = sorted(by_code_point, key=lambda c: (-freq.get(ord(c), 0), c))
    variants = {
        "consecutive": (by_code_point, consecutive_codes),
        "spread": (by_code_point, _slot_codes),
        "shipped": (_slots_by_use(patterns), _slot_codes),
        "text-frequency": (by_text, consecutive_codes),
    }
    print(f"{args.terms} terms, {len(by_code_point)} distinct pattern characters; median ms of {args.reps} scans")
    print("| numbering | " + " | ".join(corpora) + " | matches |")
    print("|---|" + "---:|" * (len(corpora) + 1))
    counts = set()
    for name, (order, codes_of) in variants.items():
        slot = np.zeros(0x110000, dtype=np.int64)
        slot[[ord(c) for c in order]] = np.arange(1, len(order) + 1)
        code = codes_of(slot)
        db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        encoded = [code[[ord(c) for c in p]].astype("<u2").tobytes() for p in patterns]
        db.compile(expressions=encoded, ids=list(range(len(encoded))), elements=len(encoded), flags=0, literal=True)
        cells, found = [], 0
        for corpus_name, codes in batches.items():
            data = [code[c].tobytes() for c in codes]
            hits = []
            for d in data:
                db.scan(d, match_event_handler=lambda *a: hits.append(1))
            found += len(hits)
            times = []
            for _ in range(args.reps):
                start = time.perf_counter()
                for d in data:
                    db.scan(d, match_event_handler=lambda *a: None)
                times.append(time.perf_counter() - start)
            cells.append(f"{statistics.median(times) * 1000:.1f}")
        counts.add(found)
        print(f"| {name} | " + " | ".join(cells) + f" | {found} |")
    if len(counts) != 1:
        print(f"FAIL: variants disagree on matches: {counts}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
