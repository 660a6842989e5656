"""Nothing one post, one file or one setting does stops a run (issue 9).

Each test names the finding it guards; each failed on the code before the
batch step (screener/batch.py) and the error tree of screener/cli.py.
"""

from __future__ import annotations

import base64
import io
import re
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import jsonschema
import orjson
import pytest

from screener.batch import Batch, Step, dead_letter_of, screen_batch
from screener.cli import main
from screener.emit import Limits
from screener.judge import Engine
from screener.settings import Settings

from .conftest import LEXICONS, ROOT

SCHEMA = json.loads((ROOT / "screener" / "schema" / "event.schema.json").read_text())
EXE = Path(sys.executable).parent / "screener"


def _jsonl(path: Path, records: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def _lines(data: bytes) -> list[dict]:
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.build(LEXICONS, None, "aho")


# -- one post cannot make a record too large to send ------------------------------------------------------------
def test_a_post_of_8000_terms_makes_records_within_the_limits(tmp_path, capsys):
    """Finding: {"text": "赌博" x 8000} made a 1.07 MB event and a 1.49 MB audit
    record, over Kafka's request size: retried for ever, nothing committed."""
    source = _jsonl(tmp_path / "big.jsonl", [{"id": 1, "text": "赌博" * 8000, "account_id": "u1"}])
    audit = tmp_path / "audit.jsonl"
    assert main(["scan", "--progress", "off", "--audit", str(audit), str(source)]) == 0
    out = capsys.readouterr().out.encode()
    (event,) = _lines(out)
    assert len(out) <= 900_000 and event["action"] == "recall"
    assert len(event["hits"]) == 100 and event["truncated"] == {"hits": 8000}
    jsonschema.Draft202012Validator(SCHEMA).validate(event)
    (record,) = [r for r in _lines(audit.read_bytes()) if r["kind"] == "decision"]
    assert len(orjson.dumps(record)) <= 900_000 and record["truncated"]["hits"] == 8000


@pytest.mark.parametrize("raw, kept", [
    (b'{"id": 1, "text": "' + b"\x01" * 260_000 + b'"}', "raw"),  # JSON escapes each byte as six
    ("赌博".encode() * 200_000 + b"\xff", "raw_base64"),  # not UTF-8: base64, 4/3 of it
    ("赌博".encode() * 200_000, "raw"),  # UTF-8: cut between characters, still text
])
def test_a_dead_letter_is_within_the_record_limit(tmp_path, capsys, raw, kept):
    """Found by a hostile-input probe: 260 KB of 0x01 in a line made a 1.56 MB
    dead letter although the README bounds dead letters by
    ``--max-record-bytes`` too. A longer one keeps the head of the line that
    fits, marked as a line over ``--max-post-bytes`` is."""
    source = tmp_path / "in.jsonl"
    source.write_bytes(raw + b"\n" + orjson.dumps({"id": 2, "text": "赌博"}) + b"\n")
    dead = tmp_path / "dead.jsonl"
    assert main(["scan", "--progress", "off", "--max-post-bytes", str(2 << 20), "--max-record-bytes", "100000",
                 "--dead-letter", str(dead), str(source)]) == 0
    assert _lines(capsys.readouterr().out.encode())[0]["post_id"] == 2
    out = dead.read_bytes()
    (letter,) = _lines(out)
    assert len(out) <= 100_000 and letter["truncated"] is True and letter["bytes"] == len(raw)
    head = letter["raw"].encode() if kept == "raw" else base64.b64decode(letter["raw_base64"])
    assert kept in letter and raw.startswith(head) and len(head) > 10_000


def test_a_kafka_dead_letter_is_within_the_record_limit():
    from screener.stream.clients import Record
    from screener.stream.outgoing import dead_letter

    small = dead_letter(Record("posts", 0, 7, 1, b"k", b"not json", []), "invalid JSON", "dead", max_bytes=4096)
    assert small.value == b"not json" and small.key == b"k" and "screener.truncated" not in dict(small.headers)
    for key in (b"k", b"K" * 500_000, None):
        record = Record("posts", 0, 7, 1, key, b"x" * 1_000_000, [])
        out = dead_letter(record, "over --max-post-bytes", "dead", max_bytes=900_000)
        size = len(out.key or b"") + len(out.value) + sum(len(k) + len(v) for k, v in out.headers)
        assert size <= 900_000 and record.value.startswith(out.value) and len(out.value) > 600_000
        assert orjson.loads(dict(out.headers)["screener.truncated"]) == {"key": len(key or b""), "value": 1_000_000}
        assert key is None or key.startswith(out.key)


def test_an_id_too_long_to_carry_is_left_out_of_the_dead_letter(tmp_path, capsys):
    """Found by a hostile-input probe: ``{"id": <20,000 x>, "text": 5}`` made a
    20 KB dead letter under ``--max-record-bytes 4096`` (only ``raw`` was
    cut). The id is left out, with its length; a short one stays."""
    from screener.batch import DeadLetter
    from screener.stream.clients import Record
    from screener.stream.outgoing import dead_letter

    long_id = "x" * 20_000
    source = _jsonl(tmp_path / "in.jsonl", [{"id": long_id, "text": 5, "account_id": "u1"}, {"id": 2, "text": 5}])
    dead = tmp_path / "dead.jsonl"
    assert main(["scan", "--progress", "off", "--max-record-bytes", "4096", "--dead-letter", str(dead), str(source)]) == 0
    capsys.readouterr()
    lines = dead.read_bytes().splitlines(keepends=True)
    assert [len(line) <= 4096 for line in lines] == [True, True]
    first, second = map(orjson.loads, lines)
    assert "post_id" not in first and first["omitted"] == {"post_id": 20_002} and first["account_id"] == "u1"
    assert second["post_id"] == 2 and "omitted" not in second
    raw = orjson.dumps({"id": long_id, "text": 5})
    out = dead_letter(Record("posts", 0, 7, 1, None, raw, []), "bad", "dead",
                      DeadLetter(0, "bad", long_id, "u1"), max_bytes=4096)
    headers = dict(out.headers)
    assert len(out.value) + sum(len(k) + len(v) for k, v in out.headers) <= 4096
    assert "screener.post_id" not in headers and orjson.loads(headers["screener.omitted"]) == {"post_id": 20_002}
    assert headers["screener.account_id"] == b'"u1"'


def test_meta_nested_too_deep_to_write_is_dropped_not_the_post(tmp_path, capsys):
    """The decoder takes nesting orjson cannot write (255 levels): a flagged
    post with such a ``meta`` was dead-lettered as "screening failed" (found
    by a hostile-input probe). Its event and audit record drop ``meta``, as
    a record too large does, and say so."""
    nested = b"[" * 300 + b"]" * 300
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"id": 7, "text": "\xe8\xb5\x8c\xe5\x8d\x9a", "deep": ' + nested + b"}\n")
    audit, dead = tmp_path / "audit.jsonl", tmp_path / "dead.jsonl"
    assert main(["scan", "--progress", "off", "--audit", str(audit), "--dead-letter", str(dead), str(source)]) == 0
    (event,) = _lines(capsys.readouterr().out.encode())
    assert event["action"] == "recall" and event["meta"] == {} and event["truncated"] == {"meta": 1}
    jsonschema.Draft202012Validator(SCHEMA).validate(event)
    assert dead.read_bytes() == b"" and [r["kind"] for r in _lines(audit.read_bytes())] == ["decision"]


def test_records_over_the_byte_limit_drop_meta_then_halve_hits(engine):
    post = {"id": 1, "text": "赌博，" * 300, "blob": "x" * 50_000}
    step = Step(engine, "w", 1 << 20, Limits(max_hits=1000, max_bytes=20_000))
    result = screen_batch(step, Batch([orjson.dumps(post)], lambda i: {"line": i + 1}))
    (emitted,) = result.emitted
    assert len(emitted.value) <= 20_000
    assert emitted.event["meta"] == {} and emitted.event["truncated"]["meta"] == 1
    assert 0 < len(emitted.event["hits"]) < 300 and emitted.event["truncated"]["hits"] == 300
    assert all(len(orjson.dumps(r)) <= 20_000 for r in result.audit)


def test_a_post_whose_event_cannot_fit_is_dead_lettered_with_the_reason(engine):
    post = {"id": "p" * 30_000, "text": "赌博"}
    step = Step(engine, "w", 1 << 20, Limits(max_hits=100, max_bytes=10_000))
    result = screen_batch(step, Batch([orjson.dumps(post)], lambda i: {"line": i + 1}))
    assert result.emitted == [] and result.counts.dead_lettered == 1 and result.counts.recalled == 0
    assert "event exceeds 10000 bytes" in result.dead[0].reason


# -- dead letters can be found by post and account --------------------------------------------------------------
@pytest.mark.parametrize("raw,post_id,account_id", [
    (b'{"id": 7, "account_id": "u1", "text": 5}', 7, "u1"),
    (b'{"id": "p9", "account": {"id": 3}, "text": null}', "p9", 3),
    (b'{"id": "p9", "account_id": "u2", "text": "cut off', "p9", "u2"),
    (b'{"id": 1.5, "text": "x"}', None, None),
    (b"not json at all", None, None),
])
def test_dead_letters_carry_readable_ids(raw, post_id, account_id):
    letter = dead_letter_of(raw, 0, "why")
    assert (letter.post_id, letter.account_id) == (post_id, account_id)


def test_screener_audit_finds_a_dead_letter(tmp_path, capsys):
    """Finding: a dead letter could not be found with `audit --post/--account`."""
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"id": "p1", "account_id": "u1", "text": 5}\n')
    audit = tmp_path / "audit.jsonl"
    dead = tmp_path / "dead.jsonl"
    assert main(["scan", "--progress", "off", "--audit", str(audit), "--dead-letter", str(dead), str(source)]) == 0
    (letter,) = _lines(dead.read_bytes())
    assert (letter["post_id"], letter["account_id"]) == ("p1", "u1")
    capsys.readouterr()
    assert main(["audit", "--post", "p1", "--audit", str(audit), "--json"]) == 0
    (record,) = _lines(capsys.readouterr().out.encode())
    assert record["kind"] == "dead_letter" and '"text" is int' in record["reason"]
    assert main(["audit", "--account", "u1", "--audit", str(audit)]) == 0
    assert "dead_letter" in capsys.readouterr().out


