"""Field safety of the command and of local chunk files.

A failing pipeline step gives one error line (the step and the underlying
error) and exit code 1, ``--verbose`` the traceback, Ctrl-C one line and
exit code 130. A failed write leaves no ``.partial`` file and no open
descriptor behind, and every file is created with the permissions zarr
gives its own files.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import zarr
import zarr.storage

from xarray_beam import synthetic
from xarray_beam.io import files, region_io
from xarray_beam.io._direct import chunk_files
from xarray_beam.programs import cli, jobs

_O_DIRECT = getattr(os, "O_DIRECT", 0)
_CORRUPT_CHUNK = os.path.join("2m_temperature", "c", "1", "0", "0")

# The command.


@pytest.fixture(scope="module")
def small_store(tmp_path_factory) -> str:
    """Two days of hourly data on a 30 degree grid, in one-day chunks."""
    path = str(tmp_path_factory.mktemp("field-safety") / "small.zarr")
    synthetic.write_era5_like(path, hours=48, resolution=30.0)
    return path


@pytest.fixture
def corrupt_store(small_store, tmp_path) -> str:
    """A copy of the small store with one chunk object overwritten by garbage."""
    path = str(tmp_path / "corrupt.zarr")
    shutil.copytree(small_store, path)
    with open(os.path.join(path, _CORRUPT_CHUNK), "wb") as f:
        f.write(b"these bytes are not a compressed chunk" * 4)
    return path


def run(argv: list[str]) -> int:
    """The exit code of the command run in this process (argparse exits too)."""
    try:
        return cli.main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)


def rechunk_argv(source: str, target: str) -> list[str]:
    return ["rechunk", source, target, "--target-chunks", "time=-1"]


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def fail_reads_with(monkeypatch, error: BaseException) -> None:
    """Make every region read of a store (inside a pipeline step) raise."""

    def failing_read(self, region, out):
        raise error

    monkeypatch.setattr(region_io.RegionIO, "read", failing_read)


@pytest.mark.parametrize(
    "beam_args",
    [[], ["--", "--direct_running_mode", "multi_threading"]],
    ids=["in_memory", "multi_threading"],  # workers print tracebacks
)
def test_a_corrupt_chunk_gives_one_line_naming_the_step_and_exit_code_1(
    capsys, tmp_path, corrupt_store, beam_args
):
    code = run([*rechunk_argv(corrupt_store, str(tmp_path / "out.zarr")), *beam_args])

    line = one_line(capsys.readouterr().err)
    assert code == 1, line
    assert line.startswith("xarray-beam rechunk: error in step 'RechunkZarr/"), line
    assert "Zstd decompression error: invalid input data" in line
    assert "[while running" not in line
    assert "Traceback" not in line


def test_a_value_error_in_a_step_is_a_failure_not_a_usage_error(
    capsys, monkeypatch, tmp_path, small_store
):
    fail_reads_with(monkeypatch, ValueError("injected failure\nsecond line"))

    code = run(rechunk_argv(small_store, str(tmp_path / "out.zarr")))

    line = one_line(capsys.readouterr().err)
    assert code == 1, line
    assert line.startswith("xarray-beam rechunk: error in step 'RechunkZarr/"), line
    assert "': ValueError: injected failure" in line
    assert "second line" not in line
    assert "[while running" not in line


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_before_or_after_the_subcommand_shows_the_traceback(
    capsys, monkeypatch, tmp_path, small_store, where
):
    fail_reads_with(monkeypatch, ValueError("injected failure"))
    argv = rechunk_argv(small_store, str(tmp_path / "out.zarr"))
    argv = ["--verbose", *argv] if where == "before" else [*argv, "--verbose"]

    code = run(argv)

    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback (most recent call last)" in err
    assert "ValueError: injected failure" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("xarray-beam rechunk: error in step 'RechunkZarr/"), err


def test_ctrl_c_in_a_step_prints_interrupted_and_exits_130(
    capsys, monkeypatch, tmp_path, small_store
):
    fail_reads_with(monkeypatch, KeyboardInterrupt())

    code = run(rechunk_argv(small_store, str(tmp_path / "out.zarr")))

    line = one_line(capsys.readouterr().err)
    assert code == 130, line
    assert line == "xarray-beam rechunk: interrupted"


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_ctrl_c_outside_a_step_prints_interrupted_and_exits_130(
    capsys, monkeypatch, tmp_path, small_store, verbose
):
    def interrupted_job(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(jobs, "rechunk_job", interrupted_job)
    argv = rechunk_argv(small_store, str(tmp_path / "out.zarr"))

    code = run([*argv, "--verbose"] if verbose else argv)

    err = capsys.readouterr().err
    assert code == 130, err
    assert err.strip().splitlines()[-1] == "xarray-beam rechunk: interrupted"
    assert ("Traceback" in err) == verbose
    if not verbose:
        one_line(err)


def test_an_unexpected_error_outside_a_step_gives_one_line_and_exit_code_1(
    capsys, monkeypatch, tmp_path, small_store
):
    def broken_job(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("something broke\nwith details")

    monkeypatch.setattr(jobs, "rechunk_job", broken_job)

    code = run(rechunk_argv(small_store, str(tmp_path / "out.zarr")))

    line = one_line(capsys.readouterr().err)
    assert code == 1, line
    assert line.startswith("xarray-beam rechunk: error: RuntimeError: something broke")


def test_usage_errors_keep_exit_code_2(capsys, tmp_path):
    code = run(["verify", str(tmp_path / "nothing-here.zarr")])

    line = one_line(capsys.readouterr().err)
    assert code == 2, line
    assert line.startswith("xarray-beam verify: error:")


@pytest.mark.parametrize(
    "argv, verbose",
    [
        (["info", "x.zarr"], False),
        (["--verbose", "info", "x.zarr"], True),
        (["info", "x.zarr", "--verbose"], True),
        (["-v", "verify", "x.zarr"], True),
        (["verify", "x.zarr", "-v"], True),
    ],
)
def test_verbose_is_a_global_flag_before_or_after_the_subcommand(argv, verbose):
    assert cli.build_parser().parse_args(argv).verbose is verbose


@pytest.mark.parametrize("subcommand", [None, "rechunk", "climatology", "verify"])
def test_help_documents_verbose(capsys, subcommand):
    argv = ["--help"] if subcommand is None else [subcommand, "--help"]
    assert run(argv) == 0
    out = capsys.readouterr().out
    assert "--verbose" in out
    assert "traceback" in out


def console_script() -> str:
    return os.path.join(os.path.dirname(sys.executable), "xarray-beam")


def test_console_script_reports_a_failing_step_in_one_line(tmp_path, corrupt_store):
    target = str(tmp_path / "out.zarr")
    completed = subprocess.run(
        [console_script(), *rechunk_argv(corrupt_store, target)],
        capture_output=True,
        text=True,
        check=False,
    )

    line = one_line(completed.stderr)  # no Beam log records, no traceback
    assert completed.returncode == 1, completed.stderr
    assert line.startswith("xarray-beam rechunk: error in step 'RechunkZarr/"), line
    assert "Zstd decompression error" in line


# Files: partial files, descriptors and permissions.


def open_descriptors() -> list[str]:
    """What this process's file descriptors refer to."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("no /proc/self/fd on this system")
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        # The descriptor listdir itself used is closed by now.
        with contextlib.suppress(OSError):
            targets.append(os.readlink(os.path.join("/proc/self/fd", fd)))
    return targets


