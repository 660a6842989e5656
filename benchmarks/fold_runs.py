#!/usr/bin/env python3
"""The fold loop alone, this checkout's against another's, interleaved on the same data.

    .venv/bin/python benchmarks/fold_runs.py --base ../main   # e.g. a checkout of the commit before runs

Folding runs of a repeated character (``screener/compact.py``) added a second
table look-up and a comparison per character to the hot loop. This measures
what that costs where it is paid, with everything else (decode, matcher,
verification) left out: both checkouts' ``compact_numba`` and ``compact_numpy``
fold the whole news corpus as one batch, in the fold alphabet (pyahocorasick's)
and in Hyperscan's dense alphabet, alternately, and the medians are compared.
On a shared machine the absolute numbers move with the load; the ratio of
interleaved medians is what to read. Results: ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# numba caches compiled loops by module name and file; the other checkout's
# module is loaded under another name, so both get a cache of their own here.
os.environ.setdefault("NUMBA_CACHE_DIR", tempfile.mkdtemp(prefix="fold-runs-numba-"))
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402

from screener import compact as new  # noqa: E402
from screener.matchers.hyperscan_backend import HyperscanMatcher  # noqa: E402
from screener.normalise import Normaliser  # noqa: E402


def _other(base: Path):
    spec = importlib.util.spec_from_file_location("screener._compact_base", base / "screener" / "compact.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "screener"
    spec.loader.exec_module(module)
    return module


def _call(module, name: str, points, table, delete, separators, keys):
    function = getattr(module, name)
    if module is new:
        return function(points, table, delete, 0, separators, keys)
    return function(points, table, delete, 0, separators)  # the loop without runs takes no keys


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", type=Path, required=True, help="checkout to compare with")
    parser.add_argument("--corpus", type=Path, default=HERE.parent.parent / "shared" / "corpus" / "news_1998_01.txt")
    parser.add_argument("--reps", type=int, default=41)
    args = parser.parse_args()
    old = _other(args.base)
    if new.load() != "numba" or old.load() != "numba":
        raise SystemExit("numba is needed for the compiled loops")
    lines = [line.strip() for line in args.corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    n = Normaliser()
    words = sorted({line[i:i + 2] for line in lines[:3000] for i in range(0, len(line) - 1, 7)})[:20000]
    dense = HyperscanMatcher(words, n.table).alphabet
    joined = "\x00".join([*lines, ""])
    points = np.frombuffer(joined.encode("utf-32-le"), dtype="<u4")
    separators = np.cumsum(np.array([len(t) for t in lines], dtype=np.int64) + 1) - 1
    mb = len(joined.encode("utf-8")) / 1e6
    print(f"{len(lines)} posts, {mb:.1f} MB UTF-8, {len(points)} code points; medians of {args.reps}")
    for implementation in ("compact_numba", "compact_numpy"):
        for alphabet, table, delete in (("fold", n.table, int(n.alphabet.delete)), ("hyperscan", dense.table, dense.delete)):
            times: dict[str, list[float]] = {"base": [], "runs": []}
            for _ in range(args.reps):
                for label, module in (("base", old), ("runs", new)):
                    start = time.perf_counter()
                    _call(module, implementation, points, table, delete, separators, n.table)
                    times[label].append(time.perf_counter() - start)
            b, r = statistics.median(times["base"]), statistics.median(times["runs"])
            print(f"{implementation:14s} {alphabet:10s} base {mb / b:6.0f} MB/s   runs {mb / r:6.0f} MB/s   "
                  f"runs/base {b / r:.2f}")


if __name__ == "__main__":
    main()