def test_screener_audit_shows_records_it_does_not_know_instead_of_failing(tmp_path, capsys):
    """Found by a hostile-input probe: one line of an audit log that is JSON
    but not a record of ours (``[1]``, a decision without its fields) stopped
    ``screener audit`` with an internal error, and the good records went unseen."""
    source = _jsonl(tmp_path / "in.jsonl", [{"id": 1, "account_id": "u1", "text": "赌博"}])
    audit = tmp_path / "audit.jsonl"
    assert main(["scan", "--progress", "off", "--audit", str(audit), str(source)]) == 0
    with audit.open("ab") as log:
        log.write(b'[1]\n{"post_id": 1, "hits": 5}\n{"post_id": 1, "kind": "decision", "at": "x"}\n')
    capsys.readouterr()
    assert main(["audit", "--post", "1", "--audit", str(audit)]) == 0
    out = capsys.readouterr().out
    assert "RECALL" in out and "hit '赌博'" in out
    assert out.count("unrecognised record") == 2 and '{"post_id":1,"hits":5}' in out


# -- write order and write failures -----------------------------------------------------------------------------
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("option", ["--audit", "--dead-letter"])
def test_a_failed_audit_or_dead_letter_write_stops_before_the_events(tmp_path, option):
    """Finding: events were written before the audit record and the buffered
    dead letters, so with /dev/full events went out and the rest was lost."""
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"id": 1, "text": "\\u8d4c\\u535a"}\nnot json\n')
    proc = subprocess.run([str(EXE), "scan", "--progress", "off", option, "/dev/full", str(source)],
                          capture_output=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == b""  # no event without its audit record / dead letter
    err = proc.stderr.decode()
    assert f"screener: cannot write {option} /dev/full: No space left on device" in err
    assert "Traceback" not in err and "stopped=true" in err


# -- a resumed rescan recalls a post once, and dead-letters what it cannot read ---------------------------------
def test_a_resumed_rescan_does_not_recall_a_post_twice(tmp_path):
    from screener.rescan import Previous, rescan_files

    engine = Engine.build(LEXICONS, None, "aho")
    # Post 1 is archived twice, in different batches of 2 lines; the run dies
    # writing the second batch's events, after the first batch's checkpoint.
    archive = _jsonl(tmp_path / "a.jsonl", [{"id": 1, "text": "赌博"}, {"id": 2, "text": "天气"},
                                            {"id": 1, "text": "赌博"}, {"id": 4, "text": "赌博"}])
    settings = Settings(progress="off", batch_records=2, dead_letter=str(tmp_path / "dead"))
    checkpoint = str(tmp_path / "cp")

    class Dies(io.BytesIO):
        def write(self, data):  # type: ignore[override]
            if self.getvalue():
                raise KeyboardInterrupt
            return super().write(data)

    first = Dies()
    with pytest.raises(KeyboardInterrupt):
        rescan_files(settings, engine, [str(archive)], Previous(), first, checkpoint)
    second = io.BytesIO()
    rescan_files(settings, engine, [str(archive)], Previous(), second, checkpoint)
    assert [e["post_id"] for e in _lines(first.getvalue())] == [1]
    assert [e["post_id"] for e in _lines(second.getvalue())] == [4]


def test_rescan_dead_letters_malformed_lines_with_their_origin(tmp_path, capsys):
    archive = tmp_path / "a.jsonl"
    archive.write_bytes(b'{"id": 1, "text": "\\u8d4c\\u535a"}\n{"id": 2, "account_id": "u2"}\n')
    dead, audit = tmp_path / "dead.jsonl", tmp_path / "audit.jsonl"
    assert main(["rescan", "--progress", "off", "--policy", "none", "--dead-letter", str(dead),
                 "--audit", str(audit), str(archive)]) == 0
    (letter,) = _lines(dead.read_bytes())
    assert (letter["line"], letter["post_id"], letter["account_id"]) == (2, 2, "u2")
    assert 'missing "text"' in letter["reason"]
    assert "dead_lettered=1" in capsys.readouterr().err
    assert [r["kind"] for r in _lines(audit.read_bytes())] == ["rescan", "dead_letter", "decision", "rescan"]


# -- one record that makes screening fail is dead-lettered, the rest goes on ------------------------------------
def test_a_record_that_breaks_screening_is_dead_lettered_alone(engine, monkeypatch):
    """Any bug a hostile record finds must not stop the run or crash-loop a
    worker: the batch is split until the record is alone."""
    real = Engine.judge

    def judge(self, objects, texts, tracker=None):  # type: ignore[no-untyped-def]
        if any("POISON" in t for t in texts):
            raise ValueError("year 10000 is out of range")
        return real(self, objects, texts) if tracker is None else real(self, objects, texts, tracker)

    monkeypatch.setattr(Engine, "judge", judge)
    raws = [orjson.dumps({"id": i, "text": "POISON" if i == 5 else ("赌博" if i % 3 == 0 else "天气")})
            for i in range(12)]
    result = screen_batch(Step(engine, "w", 1 << 20, Limits()), Batch(raws, lambda i: {"line": i + 1}))
    assert [(d.index, d.post_id) for d in result.dead] == [(5, 5)]
    assert "screening failed: ValueError: year 10000 is out of range" in result.dead[0].reason
    assert [e.event["post_id"] for e in result.emitted] == [0, 3, 6, 9]
    assert result.counts.posts == 12 and result.counts.passed == 7
    assert [r["source"] for r in result.audit if r["kind"] == "dead_letter"] == [{"line": 6}]


# -- errors a user reads: one line, no traceback ----------------------------------------------------------------
def _cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(EXE), *args], capture_output=True, timeout=120, **kwargs)


