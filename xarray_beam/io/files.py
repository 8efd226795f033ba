"""Writing local files atomically: a reader never sees a torn file.

A file is written as ``<path>.<random>.partial`` and then renamed into place
(or, for an exclusive write, hard-linked: of two racing writers exactly one
succeeds), as zarr's LocalStore does for its objects. A write that fails (a
full disk, an exception, Ctrl-C) removes its partial file and re-raises.

Files are created with ``FILE_MODE`` masked by the umask, the permissions
Python's ``open`` and so zarr's LocalStore give theirs.
"""

from __future__ import annotations

import contextlib
import os
import uuid

_IOV_MAX = 1024
# What ``open(path, 'wb')`` creates files with (before the umask), as zarr does.
FILE_MODE = 0o666


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
    partial = partial_path(path)
    try:
        write_runs(partial, runs)
        if exclusive:
            os.link(partial, path)  # fails if the path exists, atomically
        else:
            os.replace(partial, path)
    except BaseException:
        remove_quietly(partial)
        raise
    if exclusive:
        os.remove(partial)


def partial_path(path: str) -> str:
    """A fresh name to write ``path`` under before renaming it into place.

    Example:
      ``partial_path('/data/a.zarr/t2m/c/0/0')`` is
      ``'/data/a.zarr/t2m/c/0/0.<32 hex digits>.partial'``
    """
    return f"{path}.{uuid.uuid4().hex}.partial"


def remove_quietly(path: str) -> None:
    """Remove a file if it is there, ignoring errors: for cleaning up after
    a failure, whose error is the one to report.

    Example:
      ``remove_quietly('/data/a.zarr/t2m/c/0/0.1f2e.partial')``
    """
    with contextlib.suppress(OSError):
        os.remove(path)


def write_runs(path: str, runs: list[memoryview]) -> None:
    """Write a file (created or truncated) from runs of bytes, with vectored I/O.

    The file is created with ``FILE_MODE`` masked by the umask; if writing
    fails, it is removed and the error re-raised.

    Example:
      ``write_runs('/tmp/x.partial', [memoryview(b'ab'), memoryview(b'c')])``
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        try:
            _write_all(fd, runs)
        finally:
            os.close(fd)
    except BaseException:
        remove_quietly(path)
        raise


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
