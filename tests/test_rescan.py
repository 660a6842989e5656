"""``screener rescan``: a lexicon update turns earlier passes into recalls and
leaves everything else silent; an interrupted rescan resumes."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest

from screener.errors import ConfigError
from screener.judge import Engine
from screener.rescan import Previous, rescan_files
from screener.scan import run_scan
from screener.settings import Settings

MANIFEST = """
[categories.drugs]
title_zh = "毒品"
title_en = "Drugs"
action = "recall"
[categories.spam]
title_zh = "广告"
title_en = "Spam"
action = "flag"
mode = "substring"
"""
OLD = {"drugs": "大麻\n", "spam": "加微信\n"}
NEW = {"drugs": "大麻\n冰毒\n", "spam": "加微信\n"}  # the update: 冰毒 is new

POSTS = [
    (1, "今天天气不错"),           # pass → pass: silent
    (2, "出售冰毒，价格优惠"),       # pass → recall: the one to recall
    (3, "卖大麻"),                 # recall → recall: silent (already recalled)
    (4, "加微信看冰毒"),            # flag → recall: stricter, recalled
    (5, "加微信领红包"),            # flag → flag: silent
    (6, "冰毒"),                   # pass → recall
]


def _archive(tmp_path, posts=POSTS):
    path = tmp_path / "archive.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"id": i, "text": t, "account_id": f"a{i}"}) + b"\n" for i, t in posts))
    return path


def _lines(data: bytes) -> list[dict]:
    return [orjson.loads(line) for line in data.splitlines()]


def _published(make_lexicon, tmp_path, backend):
    """Screen the archive with the old lexicon, as the live system did."""
    archive = _archive(tmp_path)
    old = Engine.build(make_lexicon(OLD, MANIFEST), None, backend)
    out = io.BytesIO()
    run_scan(Settings(progress="off", dead_letter=str(tmp_path / "dead")), old, [str(archive)], out)
    events = tmp_path / "events.jsonl"
    events.write_bytes(out.getvalue())
    return archive, events


def test_update_recalls_what_became_stricter_and_nothing_else(make_lexicon, tmp_path, backend):
    archive, events = _published(make_lexicon, tmp_path, backend)
    assert sorted((e["post_id"], e["action"]) for e in _lines(events.read_bytes())) == [(3, "recall"), (4, "flag"), (5, "flag")]
    new = Engine.build(make_lexicon(NEW, MANIFEST), None, backend)
    previous = Previous()
    previous.load_files([str(events)])
    out = io.BytesIO()
    log = tmp_path / "audit.jsonl"
    summary = rescan_files(Settings(progress="off", audit=str(log)), new, [str(archive)], previous, out, None)
    emitted = _lines(out.getvalue())
    assert [(e["post_id"], e["action"], e["rescan"]["previous_action"]) for e in emitted] == [
        (2, "recall", "pass"), (4, "recall", "flag"), (6, "recall", "pass")]
    assert summary.posts == 6 and summary.stricter == 3 and summary.posts_per_s > 0
    assert all(e["lexicon_version"] == new.lexicon_version for e in emitted)
    records = _lines(log.read_bytes())
    assert [r["kind"] for r in records] == ["rescan", "decision", "decision", "decision", "rescan"]
    assert records[1]["rescan"] == {"previous_action": "pass"} and records[-1]["phase"] == "finish"


def test_previous_verdicts_come_from_the_audit_log_too(make_lexicon, tmp_path):
    archive = _archive(tmp_path)
    old = Engine.build(make_lexicon(OLD, MANIFEST), None, "aho")
    audit_log = tmp_path / "audit.jsonl"
    run_scan(Settings(progress="off", audit=str(audit_log)), old, [str(archive)], io.BytesIO())
    previous = Previous()
    previous.load_files([str(audit_log)])
    new = Engine.build(make_lexicon(NEW, MANIFEST), None, "aho")
    out = io.BytesIO()
    rescan_files(Settings(progress="off"), new, [str(archive)], previous, out)
    assert [e["post_id"] for e in _lines(out.getvalue())] == [2, 4, 6]


def test_same_rules_rescan_is_silent(make_lexicon, tmp_path):
    archive, events = _published(make_lexicon, tmp_path, "aho")
    previous = Previous()
    previous.load_files([str(events)])
    out = io.BytesIO()
    engine = Engine.build(make_lexicon(OLD, MANIFEST), None, "aho")
    assert rescan_files(Settings(progress="off"), engine, [str(archive)], previous, out).stricter == 0
    assert out.getvalue() == b""


class Interrupted(Exception):
    pass


class FailingOutput(io.BytesIO):
    """Dies on the n-th write, like a process killed mid-run."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.writes, self.fail_at = 0, fail_at

    def write(self, data):  # type: ignore[override]
        self.writes += 1
        if self.writes == self.fail_at:
            raise Interrupted
        return super().write(data)


