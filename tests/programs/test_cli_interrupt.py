"""Ctrl-C during a job: exit status 130, at most three lines saying how far
the output got and how to finish, and ``--resume`` then finishes the job.

The command runs in its own process and gets SIGINT as a terminal's Ctrl-C
sends it (to its whole process group). So that it is surely still running
when the signal comes, one chunk object of the input is a named pipe: the
job writes everything else, then waits on that chunk until the test gives
its bytes back (as a slow disk or object store would).
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import xarray
from helpers import assert_matches_oracle, climatology_oracle

from xarray_beam.io import job_records
from xarray_beam.programs import cli, errors, jobs

SLOW_CHUNK = os.path.join("t2m", "c", "9", "0", "0")  # the last along time


@pytest.fixture
def source(tmp_path) -> str:
    """Two variables of 240 hours in 10 chunks along time, compressed (v3)."""
    path = str(tmp_path / "source.zarr")
    rng = np.random.default_rng(0)
    values = rng.normal(280, 10, (240, 6, 8)).astype("f4")
    xarray.Dataset(
        {
            "t2m": (("time", "y", "x"), values, {"units": "K"}),
            "msl": (("time", "y", "x"), values[::-1] * 360, {"units": "Pa"}),
        },
        coords={"time": pd.date_range("2020-01-01", periods=240, freq="h")},
    ).to_zarr(
        path,
        zarr_format=3,
        encoding={n: {"chunks": (24, 6, 8)} for n in ("t2m", "msl")},
    )
    return path


def slow_down(store: str) -> bytes:
    """Make one chunk object of ``store`` a named pipe; its bytes."""
    path = os.path.join(store, SLOW_CHUNK)
    with open(path, "rb") as f:
        data = f.read()
    os.remove(path)
    os.mkfifo(path)
    return data


def give_back(store: str, data: bytes) -> None:
    path = os.path.join(store, SLOW_CHUNK)
    os.remove(path)
    with open(path, "wb") as f:
        f.write(data)


def chunk_objects(store: str) -> int:
    """Chunk objects of the data variables (coordinates are written at setup)."""
    return sum(
        len(names)
        for name in ("t2m", "msl")
        for _, _, names in os.walk(os.path.join(store, name, "c"))
    )


def set_up(store: str) -> bool:
    record = job_records.read(store)
    return record is not None and record.setup_done


def wait_for(condition, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the job never got that far"
        time.sleep(0.02)


def _ctrl_c_delivered() -> None:
    """In the child: Ctrl-C acts as on a terminal. A test run started in the
    background by a non-interactive shell (as CI may start it) has SIGINT
    ignored, which children inherit and Python then respects."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt(argv: list[str], started) -> tuple[int, str]:
    """Run the command until ``started()``, press Ctrl-C; its exit code and
    stderr."""
    process = subprocess.Popen(
        [sys.executable, "-m", "xarray_beam", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, as in a shell
        preexec_fn=_ctrl_c_delivered,
    )
    try:
        wait_for(started, process)
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, err


@pytest.mark.slow  # a new Python process
def test_ctrl_c_during_a_rechunk_says_how_far_it_got_and_resume_finishes(
    capsys, tmp_path, source
):
    expected = xarray.open_zarr(source).compute()
    target = str(tmp_path / "pencils.zarr")
    argv = ["rechunk", source, target, "--target-chunks", "time=120,y=3"]
    data = slow_down(source)

    code, err = interrupt(argv, lambda: chunk_objects(target) > 0)

    lines = err.strip().splitlines()
    assert code == 130, err
    assert 1 <= len(lines) <= 3, err
    assert "Traceback" not in err
    assert lines[0].startswith("xarray-beam rechunk: interrupted: ")
    written = int(lines[0].split(": interrupted: ")[1].split(" of ")[0])
    assert f" of 8 chunks written to {target}" in lines[0]
    assert 1 <= written < 8  # the chunks of the slow region are not
    assert "--resume" in err

    give_back(source, data)
    assert cli.main([*argv, "--resume"]) == 0
    out = capsys.readouterr().out
    assert "resumed: " in out
    skipped, total = map(
        int, out.split("resumed: ")[1].split(" tasks")[0].split(" of ")
    )
    assert total == 4 and 1 <= skipped < total
    xarray.testing.assert_identical(xarray.open_zarr(target).compute(), expected)


@pytest.mark.slow  # a new Python process
def test_ctrl_c_during_a_climatology_says_how_far_it_got_and_resume_finishes(
    capsys, tmp_path, source
):
    expected = climatology_oracle(xarray.open_zarr(source).compute())
    target = str(tmp_path / "clim.zarr")
    argv = ["climatology", source, target, "--read-chunks", "time=24"]
    data = slow_down(source)

    # Once the output is set up, the pipeline only waits for the slow chunk.
    code, err = interrupt(argv, lambda: set_up(target))

    lines = err.strip().splitlines()
    assert code == 130, err
    assert 1 <= len(lines) <= 3, err
    assert "Traceback" not in err
    assert lines[0].startswith("xarray-beam climatology: interrupted: ")
    assert f" chunks written to {target}" in lines[0]
    written, expected_chunks = (
        lines[0].split(": interrupted: ")[1].split(" chunks")[0].split(" of ")
    )
    assert written == "0"  # a climatology writes when it has read everything
    assert "--resume" in err

    give_back(source, data)
    assert cli.main([*argv, "--resume"]) == 0
    assert_matches_oracle(xarray.open_zarr(target).compute(), expected)
    assert chunk_objects(target) == int(expected_chunks)
    assert not os.path.exists(target + ".climatology-temp")


@pytest.mark.parametrize(
    "state, expected",
    [
        (
            jobs.OutputState("p.zarr", 37, 120, "p.zarr.tmp", 3 * 2**30 // 2, True),
            [
                "x: interrupted: 37 of 120 chunks written to p.zarr; temporary data "
                "in p.zarr.tmp (1.5 GiB)",
                "run the same command with --resume to finish, or delete both to "
                "start afresh",
            ],
        ),
        (
            jobs.OutputState("p.zarr", 0, 8, exists=True),
            [
                "x: interrupted: 0 of 8 chunks written to p.zarr",
                "run the same command with --resume to finish, or delete p.zarr to "
                "start afresh",
            ],
        ),
        (
            jobs.OutputState("p.zarr", None, None, "t", 10),
            [
                "x: interrupted: nothing written to p.zarr yet; temporary data in t "
                "(10 B)",
                "run the same command with --resume to finish, or delete t to start "
                "afresh",
            ],
        ),
        (
            jobs.OutputState("p.zarr", exists=True),
            [
                "x: interrupted: the setup of p.zarr had begun",
                "run the same command with --resume to finish, or delete p.zarr to "
                "start afresh",
            ],
        ),
        (
            jobs.OutputState("p.zarr"),
            ["x: interrupted before anything was written"],
        ),
        (None, ["x: interrupted"]),
    ],
    ids=["target_and_temp", "target", "temp", "setup", "nothing", "unknown"],
)
def test_what_an_interrupted_command_says(state, expected):
    lines = errors.interrupted_lines("x", state)
    assert lines == expected
    assert len(lines) <= 3


def test_output_state_counts_the_chunk_objects_of_the_job_variables(tmp_path, source):
    target = str(tmp_path / "out.zarr")
    assert cli.main(["rechunk", source, target, "--target-chunks", "time=-1"]) == 0
    os.remove(os.path.join(target, "msl", "c", "0", "0", "0"))
    temp = tmp_path / "temp"
    temp.mkdir()
    (temp / "a").write_bytes(b"x" * 100)

    state = jobs.output_state(target, ["t2m", "msl"], str(temp))

    assert (state.written, state.expected, state.exists) == (1, 2, True)
    assert (state.temp, state.temp_bytes) == (str(temp), 100)
    assert jobs.output_state(str(tmp_path / "none.zarr"), ["t2m"], None) == (
        jobs.OutputState(str(tmp_path / "none.zarr"))
    )
