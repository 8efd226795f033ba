"""The ``xarray-beam`` command: subcommands, errors, Beam flags, progress."""

import argparse
import os
import shutil
import subprocess
import sys

import pytest
import xarray
import zarr
from apache_beam.options.pipeline_options import DirectOptions
from helpers import assert_matches_oracle, climatology_oracle, read_tree

from xarray_beam import synthetic
from xarray_beam.beam import runners
from xarray_beam.programs import cli, launch

DATA_VARS = tuple(synthetic.DEFAULT_VARIABLES)
SUBCOMMANDS = ("info", "plan", "rechunk", "climatology", "verify")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """40 days of hourly data on a 10 degree grid, in one-day pancakes (Zarr v3)."""
    path = str(tmp_path_factory.mktemp("cli") / "era5.zarr")
    synthetic.write_era5_like(path, hours=24 * 40, resolution=10.0)
    return path


@pytest.fixture(scope="module")
def source(store) -> xarray.Dataset:
    return xarray.open_zarr(store).compute()


@pytest.fixture
def store_copy(store, tmp_path) -> str:
    """A copy of the store that a test may damage."""
    path = str(tmp_path / "copy.zarr")
    shutil.copytree(store, path)
    return path


def run(argv: list[str]) -> int:
    """The exit code of the command run in this process (argparse exits too)."""
    try:
        return cli.main(argv)
    except SystemExit as exit_:
        return exit_.code


def assert_one_line_error(capsys, code: int) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("xarray-beam"), err
    assert "error" in lines[0], err
    return lines[0]


@pytest.mark.parametrize("subcommand", [None, *SUBCOMMANDS])
def test_help_exits_zero_and_shows_an_example(capsys, subcommand):
    argv = ["--help"] if subcommand is None else [subcommand, "--help"]
    code = run(argv)
    out = capsys.readouterr().out
    assert code == 0
    assert "example:" in out
    if subcommand is None:
        for name in SUBCOMMANDS:
            assert name in out