def test_an_interrupted_rescan_resumes_after_its_last_finished_batch(make_lexicon, tmp_path):
    posts = [(i, "出售冰毒" if i % 7 == 0 else "今天天气不错") for i in range(1, 200)]
    archive = _archive(tmp_path, posts)
    engine = Engine.build(make_lexicon(NEW, MANIFEST), None, "aho")
    settings = Settings(progress="off", batch_records=16)
    checkpoint = str(tmp_path / "rescan.checkpoint")

    whole = io.BytesIO()
    rescan_files(settings, engine, [str(archive)], Previous(), whole)

    first = FailingOutput(fail_at=5)
    with pytest.raises(Interrupted):
        rescan_files(settings, engine, [str(archive)], Previous(), first, checkpoint)
    second = io.BytesIO()
    summary = rescan_files(settings, engine, [str(archive)], Previous(), second, checkpoint)
    ids = [e["post_id"] for e in _lines(first.getvalue() + second.getvalue())]
    assert ids == [e["post_id"] for e in _lines(whole.getvalue())]  # nothing lost, nothing twice
    assert summary.posts == len(posts) and summary.resumed_posts == 4 * 16
    again = io.BytesIO()  # a finished rescan does nothing more
    assert rescan_files(settings, engine, [str(archive)], Previous(), again, checkpoint).posts == len(posts)
    assert again.getvalue() == b""


def test_the_verdicts_a_rescan_gave_are_kept_beside_its_checkpoint(make_lexicon, tmp_path):
    """Found by a hostile-input probe: the verdicts were rewritten into the
    checkpoint after every batch (writes quadratic in the rescan), and past
    the 64 MiB read bound a checkpoint could not be resumed. Now they are
    appended beside it, and a post archived twice is still recalled once
    across a resume, even after a crash left a torn tail there."""
    posts = [(i, "出售冰毒" if i % 7 == 0 else "今天天气不错") for i in range(1, 120)] + [(7, "出售冰毒")]
    archive = _archive(tmp_path, posts)
    engine = Engine.build(make_lexicon(NEW, MANIFEST), None, "aho")
    settings = Settings(progress="off", batch_records=16)
    checkpoint = tmp_path / "rescan.checkpoint"
    noted = tmp_path / "rescan.checkpoint.noted"
    first = FailingOutput(fail_at=5)
    with pytest.raises(Interrupted):
        rescan_files(settings, engine, [str(archive)], Previous(), first, str(checkpoint))
    assert b"noted\"" not in checkpoint.read_bytes().replace(b"noted_bytes", b"")  # not inline
    kept = noted.read_bytes()
    assert kept.count(b"\n") == 4 and b"recall" in kept
    with noted.open("ab") as f:
        f.write(b'{"torn')  # a crash between the append and the checkpoint
    second = io.BytesIO()
    rescan_files(settings, engine, [str(archive)], Previous(), second, str(checkpoint))
    ids = [e["post_id"] for e in _lines(first.getvalue() + second.getvalue())]
    assert ids == sorted(set(ids)) and ids.count(7) == 1 and len(ids) == 119 // 7
    assert not noted.exists()  # finished: nothing to resume


def test_a_checkpoint_of_another_rescan_is_refused(make_lexicon, tmp_path):
    archive = _archive(tmp_path)
    checkpoint = str(tmp_path / "cp")
    rescan_files(Settings(progress="off"), Engine.build(make_lexicon(OLD, MANIFEST), None, "aho"),
                 [str(archive)], Previous(), io.BytesIO(), checkpoint)
    with pytest.raises(ConfigError, match="belongs to another rescan"):
        rescan_files(Settings(progress="off"), Engine.build(make_lexicon(NEW, MANIFEST), None, "aho"),
                     [str(archive)], Previous(), io.BytesIO(), checkpoint)


def test_a_checkpoint_of_an_input_that_changed_is_refused(make_lexicon, tmp_path):
    """Found by a hostile-input probe: a checkpoint named its inputs by path
    only; new content there was resumed at the old byte offset (lines
    skipped silently), or gave no events at all after a finished rescan."""
    archive = _archive(tmp_path)
    checkpoint = str(tmp_path / "cp")
    engine = Engine.build(make_lexicon(NEW, MANIFEST), None, "aho")
    rescan_files(Settings(progress="off"), engine, [str(archive)], Previous(), io.BytesIO(), checkpoint)
    _archive(tmp_path, [(i + 100, text) for i, text in POSTS])  # new posts, same path
    with pytest.raises(ConfigError, match="an input changed since it was written"):
        rescan_files(Settings(progress="off"), engine, [str(archive)], Previous(), io.BytesIO(), checkpoint)
    saved = orjson.loads(Path(checkpoint).read_bytes())
    del saved["identity"]["files"]  # as screener wrote them before
    Path(checkpoint).write_bytes(orjson.dumps(saved))
    with pytest.raises(ConfigError, match="was written by an earlier screener"):
        rescan_files(Settings(progress="off"), engine, [str(archive)], Previous(), io.BytesIO(), checkpoint)


