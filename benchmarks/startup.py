#!/usr/bin/env python3
"""Start-up time: ``screener scan`` of a one-line input, process start to exit.

    python3 dev.py bench-startup                      # 86 (shipped), 50k, 100k terms
    python3 dev.py bench-startup --baseline main      # also the code of a git revision, same run
    python3 dev.py bench-startup --quick              # smoke run (a test runs it): shipped set, 1 rep

For every lexicon size, each contender is a fresh ``python -m screener.cli
scan`` process (subprocess wall time, medians of ``--reps``), the contenders
interleaved within each repetition:

* ``cold``: an empty cache directory (``SCREENER_CACHE_DIR``), so the fold
  table and the lexicon set are built and then written to the cache;
* ``cached``: the cache filled by an earlier run;
* ``before`` (with ``--baseline REV``): that revision's code, exported with
  ``git archive``, with the default cache directory: a revision that has the
  cache starts from it (after the untimed run), one without builds every time;
* ``before cold`` (with ``--baseline REV``): that revision's code with an
  empty ``SCREENER_CACHE_DIR``, as ``cold``: the cold build before and after.

Python's bytecode and numba's compiled loop are warm in every contender (one
untimed run each first), as on a machine where screener has run before. The
one post is ``，<term>，``: it is matched, verified and emitted as an event,
and its punctuation spares jieba (whose dictionary load, 0.5-1 s, comes with
the first hit that needs a word-boundary check; see the README).

``--stages`` also breaks one cold build per size into its parts, in one
process: what dominates the cold build; and times ``Engine.build`` with an
empty cache directory in fresh processes, ``--reps`` times, this code and
(with ``--baseline``) that revision's interleaved: the cold build before and
after, without process start and imports. ``--worker`` also times ``screener
run`` from process start to ``/readyz`` answering 200 (partitions assigned),
the same contenders, against a Tansu broker (as ``stream.py``), each start
in a fresh consumer group. Results: ``results/startup.md``,
``results/startup.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

SHIPPED = 86  # terms in lexicons/ (the label of the shipped row)


def machine() -> dict:
    cpu = "unknown"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


_MADE: dict[int, tuple[Path, str]] = {}


def lexicon_dirs(sizes: list[int], work: Path) -> dict[int, tuple[Path, str]]:
    """Lexicon directory and a term of it, per size (the shipped set for 86)."""
    if all(s in _MADE for s in sizes):
        return _MADE
    out = _MADE
    generated = [s for s in sizes if s != SHIPPED]
    if SHIPPED in sizes:
        out[SHIPPED] = (ROOT / "lexicons", "赌博")
    if generated:
        import corpus as bench_corpus

        _, by_rank = bench_corpus.load_dictionary()
        terms = bench_corpus.make_terms(by_rank, max(generated))  # the throughput benchmark's terms
        for size in generated:
            directory = work / f"lex{size}"
            bench_corpus.write_lexicon(directory, terms[:size])
            out[size] = (directory, terms[0])
    return out


def run_scan(code: Path, lexdir: Path, post: Path, cache_dir: Path | None) -> float:
    env = {**os.environ, "PYTHONPATH": str(code)}
    env.pop("SCREENER_CACHE_DIR", None)
    if cache_dir is not None:
        env["SCREENER_CACHE_DIR"] = str(cache_dir)
    command = [sys.executable, "-m", "screener.cli", "scan", "--lexicons", str(lexdir), "--progress", "off", str(post)]
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, cwd=tempfile.gettempdir())
    seconds = time.perf_counter() - start
    if proc.returncode != 0 or b'"kind":"post"' not in proc.stdout:
        raise RuntimeError(f"scan failed ({proc.returncode}) or flagged nothing:\n{proc.stderr.decode()[-2000:]}")
    return seconds


def interleaved(size: int, reps: int, contenders: dict[str, Callable[[int], float]], label: str = "") -> dict:
    """Each contender ``reps`` times, their order rotated between repetitions:
    the row of medians and every repetition."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for rep in range(reps):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            times[name].append(contenders[name](rep))
    row = {"terms": size, **{name: round(statistics.median(t), 3) for name, t in times.items()},
           "all": {name: [round(x, 3) for x in t] for name, t in times.items()}}
    print(f"  {label}{size:>6} terms: " + ", ".join(f"{n} {row[n]:.2f} s" for n in names), file=sys.stderr)
    return row


