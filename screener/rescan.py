"""``screener rescan``: re-screen published posts, recall what became stricter.

The 2021 national opinion asks for "multi-node recall and re-review": when the
rules change, what was published under the old rules is looked at again.
A rescan reads posts (JSONL archives, or a Kafka topic from an offset or a
timestamp), judges them with the *current* lexicon and policy, and emits an
event only for a post whose verdict is now stricter than the one it was
published under: pass → flag or recall, flag → recall. Everything else stays
silent. The earlier verdicts come from the earlier events or the audit log
(:class:`Previous`); a post absent from both was passed.

A checkpoint file, written after every batch's output is out, makes a rescan
resumable: run the same command again and it continues after the last
finished batch (at-least-once: a batch cut off mid-way is done again, and its
events keep their ids).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Sequence

import orjson

from . import audit, jsonio
from .batch import Batch, BatchResult, Step, screen_batch
from .errors import ConfigError, InputError, OutputError
from .files import directory_problem, read_regular
from .judge import Engine, Judgement
from .lexicon.model import SEVERITY_OF_ACTION
from .scan import Outputs, Progress, check_apart, chunks_of, origin_of
from .settings import Settings
from .source import total_size


def subject_key(kind: str, subject_id: Any) -> bytes:
    """A post and a profile with the same id are different subjects; 1 and "1" differ."""
    return jsonio.dumps(subject_id if kind == "post" else ["profile", subject_id])


class Previous:
    """The strictest verdict each post (or profile) was given so far."""

    def __init__(self) -> None:
        self.verdicts: dict[bytes, str] = {}
        self.noted: dict[bytes, str] = {}

    def note(self, key: bytes, action: str) -> None:
        if SEVERITY_OF_ACTION.get(action, 0) > SEVERITY_OF_ACTION[self.verdicts.get(key, "pass")]:
            self.verdicts[key] = action

    def add(self, record: dict[str, Any]) -> bool:
        """An event (kind post / profile_flag) or an audit decision record;
        False if it is neither (or its action or id cannot be one of ours:
        a list as action, an id nested beyond what JSON writes, stopped the
        rescan with an internal error; found by a hostile-input probe)."""
        kind = record.get("kind", "post")
        action = record.get("action", "pass")
        if type(action) is not str:
            return False
        try:
            if kind == "decision":
                key = subject_key(record.get("subject", "post"), record.get("post_id"))
            elif kind == "post" and "post_id" in record:
                key = subject_key("post", record["post_id"])
            elif kind == "profile_flag":
                key = subject_key("profile", record.get("profile_id"))
            else:
                return False
        except (TypeError, ValueError, RecursionError):  # orjson's JSONEncodeError is a TypeError
            return False
        self.note(key, action)
        return True

    def load(self, lines: Iterable[bytes]) -> tuple[int, int]:
        """(lines, JSON objects among them); the objects that are verdicts are noted."""
        seen = objects = 0
        for line in lines:
            if line.strip():
                seen += 1
                try:
                    record = jsonio.loads(line)
                except ValueError:  # orjson's and json's decode errors both are
                    continue  # a torn last line; nothing else writes these files
                if isinstance(record, dict):
                    objects += 1
                    self.add(record)  # other records (a rescan's start, a blacklist event) hold no verdict
        return seen, objects

    def load_files(self, paths: Sequence[str]) -> None:
        """Every file's verdicts; one with lines but not one JSON object is
        refused: a compressed or wrong file was taken as "no earlier
        verdicts", and every earlier recall was sent again."""
        for path in paths:
            try:
                with open(path, "rb") as stream:
                    seen, objects = self.load(stream)
            except OSError as exc:
                raise InputError(f"cannot read --previous {path}: {exc.strerror or exc}") from None
            if seen and not objects:
                raise InputError(f"--previous {path}: none of its {seen} lines is a JSON object, "
                                 "as events and audit records are (compressed? another kind of file?)")

    def get(self, key: bytes) -> str:
        return self.verdicts.get(key, "pass")

    def stricter(self, objects: Sequence[dict[str, Any]],
                 judgements: Sequence[Judgement]) -> tuple[list[Judgement], dict[int, str]]:
        """The judgements stricter than their post's earlier verdict, and that
        verdict by batch index (:class:`screener.batch.Review`). Each one is
        noted, so a post archived twice is recalled once."""
        kept: list[Judgement] = []
        was: dict[int, str] = {}
        for judged in judgements:
            key = subject_key(judged.kind, objects[judged.index]["id"])
            before = self.get(key)
            if SEVERITY_OF_ACTION[judged.action] > SEVERITY_OF_ACTION[before]:
                kept.append(judged)
                was[judged.index] = before
                self.note(key, judged.action)
                self.noted[key] = judged.action
        return kept, was

    def take_noted(self) -> dict[str, str]:
        """Verdicts this rescan gave since the last call, for its checkpoint:
        a resumed rescan must know them, or it recalls a post twice."""
        noted, self.noted = self.noted, {}
        return {key.decode(): action for key, action in noted.items()}

    def restore_noted(self, noted: dict[str, str]) -> None:
        for key, action in noted.items():
            self.note(key.encode(), action)


