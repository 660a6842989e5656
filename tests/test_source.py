"""Reading JSONL in chunks: nothing lost, nothing twice, resumable, no runt chunks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from screener import source
from screener.source import read_chunks


@pytest.fixture
def files(tmp_path):
    """Two files of lines of varying length (one without a final newline)."""
    a = tmp_path / "a.jsonl"
    a.write_bytes(b"".join(b'{"id": %d, "text": "%s"}\n' % (i, b"x" * (i % 37)) for i in range(1000)))
    b = tmp_path / "b.jsonl"
    b.write_bytes(b'{"id": "b1", "text": "y"}\n{"id": "b2", "text": "z"}')
    return [str(a), str(b)]


#: Read every line whole (readlines), or through the bounded reader (no line here is over its limit).
LINE_LIMITS = pytest.mark.parametrize("max_line_bytes", [None, 1000])


@LINE_LIMITS
@pytest.mark.parametrize("max_records,max_bytes", [(1, 1 << 20), (7, 1 << 20), (64, 1 << 20), (64, 500), (5000, 1), (5000, 4096)])
def test_every_line_once_in_order_with_numbers_and_offsets(files, max_records, max_bytes, max_line_bytes):
    chunks = list(read_chunks(files, max_records, max_bytes, max_line_bytes=max_line_bytes))
    for path_index, path in enumerate(files):
        mine = [c for c in chunks if c.source_index == path_index]
        data = open(path, "rb").read()
        assert b"".join(line for c in mine for line in c.lines) == data
        line = 1
        for c in mine:
            assert c.source == path and c.first_line == line
            assert 1 <= len(c.lines) <= max_records
            # about max_bytes: one line over (readlines), or one small block and a line (the bounded reader)
            if max_line_bytes is None:
                assert c.size - len(c.lines[-1]) < max_bytes
            else:
                assert c.size < max_bytes + source.MIN_BLOCK_BYTES + max(map(len, c.lines))
            line += len(c.lines)
            assert c.end_offset == len(b"".join(l for k in mine[:mine.index(c) + 1] for l in k.lines))


@LINE_LIMITS
def test_chunks_are_full_until_the_end(files, max_line_bytes):
    """A read that holds 1.5 chunks' worth must not leave a runt chunk behind."""
    sizes = [len(c.lines) for c in read_chunks(files[:1], 64, 3000, max_line_bytes=max_line_bytes)]
    assert sizes[:-1] == [64] * (len(sizes) - 1)
    assert sum(sizes) == 1000


@LINE_LIMITS
def test_resume_from_any_chunk_end(files, max_line_bytes):
    chunks = list(read_chunks(files, 64, 2000, max_line_bytes=max_line_bytes))
    for at, c in enumerate(chunks):
        resumed = list(read_chunks(files, 64, 2000, (c.source_index, c.end_offset, c.first_line + len(c.lines)),
                                   max_line_bytes=max_line_bytes))
        rest = [(r.source, r.first_line, r.lines) for r in resumed]
        want = [(r.source, r.first_line, r.lines) for r in chunks[at + 1:]]
        # Chunk boundaries may differ after a resume; the lines and their numbers may not.
        assert _flat(rest) == _flat(want)


def _flat(chunks):
    return [(source, first + i, line) for source, first, lines in chunks for i, line in enumerate(lines)]


# -- lines over the limit: held only up to it, cut, and the rest still read -------------------
import io  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tracemalloc  # noqa: E402

from screener.decode import decode_batch, strip_eol  # noqa: E402
from screener.sinks import dead_letter_record  # noqa: E402
from screener.source import Truncated  # noqa: E402

LIMIT = 40


def _reference(data: bytes, limit: int) -> list[bytes]:
    """What read_chunks must yield: every line ("\n" ends one), those over
    ``limit + 2`` bytes (the content and "\r\n") cut to ``limit + 1``."""
    lines = re.findall(rb"[^\n]*\n|[^\n]+$", data)
    return [Truncated(line[:limit + 1], len(line)) if len(line) > limit + 2 else line for line in lines]


def _lines_of(chunks) -> list[bytes]:
    return [line for c in chunks for line in c.lines]


def _file(lengths: list[int], eol: bytes, final_eol: bool) -> bytes:
    """Lines of the given lengths, terminator included."""
    data = b"".join(b"x" * (n - len(eol)) + eol for n in lengths)
    return data if final_eol else data[:-len(eol)]