def export(revision: str, work: Path) -> Path:
    target = work / f"baseline-{revision.replace('/', '_')}"
    if target.exists():
        return target
    target.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def measure(sizes: list[int], reps: int, baseline: str | None, work: Path) -> list[dict]:
    lexicons = lexicon_dirs(sizes, work)
    before = export(baseline, work) if baseline else None
    rows = []
    for size in sizes:
        lexdir, term = lexicons[size]
        post = work / f"post{size}.jsonl"
        post.write_text(json.dumps({"id": 1, "text": f"，{term}，", "account_id": "u1"}, ensure_ascii=False) + "\n",
                        encoding="utf-8")
        cached_dir = work / f"cache{size}"
        contenders = {
            "cold": lambda rep: run_scan(ROOT, lexdir, post, work / f"cold{size}-{rep}-{time.monotonic_ns()}"),
            "cached": lambda rep: run_scan(ROOT, lexdir, post, cached_dir),
        }
        if before is not None:
            contenders["before"] = lambda rep: run_scan(before, lexdir, post, None)
            # That revision's cold build, where it has a cache to point at an empty directory
            # (one without the cache builds every time: its "before" column is cold already).
            contenders["before cold"] = lambda rep: run_scan(before, lexdir, post,
                                                             work / f"cold{size}-before-{rep}-{time.monotonic_ns()}")
        # Untimed: bytecode, numba's cache, and the cached contender's entry.
        run_scan(ROOT, lexdir, post, cached_dir)
        if before is not None:
            run_scan(before, lexdir, post, None)
        rows.append(interleaved(size, reps, contenders))
        for path in work.glob(f"cold{size}-*"):
            shutil.rmtree(path, ignore_errors=True)
    return rows


def worker_ready(code: Path, lexdir: Path, cache_dir: Path | None, broker, work: Path) -> float:
    """Seconds from ``screener run`` starting to /readyz answering 200."""
    from integration.conftest import WorkerProcess, create_topics

    topics = create_topics(broker.bootstrap)
    env = {"PYTHONPATH": str(code), "SCREENER_CACHE_DIR": str(cache_dir) if cache_dir else "off"}
    worker = WorkerProcess(topics, work, "--lexicons", str(lexdir), env=env)
    start = time.perf_counter()
    worker.process = subprocess.Popen(worker.args, env=worker.env, stdout=subprocess.DEVNULL, cwd=tempfile.gettempdir(),
                                      stderr=open(worker.log_path, "ab"), start_new_session=True)
    try:
        worker.wait_ready(timeout=180)
        return time.perf_counter() - start
    finally:
        worker.terminate()
        worker.cleanup()


def measure_worker(sizes: list[int], reps: int, baseline: str | None, work: Path) -> list[dict]:
    sys.path.insert(0, str(ROOT / "tests"))
    from integration.conftest import Broker

    lexicons = lexicon_dirs(sizes, work)
    before = export(baseline, work) if baseline else None
    broker = Broker()
    rows = []
    try:
        for size in sizes:
            lexdir = lexicons[size][0]
            cached_dir = work / f"worker-cache{size}"
            contenders = {
                "cold": lambda rep: worker_ready(ROOT, lexdir, work / f"worker-cold{size}-{rep}", broker, work),
                "cached": lambda rep: worker_ready(ROOT, lexdir, cached_dir, broker, work),
            }
            if before is not None:
                contenders["before"] = lambda rep: worker_ready(before, lexdir, None, broker, work)
            for name in contenders:  # untimed: bytecode, numba's cache, the cached entry
                contenders[name](-1)
            rows.append(interleaved(size, reps, contenders, "worker "))
    finally:
        broker.stop()
    return rows