def _one_line_error(proc: subprocess.CompletedProcess, code: int, text: str) -> None:
    err = proc.stderr.decode()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert text in err, err


@pytest.mark.parametrize("args,text", [
    (["scan", "{good}", "{tmp}/missing.jsonl"], "screener: cannot read {tmp}/missing.jsonl: no such file"),
    (["scan", "{tmp}"], "screener: cannot read {tmp}: is a directory"),
    # an output that is an input or another output (found by a hostile-input probe: --audit X X grew X for ever)
    (["scan", "--audit", "{good}", "{good}"], "screener: --audit {good} is the input {good}: it would read its own output"),
    (["scan", "--dead-letter", "{good}", "{good}"], "screener: --dead-letter {good} is the input {good}"),
    (["scan", "--audit", "{tmp}/out", "--dead-letter", "{tmp}/out", "{good}"],
     "screener: --audit {tmp}/out is also --dead-letter {tmp}/out: give each output its own file"),
    (["rescan", "--audit", "{tmp}/out", "--checkpoint", "{tmp}/out", "{good}"],
     "screener: --audit {tmp}/out is also --checkpoint {tmp}/out"),
    # explain's account as given (found by a hostile-input probe: "false" judged as blacklisted; --bio ignored)
    (["explain", "--account", '{{"blacklisted": "false"}}', "赌博"],
     "screener: --account: blacklisted must be true or false, not 'false'"),
    (["explain", "--bio", "加微信", "你好"], "screener: --bio is a profile's: give --profile too"),
    (["rescan", "--checkpoint", "{tmp}/no/dir/ck", "{good}"], "screener: cannot write --checkpoint {tmp}/no/dir/ck: no directory"),
    # integer flags parse as the settings do (found in review: argparse's int() took '1_000' and '٣')
    (["scan", "--max-post-bytes", "1_000", "{good}"], "screener: max_post_bytes: must be a whole number, not '1_000'"),
    (["scan", "--batch-records", "٣", "{good}"], "screener: batch_records: must be a whole number, not '٣'"),
    (["rescan", "--topic", "posts", "--from-offset", "1_0"], "screener: --from-offset: must be 0 to 2**63-1, not 1_0"),
    (["rescan", "--checkpoint", "{tmp}/ck", "/dev/null"],
     "screener: a resumable rescan needs regular files (it resumes at a byte offset), not /dev/null"),
    (["scan", "--dead-letter", "{tmp}/no/dir/dead", "{good}"], "screener: cannot open --dead-letter {tmp}/no/dir/dead"),
    (["scan", "--audit", "{tmp}/no/dir/audit", "{good}"], "screener: cannot open --audit {tmp}/no/dir/audit"),
    (["scan", "--state", "{garbage}", "{good}"], "screener: --state {garbage}: not a usable screener state file"),
    # the cause an operator can act on (found by a walk-through of the docs: "read-only", "not a directory")
    (["scan", "--state", "{tmp}/no/dir/x.db", "{good}"], "screener: --state {tmp}/no/dir/x.db: no directory {tmp}/no/dir"),
    (["scan", "--state", "{good}/x.db", "{good}"], "screener: --state {good}/x.db: {good} is not a directory"),
    (["scan", "--lexicons", "{tmp}/nolex", "{good}"], "{tmp}/nolex:0: no such directory"),
    (["rescan", "--previous", "{tmp}/missing", "{good}"], "screener: cannot read --previous {tmp}/missing"),
    (["rescan", "--checkpoint", "{garbage}", "{good}"], "screener: checkpoint {garbage} is unreadable"),
    # rescan ranges Kafka cannot serve (found by a hostile-input probe: one an internal error, one read as 0)
    (["rescan", "--topic", "posts", "--from-offset", "-5"], "screener: --from-offset: must be 0 to 2**63-1, not -5"),
    (["rescan", "--topic", "posts", "--from-offset", "99999999999999999999"], "screener: --from-offset: must be 0 to"),
    (["rescan", "--topic", "posts", "--from-timestamp", "1960-01-01"], "screener: --from-timestamp: must be 1970 or later"),
    # a device read without end (found by a hostile-input probe: killed at 24 GB)
    (["rescan", "--checkpoint", "/dev/zero", "{good}"], "screener: checkpoint /dev/zero is unreadable ([Errno 22] not a regular file)"),
    (["audit", "--post", "1", "--audit", "{tmp}/missing"], "screener: cannot read --audit {tmp}/missing"),
    (["scan", "--policy", "{garbage}", "{good}"], "screener: policy rejected"),
    # arguments that are not UTF-8 (found by a hostile-input probe: an internal error, exit 70)
    (["explain", "\udcff赌博"], "screener: TEXT is not UTF-8 (byte 0xff at 0)"),
    (["explain", "--json", "--bio", "ok\udcfe", "赌博"], "screener: --bio is not UTF-8 (byte 0xfe at 2)"),
    (["explain", "--account", '{{"id": "\udcff"}}', "赌博"], "screener: --account is not UTF-8 (byte 0xff at 8)"),
])
def test_user_errors_are_one_line_and_exit_2(tmp_path, args, text):
    good = _jsonl(tmp_path / "good.jsonl", [{"id": 1, "text": "赌博"}])
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x00\xffnot a state, checkpoint or policy\n" * 10)
    names = {"tmp": str(tmp_path), "good": str(good), "garbage": str(garbage)}
    proc = _cli(*[a.format(**names) for a in args])
    _one_line_error(proc, 2, text.format(**names))
    # A refusal had printed "screener scan: posts=0 ... stopped=true" first: a
    # run that never started (found by a walk-through of the docs). A run cut
    # short after reading still prints it (the /dev/full test above).
    assert "screener scan: posts=" not in proc.stderr.decode()