def test_plan_prints_the_plan_and_writes_nothing(capsys, monkeypatch, tmp_path, store):
    monkeypatch.chdir(tmp_path)
    parent = os.path.dirname(store)
    before = read_tree(parent)
    code = run(
        ["plan", store, "--target-chunks", "time=-1,latitude=5", "--max-mem", "10MB"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "pass" in out
    assert "peak" in out
    assert "(960, 5, 36)" in out
    assert read_tree(parent) == before
    assert os.listdir(tmp_path) == []


def test_rechunk_makes_an_identical_store_with_the_requested_chunks(
    capsys, tmp_path, store, source
):
    target = str(tmp_path / "pencils.zarr")
    code = run(
        [
            "rechunk",
            store,
            target,
            "--target-chunks",
            "time=-1,latitude=5",
            "--max-mem",
            "10MB",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "runner: Beam's Python DirectRunner, in this process (the default" in out
    xarray.testing.assert_identical(xarray.open_zarr(target).compute(), source)
    group = zarr.open_group(target, mode="r")
    for name in DATA_VARS:
        assert group[name].chunks == (960, 5, 36)


@pytest.mark.slow  # several pipelines
def test_rechunk_with_mode_w_replaces_an_existing_store(
    capsys, tmp_path, store, source
):
    target = str(tmp_path / "pencils.zarr")
    argv = ["rechunk", store, target, "--target-chunks", "latitude=5"]
    assert run(argv) == 0
    assert run([*argv[:-1], "time=-1,longitude=12", "--mode", "w"]) == 0
    xarray.testing.assert_identical(xarray.open_zarr(target).compute(), source)
    assert zarr.open_group(target, mode="r")["2m_temperature"].chunks == (960, 19, 12)


@pytest.mark.parametrize("stat", ["mean", "max"])
def test_climatology_by_month_and_hour_matches_xarray_groupby(
    capsys, tmp_path, store, source, stat
):
    target = str(tmp_path / "clim.zarr")
    code = run(
        [
            "climatology",
            store,
            target,
            "--by",
            "month,hour",
            "--stat",
            stat,
            "--read-chunks",
            "time=240",
        ]
    )
    assert code == 0, capsys.readouterr().err
    actual = xarray.open_zarr(target).compute()
    assert_matches_oracle(actual, climatology_oracle(source, stat))
    assert not os.path.exists(target + ".climatology-temp")


def test_verify_reports_a_complete_store(capsys, store):
    code = run(["verify", store])
    out = capsys.readouterr().out
    assert code == 0
    assert "complete" in out
    assert "INCOMPLETE" not in out


def test_verify_names_the_variable_and_range_of_a_missing_chunk(capsys, store_copy):
    os.remove(os.path.join(store_copy, "2m_temperature", "c", "3", "0", "0"))
    code = run(["verify", store_copy])
    out = capsys.readouterr().out
    assert code == 1
    assert "INCOMPLETE" in out
    (line,) = [line for line in out.splitlines() if "missing:" in line]
    assert "2m_temperature" in line
    assert "1 of 40 chunks missing" in line
    assert "time[72:96] x latitude[0:19] x longitude[0:36]" in line


def test_verify_finds_a_missing_chunk_in_a_zarr_v2_store(capsys, tmp_path):
    path = str(tmp_path / "v2.zarr")
    synthetic.write_era5_like(path, hours=48, resolution=10.0, zarr_format=2)
    os.remove(os.path.join(path, "mean_sea_level_pressure", "1.0.0"))
    code = run(["verify", path])
    out = capsys.readouterr().out
    assert code == 1
    assert "mean_sea_level_pressure: 1 of 2 chunks missing" in out
    assert "time[24:48] x latitude[0:19] x longitude[0:36]" in out


def test_verify_decode_catches_a_corrupted_chunk(capsys, store_copy):
    with open(
        os.path.join(store_copy, "2m_temperature", "c", "5", "0", "0"), "wb"
    ) as f:
        f.write(b"this is not a compressed chunk" * 10)
    assert run(["verify", store_copy]) == 0  # the object exists
    capsys.readouterr()
    code = run(["verify", store_copy, "--decode"])
    out = capsys.readouterr().out
    assert code == 1
    (line,) = [line for line in out.splitlines() if "do not decode" in line]
    assert "2m_temperature" in line
    assert "time[120:144]" in line


BAD_INPUTS = {
    "unknown_subcommand": ["transmogrify", "{src}"],
    "no_subcommand": [],
    "missing_target": ["rechunk", "{src}", "--target-chunks", "time=-1"],
    "missing_target_chunks": ["rechunk", "{src}", "{out}"],
    "chunk_size_not_a_number": [
        "rechunk",
        "{src}",
        "{out}",
        "--target-chunks",
        "time=abc",
    ],
    "chunk_size_zero": ["rechunk", "{src}", "{out}", "--target-chunks", "time=0"],
    "chunk_spec_without_size": ["plan", "{src}", "--target-chunks", "time"],
    "max_mem_not_a_size": [
        "rechunk",
        "{src}",
        "{out}",
        "--target-chunks",
        "time=-1",
        "--max-mem",
        "lots",
    ],
    "max_mem_too_large_to_count": [
        "plan",
        "{src}",
        "--target-chunks",
        "time=-1",
        "--max-mem",
        "1e400",
    ],
    "unknown_dim_in_plan": ["plan", "{src}", "--target-chunks", "level=3"],
    "unknown_dim_in_rechunk": [
        "rechunk",
        "{src}",
        "{out}",
        "--target-chunks",
        "level=3",
    ],
    "group_by_week": ["climatology", "{src}", "{out}", "--by", "week"],
    "unknown_stat": ["climatology", "{src}", "{out}", "--stat", "median"],
    "storage_option_without_value": ["info", "{src}", "--storage-option", "novalue"],
    "missing_store_info": ["info", "{missing}"],
    "missing_store_plan": ["plan", "{missing}", "--target-chunks", "time=-1"],
    "missing_store_rechunk": [
        "rechunk",
        "{missing}",
        "{out}",
        "--target-chunks",
        "time=-1",
    ],
    "missing_store_climatology": ["climatology", "{missing}", "{out}"],
    "missing_store_verify": ["verify", "{missing}"],
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gives_one_error_line_and_exit_code_2(capsys, tmp_path, store, case):
    paths = {
        "src": store,
        "out": str(tmp_path / "out.zarr"),
        "missing": str(tmp_path / "nothing-here.zarr"),
    }
    code = run([arg.format(**paths) for arg in BAD_INPUTS[case]])
    assert_one_line_error(capsys, code)
    assert not os.path.exists(paths["out"])


@pytest.mark.parametrize(
    "argv",
    [
        ["rechunk", "{src}", "{out}", "--target-chunks", "time=-1"],
        ["climatology", "{src}", "{out}"],
    ],
    ids=["rechunk", "climatology"],
)
def test_existing_output_is_refused_and_left_unchanged(capsys, tmp_path, store, argv):
    out = str(tmp_path / "existing.zarr")
    synthetic.write_era5_like(out, hours=24, resolution=30.0)
    before = read_tree(tmp_path)
    code = run([arg.format(src=store, out=out) for arg in argv])
    line = assert_one_line_error(capsys, code)
    assert "already exists" in line
    assert read_tree(tmp_path) == before


@pytest.mark.slow
def test_beam_flags_after_double_dash_choose_the_runner_and_its_mode(
    capsys, tmp_path, store, source
):
    target = str(tmp_path / "pencils.zarr")
    code = run(
        [
            "rechunk",
            store,
            target,
            "--target-chunks",
            "time=-1,latitude=5",
            "--",
            "--runner",
            "DirectRunner",
            "--direct_running_mode",
            "multi_processing",
            "--direct_num_workers",
            "2",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "runner: DirectRunner\n" in out
    assert "the default" not in out
    xarray.testing.assert_identical(xarray.open_zarr(target).compute(), source)
    assert zarr.open_group(target, mode="r")["2m_temperature"].chunks == (960, 5, 36)


def test_an_unknown_runner_after_double_dash_is_rejected_by_beam(
    capsys, tmp_path, store
):
    target = str(tmp_path / "pencils.zarr")
    code = run(
        ["rechunk", store, target, "--target-chunks", "time=-1"]
        + ["--", "--runner=NoSuchRunner"]
    )
    line = assert_one_line_error(capsys, code)
    assert "NoSuchRunner" in line
    assert not os.path.exists(target)


@pytest.mark.slow  # a new Python process
def test_module_entry_point_shows_help():
    completed = subprocess.run(
        [sys.executable, "-m", "xarray_beam", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "example:" in completed.stdout
    for name in SUBCOMMANDS:
        assert name in completed.stdout


def console_script() -> str:
    return os.path.join(os.path.dirname(sys.executable), "xarray-beam")


@pytest.mark.slow  # a new Python process
def test_console_script_verifies_a_store(store):
    completed = subprocess.run(
        [console_script(), "verify", store], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert "complete" in completed.stdout


@pytest.mark.slow  # a new Python process
def test_console_script_reports_a_missing_store_in_one_line(tmp_path):
    missing = str(tmp_path / "nothing-here.zarr")
    completed = subprocess.run(
        [console_script(), "verify", missing],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("xarray-beam verify: error:")
    assert missing in lines[0]


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "time=-1,latitude=23,longitude=45",
            {"time": -1, "latitude": 23, "longitude": 45},
        ),
        (" time = 5 , ", {"time": 5}),
        ("latitude=1", {"latitude": 1}),
    ],
)
def test_parse_chunks_reads_dim_size_pairs(text, expected):
    assert launch.parse_chunks(text) == expected


@pytest.mark.parametrize(
    "text", ["time=abc", "time=0", "time=-2", "time=1.5", "time", "=5", "", " , "]
)
def test_parse_chunks_rejects_bad_specs(text):
    with pytest.raises(argparse.ArgumentTypeError):
        launch.parse_chunks(text)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("256MB", 256 * 10**6),
        ("256MiB", 256 * 2**20),
        ("1GiB", 2**30),
        ("1.5GB", 1_500_000_000),
        ("5e8", 500_000_000),
        ("100", 100),
        ("2 kib", 2048),
        (" 10b ", 10),
        ("3TB", 3 * 10**12),
    ],
)
def test_parse_bytes_reads_sizes_with_units(text, expected):
    assert launch.parse_bytes(text) == expected


@pytest.mark.parametrize(
    "text", ["lots", "", "-5MB", "0", "0MB", "12XB", "1..2MB", "MB", "0.5", "1e400"]
)
def test_parse_bytes_rejects_what_is_not_a_positive_size(text):
    with pytest.raises(argparse.ArgumentTypeError):
        launch.parse_bytes(text)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("month,hour", ("month", "hour")),
        (" season ", ("season",)),
        ("a,,b,", ("a", "b")),
    ],
)
def test_parse_names_splits_on_commas(text, expected):
    assert launch.parse_names(text) == expected


@pytest.mark.parametrize("text", ["", ",", " , "])
def test_parse_names_rejects_no_names(text):
    with pytest.raises(argparse.ArgumentTypeError):
        launch.parse_names(text)


def test_parse_storage_options_reads_key_value_pairs():
    assert launch.parse_storage_options(["token=anon", "endpoint=a=b"]) == {
        "token": "anon",
        "endpoint": "a=b",
    }
    assert launch.parse_storage_options(["empty="]) == {"empty": ""}


@pytest.mark.parametrize("pairs", [None, []])
def test_parse_storage_options_without_pairs_is_none(pairs):
    assert launch.parse_storage_options(pairs) is None


@pytest.mark.parametrize("pair", ["novalue", "=value"])
def test_parse_storage_options_rejects_a_pair_without_key_or_equals(pair):
    with pytest.raises(argparse.ArgumentTypeError):
        launch.parse_storage_options(["token=anon", pair])


def test_pipeline_options_default_to_the_in_process_runner():
    options, runner = launch.pipeline_options([])
    assert runner == runners.IN_PROCESS_RUNNER
    assert launch.runs_in_process(options)


def test_beams_direct_runner_is_not_taken_to_run_in_this_process():
    # Beam's DirectRunner may hand the pipeline to the Prism runner.
    options, runner = launch.pipeline_options(["--runner", "DirectRunner"])
    assert runner == "DirectRunner"
    assert not launch.runs_in_process(options)


@pytest.mark.parametrize(
    "flags", [["--runner=PrismRunner"], ["--runner", "PrismRunner"]]
)
def test_pipeline_options_leave_an_explicit_runner_alone(flags):
    options, runner = launch.pipeline_options(flags)
    assert runner == "PrismRunner"
    assert not launch.runs_in_process(options)


def test_pipeline_options_keep_the_other_beam_flags():
    options, runner = launch.pipeline_options(
        ["--direct_running_mode", "multi_processing", "--direct_num_workers", "3"]
    )
    assert runner == runners.IN_PROCESS_RUNNER
    direct = options.view_as(DirectOptions)
    assert direct.direct_running_mode == "multi_processing"
    assert direct.direct_num_workers == 3
    assert not launch.runs_in_process(options)


@pytest.mark.slow  # several pipelines
def test_climatology_resume_restores_a_lost_chunk(capsys, tmp_path, store):
    target = str(tmp_path / "clim.zarr")
    args = ["climatology", store, target, "--by", "month,hour"]
    assert run(args) == 0, capsys.readouterr().err
    complete = read_tree(target)
    lost = os.path.join("2m_temperature", "c", "1", "0", "0", "0")
    os.remove(os.path.join(target, lost))
    assert run(["verify", target]) == 1
    assert run(args) != 0  # without --resume the existing output is refused
    assert "already exists" in capsys.readouterr().err
    assert run([*args, "--resume"]) == 0, capsys.readouterr().err
    (resumed,) = [
        line for line in capsys.readouterr().out.splitlines() if "resumed" in line
    ]
    chunks = len(os.listdir(os.path.join(target, "2m_temperature", "c")))
    total = chunks * len(DATA_VARS)
    assert resumed == (
        f"resumed: {total - 1} of {total} output chunks were already written "
        f"(not written again)"
    )
    assert run(["verify", target]) == 0
    assert read_tree(target) == complete


@pytest.mark.slow  # several pipelines
def test_rechunk_resume_restores_a_lost_chunk(capsys, tmp_path, store):
    target = str(tmp_path / "pencils.zarr")
    args = ["rechunk", store, target, "--target-chunks", "time=-1,latitude=5"]
    assert run(args) == 0, capsys.readouterr().err
    complete = read_tree(target)
    os.remove(os.path.join(target, "2m_temperature", "c", "0", "1", "0"))
    assert run(["verify", target]) == 1
    capsys.readouterr()
    assert run([*args, "--resume"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    (resumed,) = [line for line in out.splitlines() if "resumed" in line]
    skipped, total = map(int, resumed.split()[1:4:2])
    # One task writes the lost chunk again; the others were done.
    assert resumed.endswith("tasks were already done (skipped)")
    assert skipped == total - 1
    assert read_tree(target) == complete
