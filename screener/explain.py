"""``screener explain``: what the engine did with one text, step by step."""

from __future__ import annotations

from typing import Any

from .pipeline import Screener


def explain(screener: Screener, text: str) -> dict[str, Any]:
    lexicons = screener.lexicons
    norm = lexicons.normaliser.normalise(text)
    result = screener.screen([text])[0]
    return {
        "lexicon_version": lexicons.version,
        "lexicon_dir": lexicons.directory,
        "matcher": screener.matcher_name,
        "text": text,
        "normalised": norm.text,
        "candidates": [
            {
                "term": d.hit.rule.label, "written": d.hit.rule.written, "category": d.hit.rule.category,
                "action": d.hit.rule.action, "mode": d.hit.rule.mode, "rule_id": d.hit.rule.id,
                "source": f"{d.hit.rule.path}:{d.hit.rule.line}",
                "start": d.hit.start, "end": d.hit.end, "matched": d.hit.matched,
                "kept": d.kept, "reason": d.reason,
            }
            for d in result.decisions
        ],
        "verdict": result.action,
        "categories": list(dict.fromkeys(h.rule.category for h in result.hits)),
    }


def render(report: dict[str, Any]) -> str:
    lines = [
        f"lexicon    {report['lexicon_dir']} (version {report['lexicon_version']}, matcher {report['matcher']})",
        f"text       {report['text']}",
        f"normalised {report['normalised']}",
        f"candidates {len(report['candidates']) or 'none'}",
    ]
    for c in report["candidates"]:
        mark = "KEEP    " if c["kept"] else "SUPPRESS"
        lines.append(
            f"  {mark} [{c['start']},{c['end']}) {c['matched']!r} = {c['term']!r} "
            f"({c['category']}, {c['action']}, {c['mode']}; {c['source']}): {c['reason']}"
        )
    cats = ", ".join(report["categories"])
    lines.append(f"verdict    {report['verdict']}" + (f" ({cats})" if cats else ""))
    return "\n".join(lines)
