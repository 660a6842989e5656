#!/usr/bin/env python3
"""Screening throughput per core: naive pipeline vs each backend vs ``scan``.

    python3 dev.py bench                      # generated corpus, 1k/10k/50k/100k terms
    python3 dev.py bench --corpus ../shared/corpus/news_1998_01.txt
    python3 dev.py bench --quick              # smoke run (used by the tests)

Every run measures three regimes side by side (``--regimes``):

* ``generated`` (``corpus`` with ``--corpus FILE``): rare terms planted in 1%
  of the posts, the regime the earlier rows measured;
* ``dense``: the news corpus of ``../shared/corpus`` (generated sentences
  without it) against ordinary dictionary words: half the posts carry a
  candidate whose word boundaries must be checked;
* ``user-text``: generated posts with ``&``, ``<``, emoji, Latin and digits,
  rare terms in running text, and a malformed JSON line in about 3,000.

Every (regime, lexicon size, contender) runs in a fresh child process, one
after another in the same run, so build time and peak RSS are its own. Contenders:

* ``naive``: the design read literally: per post ``OpenCC.convert`` then
  pyahocorasick iteration, no batching, no noise removal;
* ``aho`` / ``hyperscan``: the screening core (normalise → match → verify →
  decide) on the same batches as ``scan`` with that backend;
* ``scan``: ``screener scan`` end to end (JSONL file → decode → screen →
  events serialised to /dev/null), matcher ``auto``;
* ``scan-numpy``: the same with ``SCREENER_COMPACT=numpy``, the fold in numpy
  passes instead of the compiled loop (``screener/compact.py``), so the
  loop's effect is measured side by side in every run;
* ``scan-no-pinyin``: ``scan`` with ``SCREENER_PINYIN=off``, without the
  pinyin pass (``screener/pinyin.py``), so its cost is measured side by side
  (``scan`` ÷ ``scan-no-pinyin``; the target is at least 0.7).

Correctness gates (a fast wrong answer fails the run): the raw occurrence count
of every matcher equals an independent oracle (set look-ups of every substring
length), ``aho``, ``hyperscan``, ``scan`` and ``scan-numpy`` produce the same number of
flagged/recalled posts (``scan-no-pinyin`` may flag fewer: it misses pinyin), and ``scan`` dead-letters exactly the malformed lines.
Throughput is MB of post text (UTF-8) per second, median of the repetitions.
"""

from __future__ import annotations

import argparse
import base64
import gc
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import corpus as bench_corpus  # noqa: E402

CONTENDERS = ("naive", "aho", "hyperscan", "scan", "scan-numpy", "scan-no-pinyin")
REGIMES = ("generated", "dense", "user-text")
#: What ``--quick`` runs in the regimes other than the first: enough to run
#: their code paths and gates, few enough to keep the smoke run short.
QUICK_EXTRA = ("naive", "scan")


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
    data = json.loads(posts_file.read_text(encoding="utf-8"))
    posts = data["posts"]
    malformed = [(i, base64.b64decode(raw)) for i, raw in data["malformed"]]
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
        from screener import compact
        from screener.judge import Engine

        # The build a front end does (staged compile, no cache, no policy), not a one-step Screener().
        screener = Engine.build(lexdir, None, "auto" if contender.startswith("scan") else contender, "off").posts
        lexicons = screener.lexicons
        compact.load()  # numba, as a long-running process has it (a short scan folds with numpy: compact.py)
        screener.verifier.warm()  # jieba's dictionary (and its trie) load is start-up, not screening
        screener.pinyin.warm()  # so are the pinyin pass's tables
        gc.freeze()  # as the front ends do with what lives as long as the process (screener/cli.py)
        result["build_s"] = time.perf_counter() - start
        result["matcher"] = screener.matcher_name
        batches = _batches(posts)
        result["occurrences"] = sum(
            len(screener.matcher.scan(lexicons.normaliser.encode_batch(b, screener.matcher.alphabet))) for b in batches
        )
        result["fold"] = compact.load()
        if contender.startswith("scan"):
            result.update(_measure_scan(screener, posts, malformed, reps))
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