@dataclass
class RescanSummary:
    posts: int = 0
    rescreened: int = 0
    stricter: int = 0
    dead_lettered: int = 0
    seconds: float = 0.0
    #: Posts done by an earlier, interrupted run (not part of this run's rate).
    resumed_posts: int = 0

    @property
    def posts_per_s(self) -> float:
        return (self.posts - self.resumed_posts) / self.seconds if self.seconds else 0.0

    def line(self, engine: Engine) -> str:
        return (f"screener rescan: posts={self.posts} rescreened={self.rescreened} stricter={self.stricter} "
                f"unchanged={self.rescreened - self.stricter} dead_lettered={self.dead_lettered} "
                f"posts/s={self.posts_per_s:.0f} seconds={self.seconds:.2f} "
                f"lexicon_version={engine.lexicon_version} policy_version={engine.policy_version}")


# -- checkpoints -----------------------------------------------------------------------------------
#: The file beside a checkpoint that holds the verdicts its rescan gave.
NOTED_SUFFIX = ".noted"


class Checkpoint:
    """Where a rescan got to, in a small JSON file replaced atomically.

    ``identity`` names what is rescanned (files or topic and start); the
    engine's versions are part of it, so a checkpoint never resumes a rescan
    under other rules.
    """

    def __init__(self, path: str | None, identity: dict[str, Any], engine: Engine) -> None:
        self.path = path
        identity = {**identity, "lexicon_version": engine.lexicon_version, "policy_version": engine.policy_version}
        self.identity = identity
        self.state: dict[str, Any] = {}
        # Found now, not at the first batch's save, after its events were out (found by a probe).
        problem = directory_problem(path) if path else None
        if problem:
            raise OutputError(f"cannot write --checkpoint {path}: {problem}")
        if path and Path(path).exists():
            try:
                saved = orjson.loads(read_regular(path))
                if not isinstance(saved, dict) or not isinstance(saved.get("state", {}), dict):
                    raise ValueError("not a JSON object with a state")
            except (OSError, ValueError) as exc:
                raise ConfigError(f"checkpoint {path} is unreadable ({exc}); remove it to start afresh") from None
            if saved.get("identity") != identity:
                was = saved.get("identity")
                if isinstance(was, dict) and {k: v for k, v in was.items() if k != "files"} == \
                        {k: v for k, v in identity.items() if k != "files"}:
                    if "files" not in was:
                        raise ConfigError(f"checkpoint {path} was written by an earlier screener, which did not "
                                          "record its inputs' sizes; remove it to start afresh")
                    raise ConfigError(f"checkpoint {path}: an input changed since it was written (size or "
                                      "modification time); remove it to start afresh")
                raise ConfigError(
                    f"checkpoint {path} belongs to another rescan ({jsonio.dumps(was).decode()}); "
                    "remove it to start afresh")
            self.state = saved.get("state", {})
            problem = _state_problem(self.state)
            if problem:
                raise ConfigError(f"checkpoint {path} is unreadable ({problem}); remove it to start afresh")
        #: Verdicts this rescan gave (post key → action): a resumed rescan
        #: must know them, or it recalls a post archived twice twice.
        self.noted: dict[str, str] = {}
        # Checkpoints of earlier versions held them inline: written beside it at the next save.
        self._unwritten: dict[str, str] = dict(self.state.get("noted", {}))
        self.noted.update(self._unwritten)
        self._noted_bytes = 0
        if path and self.state.get("noted_bytes"):
            self._read_noted(path, self.state["noted_bytes"])

    # The noted verdicts grow with the rescan; rewritten into the checkpoint
    # after every batch they made the writes quadratic, and past the 64 MiB
    # read bound a checkpoint could not be resumed (found by a hostile-input
    # probe). They are appended to a file beside it; the checkpoint says how
    # many of its bytes count (a crash between the two leaves a tail that
    # does not).
    def _read_noted(self, path: str, length: int) -> None:
        noted = f"{path}{NOTED_SUFFIX}"
        try:
            if not os.path.isfile(noted) or os.path.getsize(noted) < length:
                raise ValueError(f"{noted} is missing or shorter than the {length} bytes it recorded")
            with open(noted, "rb") as stream:
                for line in stream.read(length).splitlines():
                    batch = orjson.loads(line)
                    if not isinstance(batch, dict) or not all(type(a) is str for a in batch.values()):
                        raise ValueError(f"{noted} holds a line that is not a batch's verdicts")
                    self.noted.update(batch)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"checkpoint {path} is unreadable ({exc}); remove it and {noted} to start afresh") from None
        self._noted_bytes = length

    def _append_noted(self, batch: dict[str, str]) -> None:
        assert self.path is not None
        with open(f"{self.path}{NOTED_SUFFIX}", "ab") as stream:
            stream.truncate(self._noted_bytes)  # a tail a crash left after the last checkpoint
            stream.seek(self._noted_bytes)
            stream.write(jsonio.dumps(batch, newline=True))
            stream.flush()
            os.fsync(stream.fileno())
            self._noted_bytes = stream.tell()

    @property
    def done(self) -> bool:
        return bool(self.state.get("done"))

    def summary(self) -> RescanSummary:
        """The counts so far (zero for a fresh rescan); this run's rate excludes them."""
        summary = RescanSummary(**{k: v for k, v in self.state.get("summary", {}).items() if k != "seconds"})
        summary.resumed_posts = summary.posts
        return summary

    def save(self, state: dict[str, Any], noted: dict[str, str] | None = None) -> None:
        """Record progress, and the verdicts given since the last save."""
        self.state = state
        noted = {**self._unwritten, **(noted or {})}  # ``self.noted`` served the start; Previous has the rest
        self._unwritten = {}
        if not self.path:
            return
        done = bool(state.get("done"))
        tmp = f"{self.path}.tmp"
        try:
            if noted and not done:
                self._append_noted(noted)
            if not done and self._noted_bytes:
                state = {**state, "noted_bytes": self._noted_bytes}
            with open(tmp, "wb") as stream:
                stream.write(jsonio.dumps({"identity": self.identity, "state": state}))
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(tmp, self.path)
            if done and os.path.exists(f"{self.path}{NOTED_SUFFIX}"):
                os.unlink(f"{self.path}{NOTED_SUFFIX}")  # a finished rescan resumes nothing
        except OSError as exc:
            raise OutputError(f"cannot write --checkpoint {self.path}: {exc.strerror or exc}") from None


