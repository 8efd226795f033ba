"""Progress: a bar on a terminal, plain lines in logs, and a summary that
counts the same bytes as the last progress line."""

import io
import os
import re
import time

import pytest
import xarray

from xarray_beam import synthetic
from xarray_beam.beam import metrics
from xarray_beam.model.units import format_bytes
from xarray_beam.programs import cli, progress

PLAIN_LINE = re.compile(r"^\d\d:\d\d:\d\d progress: \d+/\d+ chunks \(\d+%")


def wait_for(condition, timeout: float = 30.0) -> None:
    """Wait until ``condition()`` holds (a deadline against hanging, not a
    measurement)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.01)


def test_lines_style_prints_a_plain_line_every_interval():
    stream = io.StringIO()
    shown = progress.Progress(
        8, "test_l_chunks", "test_l_bytes", stream=stream, style="lines", interval=0.01
    )
    with shown:
        metrics.count("test_l_chunks", 3)
        metrics.count("test_l_bytes", 3 * 2**20)
        wait_for(lambda: stream.getvalue().count("\n") >= 2)
    text = stream.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert all(PLAIN_LINE.match(line) for line in lines), lines
    assert "3/8 chunks (37%), 3.0 MiB at" in lines[-1]
    assert "left" in lines[0]  # an estimate once work was done


def test_bar_style_redraws_one_line_and_ends_it():
    stream = io.StringIO()
    with progress.Progress(
        8,
        "test_b_chunks",
        "test_b_bytes",
        what="written",
        total_bytes=5 * 2**20,
        stream=stream,
        style="bar",
        interval=0.01,
    ):
        metrics.count("test_b_chunks", 4)
        metrics.count("test_b_bytes", 2_500_000)
        wait_for(lambda: "\r" in stream.getvalue())
    text = stream.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    final = text.rstrip("\n").split("\r")[-1]
    assert final.startswith("[##########..........] 4/8 chunks (50%), 2.4 MiB of ")
    assert "5.0 MiB written at" in final


def test_an_interrupted_bar_ends_its_line_and_adds_no_final_counts():
    stream = io.StringIO()
    with (
        pytest.raises(KeyboardInterrupt),
        progress.Progress(
            4,
            "test_i_chunks",
            "test_i_bytes",
            stream=stream,
            style="bar",
            interval=0.01,
        ),
    ):
        metrics.count("test_i_chunks")
        wait_for(lambda: "\r" in stream.getvalue())
        drawn = stream.getvalue()
        raise KeyboardInterrupt
    assert stream.getvalue().startswith(drawn)
    assert stream.getvalue()[len(drawn) :].strip("\r ") in ("\n", "")
    assert stream.getvalue().endswith("\n")


def test_auto_style_is_a_bar_on_a_terminal_and_lines_elsewhere(tmp_path):
    leader, follower = os.openpty()
    try:
        with open(follower, "w", closefd=False) as terminal:
            assert progress.choose_style("auto", terminal) == "bar"
    finally:
        os.close(leader)
        os.close(follower)
    with open(tmp_path / "log.txt", "w") as log:
        assert progress.choose_style("auto", log) == "lines"
        assert progress.choose_style("bar", log) == "bar"


def test_none_style_writes_nothing_but_still_counts():
    stream = io.StringIO()
    shown = progress.Progress(
        2, "test_n_chunks", "test_n_bytes", stream=stream, style="none"
    )
    with shown:
        metrics.count("test_n_chunks", 2)
        metrics.count("test_n_bytes", 10)
    assert stream.getvalue() == ""
    assert shown.final is not None
    assert (shown.final.done, shown.final.nbytes) == (2, 10)


def test_counts_outside_a_progress_do_not_reach_it():
    shown = progress.Progress(
        5, "test_o_chunks", "test_o_bytes", stream=io.StringIO(), style="none"
    )
    with shown:
        metrics.count("test_o_chunks", 2)
    metrics.count("test_o_chunks", 100)
    metrics.count("test_o_bytes", 10**9)
    assert shown.snapshot().done == 2 and shown.snapshot().nbytes == 0


def test_the_estimate_counts_only_work_done_in_this_run():
    # 20 units took 10 s (10 more were found done): 90 left take 45 s.
    now = progress.Snapshot(30, 10, 120, 0, None, 10.0)
    assert now.eta == pytest.approx(45.0)
    assert progress.Snapshot(10, 10, 120, 0, None, 1.0).eta is None
    assert now.counts("tasks") == "30/120 tasks (25%, 10 already done)"


@pytest.mark.parametrize("style", ["sideways", ""])
def test_an_unknown_style_is_refused(style):
    with pytest.raises(ValueError, match="progress style"):
        progress.choose_style(style, io.StringIO())


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("progress") / "era5.zarr")
    synthetic.write_era5_like(path, hours=24 * 10, resolution=15.0)
    return path


def last_progress_line(err: str) -> str:
    lines = [line for line in err.splitlines() if " progress: " in line]
    assert lines, err
    return lines[-1]


def test_rechunk_summary_counts_the_bytes_of_the_last_progress_line(
    capsys, tmp_path, store
):
    target = str(tmp_path / "pencils.zarr")
    argv = ["rechunk", store, target, "--target-chunks", "time=-1,latitude=3"]

    assert cli.main([*argv, "--progress", "lines"]) == 0

    captured = capsys.readouterr()
    final = last_progress_line(captured.err)
    data = xarray.open_zarr(target)
    written = format_bytes(sum(v.nbytes for v in data.data_vars.values()))
    assert f"{written} of {written} written to the output at " in final
    (summary,) = [line for line in captured.out.splitlines() if "rechunked" in line]
    amount, seconds, rate = re.search(
        r": (.+) written in (.+) \((.+)/s\)$", summary
    ).groups()
    assert amount == written
    assert f"at {rate}/s, {seconds} elapsed" in final


def test_climatology_summary_counts_the_bytes_of_the_last_progress_line(
    capsys, tmp_path, store
):
    target = str(tmp_path / "clim.zarr")

    code = cli.main(["climatology", store, target, "--progress", "lines"])

    assert code == 0
    captured = capsys.readouterr()
    final = last_progress_line(captured.err)
    (summary,) = [line for line in captured.out.splitlines() if "computed" in line]
    amount, rate = re.search(r": (.+) read in .+ \((.+)/s\)$", summary).groups()
    assert f"{amount} read from the input at {rate}/s" in final
    source = xarray.open_zarr(store)
    assert re.search(r"(\d+)/\1 chunks \(100%\)", final)
    # Every chunk read holds its variable and its coordinates.
    assert source.nbytes <= _bytes(amount) < 2 * source.nbytes


def _bytes(text: str) -> float:
    number, unit = text.split()
    return float(number) * {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[unit]


def test_progress_none_prints_no_progress(capsys, tmp_path, store):
    target = str(tmp_path / "pencils.zarr")
    argv = ["rechunk", store, target, "--target-chunks", "time=-1", "--progress"]

    assert cli.main([*argv, "none"]) == 0

    captured = capsys.readouterr()
    assert "progress" not in captured.err
    assert "written in" in captured.out  # the summary still counts the bytes


def test_progress_lines_come_at_the_hidden_interval(capsys, tmp_path, store):
    target = str(tmp_path / "clim.zarr")
    argv = ["climatology", store, target, "--read-chunks", "time=24"]

    code = cli.main([*argv, "--progress-interval", "0.001", "--num-threads", "1"])

    assert code == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if " progress: " in line]
    assert len(lines) >= 2  # at least one while running, and the last counts
    assert all(PLAIN_LINE.match(line) for line in lines)


def test_progress_interval_is_not_in_the_help(capsys):
    with pytest.raises(SystemExit):
        cli.main(["rechunk", "--help"])
    out = capsys.readouterr().out
    assert "--progress {auto,bar,lines,none}" in out
    assert "--progress-interval" not in out


def test_a_bar_fits_a_narrow_terminal_with_the_time_left():
    shown = progress.Progress(
        120,
        "test_w_chunks",
        "test_w_bytes",
        "tasks",
        what="written to the output",
        total_bytes=2**31,
        stream=io.StringIO(),
        style="bar",
    )
    with shown:
        metrics.count("test_w_chunks", 30)
        metrics.count("test_w_bytes", 2**29)
        wait_for(lambda: shown.snapshot().seconds > 0)
        wide, narrow = shown.line(), shown.line(width=79)
    assert len(wide) > 79
    assert len(narrow) <= 79
    assert narrow.startswith("[#####...............] 30/120 tasks, 512.0 MiB at ")
    assert narrow.endswith(" left")
    assert len(shown.line(width=30)) == 30
