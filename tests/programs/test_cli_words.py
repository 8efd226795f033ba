"""The command's errors speak in its own words, early: flags instead of the
Python API's arguments, "not a Zarr store", suggestions for near misses, and
the output checked before anything is printed; sizes read and printed in one
unit system, and the plan explains the worker baseline."""

import os

import pytest
from helpers import read_tree

from xarray_beam import synthetic
from xarray_beam.programs import checks, cli, errors, launch

PYTHON_WORDS = ("mode='w'", "mode='r+'", "resume=True", "max_mem", "target_chunks")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """Four days of hourly data on a 30 degree grid (Zarr v3)."""
    path = str(tmp_path_factory.mktemp("words") / "era5.zarr")
    synthetic.write_era5_like(path, hours=96, resolution=30.0)
    return path


def run(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)


def one_error_line(capsys, code: int, expected_code: int = 2) -> str:
    captured = capsys.readouterr()
    assert code == expected_code, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    for words in PYTHON_WORDS:
        assert words not in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("command", ["rechunk", "climatology"])
def test_an_existing_output_is_refused_naming_the_flags_before_any_plan(
    capsys, tmp_path, store, command
):
    out = str(tmp_path / "out.zarr")
    synthetic.write_era5_like(out, hours=24, resolution=30.0)
    before = read_tree(tmp_path)
    argv = [command, store, out]
    if command == "rechunk":
        argv += ["--target-chunks", "time=-1"]

    code = run(argv)

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""  # no runner line, no plan
    (line,) = captured.err.strip().splitlines()
    assert line.startswith(f"xarray-beam {command}: error: the output {out}")
    assert "already exists" in line
    assert "--mode w" in line and "--resume" in line
    assert "mode='" not in line
    assert read_tree(tmp_path) == before


def test_an_output_that_is_the_input_is_refused_before_any_plan(capsys, store):
    code = run(["rechunk", store, store, "--target-chunks", "time=-1", "--mode", "w"])

    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert "destroy data the job reads" in captured.err


def test_an_output_holding_other_data_is_refused_even_with_mode_w(
    capsys, tmp_path, store
):
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"not zarr")

    code = run(
        ["rechunk", store, str(other), "--target-chunks", "time=-1", "--mode", "w"]
    )

    line = one_error_line(capsys, code)
    assert f"{other} already exists and is not a Zarr store" in line
    assert (other / "cat.jpg").read_bytes() == b"not zarr"


def test_resume_with_mode_w_is_refused_as_a_contradiction(capsys, tmp_path, store):
    out = str(tmp_path / "out.zarr")
    argv = ["rechunk", store, out, "--target-chunks", "time=-1"]

    code = run([*argv, "--resume", "--mode", "w"])

    line = one_error_line(capsys, code)
    assert "--resume" in line and "--mode w" in line
    assert not os.path.exists(out)


def test_mode_r_plus_without_an_output_store_names_the_flag(capsys, tmp_path, store):
    out = str(tmp_path / "out.zarr")

    code = run(["climatology", store, out, "--mode", "r+"])

    line = one_error_line(capsys, code)
    assert (
        f"--mode r+ writes into an existing Zarr store, but there is none at {out}"
        in line
    )
    assert not os.path.exists(out)


@pytest.mark.parametrize(
    "argv",
    [
        ["info", "{path}"],
        ["verify", "{path}"],
        ["plan", "{path}", "--target-chunks", "time=-1"],
        ["rechunk", "{path}", "{out}", "--target-chunks", "time=-1"],
        ["climatology", "{path}", "{out}"],
    ],
    ids=lambda argv: argv[0],
)
def test_a_directory_that_is_not_zarr_is_named_as_such(capsys, tmp_path, argv):
    path = tmp_path / "data"
    path.mkdir()
    (path / "readme.txt").write_text("netCDF files live elsewhere")
    out = str(tmp_path / "out.zarr")

    code = run([a.format(path=path, out=out) for a in argv])

    line = one_error_line(capsys, code)
    assert f"error: not a Zarr store: {path}" in line
    assert "No group found" not in line
    assert not os.path.exists(out)