def _state_problem(state: dict[str, Any]) -> str | None:
    """What is wrong with a checkpoint's saved state, if anything: each field
    of the kind a rescan writes. A wrong kind crashed the resume (exit 70),
    ``"done": "no"`` counted as done (found by a hostile-input probe)."""
    def whole(v: Any) -> bool:
        return type(v) is int and v >= 0

    counts = {f for f in RescanSummary.__dataclass_fields__}
    checks = {
        "done": lambda v: type(v) is bool,
        "summary": lambda v: isinstance(v, dict) and all(
            k in counts and (whole(n) or (k == "seconds" and type(n) in (int, float) and n >= 0)) for k, n in v.items()),
        "next": lambda v: isinstance(v, list) and len(v) == 3 and all(map(whole, v)) and v[2] >= 1,
        "noted": lambda v: isinstance(v, dict) and all(type(a) is str for a in v.values()),
        "positions": lambda v: isinstance(v, dict) and all(re.fullmatch("[0-9]{1,9}", k) and whole(o) for k, o in v.items()),
        "until_ms": whole,
        "noted_bytes": whole,
    }
    for name, value in state.items():
        check = checks.get(name)
        if check is None or not check(value):
            return f"{name!r} is not what a rescan writes"
    return None


def _file_stats(paths: Sequence[str]) -> list[list[int]]:
    """Size and modification time of each input: a checkpoint resumes at a
    byte offset, so new content at the same path must not be resumed (it was:
    lines skipped silently, or 0 events for a 'finished' rescan)."""
    stats = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:  # chunks_of reports it
            stats.append([-1, -1])
            continue
        stats.append([st.st_size, st.st_mtime_ns])
    return stats