def _measure_scan(screener, posts: list[str], malformed: list[tuple[int, bytes]], reps: int) -> dict:
    import orjson

    from screener.judge import Engine
    from screener.scan import run_scan
    from screener.settings import Settings

    engine = Engine.of(screener)  # no policy: the screening core's front end (benchmarks/policy.py adds one)

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "posts.jsonl"
        lines = [orjson.dumps({"id": i, "text": p, "account_id": f"u{i % 997}"}) + b"\n" for i, p in enumerate(posts)]
        for at, raw in reversed(malformed):
            lines.insert(at, raw + b"\n")
        source.write_bytes(b"".join(lines))
        settings = Settings(dead_letter=os.devnull, progress="off")
        summaries = []

        def run() -> None:
            with open(os.devnull, "wb") as out:
                summaries.append(run_scan(settings, engine, [str(source)], out))

        seconds = _median_time(run, reps)
    last = summaries[-1]
    assert last.posts == len(posts) + len(malformed), (last.posts, len(posts), len(malformed))
    return {"seconds": seconds, "flagged_posts": last.flagged + last.recalled, "dead_lettered": last.dead_lettered}


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


#: ``--baseline DIR``: a checkout of another commit, with its own ``.venv``
#: (``python3 dev.py lint`` there makes one); its ``scan`` is the contender
#: ``scan@baseline``, run in the same run as the others.
BASELINE: Path | None = None


def run_child(contender: str, posts_file: Path, lexdir: Path, reps: int) -> dict:
    # scan-numpy: scan with the numpy fold instead of the compiled loop;
    # scan-no-pinyin: scan without the pinyin pass.
    env = None
    python, script, child = sys.executable, __file__, contender
    if contender == "scan-numpy":
        env = {**os.environ, "SCREENER_COMPACT": "numpy"}
    elif contender == "scan-no-pinyin":
        env = {**os.environ, "SCREENER_PINYIN": "off"}
    elif contender == "scan@baseline":
        if BASELINE is None:
            raise SystemExit("scan@baseline needs --baseline DIR")
        python, script, child = str(BASELINE / ".venv/bin/python"), str(BASELINE / "benchmarks/throughput.py"), "scan"
    proc = subprocess.run(
        [python, script, "--child", child, "--posts-file", str(posts_file),
         "--lexdir", str(lexdir), "--reps", str(reps)], env=env,
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{contender} child failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


@dataclass
class Regime:
    """One kind of traffic: its posts and the lexicon of each size."""

    name: str
    source: str
    posts: list[str]
    planted: set[int]
    terms: Callable[[int], list[str]]
    malformed: list[tuple[int, bytes]] = field(default_factory=list)


def regimes(args: argparse.Namespace, sizes: list[int]) -> list[Regime]:
    dictionary, by_rank = bench_corpus.load_dictionary()
    rare = bench_corpus.make_terms(by_rank, max(sizes))
    plants = rare[:min(sizes)]  # every size contains the smallest set, so plants hit at every size
    out = []
    for name in args.regimes.split(","):
        if name == "generated" and args.corpus:
            posts, planted = bench_corpus.plant(bench_corpus.read_corpus(args.corpus), plants)
            out.append(Regime("corpus", f"{args.corpus} ({len(posts)} lines, {len(planted)} with a planted term)",
                              posts, planted, lambda n: rare[:n]))
        elif name == "generated":
            posts, planted = bench_corpus.make_posts(dictionary, plants, args.posts)
            out.append(Regime(name, f"generated ({len(posts)} posts, {len(planted)} planted)", posts, planted,
                              lambda n: rare[:n]))
        elif name == "dense":
            if args.dense_corpus.exists():
                posts = bench_corpus.read_corpus(args.dense_corpus, args.posts)
                source = f"{args.dense_corpus} ({len(posts)} lines)"
            else:
                posts = bench_corpus.make_sentences(dictionary, args.posts)
                source = f"generated sentences ({len(posts)}; {args.dense_corpus} is absent)"
            out.append(Regime(name, f"{source}, lexicon of ordinary words from frequency rank "
                                    f"{bench_corpus.ORDINARY_FROM_RANK:,}", posts, set(),
                              lambda n: bench_corpus.make_ordinary_terms(by_rank, n)))
        elif name == "user-text":
            posts, planted, malformed = bench_corpus.make_user_posts(dictionary, plants, args.posts)
            out.append(Regime(name, f"generated user text ({len(posts)} posts, {len(planted)} planted, "
                                    f"{len(malformed)} malformed lines)", posts, planted, lambda n: rare[:n], malformed))
        else:
            raise SystemExit(f"unknown regime {name!r}; known: {', '.join(REGIMES)}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,50000,100000")
    parser.add_argument("--posts", type=int, default=20000,
                        help="generated posts, and news lines of the dense regime (default 20000, about 6 MB)")
    parser.add_argument("--corpus", type=Path, help="real text, one post per line, instead of generated posts")
    parser.add_argument("--dense-corpus", type=Path, default=bench_corpus.NEWS,
                        help="text of the dense regime (default: the news corpus of ../shared; generated if absent)")
    parser.add_argument("--regimes", default=",".join(REGIMES))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--contenders", default=",".join(CONTENDERS),
                        help="comma-separated; also scan@baseline (with --baseline)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every contender this many times, in turn; report the median round")
    parser.add_argument("--baseline", type=Path,
                        help="a checkout of another commit with its own .venv: adds its scan as scan@baseline")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--quick", action="store_true",
                        help=f"tiny smoke run: 1k terms, 2000 posts, 1 rep; {'/'.join(QUICK_EXTRA)} only after the first regime")
    parser.add_argument("--child")
    parser.add_argument("--posts-file", type=Path)
    parser.add_argument("--lexdir", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.posts_file, args.lexdir, args.reps)))
        return 0
    if args.quick:
        args.sizes, args.posts, args.reps = "1000", 2000, 1
    global BASELINE
    BASELINE = args.baseline.resolve() if args.baseline else None
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="screener-bench-"))
    rows, failures, sources = [], [], {}
    for number, regime in enumerate(regimes(args, sizes)):
        contenders = args.contenders.split(",")
        if args.quick and number:
            contenders = [c for c in contenders if c in QUICK_EXTRA]
        megabytes = sum(len(p.encode()) for p in regime.posts) / 1e6
        sources[regime.name] = (regime.source, megabytes)
        print(f"{regime.name}: {regime.source}, {megabytes:.2f} MB of post text; reps={args.reps}", file=sys.stderr)
        rows += run_regime(regime, sizes, contenders, args.reps, work / regime.name, megabytes, failures, args.rounds)

    report(rows, machine(), sources, args.out)
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    return 1 if failures else 0


