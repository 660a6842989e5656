"""The scan job end to end: README example, nothing lost, schema, seeds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import orjson
import pytest

from screener.cli import main
from screener.emit import event_id

from .conftest import ROOT, SHARED

SCHEMA = json.loads((ROOT / "screener" / "schema" / "event.schema.json").read_text())
EXAMPLE = ROOT / "examples" / "posts.jsonl"


def _scan(capsys, *args: str) -> tuple[list[dict], str]:
    assert main(["scan", "--progress", "off", *args]) == 0
    out, err = capsys.readouterr()
    return [orjson.loads(line) for line in out.splitlines()], err


def _summary(err: str) -> dict[str, str]:
    line = next(l for l in err.splitlines() if l.startswith("screener scan:"))
    return dict(part.split("=", 1) for part in line.split()[2:])


def test_readme_example(capsys, tmp_path):
    dead = tmp_path / "dead.jsonl"
    events, err = _scan(capsys, "--dead-letter", str(dead), str(EXAMPLE))
    verdicts = {e["post_id"]: e["action"] for e in events}
    assert verdicts == {
        2: "recall", 5: "flag", 7: "recall", 8: "recall", 9: "recall",
        10: "recall", 11: "flag", 12: "flag", 13: "flag", 17: "recall",
    }
    summary = _summary(err)
    assert (summary["posts"], summary["passed"], summary["flagged"], summary["recalled"], summary["dead_lettered"]) == (
        "20", "8", "4", "6", "2")
    letters = [json.loads(l) for l in dead.read_text().splitlines()]
    assert [(d["line"], d["reason"][:12]) for d in letters] == [(19, "invalid JSON"), (20, 'missing "tex')]


def test_events_validate_against_schema_and_point_at_original(capsys):
    events, _ = _scan(capsys, "--dead-letter", "/dev/null", str(EXAMPLE))
    texts = {json.loads(l)["id"]: json.loads(l)["text"] for l in EXAMPLE.read_text().splitlines()[:18]}
    checker = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    for event in events:
        checker.validate(event)
        for hit in event["hits"]:
            assert texts[event["post_id"]][hit["start"]:hit["end"]] == hit["matched"]
        assert event["meta"] == {"published_at": "2026-11-01T08:00:00Z"}


def test_event_ids_are_deterministic(capsys):
    first, _ = _scan(capsys, "--dead-letter", "/dev/null", str(EXAMPLE))
    second, _ = _scan(capsys, "--dead-letter", "/dev/null", str(EXAMPLE))
    assert [e["event_id"] for e in first] == [e["event_id"] for e in second]
    assert len({e["event_id"] for e in first}) == len(first)
    assert first[0]["event_id"] == event_id(first[0]["post_id"], first[0]["lexicon_version"], first[0]["action"])


BAD_LINES = [
    (b"not json", "invalid JSON"),
    (b'{"id": 1, "text": "\xff\xfe"}', "invalid JSON"),  # invalid UTF-8
    (b"[1, 2]", "not a JSON object"),
    (b'{"id": 1}', 'missing "text"'),
    (b'{"id": 1, "text": 5}', '"text" is int'),
    (b'{"text": "x"}', 'missing "id"'),
    (b'{"id": true, "text": "x"}', '"id" is bool'),
    (b'{"id": 1.5, "text": "x"}', '"id" is float'),
    (b"", "empty record"),
    (b'{"id": 9, "text": "' + "长".encode() * 400 + b'"}', "exceeds the limit"),
]


def test_every_line_ends_as_exactly_one_outcome(capsys, tmp_path):
    good = [orjson.dumps({"id": i, "text": t}) for i, t in enumerate(["你好", "赌博网站", "傻逼", "天气"] * 50)]
    lines: list[bytes] = []
    for i, g in enumerate(good):
        lines.append(g)
        if i % 20 == 0:
            lines.append(BAD_LINES[(i // 20) % len(BAD_LINES)][0])
    source = tmp_path / "mixed.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    dead = tmp_path / "dead.jsonl"
    events, err = _scan(capsys, "--dead-letter", str(dead), "--max-post-bytes", "1000", "--batch-records", "7", str(source))
    summary = {k: int(v) for k, v in _summary(err).items() if v.isdigit()}
    assert summary["posts"] == len(lines)
    assert summary["passed"] + summary["flagged"] + summary["recalled"] + summary["dead_lettered"] == len(lines)
    assert summary["flagged"] + summary["recalled"] == len(events) == 100
    letters = [orjson.loads(l) for l in dead.read_bytes().splitlines()]
    assert len(letters) == summary["dead_lettered"] == 10
    for letter, (raw, reason) in zip(letters, BAD_LINES):
        assert reason in letter["reason"]
        assert lines[letter["line"] - 1] == raw
        kept = letter.get("raw", "").encode() if "raw" in letter else __import__("base64").b64decode(letter["raw_base64"])
        if letter.get("truncated"):  # a line over the limit is held only up to it: its head, and its length
            assert raw.startswith(kept) and letter["bytes"] == len(raw) + 1 and len(kept) == 1001  # + "\n"
        else:
            assert kept == raw  # nothing lost
    assert [e["post_id"] for e in events] == sorted(e["post_id"] for e in events)  # input order


def test_stdin_and_console_script(tmp_path):
    exe = Path(sys.executable).parent / "screener"
    proc = subprocess.run(
        [str(exe), "scan", "--progress", "off"], input='{"id": "a", "text": "赌 博"}\n'.encode(),
        capture_output=True, check=True,
    )
    event = orjson.loads(proc.stdout)
    assert (event["post_id"], event["hits"][0]["matched"]) == ("a", "赌 博")
    assert "posts=1 passed=0 flagged=0 recalled=1 dead_lettered=0" in proc.stderr.decode()


def test_bad_lexicon_fails_the_run_with_reasons(capsys, make_lexicon):
    root = make_lexicon({"a": "赌博 ; colour=red\n"})
    assert main(["scan", "--lexicons", str(root), str(EXAMPLE)]) == 2
    err = capsys.readouterr().err
    assert f"{root}/a.txt:1: unknown option 'colour'" in err


@pytest.mark.skipif(not (SHARED / "seeds").exists(), reason="../shared/seeds not present")
def test_seed_004_injected_spam_line_is_caught(capsys, tmp_path):
    seed = next((SHARED / "seeds").glob("004_*.txt"))
    lines = seed.read_text(encoding="utf-8").splitlines()
    source = tmp_path / "seed.jsonl"
    source.write_bytes(b"".join(orjson.dumps({"id": i + 1, "text": l}) + b"\n" for i, l in enumerate(lines)))
    events, _ = _scan(capsys, str(source))
    first = next(e for e in events if e["post_id"] == 1)
    assert first["action"] == "recall" and "pornography" in first["categories"]
    assert {h["matched"] for h in first["hits"]} >= {"成人免费", "AV网址", "无码"}


@pytest.mark.skipif(not (SHARED / "seeds").exists(), reason="../shared/seeds not present")
def test_taiwan_seed_folds(shipped):
    seed = next((SHARED / "seeds").glob("000_*.txt")).read_text(encoding="utf-8")
    folded = shipped.normaliser.fold_string(seed)
    assert "网际网路" in folded and "资讯" in folded and "網" not in folded


def test_progress_bar_when_asked(capsys, tmp_path):
    assert main(["scan", "--progress", "on", "--dead-letter", "/dev/null", str(EXAMPLE)]) == 0
    err = capsys.readouterr().err
    assert "\r[" in err and "posts" in err


def test_benchmark_smoke_run(tmp_path):
    """The benchmark runs end to end and its correctness gates pass."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| 1000 | scan (" in proc.stdout
    assert (tmp_path / "throughput.csv").exists() and (tmp_path / "throughput.png").exists()