def rescan_files(settings: Settings, engine: Engine, paths: Sequence[str], previous: Previous, out: BinaryIO,
                 checkpoint_path: str | None = None) -> RescanSummary:
    """Rescan JSONL archives; events on ``out``, malformed lines to the
    dead-letter sink, audit records to ``settings.audit``. Resumes from
    ``checkpoint_path``."""
    check_apart(paths, {"--checkpoint": checkpoint_path, "--audit": settings.audit, "--dead-letter": settings.dead_letter}, out)
    if checkpoint_path and (not paths or "-" in paths):
        raise ConfigError("a resumable rescan needs files, not stdin")
    odd = [p for p in paths if p != "-" and os.path.exists(p) and not os.path.isfile(p)]  # missing: chunks_of says so
    if checkpoint_path and odd:
        raise ConfigError(f"a resumable rescan needs regular files (it resumes at a byte offset), not {odd[0]}")
    inputs = [str(Path(p).resolve()) for p in paths]
    checkpoint = Checkpoint(checkpoint_path, {"inputs": inputs, "files": _file_stats(paths)}, engine)
    summary = checkpoint.summary()
    if checkpoint.done:
        return summary
    previous.restore_noted(checkpoint.noted)
    resume = tuple(checkpoint.state.get("next", (0, 0, 1)))
    chunks = chunks_of(paths, settings, resume)
    step = Step.of(settings, engine, bool(settings.audit))
    progress = Progress(total_size(paths), settings.progress)
    started = time.perf_counter()
    outputs = Outputs(settings, out)
    try:
        start = audit.rescan(settings.worker_id, engine, "start", {"inputs": inputs, "resumed_at": resume})
        outputs.write(BatchResult(audit=[start]), "", 0, [])
        for chunk in chunks:
            batch = Batch(chunk.lines, origin_of(chunk))
            result = screen_batch(step, batch, review=previous)
            outputs.write(result, chunk.source, chunk.first_line, chunk.lines)
            summary.posts += len(chunk.lines)
            summary.rescreened += result.counts.posts - result.counts.dead_lettered
            summary.stricter += len(result.emitted)
            summary.dead_lettered += len(result.dead)
            checkpoint.save({"next": list(chunk.resume_at), "summary": asdict(summary)}, previous.take_noted())
            progress.update(chunk.end_offset, summary.posts)
        progress.close()
        summary.seconds = time.perf_counter() - started
        checkpoint.save({"done": True, "summary": asdict(summary)})
        finish = audit.rescan(settings.worker_id, engine, "finish", asdict(summary))
        outputs.write(BatchResult(audit=[finish]), "", 0, [])
    finally:
        outputs.close()
    return summary