@pytest.mark.parametrize("buffer", [16, 64, 1 << 20])  # lines straddle reads, or fit in one
@pytest.mark.parametrize("lengths", [
    [10, LIMIT, LIMIT + 1, LIMIT + 2, LIMIT + 3, 10],  # around the limit
    [LIMIT * 100, 5, LIMIT * 3, LIMIT * 3],  # long lines back to back
    [3, 3, 3, LIMIT * 50],  # a long line at the end
    [LIMIT + 3],
])
@pytest.mark.parametrize("eol", [b"\n", b"\r\n"])
@pytest.mark.parametrize("final_eol", [True, False])
def test_long_lines_are_cut_wherever_they_fall(tmp_path, monkeypatch, buffer, lengths, eol, final_eol):
    monkeypatch.setattr(source, "MIN_BLOCK_BYTES", buffer)
    path = tmp_path / "long.jsonl"
    path.write_bytes(_file(lengths, eol, final_eol))
    want = _reference(path.read_bytes(), LIMIT)
    for max_records, max_bytes in [(1, 1 << 20), (3, 100), (100, 1 << 20)]:
        chunks = list(read_chunks([str(path)], max_records, max_bytes, max_line_bytes=LIMIT))
        got = _lines_of(chunks)
        assert got == want and [type(line) for line in got] == [type(line) for line in want]
        assert [line.size for line in got if isinstance(line, Truncated)] == \
            [line.size for line in want if isinstance(line, Truncated)]
        assert [c.first_line for c in chunks] == [1 + sum(len(k.lines) for k in chunks[:i]) for i in range(len(chunks))]
        assert sum(c.size for c in chunks) == chunks[-1].end_offset == path.stat().st_size
        for at, c in enumerate(chunks):  # resuming after any chunk: the same lines, numbered the same
            rest = list(read_chunks([str(path)], max_records, max_bytes, c.resume_at, max_line_bytes=LIMIT))
            assert _flat([(r.source, r.first_line, r.lines) for r in rest]) == \
                _flat([(r.source, r.first_line, r.lines) for r in chunks[at + 1:]])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.sampled_from([b"\n", b"\r\n"])), max_size=12),
       st.booleans(), st.integers(1, 12), st.integers(1, 40))
def test_the_line_reader_agrees_with_splitting_it_all(lines, final_eol, limit, block):
    data = b"".join(b"a" * n + eol for n, eol in lines)
    data = data if final_eol else data.rstrip(b"\r\n")
    reader = source._LineReader(io.BytesIO(data), limit, block)
    got: list[bytes] = []
    while True:
        part, held, cuts = reader.read()
        if not part:
            break
        assert held == sum(map(len, part)) and cuts == sum(isinstance(line, Truncated) for line in part)
        got += part
    want = _reference(data, limit)
    assert got == want and [getattr(line, "size", len(line)) for line in got] == [len(line) for line in re.findall(rb"[^\n]*\n|[^\n]+$", data)]


def test_a_50_mb_line_is_held_only_up_to_the_limit(tmp_path):
    """The line is dead-lettered from its head, which says it was cut and how
    long the line was; the line after it is still a post, numbered right."""
    limit = 256 * 1024
    path = tmp_path / "huge.jsonl"
    with open(path, "wb") as f:
        f.write(b'{"id": 1, "text": "before"}\n{"id": 2, "text": "')
        for _ in range(50):
            f.write(b"y" * (1 << 20))
        f.write(b'"}\n{"id": 3, "text": "after"}\n')
    size = path.stat().st_size
    tracemalloc.start()
    try:
        chunks = list(read_chunks([str(path)], 4096, 1 << 20, max_line_bytes=limit))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB for a {size / 2**20:.0f} MiB line"
    lines = _lines_of(chunks)
    assert len(lines) == 3 and isinstance(lines[1], Truncated) and len(lines[1]) == limit + 1
    assert lines[1].size == size - len(lines[0]) - len(lines[2]) and sum(c.size for c in chunks) == size
    objects, texts, rejected = decode_batch(lines, limit)
    assert texts == ["before", "after"] and [o["id"] for o in objects] == [1, 3]
    assert rejected == [(1, f"line of {lines[1].size} bytes exceeds the limit of {limit} bytes")]
    letter = dead_letter_record(chunks[0].source, chunks[0].first_line + 1, strip_eol(lines[1]), rejected[0][1])
    assert letter["line"] == 2 and letter["truncated"] is True and letter["bytes"] == lines[1].size
    assert letter["raw"] == lines[1].decode() and letter["raw"].startswith('{"id": 2, "text": "yyy')