def descriptors_under(directory: str) -> list[str]:
    return [target for target in open_descriptors() if target.startswith(directory)]


def o_direct_opens(directory: str) -> bool:
    """Whether the file system of ``directory`` lets files open with O_DIRECT."""
    if not _O_DIRECT:
        return False
    path = os.path.join(directory, "probe")
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | _O_DIRECT))
    except OSError:
        return False
    finally:
        if os.path.exists(path):
            os.remove(path)
    return True


def writes_under(directory: str, write: Callable, fail: Callable) -> Callable:
    """A stand-in for ``write`` that, for files in ``directory``, writes at
    most a page the first time and calls ``fail`` instead afterwards."""
    calls = []

    def stand_in(fd: int, data: Any) -> int:
        if not os.readlink(f"/proc/self/fd/{fd}").startswith(directory):
            return write(fd, data)
        calls.append(fd)
        if len(calls) > 1:
            return fail()
        return write(fd, memoryview(data)[:4096])

    return stand_in


def disk_full() -> int:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def broken() -> int:
    raise RuntimeError("injected failure while writing")


def first_run_only(fd: int, runs: list[memoryview]) -> int:
    """``os.writev`` that writes only part of the first run (a short write)."""
    return os.write(fd, runs[0][: max(1, runs[0].nbytes // 2)])


@pytest.fixture
def fd_check(tmp_path) -> Iterator[str]:
    """The test's directory; no descriptor may be left open on it, nor any
    descriptor at all."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("no /proc/self/fd on this system")
    directory = str(tmp_path)
    before = len(os.listdir("/proc/self/fd"))
    yield directory
    assert descriptors_under(directory) == []
    assert len(os.listdir("/proc/self/fd")) == before


def leftovers(directory: str) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(root, name), directory)
        for root, _, names in os.walk(directory)
        for name in names
    )


@pytest.mark.parametrize("exclusive", [False, True], ids=["replace", "exclusive"])
@pytest.mark.parametrize("failure", [disk_full, broken], ids=["enospc", "exception"])
def test_a_failed_write_file_leaves_no_partial_file(
    monkeypatch, fd_check, exclusive, failure
):
    path = os.path.join(fd_check, "a.zarr", "t", "c", "0")
    monkeypatch.setattr(os, "writev", first_run_only)
    monkeypatch.setattr(os, "write", writes_under(fd_check, os.write, failure))
    runs = [memoryview(b"x" * 5000), memoryview(b"y" * 3000)]

    with pytest.raises((OSError, RuntimeError)) as raised:
        files.write_file(path, runs, exclusive=exclusive)

    monkeypatch.undo()
    if failure is disk_full:
        assert isinstance(raised.value, OSError)
        assert raised.value.errno == errno.ENOSPC
    else:
        assert "injected failure" in str(raised.value)
    assert leftovers(fd_check) == []


def test_a_failed_write_file_leaves_the_file_already_there(monkeypatch, fd_check):
    path = os.path.join(fd_check, "c", "0")
    files.write_file(path, [memoryview(b"old bytes")])

    def full_disk_writev(fd: int, runs: list[memoryview]) -> int:
        return disk_full()

    monkeypatch.setattr(os, "writev", full_disk_writev)
    with pytest.raises(OSError) as raised:
        files.write_file(path, [memoryview(b"new bytes")])
    monkeypatch.undo()

    assert raised.value.errno == errno.ENOSPC
    assert leftovers(fd_check) == [os.path.join("c", "0")]
    with open(path, "rb") as f:
        assert f.read() == b"old bytes"


def test_a_failed_rename_leaves_no_partial_file(fd_check):
    path = os.path.join(fd_check, "c", "0")
    os.makedirs(os.path.join(path, "in-the-way"))  # a directory is no file

    with pytest.raises(OSError):
        files.write_file(path, [memoryview(b"bytes")])

    assert leftovers(fd_check) == []


def test_a_failed_write_runs_removes_its_file(monkeypatch, fd_check):
    path = os.path.join(fd_check, "x.partial")

    def full_disk_writev(fd: int, runs: list[memoryview]) -> int:
        return disk_full()

    monkeypatch.setattr(os, "writev", full_disk_writev)
    with pytest.raises(OSError) as raised:
        files.write_runs(path, [memoryview(b"bytes")])
    monkeypatch.undo()

    assert raised.value.errno == errno.ENOSPC
    assert leftovers(fd_check) == []


def direct_or_skip(directory: str, direct: bool) -> None:
    if direct and not o_direct_opens(directory):
        pytest.skip("no O_DIRECT on this file system")


@pytest.mark.parametrize("direct", [True, False], ids=["o_direct", "buffered"])
@pytest.mark.parametrize("failure", [disk_full, broken], ids=["enospc", "exception"])
def test_a_failed_chunk_file_write_leaves_no_partial_file_nor_descriptor(
    monkeypatch, fd_check, direct, failure
):
    direct_or_skip(fd_check, direct)
    chunk = chunk_files.ChunkFiles((64, 64), np.dtype(np.float32), 0, direct=direct)
    path = os.path.join(fd_check, "t", "c", "0", "0")
    block = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    monkeypatch.setattr(os, "writev", first_run_only)
    monkeypatch.setattr(os, "write", writes_under(fd_check, os.write, failure))

    with pytest.raises((OSError, RuntimeError)) as raised:
        chunk.write(path, block)

    monkeypatch.undo()
    if failure is disk_full:
        assert isinstance(raised.value, OSError)
        assert raised.value.errno == errno.ENOSPC
    else:
        assert "injected failure" in str(raised.value)
    assert leftovers(fd_check) == []
    assert chunk.direct == direct  # a full disk does not refuse direct I/O


@pytest.mark.parametrize("direct", [True, False], ids=["o_direct", "buffered"])
def test_a_failed_chunk_file_read_leaves_no_descriptor(monkeypatch, fd_check, direct):
    direct_or_skip(fd_check, direct)
    chunk = chunk_files.ChunkFiles((64, 64), np.dtype(np.float32), 0, direct=direct)
    path = os.path.join(fd_check, "c", "0")
    chunk.write(path, np.ones((64, 64), np.float32))

    def failing_readv(fd: int, buffers: list[memoryview]) -> int:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "readv", failing_readv)
    with pytest.raises(OSError) as raised:
        chunk.read(path, np.zeros((64, 64), np.float32))
    monkeypatch.undo()

    assert raised.value.errno == errno.EIO
    assert leftovers(fd_check) == [os.path.join("c", "0")]


@pytest.fixture(params=[0o022, 0o002, 0o077], ids=lambda m: f"umask-{m:03o}")
def umask(request) -> Iterator[int]:
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def zarr_chunk_mode(directory: str) -> int:
    """The permissions of a chunk object zarr's LocalStore writes."""
    store = zarr.storage.LocalStore(os.path.join(directory, "by-zarr.zarr"))
    array = zarr.create_array(store, shape=(4,), chunks=(4,), dtype="f4")
    array[:] = 1.0
    return stat.S_IMODE(os.stat(os.path.join(store.root, "c", "0")).st_mode)


def mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_write_file_creates_files_as_zarr_does(tmp_path, umask):
    directory = str(tmp_path)
    expected = zarr_chunk_mode(directory)
    replaced = os.path.join(directory, "ours", "c", "0")
    linked = os.path.join(directory, "ours", "c", "1")

    files.write_file(replaced, [memoryview(b"bytes")])
    files.write_file(linked, [memoryview(b"bytes")], exclusive=True)

    assert expected == 0o666 & ~umask
    assert (oct(mode(replaced)), oct(mode(linked))) == (oct(expected),) * 2


@pytest.mark.parametrize("direct", [True, False], ids=["o_direct", "buffered"])
def test_chunk_files_are_created_as_zarr_does(tmp_path, umask, direct):
    directory = str(tmp_path)
    direct_or_skip(directory, direct)
    expected = zarr_chunk_mode(directory)
    chunk = chunk_files.ChunkFiles((64, 64), np.dtype(np.float32), 0, direct=direct)
    path = os.path.join(directory, "ours", "c", "0")

    chunk.write(path, np.ones((64, 64), np.float32))

    assert chunk.direct == direct
    assert oct(mode(path)) == oct(expected)