def test_scan_reads_a_pipe_named_on_the_command_line(tmp_path):
    """Found in review: ``screener scan <(zcat posts.jsonl.gz)`` was refused
    as "not a regular file", though stdin, also a pipe, is read."""
    fifo = tmp_path / "posts.fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with fifo.open("wb") as f:
            f.write(b'{"id": 1, "text": "\xe8\xb5\x8c\xe5\x8d\x9a"}\nnot json\n')  # 赌博

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    proc = _cli("scan", "--dead-letter", str(tmp_path / "dead.jsonl"), str(fifo))
    writer.join(timeout=10)
    assert proc.returncode == 0, proc.stderr.decode()
    assert [json.loads(line)["post_id"] for line in proc.stdout.splitlines()] == [1]
    assert b"posts=2 " in proc.stderr and b"dead_lettered=1 " in proc.stderr


def test_the_audit_trail_may_go_to_a_pipe(tmp_path):
    """Found by a hostile-input probe: ``--audit >(gzip > a.gz)`` stopped
    the run with "Invalid argument" (fsync of a pipe)."""
    good = _jsonl(tmp_path / "good.jsonl", [{"id": 1, "text": "赌博"}, {"id": 2, "text": "你好"}])
    fifo = tmp_path / "audit.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    proc = _cli("scan", "--audit", str(fifo), str(good))
    reader.join(timeout=30)
    assert proc.returncode == 0, proc.stderr.decode()
    assert [json.loads(line).get("post_id") for line in got[0].splitlines() if b'"post_id"' in line] == [1]


