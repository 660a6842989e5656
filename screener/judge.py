"""Stage: decide, with the author in view. Hits + account + policy → verdict.

:class:`Engine` is everything one version of the rules needs: the post
screener, the profile screener (same compiled matcher, stricter matching),
and the policy. :meth:`Engine.judge` takes one decoded batch and returns a
:class:`Judgement` for every message that is not a silent pass: every front
end (``scan``, ``rescan``, the Kafka worker, ``explain``) goes through it.

Policy evaluation costs in proportion to candidate posts, except for ``post``
rules (account allow/deny lists, blacklisted accounts), which must see every
post of the batch; the closing benchmark reports the cost of both.
"""

from __future__ import annotations

import contextlib
from itertools import repeat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .cache import Cache
from .compiled import encode_compiled, load_compiled, store_compiled
from .decide import Verdict, strictest
from .decode import account_of
from .lexicon import LexiconSet, load_lexicons
from .matchers import Matcher, Staged, build_matcher, resolve, start_matcher
from .pipeline import Screener, Screening
from .policy import EMPTY_POLICY, Policy, PolicyRule, load_policy
from .segment import DEFAULT_SEGMENTER
from .threads import Background
from .verify import Decision, Hit


@dataclass(frozen=True, slots=True)
class JudgedHit:
    """A verified hit and what the policy made of it (``pass``: it does not count)."""

    hit: Hit
    action: str
    rule: PolicyRule | None
    field: str | None = None  # name | bio for profiles

    def to_event(self) -> dict[str, Any]:
        out = self.hit.to_event()
        out["action"] = self.action
        if self.rule is not None:
            out["lexicon_action"] = self.hit.action
            out["policy_rule"] = self.rule.id
        if self.field is not None:
            out["field"] = self.field
        return out


@dataclass(slots=True)
class Judgement:
    index: int  # into the batch
    kind: str  # post | profile
    action: Verdict
    account: dict[str, Any]
    hits: list[JudgedHit] = field(default_factory=list)
    suppressed: list[Decision] = field(default_factory=list)  # verification said no
    post_rule: PolicyRule | None = None

    @property
    def counted(self) -> list[JudgedHit]:
        return [h for h in self.hits if h.action != "pass"]

    @property
    def policy_rules(self) -> list[str]:
        ids = [h.rule.id for h in self.hits if h.rule is not None]
        if self.post_rule is not None:
            ids.append(self.post_rule.id)
        return list(dict.fromkeys(ids))

    @property
    def noteworthy(self) -> bool:
        """Worth an audit record: not a plain pass."""
        return self.action != "pass" or bool(self.hits) or bool(self.suppressed) or self.post_rule is not None


class Tracker:
    """What the judge asks about accounts (the offender state) and tells it.

    The default knows nothing and remembers nothing: no account is blacklisted.
    """

    def blacklisted(self, index: int, account_id: Any, post_id: Any = None) -> bool:
        return False

    def violation(self, index: int, account_id: Any, post_id: Any, action: str) -> None:
        return None


NO_TRACKER = Tracker()