@pytest.mark.parametrize("command", ["info", "verify", "plan", "rechunk"])
def test_a_missing_input_is_no_such_store(capsys, tmp_path, command):
    missing = str(tmp_path / "nothing-here.zarr")
    argv = [command, missing]
    if command == "rechunk":
        argv.append(str(tmp_path / "out.zarr"))
    if command in ("plan", "rechunk"):
        argv += ["--target-chunks", "time=-1"]

    code = run(argv)

    line = one_error_line(capsys, code)
    assert line.endswith(f"error: no such store: {missing}")


@pytest.mark.parametrize(
    "argv, expected",
    [
        (
            ["plan", "{src}", "--target-chunks", "tme=-1"],
            "--target-chunks: unknown dimension 'tme' (did you mean 'time'?); the "
            "dimensions are time, latitude, longitude",
        ),
        (
            ["rechunk", "{src}", "{out}", "--target-chunks", "time=-1,lat=2"],
            "--target-chunks: unknown dimension 'lat' (did you mean 'latitude'?)",
        ),
        (
            [
                "plan",
                "{src}",
                "--target-chunks",
                "time=-1",
                "--target-shards",
                "Time=-1",
            ],
            "--target-shards: unknown dimension 'Time' (did you mean 'time'?)",
        ),
        (
            ["climatology", "{src}", "{out}", "--read-chunks", "tiem=24"],
            "--read-chunks: unknown dimension 'tiem' (did you mean 'time'?)",
        ),
        (
            ["climatology", "{src}", "{out}", "--variables", "2m_temprature"],
            "--variables: unknown data variable '2m_temprature' (did you mean "
            "'2m_temperature'?)",
        ),
        (
            ["climatology", "{src}", "{out}", "--by", "month,huor"],
            "argument --by: unknown grouping 'huor' (did you mean 'hour'?); choose "
            "from hour, month, dayofyear, season",
        ),
        (
            ["climatology", "{src}", "{out}", "--stat", "meen"],
            "argument --stat: unknown statistic 'meen' (did you mean 'mean'?)",
        ),
        (
            ["plan", "{src}", "--target-chunks", "level=3"],
            "--target-chunks: unknown dimension 'level'; the dimensions are time, "
            "latitude, longitude",
        ),
    ],
    ids=[
        "dim",
        "dim_prefix",
        "shard_case",
        "read_chunks",
        "variable",
        "by",
        "stat",
        "far",
    ],
)
def test_unknown_names_get_the_likely_one_suggested(
    capsys, tmp_path, store, argv, expected
):
    out = str(tmp_path / "out.zarr")

    code = run([a.format(src=store, out=out) for a in argv])

    line = one_error_line(capsys, code)
    assert expected in line
    if "did you mean" not in expected:
        assert "did you mean" not in line
    assert not os.path.exists(out)


def test_a_variable_subset_gives_a_climatology_of_just_those(capsys, tmp_path, store):
    import xarray

    out = str(tmp_path / "clim.zarr")

    code = run(["climatology", store, out, "--variables", "2m_temperature"])

    assert code == 0, capsys.readouterr().err
    assert list(xarray.open_zarr(out).data_vars) == ["2m_temperature"]


@pytest.mark.parametrize(
    "name, choices, expected",
    [
        ("Latitude", ["latitude", "longitude"], "latitude"),
        ("lon", ["latitude", "longitude"], "longitude"),
        ("l", ["latitude", "longitude"], None),  # begins both: no guess
        ("tmie", ["time", "member"], "time"),
        ("zzz", ["time"], None),
    ],
)
def test_suggestion_picks_case_then_prefix_then_closest(name, choices, expected):
    assert checks.suggestion(name, choices) == expected