def stages(lexdir: Path) -> dict:
    """One cold build, part by part, in this process (child mode)."""
    out: dict[str, float] = {}
    t = time.perf_counter()
    from screener import compiled
    from screener.cache import Cache
    from screener.lexicon import load_lexicons
    from screener.lexicon.load import _manifest
    from screener.matchers import build_matcher, resolve

    out["imports"] = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        cache = Cache(tmp)
        t = time.perf_counter()
        compiled.fold_table(_manifest(lexdir).normalise.fold, cache)
        out["fold table (built, stored)"] = time.perf_counter() - t
        t = time.perf_counter()
        lexicons = load_lexicons(lexdir, cache)
        out["load_lexicons (parse, fold, regional variants)"] = time.perf_counter() - t
        name = resolve("auto")
        t = time.perf_counter()
        matcher = build_matcher(name, lexicons.patterns.texts, lexicons.normaliser.table)
        out[f"matcher compile ({name})"] = time.perf_counter() - t
        t = time.perf_counter()
        compiled.store_compiled(lexicons, matcher, cache)
        out["store in the cache"] = time.perf_counter() - t
        compiled._TABLES.clear()
        t = time.perf_counter()
        assert compiled.load_compiled(lexdir, "auto", cache) is not None
        out["load from the cache (fold table + set + matcher)"] = time.perf_counter() - t
    # The parts above run one after the other; a build overlaps them: the
    # matcher compiles in threads (a large one into two databases) beside the
    # pinyin spellings. This is the cold build as a start does it, with no
    # cache at all (fold table included, nothing written).
    from screener import charmap
    from screener.judge import Engine

    charmap.build_table.cache_clear()
    compiled._TABLES.clear()  # the fold table too: built, not found in memory
    t = time.perf_counter()
    Engine.build(lexdir, None, "auto", "off")
    out["Engine.build, no cache (parts overlapped)"] = time.perf_counter() - t
    return {k: round(v, 3) for k, v in out.items()}


#: A child that times Engine.build with an empty cache directory (built, then stored), as a cold start does.
_BUILD = ("import sys, tempfile, time\nfrom screener.judge import Engine\nt = time.perf_counter()\n"
          "Engine.build(sys.argv[1], None, 'auto', tempfile.mkdtemp(dir=sys.argv[2]))\nprint(time.perf_counter() - t)")


def run_builds(sizes: list[int], reps: int, baseline: str | None, work: Path) -> list[dict]:
    """``Engine.build`` with an empty cache, each in a fresh process, this
    code and (with ``--baseline``) that revision's interleaved, per size:
    the cold build before and after, without process start and imports."""
    lexicons = lexicon_dirs(sizes, work)
    codes = {"build": ROOT, **({"before build": export(baseline, work)} if baseline else {})}

    def build(code: Path, lexdir: Path) -> float:
        proc = subprocess.run([sys.executable, "-c", _BUILD, str(lexdir), str(work)], capture_output=True, text=True,
                              cwd=tempfile.gettempdir(), env={**os.environ, "PYTHONPATH": str(code)})
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        return float(proc.stdout.strip().splitlines()[-1])

    return [interleaved(size, reps, {name: lambda rep, code=code, lexdir=lexicons[size][0]: build(code, lexdir)
                                     for name, code in codes.items()}, "builds ")
            for size in sizes]


def _build_table(rows: list[dict], reps: int, baseline: str | None) -> list[str]:
    before = any("before build" in r for r in rows)
    head = ["terms", *([f"before: {baseline}"] if before else []), "now", *(["now ÷ before"] if before else [])]
    lines = [f"`Engine.build` with an empty cache directory (built and stored), a fresh process each, "
             f"seconds, median of {reps} (every repetition below)", "",
             "| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for r in rows:
        label = f"{r['terms']} (shipped)" if r["terms"] == SHIPPED else f"{r['terms']:,}"
        cells = [label, *([f"{r['before build']:.2f}"] if before else []), f"{r['build']:.2f}",
                 *([f"{r['build'] / r['before build']:.2f}"] if before else [])]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for r in rows:
        lines.append(f"- {r['terms']:,}: " + "; ".join(f"{n}: {', '.join(f'{x:.2f}' for x in t)}" for n, t in r["all"].items()))
    return lines


def run_stages(sizes: list[int], work: Path) -> dict[int, dict]:
    lexicons = lexicon_dirs(sizes, work)
    found = {}
    for size in sizes:
        proc = subprocess.run([sys.executable, __file__, "--child-stages", str(lexicons[size][0])],
                              capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr)
        found[size] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"  stages {size}: {found[size]}", file=sys.stderr)
    return found