@pytest.mark.parametrize("state", [
    {"next": 5}, {"next": [0, 0, 1, 7]}, {"next": [0, -100, 1]}, {"summary": {"posts": "x"}}, {"summary": {"bogus": 1}},
    {"noted": [1]}, {"noted": {"2": ["recall"]}}, {"done": "no"}, {"positions": {"x": 1}}, {"positions": {"²": 1}},
])
def test_a_checkpoint_whose_state_is_not_what_a_rescan_writes_is_refused(make_lexicon, tmp_path, state):
    """Found by a hostile-input probe: such states crashed every resume
    (exit 70), one after 10 events were out; "done": "no" counted as done."""
    archive = _archive(tmp_path)
    checkpoint = tmp_path / "cp"
    engine = Engine.build(make_lexicon(NEW, MANIFEST), None, "aho")
    rescan_files(Settings(progress="off"), engine, [str(archive)], Previous(), io.BytesIO(), str(checkpoint))
    saved = orjson.loads(checkpoint.read_bytes())
    checkpoint.write_bytes(orjson.dumps({**saved, "state": state}))
    out = io.BytesIO()
    with pytest.raises(ConfigError, match="is unreadable .* is not what a rescan writes"):
        rescan_files(Settings(progress="off"), engine, [str(archive)], Previous(), out, str(checkpoint))
    assert out.getvalue() == b""


def test_previous_records_of_other_shapes_are_skipped_and_a_file_of_none_is_refused(tmp_path):
    """Found by a hostile-input probe: a gzip'd --previous was read as "no
    earlier verdicts" (every earlier recall sent again), and an action that
    is a list, or an id nested 1000 deep, stopped the rescan (exit 70)."""
    from screener.errors import InputError
    from screener.rescan import subject_key

    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(b"\n".join([
        orjson.dumps({"kind": "post", "post_id": 1, "action": ["recall"]}),
        b'{"kind": "post", "post_id": ' + b"[" * 1000 + b"1" + b"]" * 1000 + b', "action": "recall"}',
        orjson.dumps({"kind": "post", "post_id": 2, "action": "recall"}),
        b'{"torn',
    ]) + b"\n")
    previous = Previous()
    previous.load_files([str(mixed)])
    assert previous.verdicts == {subject_key("post", 2): "recall"}
    packed = tmp_path / "events.jsonl.gz"
    import gzip

    packed.write_bytes(gzip.compress(mixed.read_bytes()))
    with pytest.raises(InputError, match=r"events.jsonl.gz: none of its \d+ lines is a JSON object"):
        Previous().load_files([str(packed)])
    quiet = tmp_path / "quiet-audit.jsonl"  # found in review: a rescan that made nothing stricter writes only these
    quiet.write_bytes(b'{"kind": "rescan", "phase": "start"}\n{"kind": "account_blacklist", "account_id": "a"}\n')
    previous = Previous()
    previous.load_files([str(quiet)])
    assert previous.verdicts == {}


def test_rescan_cli(make_lexicon, tmp_path, capsys):
    from screener.cli import main

    archive, events = _published(make_lexicon, tmp_path, "aho")
    new = make_lexicon(NEW, MANIFEST)
    assert main(["rescan", "--lexicons", str(new), "--policy", "none", "--previous", str(events), str(archive)]) == 0
    out, err = capsys.readouterr()
    assert [e["post_id"] for e in _lines(out.encode())] == [2, 4, 6]
    assert "stricter=3" in err and "posts/s=" in err and "no --previous" not in err
    # forgotten --previous: every earlier flag and recall again, said (found by a walk-through of the docs)
    assert main(["rescan", "--lexicons", str(new), "--policy", "none", str(archive)]) == 0
    out, err = capsys.readouterr()
    assert "no --previous: every post counts as published under pass" in err
    assert len(_lines(out.encode())) > 3
    assert main(["rescan", "--from-offset", "3", str(archive)]) == 2


def test_policy_benchmark_smoke_run(tmp_path):
    """The policy/rescan benchmark runs and its correctness gates hold (numbers: README)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, str(root / "benchmarks" / "policy.py"), "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = orjson.loads((tmp_path / "policy.json").read_bytes())
    assert [r["contender"] for r in result["policy"]][0] == "screen"
    assert result["rescan"]["stricter"] >= result["rescan"]["expected_stricter_at_least"] > 0
