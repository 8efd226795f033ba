"""Writing local files atomically: a reader never sees a torn file.

A file is written as ``<path>.<random>.partial`` and then renamed into place
(or, for an exclusive write, hard-linked: of two racing writers exactly one
succeeds), as zarr's LocalStore does for its objects.
"""

from __future__ import annotations

import os
import uuid

_IOV_MAX = 1024


def write_file(path: str, runs: list[memoryview], exclusive: bool = False) -> None:
    """Write a file atomically from the runs of bytes it consists of: a
    partial file renamed into place, as zarr's LocalStore does.

    With ``exclusive``, the file is created only if none exists (of two
    racing writers, exactly one succeeds); otherwise ``FileExistsError`` is
    raised and the file already there is left as it was.

    Example:
      ``write_file('/data/a.zarr/t2m/c/0/0', [memoryview(encoded)])``
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = f"{path}.{uuid.uuid4().hex}.partial"
    write_runs(partial, runs)
    if not exclusive:
        os.replace(partial, path)
        return
    try:
        os.link(partial, path)  # fails if the path exists, atomically
    finally:
        os.remove(partial)


def write_runs(path: str, runs: list[memoryview]) -> None:
    """Write a file (created or truncated) from runs of bytes, with vectored I/O.

    Example:
      ``write_runs('/tmp/x.partial', [memoryview(b'ab'), memoryview(b'c')])``
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _write_all(fd, runs)
    finally:
        os.close(fd)


def _write_all(fd: int, runs: list[memoryview]) -> None:
    for start in range(0, len(runs), _IOV_MAX):
        batch = runs[start : start + _IOV_MAX]
        written = os.writev(fd, batch)
        for run in batch:  # finish whatever a short write left
            if written >= run.nbytes:
                written -= run.nbytes
                continue
            rest, written = run[written:], 0
            while rest.nbytes:
                rest = rest[os.write(fd, rest) :]
