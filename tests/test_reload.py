"""Hot reload of lexicon and policy together (the worker's reloader, no broker needed)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Callable

import pytest

pytest.importorskip("prometheus_client")

from prometheus_client import REGISTRY

from screener.errors import ConfigError
from screener.judge import Engine
from screener.stream.reload import LexiconReloader

from .test_policy import FILES, MANIFEST


def settle(reloader: LexiconReloader) -> None:
    """Two checks, as two reload intervals: a change is built once the files
    have held still for one interval."""
    reloader.check()
    reloader.check()


def failures() -> float:
    return REGISTRY.get_sample_value("screener_lexicon_reload_failures_total") or 0.0


def test_policy_change_is_swapped_and_a_broken_one_is_rejected(make_lexicon, tmp_path):
    root = make_lexicon(FILES, MANIFEST)
    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    policy = policy_dir / "p.policy"
    policy.write_text("hit gov: category=abuse account.type=government -> recall\n", encoding="utf-8")
    engine = Engine.build(root, policy, "aho")
    reloader = LexiconReloader(str(root), str(policy), "aho", engine, 1)
    settle(reloader)
    assert reloader.take() is None  # nothing changed

    policy.write_text("hit gov: category=abuse -> delete\n", encoding="utf-8")
    settle(reloader)
    assert reloader.take() is None
    [problems] = reloader.take_rejections()
    assert problems == [f"{policy}:1: effect must be one of pass, flag, recall, escalate, not 'delete'"]

    policy.write_text("hit gov: category=abuse account.type=government -> pass\n", encoding="utf-8")
    settle(reloader)
    fresh = reloader.take()
    assert fresh is not None and fresh.policy_version != engine.policy_version
    assert fresh.lexicon_version == engine.lexicon_version
    judged = fresh.judge([{"id": 1, "text": "坏蛋", "account": {"type": "government"}}], ["坏蛋"])
    assert judged[0].action == "pass"

    (root / "abuse.txt").write_text("坏蛋\n混蛋\n", encoding="utf-8")  # a lexicon change alone
    settle(reloader)
    newer = reloader.take()
    assert newer is not None and newer.lexicon_version != fresh.lexicon_version


def test_only_the_policy_and_the_list_files_it_names_are_watched(make_lexicon, tmp_path):
    """A log growing next to the policy made the worker rebuild and swap its
    engine every reload interval (a multi-second stall each time, issue 11);
    the list file the policy reads is still watched."""
    root = make_lexicon(FILES, MANIFEST)
    policy = tmp_path / "p.policy"
    (tmp_path / "denied.txt").write_text("u1\n", encoding="utf-8")
    policy.write_text("list denied: @denied.txt\npost denied: account.id=@denied -> recall\n", encoding="utf-8")
    engine = Engine.build(root, policy, "aho")
    reloader = LexiconReloader(str(root), str(policy), "aho", engine, 1)
    for n in range(3):
        (tmp_path / "worker.log").write_text(f"line {n}\n" * (n + 1), encoding="utf-8")
        settle(reloader)
        assert reloader.take() is None

    (tmp_path / "denied.txt").write_text("u1\nu2\n", encoding="utf-8")
    settle(reloader)
    fresh = reloader.take()
    assert fresh is not None and fresh.policy_version != engine.policy_version
    judged = fresh.judge([{"id": 1, "text": "你好", "account": {"id": "u2"}}], ["你好"])
    assert judged[0].action == "recall"


def test_a_lexicon_change_that_drops_a_policy_category_is_taken_with_a_warning(make_lexicon, tmp_path, caplog):
    root = make_lexicon(FILES, MANIFEST)
    policy = tmp_path / "p.policy"
    policy.write_text("hit n: category=news -> pass\n", encoding="utf-8")
    engine = Engine.build(root, policy, "aho")
    reloader = LexiconReloader(str(root), str(policy), "aho", engine, 1)
    # The category the policy names is renamed: its rule can no longer
    # apply, which is a warning (an operator's own lexicons need not have
    # every category of the shipped policy), not a reason to keep the old set.
    (root / "news.txt").rename(root / "gone.txt")
    manifest = (root / "categories.toml").read_text(encoding="utf-8")
    (root / "categories.toml").write_text(manifest.replace("[categories.news]", "[categories.gone]"), encoding="utf-8")
    with caplog.at_level("WARNING", logger="screener.reload"):
        settle(reloader)
    fresh = reloader.take()
    assert fresh is not None and "gone" in fresh.posts.lexicons.categories
    assert reloader.take_rejections() == []
    assert "category 'news' is not in the lexicon set; rule 'n' never applies" in caplog.text


def _write(name: str, text: str) -> Callable[[Path, Path], None]:
    def breaker(root: Path, policy: Path) -> None:
        (root / name).write_text(text, encoding="utf-8")
    return breaker


def _directory_named_txt(root: Path, policy: Path) -> None:
    (root / "x.txt").mkdir()


def _symlink_loop(root: Path, policy: Path) -> None:
    (root / "x.txt").symlink_to(root / "x.txt")


def _no_terms(root: Path, policy: Path) -> None:
    for path in root.glob("*.txt"):
        path.write_text("# the operator supplies this list\n", encoding="utf-8")


def _directory_gone(root: Path, policy: Path) -> None:
    shutil.rmtree(root)


def _build_raises(exc: BaseException) -> Callable[[Path, Path], None]:
    def breaker(root: Path, policy: Path) -> None:
        (root / "abuse.txt").write_text(f"坏蛋\n# {type(exc).__name__}\n", encoding="utf-8")  # a new version
        raise _Patch(exc)
    return breaker


class _Patch(Exception):
    """Raised by a breaker to ask the test to make Engine.build raise ``exc``."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