def run_regime(regime: Regime, sizes: list[int], contenders: list[str], reps: int, work: Path,
               megabytes: float, failures: list[str], rounds: int = 1) -> list[dict]:
    from screener import load_lexicons
    from screener.normalise import Normaliser
    import opencc

    work.mkdir(parents=True)
    posts_file = work / "posts.json"
    posts_file.write_text(json.dumps({
        "posts": regime.posts, "malformed": [(i, base64.b64encode(raw).decode()) for i, raw in regime.malformed],
    }, ensure_ascii=False), encoding="utf-8")
    normaliser = Normaliser()
    normalised = [normaliser.fold_string(p) for p in regime.posts]
    converted = [opencc.OpenCC("t2s.json").convert(p) for p in regime.posts]
    rows = []
    for size in sizes:
        terms = regime.terms(size)
        lexdir = work / f"lex{size}"
        bench_corpus.write_lexicon(lexdir, terms)
        patterns = [p.text for p in load_lexicons(lexdir).patterns]
        expected = {"naive": oracle_occurrences(converted, terms), "core": oracle_occurrences(normalised, patterns)}
        flagged: dict[str, int] = {}
        # Rounds: every contender once per round, in turn, so a noisy spell
        # of a shared machine hits them alike; a row is the median round.
        results: dict[str, list[dict]] = {c: [] for c in contenders}
        for _ in range(rounds):
            for contender in contenders:
                results[contender].append(run_child(contender, posts_file, lexdir, reps))
        for contender in contenders:
            runs = sorted(results[contender], key=lambda r: r["seconds"])
            r = runs[(len(runs) - 1) // 2]
            want = expected["naive" if contender == "naive" else "core"]
            ok = all(run["occurrences"] == want for run in runs)
            if not ok:
                failures.append(f"{regime.name} {size} {contender}: {r['occurrences']} occurrences, oracle says {want}")
            if r.get("dead_lettered", len(regime.malformed)) != len(regime.malformed):
                ok = False
                failures.append(f"{regime.name} {size} {contender}: {r['dead_lettered']} dead letters, "
                                f"{len(regime.malformed)} malformed lines")
            if "flagged_posts" in r and contender != "scan-no-pinyin":
                flagged[contender] = r["flagged_posts"]
            row = {
                "regime": regime.name, "terms": size, "contender": contender,
                "matcher": r.get("matcher", "pyahocorasick"), "fold": r.get("fold", ""),
                "build_s": round(r["build_s"], 3), "mb_per_s": round(megabytes / r["seconds"], 2),
                "posts_per_s": round(len(regime.posts) / r["seconds"]), "peak_rss_mb": round(r["peak_rss_mb"], 1),
                "occurrences": r["occurrences"], "expected_occurrences": want,
                "flagged_posts": r.get("flagged_posts", ""), "ok": ok,
            }
            rows.append(row)
            print(f"  {regime.name:<9} {size:>6} {contender:<10} {row['mb_per_s']:>8} MB/s  build {row['build_s']:>6}s  "
                  f"rss {row['peak_rss_mb']:>7} MB  occurrences {r['occurrences']} (oracle {want})", file=sys.stderr)
        if len(set(flagged.values())) > 1:
            failures.append(f"{regime.name} {size}: contenders disagree on flagged posts: {flagged}")
        if flagged:
            print(f"         planted posts {len(regime.planted)}, flagged posts {next(iter(flagged.values()))}",
                  file=sys.stderr)
    return rows


def report(rows: list[dict], info: dict, sources: dict[str, tuple[str, float]], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    by = {(r["regime"], r["terms"], r["contender"]): r for r in rows}
    lines = [
        f"machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, {info['platform']}",
        f"versions: {', '.join(f'{k} {v}' for k, v in info['versions'].items())}; fold loop: {info['fold']}",
        "one process = one core; medians",
    ]
    for regime, (source, megabytes) in sources.items():
        lines += [
            "",
            f"### {regime}: {source}, {megabytes:.2f} MB of post text",
            "",
            "| terms | contender | MB/s | posts/s | build s | peak RSS MB | occurrences (oracle) | flagged posts | × naive "
            "| ÷ no pinyin | ÷ baseline |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in (r for r in rows if r["regime"] == regime):
            naive = by.get((regime, r["terms"], "naive"))
            ratio = f"{r['mb_per_s'] / naive['mb_per_s']:.1f}" if naive else ""
            without = by.get((regime, r["terms"], "scan-no-pinyin"))
            pinyin = f"{r['mb_per_s'] / without['mb_per_s']:.2f}" if without and r["contender"] == "scan" else ""
            base = by.get((regime, r["terms"], "scan@baseline"))
            before = f"{r['mb_per_s'] / base['mb_per_s']:.2f}" if base and r["contender"] == "scan" else ""
            lines.append(
                f"| {r['terms']} | {r['contender']} ({r['matcher']}{', ' + r['fold'] + ' fold' if r['fold'] else ''}) | "
                f"{r['mb_per_s']} | {r['posts_per_s']} | {r['build_s']} | "
                f"{r['peak_rss_mb']} | {r['occurrences']} ({r['expected_occurrences']}) | {r['flagged_posts']} | {ratio} "
                f"| {pinyin} | {before} |"
            )
    table = "\n".join(lines)
    print(table)
    (out / "throughput.md").write_text(table + "\n", encoding="utf-8")
    with open(out / "throughput.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "machine.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    _plot(rows, info, out / "throughput.png")


def _plot(rows: list[dict], info: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot", file=sys.stderr)
        return
    regimes = list(dict.fromkeys(r["regime"] for r in rows))
    fig, axes = plt.subplots(1, len(regimes), figsize=(5 * len(regimes), 4.5), squeeze=False, sharey=True)
    for ax, regime in zip(axes[0], regimes):
        mine = [r for r in rows if r["regime"] == regime]
        for contender in dict.fromkeys(r["contender"] for r in mine):
            points = [(r["terms"], r["mb_per_s"]) for r in mine if r["contender"] == contender]
            ax.plot(*zip(*points), marker="o", label=contender)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("lexicon size (terms)")
        ax.set_title(regime, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("MB/s of post text, one core")
    fig.suptitle(f"screener throughput — {info['cpu']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
