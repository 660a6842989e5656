#!/usr/bin/env python3
"""Screening throughput per core: naive pipeline vs each backend vs ``scan``.

    python3 dev.py bench                      # generated corpus, 1k/10k/50k/100k terms
    python3 dev.py bench --corpus ../shared/corpus/news_1998_01.txt
    python3 dev.py bench --quick              # smoke run (used by the tests)

Every (lexicon size, contender) pair runs in a fresh child process, one after
another in the same run, so build time and peak RSS are its own. Contenders:

* ``naive``: the design read literally: per post ``OpenCC.convert`` then
  pyahocorasick iteration, no batching, no noise removal;
* ``aho`` / ``hyperscan``: the screening core (normalise → match → verify →
  decide) on the same batches as ``scan`` with that backend;
* ``scan``: ``screener scan`` end to end (JSONL file → decode → screen →
  events serialised to /dev/null), matcher ``auto``;
* ``scan-numpy``: the same with ``SCREENER_COMPACT=numpy``, the fold in numpy
  passes instead of the compiled loop (``screener/compact.py``), so the
  loop's effect is measured side by side in every run.

Correctness gates (a fast wrong answer fails the run): the raw occurrence count
of every matcher equals an independent oracle (set look-ups of every substring
length), and ``aho``, ``hyperscan``, ``scan`` and ``scan-numpy`` produce the same number of
flagged/recalled posts. Throughput is MB of post text (UTF-8) per second,
median of the repetitions.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import corpus as bench_corpus  # noqa: E402

CONTENDERS = ("naive", "aho", "hyperscan", "scan", "scan-numpy")


# -- child: measure one contender ---------------------------------------------------
def _median_time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _batches(posts: list[str]) -> list[list[str]]:
    from screener.settings import Settings

    size = Settings().batch_records  # the same batches as scan
    return [posts[i:i + size] for i in range(0, len(posts), size)]


def child(contender: str, posts_file: Path, lexdir: Path, reps: int) -> dict:
    posts = json.loads(posts_file.read_text(encoding="utf-8"))
    result: dict = {"contender": contender}
    start = time.perf_counter()
    if contender == "naive":
        import ahocorasick
        import opencc

        terms = [l for f in sorted(lexdir.glob("*.txt")) for l in f.read_text(encoding="utf-8").splitlines() if l and not l.startswith("#")]
        automaton = ahocorasick.Automaton()
        for term in terms:
            automaton.add_word(term, term)
        automaton.make_automaton()
        converter = opencc.OpenCC("t2s.json")
        result["build_s"] = time.perf_counter() - start

        def run() -> int:
            return sum(1 for p in posts for _ in automaton.iter(converter.convert(p)))

        result["occurrences"] = run()
        result["seconds"] = _median_time(run, reps)
    else:
        from screener import Screener, compact, load_lexicons

        lexicons = load_lexicons(lexdir)
        screener = Screener(lexicons, "auto" if contender.startswith("scan") else contender)
        compact.load()  # numba, as a long-running process has it (a short scan folds with numpy: compact.py)
        screener.verifier.segmenter.tokens("预热", 0, 1)  # jieba's dictionary load is start-up, not screening
        result["build_s"] = time.perf_counter() - start
        result["matcher"] = screener.matcher_name
        batches = _batches(posts)
        result["occurrences"] = sum(
            len(screener.matcher.scan(lexicons.normaliser.encode_batch(b, screener.matcher.alphabet))) for b in batches
        )
        result["fold"] = compact.load()
        if contender.startswith("scan"):
            result.update(_measure_scan(screener, posts, reps))
        else:
            def run() -> int:
                return sum(1 for b in batches for r in screener.screen(b) if r.action != "pass")

            result["flagged_posts"] = run()
            result["seconds"] = _median_time(run, reps)
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def peak_rss_mb() -> float:
    """This process's own peak RSS.

    Not ``getrusage().ru_maxrss``: Linux folds the parent's peak into a child
    spawned with vfork+exec, so every child reported at least the parent's
    RSS. ``VmHWM`` belongs to the process's own address space.
    """
    try:
        with open("/proc/self/status") as status:
            return next(int(l.split()[1]) for l in status if l.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):  # not Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measure_scan(screener, posts: list[str], reps: int) -> dict:
    import orjson

    from screener.judge import Engine
    from screener.scan import run_scan
    from screener.settings import Settings

    engine = Engine.of(screener)  # no policy: the screening core's front end (benchmarks/policy.py adds one)

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "posts.jsonl"
        source.write_bytes(b"".join(
            orjson.dumps({"id": i, "text": p, "account_id": f"u{i % 997}"}) + b"\n" for i, p in enumerate(posts)
        ))
        settings = Settings(dead_letter=os.devnull, progress="off")
        summaries = []

        def run() -> None:
            with open(os.devnull, "wb") as out:
                summaries.append(run_scan(settings, engine, [str(source)], out))

        seconds = _median_time(run, reps)
    last = summaries[-1]
    assert last.dead_lettered == 0 and last.posts == len(posts)
    return {"seconds": seconds, "flagged_posts": last.flagged + last.recalled}


# -- parent: data, oracle, orchestration, report ------------------------------------------
def oracle_occurrences(texts: list[str], patterns: list[str]) -> int:
    """Count every occurrence of every pattern with set look-ups: obviously right."""
    counts = collections.Counter(patterns)
    lengths = sorted({len(p) for p in patterns})
    total = 0
    for text in texts:
        n = len(text)
        for length in lengths:
            for i in range(n - length + 1):
                hit = counts.get(text[i:i + length])
                if hit:
                    total += hit
    return total


def machine() -> dict:
    cpu = "unknown"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {}
    for module in ("hyperscan", "ahocorasick", "opencc", "jieba", "numpy", "numba"):
        try:
            from importlib.metadata import version

            versions[module] = version({"ahocorasick": "pyahocorasick", "opencc": "opencc"}.get(module, module))
        except Exception:  # noqa: BLE001 - informational only
            versions[module] = "n/a"
    from screener import compact

    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions, "fold": compact.load()}


def run_child(contender: str, posts_file: Path, lexdir: Path, reps: int) -> dict:
    # scan-numpy: scan with the numpy fold instead of the compiled loop.
    env = {**os.environ, "SCREENER_COMPACT": "numpy"} if contender == "scan-numpy" else None
    proc = subprocess.run(
        [sys.executable, __file__, "--child", contender, "--posts-file", str(posts_file),
         "--lexdir", str(lexdir), "--reps", str(reps)], env=env,
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{contender} child failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,50000,100000")
    parser.add_argument("--posts", type=int, default=20000, help="generated posts (default 20000, about 6 MB)")
    parser.add_argument("--corpus", type=Path, help="real text, one post per line, instead of generated posts")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run: 1k terms, 2000 posts, 1 rep")
    parser.add_argument("--child")
    parser.add_argument("--posts-file", type=Path)
    parser.add_argument("--lexdir", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.posts_file, args.lexdir, args.reps)))
        return 0
    if args.quick:
        args.sizes, args.posts, args.reps = "1000", 2000, 1
    sizes = [int(s) for s in args.sizes.split(",")]
    contenders = args.contenders.split(",")

    from screener import load_lexicons
    from screener.normalise import Normaliser

    dictionary, by_rank = bench_corpus.load_dictionary()
    work = Path(tempfile.mkdtemp(prefix="screener-bench-"))
    largest_terms = bench_corpus.make_terms(by_rank, max(sizes))
    if args.corpus:
        posts, planted = bench_corpus.plant(bench_corpus.read_corpus(args.corpus), largest_terms[:min(sizes)])
        source = f"{args.corpus} ({len(posts)} lines, {len(planted)} with a planted term)"
    else:
        posts, planted = bench_corpus.make_posts(dictionary, largest_terms[:min(sizes)], args.posts)
        source = f"generated ({len(posts)} posts, {len(planted)} planted)"
    posts_file = work / "posts.json"
    posts_file.write_text(json.dumps(posts, ensure_ascii=False), encoding="utf-8")
    megabytes = sum(len(p.encode()) for p in posts) / 1e6
    normaliser = Normaliser()
    normalised = [normaliser.fold_string(p) for p in posts]
    import opencc

    converted = [opencc.OpenCC("t2s.json").convert(p) for p in posts]

    rows, failures = [], []
    print(f"corpus: {source}, {megabytes:.2f} MB of post text; reps={args.reps}", file=sys.stderr)
    for size in sizes:
        # Every size contains the smallest set, so planted terms hit at every size.
        terms = largest_terms[:size]
        lexdir = work / f"lex{size}"
        bench_corpus.write_lexicon(lexdir, terms)
        patterns = [p.text for p in load_lexicons(lexdir).patterns]
        expected = {"naive": oracle_occurrences(converted, terms), "core": oracle_occurrences(normalised, patterns)}
        flagged: dict[str, int] = {}
        for contender in contenders:
            r = run_child(contender, posts_file, lexdir, args.reps)
            want = expected["naive" if contender == "naive" else "core"]
            ok = r["occurrences"] == want
            if not ok:
                failures.append(f"{size} {contender}: {r['occurrences']} occurrences, oracle says {want}")
            if "flagged_posts" in r:
                flagged[contender] = r["flagged_posts"]
            row = {
                "terms": size, "contender": contender, "matcher": r.get("matcher", "pyahocorasick"), "fold": r.get("fold", ""),
                "build_s": round(r["build_s"], 3), "mb_per_s": round(megabytes / r["seconds"], 2),
                "posts_per_s": round(len(posts) / r["seconds"]), "peak_rss_mb": round(r["peak_rss_mb"], 1),
                "occurrences": r["occurrences"], "expected_occurrences": want,
                "flagged_posts": r.get("flagged_posts", ""), "ok": ok,
            }
            rows.append(row)
            print(f"  {size:>6} {contender:<9} {row['mb_per_s']:>8} MB/s  build {row['build_s']:>6}s  "
                  f"rss {row['peak_rss_mb']:>7} MB  occurrences {r['occurrences']} (oracle {want})", file=sys.stderr)
        if len(set(flagged.values())) > 1:
            failures.append(f"{size}: contenders disagree on flagged posts: {flagged}")
        if planted and flagged:
            found = next(iter(flagged.values()))
            print(f"         planted posts {len(planted)}, flagged posts {found}", file=sys.stderr)

    info = machine()
    report(rows, info, source, megabytes, args.out, planted)
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    return 1 if failures else 0


def report(rows: list[dict], info: dict, source: str, megabytes: float, out: Path, planted: set[int]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    by = {(r["terms"], r["contender"]): r for r in rows}
    lines = [
        f"machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, {info['platform']}",
        f"versions: {', '.join(f'{k} {v}' for k, v in info['versions'].items())}; fold loop: {info['fold']}",
        f"corpus: {source}, {megabytes:.2f} MB of post text; one process = one core; medians",
        "",
        "| terms | contender | MB/s | posts/s | build s | peak RSS MB | occurrences (oracle) | flagged posts | × naive |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        naive = by.get((r["terms"], "naive"))
        ratio = f"{r['mb_per_s'] / naive['mb_per_s']:.1f}" if naive else ""
        lines.append(
            f"| {r['terms']} | {r['contender']} ({r['matcher']}{', ' + r['fold'] + ' fold' if r['fold'] else ''}) | {r['mb_per_s']} | {r['posts_per_s']} | {r['build_s']} | "
            f"{r['peak_rss_mb']} | {r['occurrences']} ({r['expected_occurrences']}) | {r['flagged_posts']} | {ratio} |"
        )
    table = "\n".join(lines)
    print(table)
    (out / "throughput.md").write_text(table + "\n", encoding="utf-8")
    with open(out / "throughput.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "machine.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    _plot(rows, info, source, out / "throughput.png")


def _plot(rows: list[dict], info: dict, source: str, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for contender in dict.fromkeys(r["contender"] for r in rows):
        points = [(r["terms"], r["mb_per_s"]) for r in rows if r["contender"] == contender]
        ax.plot(*zip(*points), marker="o", label=contender)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("lexicon size (terms)")
    ax.set_ylabel("MB/s of post text, one core")
    ax.set_title(f"screener throughput — {info['cpu']}\n{source}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