# (name, breaker, first rejection line) in the order applied: each step starts
# from the previous broken state's cleanup (the good set restored).
BROKEN = [
    ("unicode digit within", _write("abuse.txt", "坏蛋\n代开 + 发票 ; within=²\n"), r"abuse.txt:2: within must be a whole number"),
    ("term too long", _write("abuse.txt", "坏蛋\n" + "长" * 300 + "\n"), r"abuse.txt:2: term longer than 256 characters"),
    ("manifest type", _write("categories.toml", "[normalise]\ntraditional = 'yes'\n"), r"categories.toml:2: \[normalise\]: traditional must be true or false"),
    ("directory named x.txt", _directory_named_txt, r"x.txt:0: cannot read: Is a directory"),
    ("symlink loop", _symlink_loop, r"x.txt:0: cannot read: Too many levels of symbolic links"),
    ("no terms", _no_terms, r":0: no terms: every post would pass"),
    ("absurd window", _write("../p.policy", "offenders: threshold=5 window=99999999999999999999d\n"), r"p.policy:1: offenders: bad option 'window="),
    ("memory error", _build_raises(MemoryError("huge file")), r":0: MemoryError: huge file"),
    ("crash while compiling", _build_raises(RuntimeError("boom\nsecond line")), r":0: RuntimeError: boom second line"),
    ("config error", _build_raises(ConfigError("matcher: hyperscan is not installed")), r":0: matcher: hyperscan is not installed"),
    ("os error", _build_raises(PermissionError(13, "Permission denied", "/x/a.txt")), r"^/x/a.txt:0: Permission denied$"),
    ("directory gone", _directory_gone, r"lex0:0: No such file or directory"),
]


