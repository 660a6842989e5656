"""``screener explain``: what the engine did with one text, step by step,
and which policy rule decided."""

from __future__ import annotations

from typing import Any

from . import jsonio
from .judge import Engine, JudgedHit, Tracker
from .policy import describe


class _Given(Tracker):
    """The account's blacklist status as the caller states it."""

    def __init__(self, blacklisted: bool) -> None:
        self._blacklisted = blacklisted

    def blacklisted(self, index: int, account_id: Any, post_id: Any = None) -> bool:
        return self._blacklisted


def explain(engine: Engine, text: str, account: dict[str, Any] | None = None, *,
            profile: bool = False, bio: str | None = None) -> dict[str, Any]:
    account = dict(account or {})
    blacklisted = bool(account.pop("blacklisted", False))
    account.setdefault("id", "explain")
    if profile:
        obj: dict[str, Any] = {"id": account["id"], "kind": "profile", "name": text, "bio": bio or "", "account": account}
        fields = [("name", text), ("bio", bio or "")]
        screener = engine.profiles
    else:
        obj = {"id": "explain", "text": text, "account": account}
        fields = [("text", text)]
        screener = engine.posts
    judged = engine.judge([obj], ["" if profile else text], _Given(blacklisted))
    result = judged[0] if judged else None
    by_hit: dict[tuple[str, int, int, str], JudgedHit] = {}
    for h in result.hits if result else []:
        by_hit[(h.field or "text", h.hit.start, h.hit.end, h.hit.rule.id)] = h
    lexicons = screener.lexicons
    candidates = []
    for name, value in fields:
        if not value:
            continue
        screening = screener.screen([value])[0]
        for d in screening.decisions:
            judged_hit = by_hit.get((name, d.hit.start, d.hit.end, d.hit.rule.id))
            candidates.append({
                "field": name, "term": d.hit.rule.label, "written": d.hit.rule.written,
                "category": d.hit.rule.category, "action": d.hit.action, "term_action": d.hit.rule.action,
                "mode": d.hit.rule.mode,
                "rule_id": d.hit.rule.id, "source": f"{d.hit.rule.path}:{d.hit.rule.line}",
                "start": d.hit.start, "end": d.hit.end, "matched": d.hit.matched, "variant": d.hit.variant,
                "kept": d.kept, "reason": d.reason,
                "policy_action": judged_hit.action if judged_hit else None,
                "policy": describe(judged_hit.rule) if judged_hit else None,
            })
    return {
        "lexicon_version": lexicons.version,
        "lexicon_dir": lexicons.directory,
        "policy_version": engine.policy_version,
        "policy_file": engine.policy.path or None,
        "matcher": screener.matcher_name,
        "kind": "profile" if profile else "post",
        "account": {**account, **({"blacklisted": True} if blacklisted else {})},
        "text": text,
        "normalised": " | ".join(lexicons.normaliser.normalise(v).text for _, v in fields if v),
        "candidates": candidates,
        "post_rule": describe(result.post_rule) if result and result.post_rule else None,
        "verdict": result.action if result else "pass",
        "categories": list(dict.fromkeys(h.hit.rule.category for h in result.counted)) if result else [],
    }


def _written_as(variant: str) -> str:
    return "" if variant == "literal" else f" written as {variant}"


def _action(candidate: dict[str, Any]) -> str:
    """A candidate's action, and the term's own where the hit asks for less
    (a term written wholly in pinyin flags at most)."""
    if candidate["action"] == candidate["term_action"]:
        return str(candidate["action"])
    return f"{candidate['action']}: the term says {candidate['term_action']}, but it is written wholly in pinyin"


def render(report: dict[str, Any]) -> str:
    lines = [
        f"lexicon    {report['lexicon_dir']} (version {report['lexicon_version']}, matcher {report['matcher']})",
        f"policy     {report['policy_file'] or 'none'} (version {report['policy_version']})",
        # as JSON, the way --account takes it (Python's repr showed True, 'explain')
        f"account    {jsonio.dumps(report['account']).decode()}" if report["account"].keys() - {"id"}
        else "account    (no attributes)",
        f"{'profile' if report['kind'] == 'profile' else 'text':<10} {report['text']}",
        f"normalised {report['normalised']}",
        f"candidates {len(report['candidates']) or 'none'}",
    ]
    for c in report["candidates"]:
        mark = "KEEP    " if c["kept"] else "SUPPRESS"
        where = f"{c['field']} " if report["kind"] == "profile" else ""
        lines.append(
            f"  {mark} {where}[{c['start']},{c['end']}) {c['matched']!r} = {c['term']!r}{_written_as(c['variant'])} "
            f"({c['category']}, {_action(c)}, {c['mode']}; {c['source']}): {c['reason']}"
        )
        if c["kept"]:
            lines.append(f"           policy: {c['policy_action']} <- {c['policy']}")
    if report["post_rule"]:
        lines.append(f"post rule  {report['post_rule']}")
    cats = ", ".join(report["categories"])
    lines.append(f"verdict    {report['verdict']}" + (f" ({cats})" if cats else ""))
    return "\n".join(lines)
