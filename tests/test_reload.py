"""Hot reload of lexicon and policy together (the worker's reloader, no broker needed)."""

from __future__ import annotations

import pytest

pytest.importorskip("prometheus_client")

from screener.judge import Engine  # noqa: E402
from screener.stream.reload import LexiconReloader  # noqa: E402

from .test_policy import FILES, MANIFEST  # noqa: E402


def test_policy_change_is_swapped_and_a_broken_one_is_rejected(make_lexicon, tmp_path):
    root = make_lexicon(FILES, MANIFEST)
    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    policy = policy_dir / "p.policy"
    policy.write_text("hit gov: category=abuse account.type=government -> recall\n", encoding="utf-8")
    engine = Engine.build(root, policy, "aho")
    reloader = LexiconReloader(str(root), str(policy), "aho", engine, 1)
    reloader.check()
    assert reloader.take() is None  # nothing changed

    policy.write_text("hit gov: category=nope -> recall\n", encoding="utf-8")
    reloader.check()
    assert reloader.take() is None
    [problems] = reloader.take_rejections()
    assert problems == [f"{policy}:1: condition 'category=nope': unknown category 'nope'"]

    policy.write_text("hit gov: category=abuse account.type=government -> pass\n", encoding="utf-8")
    reloader.check()
    fresh = reloader.take()
    assert fresh is not None and fresh.policy_version != engine.policy_version
    assert fresh.lexicon_version == engine.lexicon_version
    judged = fresh.judge([{"id": 1, "text": "坏蛋", "account": {"type": "government"}}], ["坏蛋"])
    assert judged[0].action == "pass"

    (root / "abuse.txt").write_text("坏蛋\n混蛋\n", encoding="utf-8")  # a lexicon change alone
    reloader.check()
    newer = reloader.take()
    assert newer is not None and newer.lexicon_version != fresh.lexicon_version


def test_a_lexicon_change_that_breaks_the_policy_is_rejected(make_lexicon, tmp_path):
    root = make_lexicon(FILES, MANIFEST)
    policy = tmp_path / "p.policy"
    policy.write_text("hit n: category=news -> pass\n", encoding="utf-8")
    engine = Engine.build(root, policy, "aho")
    reloader = LexiconReloader(str(root), str(policy), "aho", engine, 1)
    # The category the policy names is renamed: the new lexicon is valid on
    # its own, but not with the serving policy, so neither is swapped in.
    (root / "news.txt").rename(root / "gone.txt")
    manifest = (root / "categories.toml").read_text(encoding="utf-8")
    (root / "categories.toml").write_text(manifest.replace("[categories.news]", "[categories.gone]"), encoding="utf-8")
    reloader.check()
    assert reloader.take() is None
    [problems] = reloader.take_rejections()
    assert "unknown category 'news'" in problems[0]