def test_reloader_survives_every_failure_and_takes_the_next_good_version(make_lexicon, tmp_path, monkeypatch, caplog):
    """Each broken state is rejected (logged, counted, recorded), the serving
    version stays; a good version after all of them is taken."""
    good = make_lexicon(FILES, MANIFEST)
    pristine = tmp_path / "pristine"
    shutil.copytree(good, pristine)
    policy = tmp_path / "p.policy"
    policy.write_text("hit n: category=news -> pass\n", encoding="utf-8")
    pristine_policy = policy.read_text(encoding="utf-8")
    engine = Engine.build(good, policy, "aho")
    reloader = LexiconReloader(str(good), str(policy), "aho", engine, 1)
    real_build = Engine.build

    for name, breaker, expected in BROKEN:
        before = failures()
        try:
            breaker(good, policy)
        except _Patch as patch:
            def build(*args: object, _exc: BaseException = patch.exc, **kwargs: object) -> Engine:
                raise _exc
            monkeypatch.setattr(Engine, "build", build)
        with caplog.at_level("ERROR", logger="screener.reload"):
            settle(reloader)
            settle(reloader)  # nothing new: not counted twice
        monkeypatch.setattr(Engine, "build", real_build)
        assert reloader.take() is None, name
        assert failures() == before + 1, name
        [lines] = reloader.take_rejections()
        assert re.search(expected, lines[0]), (name, lines)
        assert all(re.match(r"^\S.*:\d+: \S", line) and "\n" not in line for line in lines), (name, lines)
        assert lines[0] in caplog.text, name
        caplog.clear()
        # restore the good set for the next step
        if good.exists():
            shutil.rmtree(good)
        shutil.copytree(pristine, good)
        policy.write_text(pristine_policy, encoding="utf-8")
        settle(reloader)
        assert reloader.take() is None, name  # the serving content again: nothing to swap
        assert reloader.take_rejections() == [], name

    (good / "abuse.txt").write_text("坏蛋\n混蛋\n", encoding="utf-8")
    settle(reloader)
    fresh = reloader.take()
    assert fresh is not None and fresh.lexicon_version != engine.lexicon_version
    assert fresh.judge([{"id": 1, "text": "你个混蛋"}], ["你个混蛋"])[0].action == "flag"


def test_the_reload_thread_keeps_running_after_a_failure(make_lexicon, tmp_path, monkeypatch):
    root = make_lexicon(FILES, MANIFEST)
    engine = Engine.build(root, None, "aho")
    reloader = LexiconReloader(str(root), None, "aho", engine, 0.05)

    def crash(*args: object, **kwargs: object) -> Engine:
        raise ValueError("int('²')")

    monkeypatch.setattr(Engine, "build", crash)
    reloader.start()
    try:
        (root / "abuse.txt").write_text("坏蛋\n# 1\n", encoding="utf-8")
        _wait(reloader.take_rejections)
        monkeypatch.undo()
        (root / "abuse.txt").write_text("坏蛋\n混蛋\n", encoding="utf-8")
        os.utime(root / "abuse.txt")
        taken = _wait(reloader.take)
        assert taken is not None and reloader._thread.is_alive()
    finally:
        reloader.stop()
        reloader._thread.join(5)


def _wait(probe: Callable[[], object], timeout: float = 10) -> object:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_a_change_is_built_only_once_the_files_hold_still_or_on_sighup(make_lexicon):
    """A file still being written was compiled half-way, and half a lexicon
    served until the next check (found by a hostile-input probe)."""
    root = make_lexicon(FILES, MANIFEST)
    engine = Engine.build(root, None, "aho")
    reloader = LexiconReloader(str(root), None, "aho", engine, 1)
    settle(reloader)
    abuse = root / "abuse.txt"
    for text in ("坏蛋\n混", "坏蛋\n混蛋\n"):  # written in two steps, a check after each
        abuse.write_text(text, encoding="utf-8")
        reloader.check()
        assert reloader.take() is None and reloader.take_rejections() == []
    reloader.check()  # nothing moved for an interval: built now
    fresh = reloader.take()
    assert fresh is not None and fresh.judge([{"id": 1, "text": "混蛋"}], ["混蛋"])[0].action != "pass"
    abuse.write_text("坏蛋\n", encoding="utf-8")
    reloader.request()  # SIGHUP: the operator says the files are done
    reloader.check()
    assert reloader.take() is not None