@pytest.mark.parametrize(
    "python, flags",
    [
        (
            "a Zarr store already exists at x; pass mode='w' to overwrite it or "
            "mode='r+' to write into it",
            "a Zarr store already exists at x; pass --mode w to overwrite it or "
            "--mode r+ to write into it",
        ),
        ("resume=True continues writing", "--resume continues writing"),
        ("raise max_mem or use smaller", "raise --max-mem or use smaller"),
        ("temp_store /a overlaps", "--temp-store /a overlaps"),
        ("a max_memory_of x", "a max_memory_of x"),  # whole words only
    ],
)
def test_python_argument_names_become_flags(python, flags):
    assert errors.in_flag_words(python) == flags


@pytest.mark.parametrize(
    "text, nbytes, echo",
    [
        ("1G", 10**9, "read --max-mem 1G as 953.7 MiB (kB, MB, GB: powers of 1000"),
        ("256M", 256 * 10**6, "read --max-mem 256M as 244.1 MiB (kB, MB, GB"),
        ("1GB", 10**9, "read --max-mem 1GB as 953.7 MiB"),
        ("268435456", 2**28, "read --max-mem 268435456 as 256.0 MiB"),
        ("1GiB", 2**30, None),
        ("256 mib", 2**28, None),
    ],
)
def test_sizes_accept_dask_units_and_say_how_decimal_ones_were_read(text, nbytes, echo):
    size = launch.Size.parse(text)
    assert size.nbytes == nbytes
    said = size.echo("--max-mem")
    if echo is None:
        assert said is None
    else:
        assert said is not None and said.startswith(echo)
        assert ("powers of 1000" in said) == (text[-1].isalpha())


def test_plan_reads_decimal_max_mem_explains_the_baseline_and_warns_once(capsys, store):
    code = run(
        ["plan", store, "--target-chunks", "time=-1,latitude=2", "--max-mem", "256M"]
    )

    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == (
        "read --max-mem 256M as 244.1 MiB (kB, MB, GB: powers of 1000; KiB, MiB, "
        "GiB: of 1024)"
    )
    assert "max_mem 244.1 MiB" in out
    assert out.count("projected peak") == 1
    assert "The worker baseline, 352.0 MiB, is the memory of a worker process" in out
    (note,) = [line for line in lines if line.startswith("note:")]
    assert "more than max_mem (244.1 MiB)" in note
    for unit in (" MB", " GB", " kB"):
        assert unit not in "\n".join(lines[1:])  # binary units only


def test_plan_with_room_for_the_baseline_does_not_warn(capsys, store):
    code = run(["plan", store, "--target-chunks", "time=-1", "--max-mem", "2GiB"])

    out = capsys.readouterr().out
    assert code == 0
    assert "read --max-mem" not in out  # binary units need no echo
    assert "note:" not in out
    assert out.count("projected peak") == 1


def test_a_failing_resume_of_another_job_is_reported_in_flag_words(
    capsys, tmp_path, store
):
    out = str(tmp_path / "clim.zarr")
    assert run(["climatology", store, out, "--stat", "mean"]) == 0
    capsys.readouterr()

    code = run(["climatology", store, out, "--stat", "max", "--resume"])

    line = one_error_line(capsys, code, expected_code=1)
    assert "another job" in line


def test_a_climatology_of_a_store_without_time_is_refused_before_anything(
    capsys, tmp_path
):
    import numpy as np
    import xarray

    path = str(tmp_path / "static.zarr")
    xarray.Dataset({"lsm": (("y", "x"), np.ones((3, 4), "f4"))}).to_zarr(path)
    out = str(tmp_path / "clim.zarr")

    code = run(["climatology", path, out])

    line = one_error_line(capsys, code)
    assert "groups along the dimension 'time'" in line and "y, x" in line
    assert not os.path.exists(out)