@dataclass(frozen=True)
class Engine:
    posts: Screener
    profiles: Screener
    policy: Policy = EMPTY_POLICY

    @classmethod
    def build(cls, lexicons: str | Path, policy: str | Path | None = None, matcher: str = "auto",
              cache_dir: str | None = None) -> "Engine":
        """Load, validate and compile; raises LexiconError / PolicyError with every problem.

        ``cache_dir`` is the ``cache_dir`` setting (``""``: the default
        directory, ``"off"`` or None: no cache): a lexicon version compiled
        before is loaded from there, a new one is compiled and put there
        (``screener/compiled.py``).
        """
        cache = Cache.from_setting(cache_dir)
        found = load_compiled(lexicons, matcher, cache)
        if found is not None:
            full, compiled = found
            checked = load_policy(policy, full.categories)
        else:
            full, compiled, checked = _cold_build(lexicons, policy, matcher, cache)
        if cache.usable:
            DEFAULT_SEGMENTER.use_cache(cache.directory)
        posts = Screener(full, compiled=compiled)
        return cls(posts, Screener(full.for_scope("profile"), compiled=posts.matcher), checked)

    @classmethod
    def of(cls, screener: Screener, policy: Policy = EMPTY_POLICY) -> "Engine":
        return cls(screener, Screener(screener.lexicons.for_scope("profile"), compiled=screener.matcher), policy)

    @property
    def lexicon_version(self) -> str:
        return self.posts.version

    @property
    def policy_version(self) -> str:
        return self.policy.version

    @property
    def matcher_name(self) -> str:
        return self.posts.matcher_name

    def judge(self, objects: Sequence[dict[str, Any]], texts: Sequence[str],
              tracker: Tracker = NO_TRACKER) -> list[Judgement]:
        """Judgements, in batch order, of every message that is not a silent pass.

        Posts are judged in order, so a post that blacklists its account
        makes the account's later posts in the same batch meet the stricter
        policy, exactly as if they had come one batch later.
        """
        screened = self.posts.screen_sparse(texts)
        profiles: list[int] = []
        if "" in texts:  # decode gives a profile the text "": only then can there be one
            kinds = list(map(dict.get, objects, repeat("kind")))
            profiles = [i for i, k in enumerate(kinds) if k == "profile"]
        profile_hits = self._screen_profiles(objects, profiles)
        if self.policy.has_post_rules:
            indices: Sequence[int] = range(len(objects))
        else:
            indices = sorted({*screened, *profile_hits})
        out = []
        for index in indices:
            obj = objects[index]
            judged: Judgement | None
            if obj.get("kind") == "profile":
                judged = self._judge_profile(index, obj, profile_hits.get(index, []), tracker)
            else:
                judged = self._judge_post(index, obj, screened.get(index), tracker)
            if judged is not None and judged.noteworthy:
                out.append(judged)
        return out

    def _account(self, index: int, obj: dict[str, Any], tracker: Tracker) -> tuple[dict[str, Any], dict[str, Any]]:
        """The account as the post gives it, and as policy sees it (with
        ``blacklisted`` from the offender state, never from the post)."""
        account = account_of(obj)
        seen = account
        if "blacklisted" in account:
            seen = {k: v for k, v in account.items() if k != "blacklisted"}
        if "id" in account and tracker.blacklisted(index, account["id"], obj.get("id")):
            seen = {**seen, "blacklisted": True}
        return account, seen

    def _judge_post(self, index: int, obj: dict[str, Any], screening: Screening | None, tracker: Tracker) -> Judgement | None:
        account, seen = self._account(index, obj, tracker)
        if screening is None:  # no candidates: only a post rule can make this more than a silent pass
            verdict, post_rule = self.policy.judge_post(seen, "pass")
            if post_rule is None:
                return None
            judged = Judgement(index, "post", verdict, account, post_rule=post_rule)  # type: ignore[arg-type]
            if verdict != "pass" and "id" in account:
                tracker.violation(index, account["id"], obj["id"], verdict)
            return judged
        hits = self._judge_hits("hit", screening.hits, seen)
        verdict, post_rule = self.policy.judge_post(seen, strictest([h.action for h in hits]))
        suppressed = [d for d in screening.decisions if not d.kept]
        judged = Judgement(index, "post", verdict, account, hits, suppressed, post_rule)  # type: ignore[arg-type]
        if verdict != "pass" and "id" in account:
            tracker.violation(index, account["id"], obj["id"], verdict)
        return judged

    def _judge_profile(self, index: int, obj: dict[str, Any], found: list[tuple[str, Screening]], tracker: Tracker) -> Judgement:
        account, seen = self._account(index, obj, tracker)
        hits: list[JudgedHit] = []
        suppressed: list[Decision] = []
        for name, screening in found:
            hits += self._judge_hits("profile", screening.hits, seen, name)
            suppressed += [d for d in screening.decisions if not d.kept]
        return Judgement(index, "profile", strictest([h.action for h in hits]), account, hits, suppressed)

    def _judge_hits(self, scope: str, hits: Sequence[Hit], account: dict[str, Any], name: str | None = None) -> list[JudgedHit]:
        out = []
        for hit in hits:
            facts = {"category": hit.rule.category, "action": hit.action, "term": hit.rule.label, "field": name}
            action, rule = self.policy.judge_hit(scope, account, facts, hit.action)
            out.append(JudgedHit(hit, action, rule, name))
        return out

    def _screen_profiles(self, objects: Sequence[dict[str, Any]], indices: list[int]) -> dict[int, list[tuple[str, Screening]]]:
        """Name and bio of each profile, screened in one call of the profile screener."""
        if not indices:
            return {}
        slots = [(i, name) for i in indices for name in ("name", "bio") if objects[i].get(name)]
        screened = self.profiles.screen_sparse([objects[i][name] for i, name in slots])
        out: dict[int, list[tuple[str, Screening]]] = {}
        for slot, screening in sorted(screened.items()):
            index, name = slots[slot]
            out.setdefault(index, []).append((name, screening))
        return out


def _cold_build(lexicons: str | Path, policy: str | Path | None, matcher: str,
                cache: Cache) -> tuple[LexiconSet, Matcher, Policy]:
    """Load, check the policy and compile, then put the result in the cache."""
    # The matcher compiles in threads while the loader works on:
    # Hyperscan's compile releases the GIL, so they share the
    # machine's cores. A large lexicon's first databases start from
    # the terms as written, while the loader makes their variants
    # (at 100k terms, a second before the rest is known); the last
    # compiles with the variants while the loader makes the pinyin
    # spellings. The policy is checked first, as soon as the
    # categories are known: a bad policy costs no compile.
    background = Background(lambda texts, staged: staged.finish(texts), "matcher-compile")
    policies: list[Policy] = []
    staged: list[Staged] = []

    def begin(texts: Sequence[str], table: Any, categories: Any) -> None:
        policies.append(load_policy(policy, categories))
        staged.append(start_matcher(matcher, texts, table))

    def start(texts: Sequence[str], table: Any, categories: Any) -> None:
        background.start(texts, staged[0])

    try:
        full = load_lexicons(lexicons, cache, on_patterns=start, on_literals=begin)
        checked = policies[0] if policies else load_policy(policy, full.categories)
        encoded = encode_compiled(full, resolve(matcher), cache)  # while the matcher compiles
        compiled = background.result() if background.started else build_matcher(
            matcher, full.patterns.texts, full.normaliser.table)
    except Exception:  # not on Ctrl-C: the process is ending, and its daemon threads with it
        # Nothing started here may go on compiling unowned: in the worker it
        # would take a core from screening after a rejected reload.
        if background.started:
            with contextlib.suppress(Exception):
                background.result()
        for build in staged:
            build.abandon()
        raise
    store_compiled(full, compiled, cache, encoded)
    return full, compiled, checked
