"""Reading JSONL in chunks: nothing lost, nothing twice, resumable, no runt chunks."""

from __future__ import annotations

import pytest

from screener.source import read_chunks


@pytest.fixture
def files(tmp_path):
    """Two files of lines of varying length (one without a final newline)."""
    a = tmp_path / "a.jsonl"
    a.write_bytes(b"".join(b'{"id": %d, "text": "%s"}\n' % (i, b"x" * (i % 37)) for i in range(1000)))
    b = tmp_path / "b.jsonl"
    b.write_bytes(b'{"id": "b1", "text": "y"}\n{"id": "b2", "text": "z"}')
    return [str(a), str(b)]


@pytest.mark.parametrize("max_records,max_bytes", [(1, 1 << 20), (7, 1 << 20), (64, 1 << 20), (64, 500), (5000, 1), (5000, 4096)])
def test_every_line_once_in_order_with_numbers_and_offsets(files, max_records, max_bytes):
    chunks = list(read_chunks(files, max_records, max_bytes))
    for path_index, path in enumerate(files):
        mine = [c for c in chunks if c.source_index == path_index]
        data = open(path, "rb").read()
        assert b"".join(line for c in mine for line in c.lines) == data
        line = 1
        for c in mine:
            assert c.source == path and c.first_line == line
            assert 1 <= len(c.lines) <= max_records
            line += len(c.lines)
            assert c.end_offset == len(b"".join(l for k in mine[:mine.index(c) + 1] for l in k.lines))


def test_chunks_are_full_until_the_end(files):
    """A read that holds 1.5 chunks' worth must not leave a runt chunk behind."""
    sizes = [len(c.lines) for c in read_chunks(files[:1], 64, 3000)]
    assert sizes[:-1] == [64] * (len(sizes) - 1)
    assert sum(sizes) == 1000


def test_resume_from_any_chunk_end(files):
    chunks = list(read_chunks(files, 64, 2000))
    for at, c in enumerate(chunks):
        resumed = list(read_chunks(files, 64, 2000, (c.source_index, c.end_offset, c.first_line + len(c.lines))))
        rest = [(r.source, r.first_line, r.lines) for r in resumed]
        want = [(r.source, r.first_line, r.lines) for r in chunks[at + 1:]]
        # Chunk boundaries may differ after a resume; the lines and their numbers may not.
        assert _flat(rest) == _flat(want)


def _flat(chunks):
    return [(source, first + i, line) for source, first, lines in chunks for i, line in enumerate(lines)]