def test_encoding_benchmark_smoke_run():
    """The character-numbering comparison runs and its variants agree on matches."""
    pytest.importorskip("hyperscan")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "hs_encoding.py"), "--terms", "2000", "--posts", "1000", "--reps", "1"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| shipped |" in proc.stdout and "| consecutive |" in proc.stdout


@pytest.mark.parametrize("record,reason", [
    (b'{"id": 1, "text": "x", "account": "u1"}', '"account" is str, not an object'),
    (b'{"id": 1, "text": "x", "kind": "video"}', "\"kind\" is 'video', not \"post\" or \"profile\""),
    (b'{"id": 1, "text": "x", "kind": ["post"]}', "\"kind\" is ['post'], not \"post\" or \"profile\""),
    (b'{"id": 1, "kind": "profile", "bio": "b"}', 'profile without a string "name"'),
    (b'{"id": 1, "kind": "profile", "name": "n", "bio": 3}', 'profile "bio" is not a string'),
    (b'{"kind": "profile", "name": "n"}', 'profile without a string or integer "id"'),
])
def test_malformed_accounts_and_profiles_are_dead_letters(record, reason):
    _assert_dead_letter(record, reason)


@pytest.mark.parametrize("record,kind", [(b'"text"', "str"), (b"3", "int"), (b"null", "NoneType"),
                                         (b'["text"]', "list"), (b"true", "bool")])
def test_json_that_is_not_an_object_is_a_dead_letter(record, kind):
    _assert_dead_letter(record, f"not a JSON object but {kind}")


def _assert_dead_letter(record: bytes, reason: str) -> None:
    from screener.decode import decode_batch

    good = b'{"id": 2, "text": "y"}'
    objects, texts, rejected = decode_batch([good, record], 1000)
    assert rejected == [(1, reason)] and texts == ["y"]


def test_profiles_and_accounts_decode():
    from screener.decode import account_of, decode_batch

    objects, texts, rejected = decode_batch([b'{"id": "u1", "kind": "profile", "name": "n"}',
                                             b'{"id": 2, "text": "t", "account": {"type": "government"}, "account_id": "a2"}',
                                             b'{"id": 3, "text": "t", "kind": "post", "account": {"id": 9}}'], 1000)
    assert rejected == [] and texts == ["", "t", "t"]
    assert [account_of(o) for o in objects] == [{"id": "u1"}, {"type": "government", "id": "a2"}, {"id": 9}]
