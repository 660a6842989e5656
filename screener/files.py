"""Reading the small files an operator points screener at (lexicons, policy,
checkpoints), so that no such path can stall or exhaust a run.

A FIFO in a lexicon directory blocked the hot-reload thread in ``open()``
for ever, and a symlink to ``/dev/zero`` grew the worker by ~370 MB/s until
it was killed (found by a hostile-input probe). So: a regular file only,
opened without blocking, read up to a bound.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

#: Largest lexicon, manifest, policy or checkpoint file read: far above any
#: real one (100k terms take ~2 MB).
MAX_FILE_BYTES = 64 << 20


def directory_problem(path: str | os.PathLike[str]) -> str | None:
    """Why no file could be created or replaced at ``path`` (a checkpoint
    renamed into place, SQLite's journal beside its file), or None; asked
    before a run starts, not when its first results are out already."""
    where = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(where):
        return f"no directory {where}"
    return None if os.access(where, os.W_OK) else f"directory not writable {where}"


def read_regular(path: str | os.PathLike[str], limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file at ``path``; :class:`OSError` for
    anything else (a FIFO, a device, a directory) or a file over ``limit``,
    with a ``strerror`` that says which.

    >>> read_regular("/dev/null")
    Traceback (most recent call last):
    OSError: [Errno 22] not a regular file
    >>> read_regular("/")
    Traceback (most recent call last):
    IsADirectoryError: [Errno 21] Is a directory
    """
    fd = os.open(os.fspath(Path(path)), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block the open
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):  # before fdopen, which names a directory "[Errno 21] Is a directory: 3" (the fd)
        os.close(fd)
        raise OSError(errno.EISDIR, os.strerror(errno.EISDIR)) if stat.S_ISDIR(mode) else OSError(errno.EINVAL, "not a regular file")
    with os.fdopen(fd, "rb") as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit} bytes")
    return data