def test_audit_reads_records_with_odd_times_and_ids(tmp_path):
    """Found by a hostile-input probe: a number among the ISO times stopped
    the sort, and a post id nested 1000 deep the id comparison (exit 70)."""
    trail = tmp_path / "audit.jsonl"
    trail.write_bytes(b'{"kind":"decision","post_id":2,"at":5}\n'
                      b'{"kind":"decision","post_id":2,"at":"2026-01-01T00:00:00Z"}\n'
                      b'{"kind":"x","post_id":' + b"[" * 1000 + b"]" * 1000 + b'}\n')
    proc = _cli("audit", "--post", "2", "--audit", str(trail), "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    assert [json.loads(line)["at"] for line in proc.stdout.splitlines()] == ["2026-01-01T00:00:00Z", 5]  # as text


def test_devices_may_serve_as_several_outputs(tmp_path):
    """Found in review: --dead-letter /dev/null --audit /dev/null was refused
    as one file for two outputs."""
    good = _jsonl(tmp_path / "good.jsonl", [{"id": 1, "text": "赌博"}])
    proc = _cli("scan", "--dead-letter", "/dev/null", "--audit", "/dev/null", str(good))
    assert proc.returncode == 0, proc.stderr.decode()


def test_events_appended_to_the_input_are_refused(tmp_path):
    good = _jsonl(tmp_path / "good.jsonl", [{"id": 1, "text": "赌博"}])
    before = good.read_bytes()
    proc = subprocess.run(f"'{EXE}' scan '{good}' >> '{good}'", shell=True, stderr=subprocess.PIPE, timeout=120)
    _one_line_error(proc, 2, f"screener: events (stdout) go to the input {good}: it would read its own output")
    assert good.read_bytes() == before


def test_closed_stdin_and_stdout_are_clear_errors(tmp_path):
    good = _jsonl(tmp_path / "good.jsonl", [{"id": 1, "text": "赌博"}])
    _one_line_error(subprocess.run(f"'{EXE}' scan <&-", shell=True, capture_output=True, timeout=120),
                    2, "screener: cannot read stdin: it is closed")
    _one_line_error(subprocess.run(f"'{EXE}' scan '{good}' >&-", shell=True, stderr=subprocess.PIPE, timeout=120),
                    2, "screener: cannot write events: stdout is closed")


def test_a_closed_stderr_keeps_messages_out_of_the_events_and_loses_no_dead_letter(tmp_path):
    """Found in review: with stderr closed, print(file=sys.stderr) wrote the
    start-up line and the summary to stdout, among the events, and the dead
    letters' default sink (stderr) was an internal error, exit 70."""
    good = _jsonl(tmp_path / "good.jsonl", [{"id": 1, "text": "赌博"}])
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(good.read_bytes() + b"not json\n")
    dead = tmp_path / "dead.jsonl"
    ok = subprocess.run(f"'{EXE}' scan --dead-letter '{dead}' '{mixed}' 2>&-", shell=True, capture_output=True, timeout=120)
    assert ok.returncode == 0
    assert [json.loads(line)["post_id"] for line in ok.stdout.splitlines()] == [1]  # events only
    assert [json.loads(line)["raw"] for line in dead.read_bytes().splitlines()] == ["not json"]
    # Dead letters would go to the closed stderr: refused before anything is read (exit 2, nowhere to say why).
    refused = subprocess.run(f"'{EXE}' scan '{mixed}' 2>&-", shell=True, capture_output=True, timeout=120)
    assert (refused.returncode, refused.stdout) == (2, b"")
    # A message naming a file that is not UTF-8 still ends in exit 2 (found in review: 1).
    odd = subprocess.run(f"'{EXE}' audit --post 1 --audit \"$(printf 'nope\\377')\" 2>&-", shell=True,
                         capture_output=True, timeout=120)
    assert odd.returncode == 2


def test_a_busy_metrics_port_is_a_clear_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _cli("run", "--bootstrap-servers", "127.0.0.1:1", "--metrics-host", "127.0.0.1",
                    "--metrics-port", str(port))
    _one_line_error(proc, 2, f"screener: metrics_port: cannot serve on 127.0.0.1:{port}")


@pytest.mark.parametrize("sent,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_signal_prints_the_summary_so_far(tmp_path, sent, code):
    """Findings: SIGINT printed a traceback and lost the summary; SIGTERM (a
    container stop, ``kill``) ended the run with no summary at all."""
    reader, writer = os.pipe()
    proc = subprocess.Popen([str(EXE), "scan", "--progress", "off"], stdin=reader,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(reader)
    try:
        os.write(writer, '{"id": 1, "text": "赌博"}\n'.encode())  # input stays open: scan waits for more
        assert proc.stderr is not None
        assert proc.stderr.readline().startswith(b"screener: matcher")  # built; now reading
        time.sleep(0.5)
        proc.send_signal(sent)
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(writer)
    assert proc.returncode == code, err
    text = err.decode()
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    assert "screener scan: posts=" in text and "interrupted=true" in text


def test_a_reader_that_stops_early_ends_the_scan_quietly_with_the_counts(tmp_path):
    """``screener scan | head -1``: no traceback, exit 0 (the reader has what
    it wanted), and the summary says the output closed, so nobody takes the
    rest for screened (found by a hostile-input probe: no summary at all)."""
    source = _jsonl(tmp_path / "in.jsonl", [{"id": i, "text": f"赌博 {i}"} for i in range(20_000)])
    proc = subprocess.Popen([str(EXE), "scan", "--progress", "off", str(source)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # as head does once it has its line
    _, err = proc.communicate(timeout=120)
    assert orjson.loads(first)["action"] == "recall"
    text = err.decode()
    assert proc.returncode == 0 and "Traceback" not in text and "Exception ignored" not in text, text
    assert re.search(r"screener scan: posts=\d+ .* output_closed=true", text), text


def test_only_the_events_pipe_ending_is_a_reader_that_stopped():
    """A dead-letter or audit FIFO whose reader went away lost records: an
    output error, not the quiet end of ``scan | head`` (found in review)."""
    from screener.errors import OutputError
    from screener.scan import _writing

    with pytest.raises(BrokenPipeError):
        with _writing("events to", "stdout"):
            raise BrokenPipeError(32, "Broken pipe")
    with pytest.raises(OutputError, match="cannot write --audit audit.fifo: Broken pipe"):
        with _writing("--audit", "audit.fifo"):
            raise BrokenPipeError(32, "Broken pipe")


def test_main_leaves_the_sigterm_handler_as_it_found_it(capsys):
    before = signal.getsignal(signal.SIGTERM)
    assert main(["explain", "今天天气不错"]) == 0
    assert signal.getsignal(signal.SIGTERM) is before
    capsys.readouterr()


def test_an_internal_error_is_one_line_unless_debugging(monkeypatch, capsys, tmp_path):
    good = _jsonl(tmp_path / "good.jsonl", [{"id": 1, "text": "赌博"}])
    import screener.scan

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug")

    monkeypatch.setattr(screener.scan, "run_scan", broken)
    for debug in (None, "0", "off"):  # SCREENER_DEBUG=0 had turned tracebacks on (found by a probe)
        if debug is None:
            monkeypatch.delenv("SCREENER_DEBUG", raising=False)
        else:
            monkeypatch.setenv("SCREENER_DEBUG", debug)
        assert main(["scan", str(good)]) == 70
        err = capsys.readouterr().err
        assert "screener: internal error: RuntimeError: a bug" in err and "Traceback" not in err
    monkeypatch.setenv("SCREENER_DEBUG", "1")
    assert main(["scan", str(good)]) == 70
    assert "Traceback" in capsys.readouterr().err


def test_run_without_the_stream_extra_says_what_to_install():
    """Finding: after a plain `pip install .`, `screener run` printed
    "internal error: ModuleNotFoundError: prometheus_client ... please report
    it". A process without the stream extra's packages (made missing here)
    is told what to install instead."""
    code = ("import sys; sys.modules['prometheus_client'] = None; from screener.cli import main; "
            "sys.exit(main(['run', '--bootstrap-servers', '127.0.0.1:1', '--input-topic', 'x']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "screener run: needs the stream extra (prometheus_client does not import here): " \
           "pip install 'screener[stream]'" in proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr


# -- the worker's liveness while it waits for a broker -----------------------------------------------------------
def test_the_worker_is_alive_while_it_retries_an_unreachable_broker():
    """Finding: /healthz answered 503 "main loop stalled" after 60 s while the
    worker retried a broker it could not reach: a liveness probe would
    restart healthy pods through every outage."""
    from screener.stream import metrics
    from screener.stream.worker import Worker

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens once the socket closes
    settings = Settings(bootstrap_servers=f"127.0.0.1:{port}", metrics_port=0, policy="none")
    health = metrics.Health()
    worker = Worker(settings, Engine.build(LEXICONS, None, "aho"), health)
    thread = threading.Thread(target=worker.run, daemon=True)
    health.heartbeat = time.monotonic() - 1000  # as if the loop had last beaten long ago
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not health.alive(stale_after=5):
            time.sleep(0.2)
        assert health.alive(stale_after=5), "no heartbeat while retrying the broker"
        assert not health.ready and "cannot reach" in health.reason
    finally:
        worker.request_stop()
        thread.join(timeout=30)


# -- ids as written; one account's clock is not another's -------------------------------------------------------
def test_an_id_beyond_64_bits_comes_out_digit_for_digit(tmp_path, capsys):
    """Finding: 123456789012345678901234567890 was dead-lettered as a float, and
    came out as 1.2345678901234568e+29 in another field."""
    big = b"123456789012345678901234567890"
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"id": ' + big + b', "text": "\\u8d4c\\u535a", "ref": ' + big + b"}\n")
    audit = tmp_path / "audit.jsonl"
    assert main(["scan", "--progress", "off", "--audit", str(audit), str(source)]) == 0
    out = capsys.readouterr().out.encode()
    assert out.count(b'"post_id":' + big) == 1 and b'"ref":' + big in out
    assert main(["audit", "--post", big.decode(), "--audit", str(audit), "--json"]) == 0
    assert b'"post_id":' + big in capsys.readouterr().out.encode()


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-01:00", "1e20", "1969-01-01T00:00:00Z"])
def test_one_absurd_date_from_another_account_changes_no_blacklist(tmp_path, capsys, when):
    """Finding: one post with a far-future or pre-1970 published_at moved the
    shard's clock, so every other account's violations expired."""
    example = (ROOT / "examples" / "accounts.jsonl").read_bytes()
    date = when.encode() if when[0].isdigit() and "T" not in when else b'"' + when.encode() + b'"'
    outlier = b'{"id": 999, "text": "\\u50bb\\u903c", "account_id": "other", "published_at": ' + date + b"}\n"
    counts = []
    for name, data in (("plain", example), ("front", outlier + example), ("end", example + outlier)):
        source = tmp_path / f"{name}.jsonl"
        source.write_bytes(data)
        assert main(["scan", "--progress", "off", "--dead-letter", "/dev/null", "--state", str(tmp_path / f"{name}.db"),
                     str(source)]) == 0
        err = capsys.readouterr().err
        counts.append(re.search(r"blacklisted=(\d+)", err).group(1))  # type: ignore[union-attr]
    assert counts[0] == "1" and counts == ["1", "1", "1"]


@pytest.mark.parametrize("texts", [["赌<i title=\"", "\">博"], ["赌<!--", "-->博"], ["赌<script>", "</script>博"],
                                   ["x &#3617", "2;y"], ["赌<a", "x>博"]])
def test_markup_never_reaches_from_one_post_into_the_next(texts):
    """Every batch path folds each post as it would alone (found when the bulk
    verification's refold met the new HTML rule)."""
    from screener.normalise import Normaliser
    from screener.refold import refold

    normaliser = Normaliser()
    alone = [normaliser.normalise(t) for t in texts]
    assert normaliser.fold_many(texts) == [n.text for n in alone]
    batch = normaliser.encode_batch(texts, normaliser.alphabet)
    assert ["".join(map(chr, batch.codes[batch.starts[i]:batch.starts[i + 1] - 1])) for i in range(len(texts))] == [
        n.text for n in alone]
    posts = refold(normaliser, texts)
    for p, n in enumerate(alone):
        lo, hi = int(posts.nstart[p]), int(posts.nstart[p + 1])
        assert "".join(map(chr, posts.codes[lo:hi])) == n.text
        assert [posts.span(p, i, i + 1) for i in range(hi - lo)] == [n.span(i, i + 1) for i in range(len(n.text))]


# -- signals while a worker starts, and a supervisor's children ---------------------------------------------------
def test_signals_during_start_up_neither_kill_nor_are_lost(monkeypatch, caplog):
    """Found by a hostile-input probe: SIGHUP (the reload signal) during the
    engine build killed the worker (-1), SIGTERM killed it with no log line
    (-15). Now a reload is ignored there (the engine being built is the
    newest) and a stop is honoured once built, before joining any group."""
    import logging

    from screener.stream import run

    real_build = Engine.build

    def build(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGHUP)  # would end the process with Python's default
        os.kill(os.getpid(), signal.SIGTERM)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(run.Engine, "build", build)
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        with caplog.at_level(logging.INFO, logger="screener.run"):
            code = run.run_worker(Settings(bootstrap_servers=f"127.0.0.1:{_free_port()}", metrics_port=0,
                                           matcher="aho", cache_dir=""))
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
    assert code == 0 and "stop requested during start-up" in caplog.text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _supervisor_of_two(tmp_path: Path, stderr: Any, *extra: str) -> tuple[subprocess.Popen, list[int]]:
    """``screener run --workers 2`` against no broker, and its two workers' pids."""
    proc = subprocess.Popen([str(EXE), "run", "--workers", "2", "--metrics-port", "0", "--matcher", "aho",
                             "--bootstrap-servers", f"127.0.0.1:{_free_port()}", *extra],
                            stdout=subprocess.DEVNULL, stderr=stderr, cwd=tmp_path)
    deadline = time.monotonic() + 60
    children: list[int] = []
    while len(children) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
        children = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "spawn_main"],
                                                   capture_output=True, text=True).stdout.split()]
    if len(children) < 2:
        proc.kill()
        pytest.fail("the supervisor did not start its workers")
    return proc, children


def test_a_stop_during_a_restart_back_off_ends_the_supervisor(tmp_path):
    """Found by a hostile-input probe: SIGTERM while the supervisor waited to
    restart a dead child started the child anyway, after the signal had been
    forwarded; the supervisor then waited for it for ever."""
    proc, children = _supervisor_of_two(tmp_path, subprocess.PIPE)
    try:
        os.kill(children[0], signal.SIGKILL)
        time.sleep(0.6)  # inside the back-off (at least 1 s)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    finally:
        proc.kill()
    assert code == 1  # a worker died: its work may need redoing
    assert b"restarting" in proc.stderr.read()


def test_workers_stop_when_their_supervisor_is_killed(tmp_path):
    """Found by a hostile-input probe: after kill -9 of the supervisor its
    workers kept consuming as orphans, and a restarted supervisor would add
    as many group members again. Linux tells them (PR_SET_PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux's")
    proc, children = _supervisor_of_two(tmp_path, subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{pid}").exists() for pid in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        alive = [pid for pid in children if Path(f"/proc/{pid}").exists()]
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert alive == []


def test_a_bad_lexicon_stops_the_supervisor_with_exit_2(tmp_path):
    """Found in review: with ``--workers 2`` a lexicon that cannot load made
    each child print a traceback and exit 1, and the supervisor restarted
    them for ever (``screener run`` alone exits 2 with the problem)."""
    (tmp_path / "lex").mkdir()
    (tmp_path / "lex" / "spam.txt").write_text("坏词 ; action=bogus\n", encoding="utf-8")
    proc = subprocess.run([str(EXE), "run", "--workers", "2", "--metrics-port", "0", "--matcher", "aho",
                           "--lexicons", str(tmp_path / "lex"), "--bootstrap-servers", f"127.0.0.1:{_free_port()}"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert "spam.txt:1: action must be one of flag, recall, not 'bogus' [error]" in err
    assert "screener: lexicon rejected: 1 problem(s)" in err
    assert "Traceback" not in err and "restarting" not in err


def test_a_bad_client_option_stops_the_supervisor_with_exit_2(tmp_path):
    """Found in review: a setting the Kafka client refuses fails after the
    engine is built; it still failed every restart the same way."""
    pytest.importorskip("confluent_kafka")
    proc = subprocess.run([str(EXE), "run", "--workers", "2", "--metrics-port", "0", "--matcher", "aho",
                           "--kafka-client", "confluent", "--kafka-option", "bogus.thing=1",
                           "--bootstrap-servers", f"127.0.0.1:{_free_port()}"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert 'No such configuration property: "bogus.thing"' in err and "restarting" not in err


def test_a_restart_that_meets_a_broken_lexicon_is_retried_while_the_others_serve(tmp_path):
    """Exit 2 stops the set only on a first start: later, the siblings still
    serve the version they built, and the operator may be mid-edit."""
    lexicons = tmp_path / "lex"
    shutil.copytree(LEXICONS, lexicons)
    log = tmp_path / "supervisor.log"
    with log.open("wb") as sink:
        proc, children = _supervisor_of_two(tmp_path, sink, "--lexicons", str(lexicons))
    try:
        _wait_for(log, lambda text: text.count("matcher aho") >= 2, "both workers built their engine")
        with (lexicons / "spam.txt").open("a", encoding="utf-8") as f:
            f.write("坏词 ; action=bogus\n")
        os.kill(children[0], signal.SIGKILL)
        _wait_for(log, lambda text: "exited with 2; restarting" in text, "the restarted worker failed on the lexicon")
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert "could not start" not in log.read_text(encoding="utf-8")


def _wait_for(log: Path, seen: Callable[[str], bool], what: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not seen(log.read_text(encoding="utf-8", errors="replace")):
        if time.monotonic() > deadline:
            pytest.fail(f"not seen in {timeout_s:.0f} s: {what}\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)


@pytest.mark.parametrize("argv,usage", [
    (["scan", "--dead-leter", "x"], "usage: screener scan "),
    (["lexicon", "check", "--strictt", "lexicons"], "usage: screener lexicon check "),
])
def test_a_mistyped_option_shows_the_command_s_usage(capsys, argv, usage):
    """Found by a walk-through of the docs: the top-level usage came instead."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith(usage), err
    assert f"unrecognized arguments: {argv[-2]}" in err
