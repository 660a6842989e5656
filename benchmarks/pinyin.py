#!/usr/bin/env python3
"""The pinyin pass (``screener/pinyin.py``): its cost side by side, and its recall.

    python3 benchmarks/pinyin.py                 # 50k terms, 5 repetitions
    python3 benchmarks/pinyin.py --terms 1000 --reps 1

Cost: in one process, the same batches are screened (``Screener.screen_sparse``,
"core") and scanned end to end (``run_scan``, "scan") with the pass on and off,
alternately, ``--reps`` times; medians of CPU time (``time.process_time``) and
of wall time. CPU time is the number to read on a shared machine: wall time
also counts the time other processes held the core. Regimes: the generated
corpus, generated user text (Latin words, ``&``, ``<``, emoji), the news
corpus, and the news corpus with 2% of its lines carrying a lexicon term
written in pinyin (the pass then does real work: every such post is refolded
and looked up, and its hit verified).

Recall: the planted pinyin forms are written by pypinyin's phrase-aware
converter (``lazy_pinyin``, ``pinyin(style=TONE)``), not by the per-character
tables the pass compiles from, in six styles; a plant is found when the post
has a hit of its term, and exact when the hit spans the form (up to a closing
bracket of ruby, which a span never includes: it ends at the last letter).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import corpus as bench_corpus  # noqa: E402

STYLES = ("joined", "spaced", "Capitalised-Hyphenated", "ruby(tone)", "one character in pinyin", "last character in pinyin")


def written(term: str, style: str) -> str:
    from pypinyin import Style, lazy_pinyin, pinyin

    plain = lazy_pinyin(term)
    if style == "joined":
        return "".join(plain)
    if style == "spaced":
        return " ".join(plain)
    if style == "Capitalised-Hyphenated":
        return "-".join(p.capitalize() for p in plain)
    if style == "ruby(tone)":
        return "".join(f"{c}({t[0]})" for c, t in zip(term, pinyin(term, style=Style.TONE)))
    k = len(term) // 2 if style == "one character in pinyin" else len(term) - 1
    return term[:k] + plain[k] + term[k + 1:]


def plant(lines: list[str], terms: list[str], rate: float, seed: int) -> tuple[list[str], dict[int, tuple[str, str, str, int]]]:
    """Lines with a term in pinyin between commas in about ``rate`` of them:
    index → (term, style, form, offset of the form)."""
    rng = random.Random(seed)
    out, planted = list(lines), {}
    for i, line in enumerate(lines):
        if rng.random() < rate:
            term, style = rng.choice(terms), rng.choice(STYLES)
            form = written(term, style)
            at = rng.randrange(len(line) + 1)
            out[i] = line[:at] + "，" + form + "，" + line[at:]
            planted[i] = (term, style, form, at + 1)
    return out, planted


def cost(screener, posts: list[str], reps: int) -> dict:
    from screener.judge import Engine
    from screener.scan import run_scan
    from screener.settings import Settings
    import orjson

    engine = Engine.of(screener)
    settings = Settings(dead_letter=os.devnull, progress="off")
    batches = [posts[i:i + 4096] for i in range(0, len(posts), 4096)]
    hits = sum(1 for b in batches for r in screener.screen_sparse(b).values() for h in r.hits if h.variant == "pinyin")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "posts.jsonl"
        path.write_bytes(b"".join(orjson.dumps({"id": i, "text": p}) + b"\n" for i, p in enumerate(posts)))
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in ("core off", "core on", "scan off", "scan on")}
        for _ in range(reps):
            for on in (False, True):
                screener.pinyin.enabled = on
                mark = "on" if on else "off"
                cpu, wall = time.process_time(), time.perf_counter()
                for b in batches:
                    screener.screen_sparse(b)
                times[f"core {mark}"].append((time.process_time() - cpu, time.perf_counter() - wall))
                cpu, wall = time.process_time(), time.perf_counter()
                with open(os.devnull, "wb") as out:
                    run_scan(settings, engine, [str(path)], out)
                times[f"scan {mark}"].append((time.process_time() - cpu, time.perf_counter() - wall))
        screener.pinyin.enabled = True
    megabytes = sum(len(p.encode()) for p in posts) / 1e6
    row: dict = {"MB": round(megabytes, 2), "posts": len(posts),
                 "gated posts": sum(len(screener.pinyin.gated(b)) for b in batches), "pinyin hits": hits}
    for key, values in times.items():
        row[f"{key} cpu MB/s"] = round(megabytes / statistics.median(v[0] for v in values), 1)
        row[f"{key} wall MB/s"] = round(megabytes / statistics.median(v[1] for v in values), 1)
    for what in ("core", "scan"):
        row[f"{what} on÷off (cpu)"] = round(row[f"{what} on cpu MB/s"] / row[f"{what} off cpu MB/s"], 2)
    return row


def recall(screener, posts: list[str], planted: dict[int, tuple[str, str, str, int]]) -> dict[str, dict]:
    fold = screener.lexicons.normaliser.fold_string
    indices = sorted(planted)
    screened = {}
    for i in range(0, len(indices), 4096):
        chunk = indices[i:i + 4096]
        screened.update(zip(chunk, screener.screen([posts[j] for j in chunk])))
    by_style: dict[str, dict] = {s: {"planted": 0, "found": 0, "exact": 0, "missed": []} for s in STYLES}
    for k, (term, style, form, at) in planted.items():
        row = by_style[style]
        row["planted"] += 1
        hits = [h for h in screened[k].hits if h.rule.label == fold(term)]
        if not hits:
            row["missed"].append(form)
            continue
        row["found"] += 1
        end = at + len(form.rstrip(")"))
        row["exact"] += any(h.start == at and h.end == end for h in hits)
    return by_style


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--terms", type=int, default=50000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--rate", type=float, default=0.02, help="share of news lines with a pinyin plant")
    parser.add_argument("--news", type=Path, default=bench_corpus.NEWS,
                        help="the news corpus, one post per line (default ../shared/corpus; generated sentences if absent)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    from screener import Screener, compact, load_lexicons

    dictionary, by_rank = bench_corpus.load_dictionary()
    terms = bench_corpus.make_terms(by_rank, args.terms)
    work = Path(tempfile.mkdtemp(prefix="screener-pinyin-"))
    bench_corpus.write_lexicon(work / "lexicon", terms)
    started = time.process_time()
    screener = Screener(load_lexicons(work / "lexicon"), "auto")
    build = time.process_time() - started
    gc.freeze()  # as the front ends do with what lives as long as the process (screener/cli.py)
    started = time.process_time()
    screener.lexicons.pinyin.lookup()  # made on the first post with pinyin otherwise
    lookup = time.process_time() - started
    compact.load()
    screener.verifier.warm()
    real = args.news.exists()
    news = bench_corpus.read_corpus(args.news) if real else bench_corpus.make_sentences(dictionary, 18000)
    name = "news" if real else "generated sentences (no news corpus)"
    plant_terms = random.Random(5).sample(terms, min(1000, len(terms)))
    with_pinyin, planted = plant(news, plant_terms, args.rate, 11)
    regimes = {
        "generated": bench_corpus.make_posts(dictionary, plant_terms, 20000)[0],
        "user-text": bench_corpus.make_user_posts(dictionary, plant_terms, 20000)[0],
        name: news,
        f"{name}, {args.rate:.0%} of lines with a term in pinyin": with_pinyin,
    }
    rows = []
    for name, posts in regimes.items():
        screener.screen_sparse(posts[:4096])  # what is made on first use is made
        row = {"regime": name, **cost(screener, posts, args.reps)}
        rows.append(row)
        print(json.dumps(row, ensure_ascii=False), file=sys.stderr)
    found = recall(screener, with_pinyin, planted)
    report = {"terms": args.terms, "matcher": screener.matcher_name, "spellings": len(screener.lexicons.pinyin),
              "build cpu s (load + matcher)": round(build, 2), "look-up cpu s": round(lookup, 2),
              "cost": rows, "recall": found}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pinyin.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    lines = [f"{args.terms} terms ({report['spellings']} pinyin spellings), matcher {report['matcher']}; "
             f"build {report['build cpu s (load + matcher)']} s CPU + look-up {report['look-up cpu s']} s CPU",
             "", "| regime | MB | gated posts | pinyin hits | core off | core on | on÷off | scan off | scan on | on÷off |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['regime']} | {r['MB']} | {r['gated posts']} | {r['pinyin hits']} | {r['core off cpu MB/s']} | "
                     f"{r['core on cpu MB/s']} | {r['core on÷off (cpu)']} | {r['scan off cpu MB/s']} | "
                     f"{r['scan on cpu MB/s']} | {r['scan on÷off (cpu)']} |")
    lines += ["", "MB/s of CPU time, medians; wall time in pinyin.json.", "",
              "| written as | planted | recall | exact span |", "|---|---:|---:|---:|"]
    total = {"planted": 0, "found": 0, "exact": 0}
    for style, r in found.items():
        for key in total:
            total[key] += r[key]
        if r["planted"]:
            lines.append(f"| {style} | {r['planted']} | {r['found'] / r['planted']:.3f} | {r['exact'] / r['planted']:.3f} |")
    if total["planted"]:
        lines.append(f"| all | {total['planted']} | {total['found'] / total['planted']:.3f} | "
                     f"{total['exact'] / total['planted']:.3f} |")
    table = "\n".join(lines)
    (args.out / "pinyin.md").write_text(table + "\n", encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