PEAK_RSS = "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10)"


def test_stdin_is_read_with_the_same_bound():
    """A 200 MiB line through a pipe, read in a process of its own: its peak
    RSS grows by far less than the line."""
    script = ("from screener.source import read_chunks\n"
              "lines = [l for c in read_chunks(['-'], 4096, 1 << 20, max_line_bytes=1000) for l in c.lines]\n"
              "print([(type(l).__name__, len(l)) for l in lines])\n" + PEAK_RSS)
    data = b'{"id": 1}\n' + b"z" * (200 << 20) + b'\n{"id": 3}\n'
    baseline = subprocess.run([sys.executable, "-c", "import screener.source\n" + PEAK_RSS],
                              capture_output=True, check=True, text=True)
    proc = subprocess.run([sys.executable, "-c", script], input=data, capture_output=True, check=True)
    lines, peak_mb = proc.stdout.decode().splitlines()
    assert lines == "[('bytes', 10), ('Truncated', 1001), ('bytes', 10)]"
    assert int(peak_mb) - int(baseline.stdout) < 50, f"peak RSS {peak_mb} MiB for a 200 MiB line"


def test_without_a_limit_lines_are_whole(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"a" * 5000 + b"\nb\n")
    assert _lines_of(read_chunks([str(path)], 10, 100)) == [b"a" * 5000 + b"\n", b"b\n"]


def test_any_binary_stream_will_do():
    lines = list(source._chunks("s", io.BytesIO(b"1\n" + b"2" * 100 + b"\n3"), 10, 1000, max_line_bytes=10))[0].lines
    assert lines == [b"1\n", b"2" * 11, b"3"] and lines[1].size == 101


def test_a_byte_order_mark_starting_a_file_or_stdin_is_skipped(tmp_path):
    """Windows editors start a file with one; it made the first record
    invalid JSON (found by a hostile-input probe). Only at the very start:
    resuming after it, and a mark inside the input, read as they are."""
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": 1}\n\xef\xbb\xbf{"id": 2}\n')
    (chunk,) = read_chunks([str(path)], 10, 1000)
    assert chunk.lines == [b'{"id": 1}\n', b'\xef\xbb\xbf{"id": 2}\n'] and chunk.end_offset == path.stat().st_size
    first, (rest,) = next(read_chunks([str(path)], 1, 1000)), read_chunks([str(path)], 1, 1000, (0, 13, 2))
    assert first.end_offset == 13 and rest.lines == [b'\xef\xbb\xbf{"id": 2}\n']
    script = "from screener.source import read_chunks\nprint([l for c in read_chunks(['-'], 10, 1000) for l in c.lines])"
    proc = subprocess.run([sys.executable, "-c", script], input=path.read_bytes(), capture_output=True, check=True)
    assert proc.stdout.decode().strip() == repr([b'{"id": 1}\n', b'\xef\xbb\xbf{"id": 2}\n'])


def test_a_file_name_that_is_not_utf8_is_written_escaped(tmp_path, capsys):
    """Linux file names are bytes; one that is not UTF-8 reached the dead
    letters and the audit trail with lone surrogates, and ``scan`` stopped
    with an internal error (found by a hostile-input probe)."""
    import orjson

    from screener.cli import main

    path = tmp_path / os.fsdecode(b"in\xffput.jsonl")
    path.write_bytes(b'not json\n{"id": 2, "text": "\xe8\xb5\x8c\xe5\x8d\x9a"}\n')
    audit = tmp_path / "audit.jsonl"
    assert main(["scan", "--progress", "off", "--audit", str(audit), "--dead-letter", str(tmp_path / "dead"),
                 str(path)]) == 0
    assert orjson.loads(capsys.readouterr().out)["post_id"] == 2
    (letter,) = [orjson.loads(line) for line in (tmp_path / "dead").read_bytes().splitlines()]
    assert letter["source"] == str(tmp_path / "in\\xffput.jsonl")
    sources = {orjson.loads(line)["source"]["file"] for line in audit.read_bytes().splitlines()
               if b'"kind":"decision"' in line or b'"kind":"dead_letter"' in line}
    assert sources == {str(tmp_path / "in\\xffput.jsonl")}