def _table(title: str, rows: list[dict], baseline: str | None) -> list[str]:
    has_before = any("before" in r for r in rows)
    has_cold = any("before cold" in r for r in rows)
    head = ["terms", *([f"before: {baseline}"] if has_before else []),
            *([f"before: {baseline}, cold"] if has_cold else []), "cold (empty cache)", "cached"]
    if has_before:
        head += ["before ÷ cached"]
    if has_cold:
        head += ["cold ÷ before cold"]
    lines = [title, "", "| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for r in rows:
        label = f"{r['terms']} (shipped)" if r["terms"] == SHIPPED else f"{r['terms']:,}"
        cells = [label, *([f"{r['before']:.2f}"] if has_before else []),
                 *([f"{r['before cold']:.2f}"] if has_cold else []), f"{r['cold']:.2f}", f"{r['cached']:.2f}"]
        if has_before:
            cells.append(f"{r['before'] / r['cached']:.1f}×")
        if has_cold:
            cells.append(f"{r['cold'] / r['before cold']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def report(rows: list[dict], stage_rows: dict[int, dict], worker_rows: list[dict], info: dict, reps: int,
           baseline: str | None, out: Path, build_rows: list[dict] | None = None) -> str:
    lines = [f"machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, {info['platform']}", ""]
    lines += _table(f"`screener scan` of one post, process start to exit, seconds, median of {reps}", rows, baseline)
    if worker_rows:
        lines += [""] + _table(f"`screener run`, process start to /readyz 200 (Kafka group join included), "
                               f"seconds, median of {reps}", worker_rows, baseline)
    if build_rows:
        lines += [""] + _build_table(build_rows, reps, baseline)
    if stage_rows:
        names = list(next(iter(stage_rows.values())))
        lines += ["", "Cold build by part (one process, seconds):", "",
                  "| part | " + " | ".join(f"{s:,}" for s in stage_rows) + " |",
                  "|---|" + "---:|" * len(stage_rows)]
        for name in names:
            lines.append(f"| {name} | " + " | ".join(f"{stage_rows[s].get(name, 0):.3f}" for s in stage_rows) + " |")
    table = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "startup.md").write_text(table + "\n", encoding="utf-8")
    (out / "startup.json").write_text(json.dumps({"machine": info, "rows": rows, "stages": stage_rows,
                                                  "builds": build_rows or [], "worker": worker_rows}, indent=2),
                                      encoding="utf-8")
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=f"{SHIPPED},50000,100000", help=f"{SHIPPED} = the shipped set")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--baseline", metavar="REV", help="also time this git revision's code (e.g. main)")
    parser.add_argument("--stages", action="store_true", help="break a cold build into its parts, per size")
    parser.add_argument("--worker", action="store_true", help="also time `screener run` to ready (needs Tansu)")
    parser.add_argument("--quick", action="store_true", help="smoke run: the shipped set, 1 rep")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--child-stages", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_stages:
        print(json.dumps(stages(args.child_stages)))
        return 0
    if args.quick:
        args.sizes, args.reps, args.baseline, args.stages, args.worker = str(SHIPPED), 1, None, False, False
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="screener-startup-"))
    try:
        rows = measure(sizes, args.reps, args.baseline, work)
        stage_rows = run_stages(sizes, work) if args.stages else {}
        build_rows = run_builds(sizes, args.reps, args.baseline, work) if args.stages else []
        worker_rows = measure_worker(sizes, args.reps, args.baseline, work) if args.worker else []
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(report(rows, stage_rows, worker_rows, machine(), args.reps, args.baseline, args.out, build_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
