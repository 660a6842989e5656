#!/usr/bin/env python3
"""The cost of policy evaluation relative to plain screening, and rescan throughput.

    python3 dev.py bench-policy            # 50k terms, 20000 generated posts, 5 reps
    python3 dev.py bench-policy --quick    # smoke run (used by the tests)

One process, one core. Contenders, interleaved within every repetition over
the same batches (2048 posts) so that machine noise hits them alike; medians:

* ``screen``: plain screening, ``Screener.screen_sparse`` (normalise → match →
  verify → decide);
* ``judge, no policy``: ``Engine.judge`` with no policy (account extraction and
  judgements of candidate posts only);
* ``judge, hit rules + offenders``: a policy with hit rules (news licence,
  per-type override, blacklisted escalation) and the repeat-offender state;
* ``judge, + post rules``: the same plus a 1000-account deny list, which makes
  every post be judged, not only candidates.

Rescan: the posts are "published" under an old lexicon (the terms planted in
the first half of the planted posts missing), their events kept; then
``rescan_files`` re-judges the archive with the full lexicon. Reported: posts/s
of the rescan, and of ``scan`` on the same archive in the same run. Gates: the
rescan's stricter count equals the number of posts whose planted term the old
lexicon lacked and the new one has; the judged verdicts of all contenders agree
where they must.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import corpus as bench_corpus  # noqa: E402
from throughput import machine  # noqa: E402

POLICY = """
list denied: @denied.txt
hit licensed: category=bench0 account.news_license=true -> pass
hit gov: category=bench1 account.type=government -> recall
hit escalate: account.blacklisted=true -> escalate
offenders: threshold=3 window=30d
"""
POST_RULES = "post denied: account.id=@denied -> recall\n"
TYPES = ("individual", "organisation", "government")


def objects_for(posts: list[str]) -> list[dict]:
    return [{"id": i, "text": p, "published_at": 1_700_000_000 + i,
             "account": {"id": f"u{i % 5000}", "type": TYPES[i % 3], "news_license": i % 7 == 0}}
            for i, p in enumerate(posts)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--terms", type=int, default=50000)
    parser.add_argument("--posts", type=int, default=20000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--quick", action="store_true", help="1k terms, 2000 posts, 1 rep")
    args = parser.parse_args()
    if args.quick:
        args.terms, args.posts, args.reps = 1000, 2000, 1

    import orjson

    from screener import compact
    from screener.judge import Engine
    from screener.lexicon import load_lexicons
    from screener.offenders import OffenderTracker, Offenders
    from screener.pipeline import Screener
    from screener.policy import EMPTY_POLICY, load_policy
    from screener.rescan import Previous, rescan_files
    from screener.scan import run_scan
    from screener.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="screener-bench-policy-"))
    dictionary, by_rank = bench_corpus.load_dictionary()
    terms = bench_corpus.make_terms(by_rank, args.terms)
    planted_terms = terms[:1000]
    posts, planted = bench_corpus.make_posts(dictionary, planted_terms, args.posts)
    megabytes = sum(len(p.encode()) for p in posts) / 1e6
    objects = objects_for(posts)
    texts = [o["text"] for o in objects]

    new_dir, old_dir = work / "new", work / "old"
    bench_corpus.write_lexicon(new_dir, terms)
    missing = set(planted_terms[:500])  # the update adds these
    bench_corpus.write_lexicon(old_dir, [t for t in terms if t not in missing])
    (new_dir / "denied.txt").write_text("\n".join(f"u{i}" for i in range(0, 5000, 5)) + "\n", encoding="utf-8")
    policy_hits, policy_all = new_dir / "hits.policy", new_dir / "all.policy"
    policy_hits.write_text(POLICY, encoding="utf-8")
    policy_all.write_text(POLICY + POST_RULES, encoding="utf-8")

    started = time.perf_counter()
    lexicons = load_lexicons(new_dir)
    screener = Screener(lexicons)
    compact.load()  # measure the fold loop a long-running process uses (screener/compact.py)
    screener.verifier.segmenter.tokens("预热", 0, 1)  # jieba's dictionary load is start-up
    gc.freeze()  # as the front ends do with what lives as long as the process (screener/cli.py)
    build_s = time.perf_counter() - started
    engines = {
        "judge, no policy": Engine.of(screener, EMPTY_POLICY),
        "judge, hit rules + offenders": Engine.of(screener, load_policy(policy_hits, lexicons.categories)),
        "judge, + post rules": Engine.of(screener, load_policy(policy_all, lexicons.categories)),
    }
    batches = [(objects[i:i + 2048], texts[i:i + 2048]) for i in range(0, len(objects), 2048)]

    def run_screen() -> int:
        return sum(sum(1 for s in screener.screen_sparse(t).values() if s.action != "pass") for _, t in batches)

    def run_judge(engine: Engine) -> int:
        offenders = Offenders(engine.policy.offenders)
        count = 0
        for objs, txts in batches:
            if not offenders.config.enabled:  # as scan and the worker do
                count += sum(1 for j in engine.judge(objs, txts) if j.action != "pass")
                continue
            tracker = OffenderTracker(offenders, lambda i: 0, lambda i, objs=objs: objs[i]["published_at"])
            count += sum(1 for j in engine.judge(objs, txts, tracker) if j.action != "pass")
            tracker.finish({0: objs[-1]["published_at"]})
        return count

    contenders = {"screen": run_screen, **{name: (lambda e=e: run_judge(e)) for name, e in engines.items()}}
    times: dict[str, list[float]] = {name: [] for name in contenders}
    verdicts: dict[str, int] = {}
    names = list(contenders)
    for rep in range(args.reps):
        for name in names[rep % len(names):] + names[:rep % len(names)]:  # rotate: no contender always first
            fn = contenders[name]
            t0 = time.perf_counter()
            verdicts[name] = fn()
            times[name].append(time.perf_counter() - t0)
    failures = []
    if verdicts["screen"] != verdicts["judge, no policy"]:
        failures.append(f"judge without policy disagrees with plain screening: {verdicts}")
    if verdicts["judge, + post rules"] < verdicts["judge, hit rules + offenders"]:
        failures.append(f"a deny list cannot make fewer posts non-pass: {verdicts}")

    base = statistics.median(times["screen"])
    rows = [{"contender": name, "seconds": round(statistics.median(ts), 4),
             "mb_per_s": round(megabytes / statistics.median(ts), 1),
             "posts_per_s": round(len(posts) / statistics.median(ts)),
             "cost_vs_screen": round(statistics.median(ts) / base, 3), "non_pass_posts": verdicts[name]}
            for name, ts in times.items()]

    # -- rescan ------------------------------------------------------------------------------------
    archive = work / "archive.jsonl"
    archive.write_bytes(b"".join(orjson.dumps(o) + b"\n" for o in objects))
    settings = Settings(progress="off", dead_letter=os.devnull, policy="none")
    old = Engine.of(Screener(load_lexicons(old_dir)), EMPTY_POLICY)
    gc.freeze()
    published = io.BytesIO()
    run_scan(settings, old, [str(archive)], published)
    new = engines["judge, no policy"]
    expect = sum(1 for i in planted if any(t in missing and t in posts[i] for t in planted_terms)) if planted else 0
    rescan_times, scan_times, stricter = [], [], -1
    for _ in range(args.reps):
        previous = Previous()
        previous.load(published.getvalue().splitlines())
        t0 = time.perf_counter()
        summary = rescan_files(settings, new, [str(archive)], previous, io.BytesIO())
        rescan_times.append(time.perf_counter() - t0)
        stricter = summary.stricter
        t0 = time.perf_counter()
        run_scan(settings, new, [str(archive)], io.BytesIO())
        scan_times.append(time.perf_counter() - t0)
    rescan = {"posts": len(posts), "stricter": stricter, "expected_stricter_at_least": expect,
              "rescan_posts_per_s": round(len(posts) / statistics.median(rescan_times)),
              "scan_posts_per_s": round(len(posts) / statistics.median(scan_times)),
              "rescan_mb_per_s": round(megabytes / statistics.median(rescan_times), 1)}
    if stricter < expect or stricter == 0 and expect:
        failures.append(f"rescan found {stricter} stricter posts, expected at least {expect}")

    info = machine()
    result = {"machine": info, "terms": args.terms, "posts": len(posts), "megabytes": round(megabytes, 2),
              "reps": args.reps, "build_s": round(build_s, 2), "policy": rows, "rescan": rescan}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "policy.json").write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    lines = [f"{info['cpu']}, {info['cores']} cores, Python {info['python']}; {args.terms} terms, "
             f"{len(posts)} generated posts ({megabytes:.2f} MB), median of {args.reps}",
             "", "| contender | MB/s | posts/s | time ÷ screen | non-pass posts |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['contender']} | {r['mb_per_s']} | {r['posts_per_s']} | {r['cost_vs_screen']} | {r['non_pass_posts']} |"
              for r in rows]
    lines += ["", "| rescan posts/s | scan posts/s (same run) | rescan MB/s | stricter (expected ≥) |", "|---:|---:|---:|---:|",
              f"| {rescan['rescan_posts_per_s']} | {rescan['scan_posts_per_s']} | {rescan['rescan_mb_per_s']} | "
              f"{rescan['stricter']} ({expect}) |"]
    (args.out / "policy.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
