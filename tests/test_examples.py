"""The ERA5 examples, run on tiny synthetic inputs, against xarray as the oracle."""

import argparse
import os
import runpy
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray
import zarr
from helpers import assert_matches_oracle, climatology_oracle, read_tree

from xarray_beam import synthetic

pytestmark = pytest.mark.slow  # whole example runs, with synthetic data

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "examples")
TINY = ["--hours", "48", "--resolution", "10"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def example_main(name: str):
    """The ``main`` function of ``examples/<name>.py``."""
    return runpy.run_path(os.path.join(EXAMPLES, f"{name}.py"))["main"]


def assert_is_a_real_png(path: str) -> None:
    import matplotlib.image

    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    assert os.path.getsize(path) > 10_000
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 10


@pytest.fixture
def tiny_input(tmp_path) -> str:
    path = str(tmp_path / "input" / "era5.zarr")
    synthetic.write_era5_like(path, hours=48, resolution=10.0)
    return path


def test_climatology_example_matches_xarray_on_its_synthetic_input(
    capsys, monkeypatch, tmp_path
):
    monkeypatch.chdir(tmp_path)
    out_dir = str(tmp_path / "out")
    result = example_main("era5_climatology")(["--output-dir", out_dir, *TINY])
    stdout = capsys.readouterr().out
    assert "runner: Beam's Python DirectRunner, in this process" in stdout
    source = xarray.open_zarr(os.path.join(out_dir, "era5_like.zarr")).compute()
    assert dict(source.sizes) == {"time": 48, "latitude": 19, "longitude": 36}
    assert result["output"] == os.path.join(out_dir, "climatology.zarr")
    actual = xarray.open_zarr(result["output"]).compute()
    assert_matches_oracle(actual, climatology_oracle(source))
    assert result["png"] == os.path.join(out_dir, "climatology_january_12utc.png")
    assert_is_a_real_png(result["png"])


def test_rechunk_example_makes_pencils_identical_to_its_input(
    capsys, monkeypatch, tmp_path
):
    monkeypatch.chdir(tmp_path)
    out_dir = str(tmp_path / "out")
    result = example_main("era5_rechunk")(["--output-dir", out_dir, *TINY])
    source = xarray.open_zarr(os.path.join(out_dir, "era5_like.zarr")).compute()
    assert result["output"] == os.path.join(out_dir, "pencils.zarr")
    xarray.testing.assert_identical(
        xarray.open_zarr(result["output"]).compute(), source
    )
    group = zarr.open_group(result["output"], mode="r")
    for name in synthetic.DEFAULT_VARIABLES:
        assert group[name].chunks == (48, 19, 36)


def test_examples_replace_their_default_output_on_every_run(
    capsys, monkeypatch, tmp_path
):
    monkeypatch.chdir(tmp_path)
    main = example_main("era5_rechunk")
    args = ["--output-dir", str(tmp_path), *TINY]
    main([*args, "--target-chunks", "latitude=5"])
    result = main([*args, "--target-chunks", "time=-1,longitude=12"])
    assert zarr.open_group(result["output"], mode="r")["2m_temperature"].chunks == (
        48,
        19,
        12,
    )


def test_climatology_example_refuses_an_existing_explicit_output_until_mode_w(
    capsys, monkeypatch, tmp_path, tiny_input
):
    monkeypatch.chdir(tmp_path)
    main = example_main("era5_climatology")
    output = str(tmp_path / "clim.zarr")
    args = ["--input", tiny_input, "--output", output, "--output-dir", str(tmp_path)]
    source = xarray.open_zarr(tiny_input).compute()

    main(args)
    assert_matches_oracle(
        xarray.open_zarr(output).compute(), climatology_oracle(source, "mean")
    )
    before = read_tree(output)
    with pytest.raises(FileExistsError):
        main([*args, "--stat", "max"])
    assert read_tree(output) == before

    main([*args, "--stat", "max", "--mode", "w"])
    assert_matches_oracle(
        xarray.open_zarr(output).compute(), climatology_oracle(source, "max")
    )


def test_rechunk_example_refuses_an_existing_explicit_output_until_mode_w(
    capsys, monkeypatch, tmp_path, tiny_input
):
    monkeypatch.chdir(tmp_path)
    main = example_main("era5_rechunk")
    output = str(tmp_path / "pencils.zarr")
    args = ["--input", tiny_input, "--output", output]
    source = xarray.open_zarr(tiny_input).compute()

    result = main([*args, "--target-chunks", "time=-1,latitude=5"])
    assert result["input"] == tiny_input
    assert result["output"] == output
    xarray.testing.assert_identical(xarray.open_zarr(output).compute(), source)
    before = read_tree(output)
    with pytest.raises(FileExistsError):
        main([*args, "--target-chunks", "time=-1,longitude=12"])
    assert read_tree(output) == before

    main([*args, "--target-chunks", "time=-1,longitude=12", "--mode", "w"])
    xarray.testing.assert_identical(xarray.open_zarr(output).compute(), source)
    assert zarr.open_group(output, mode="r")["2m_temperature"].chunks == (48, 19, 12)
    assert sorted(os.listdir(tmp_path)) == ["input", "pencils.zarr"]


def test_climatology_example_with_only_input_and_output_saves_its_map(
    capsys, monkeypatch, tmp_path, tiny_input
):
    # As the module docstring shows: --input and --output, no --output-dir.
    monkeypatch.chdir(tmp_path)
    output = str(tmp_path / "clim.zarr")
    result = example_main("era5_climatology")(
        ["--input", tiny_input, "--output", output]
    )
    assert os.path.exists(output)
    assert result["png"] is not None
    assert_is_a_real_png(result["png"])


def test_unknown_example_flags_go_to_beam(capsys, monkeypatch, tmp_path, tiny_input):
    monkeypatch.chdir(tmp_path)
    output = str(tmp_path / "pencils.zarr")
    result = example_main("era5_rechunk")(
        ["--input", tiny_input, "--output", output, "--direct_num_workers", "1"]
    )
    stdout = capsys.readouterr().out
    assert "runner: Beam's Python DirectRunner, in this process (the default" in stdout
    assert result["result"].state == "DONE"
    xarray.testing.assert_identical(
        xarray.open_zarr(output).compute(), xarray.open_zarr(tiny_input).compute()
    )


def test_example_flags_after_double_dash_go_to_beam(
    capsys, monkeypatch, tmp_path, tiny_input
):
    monkeypatch.chdir(tmp_path)
    output = str(tmp_path / "pencils.zarr")
    example_main("era5_rechunk")(
        ["--input", tiny_input, "--output", output, "--", "--runner", "DirectRunner"]
    )
    stdout = capsys.readouterr().out
    assert "runner: DirectRunner\n" in stdout
    assert "the default" not in stdout
    xarray.testing.assert_identical(
        xarray.open_zarr(output).compute(), xarray.open_zarr(tiny_input).compute()
    )


def test_an_unknown_runner_after_double_dash_reaches_beam(
    capsys, monkeypatch, tmp_path, tiny_input
):
    monkeypatch.chdir(tmp_path)
    output = str(tmp_path / "pencils.zarr")
    with pytest.raises(ValueError, match="NoSuchRunner"):
        example_main("era5_rechunk")(
            ["--input", tiny_input, "--output", output, "--", "--runner=NoSuchRunner"]
        )
    assert not os.path.exists(output)


@pytest.mark.slow  # a new Python process
def test_climatology_example_runs_as_a_script(tmp_path):
    completed = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, "era5_climatology.py"), *TINY],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "runner: Beam's Python DirectRunner, in this process" in completed.stdout
    assert "saved a map" in completed.stdout
    out_dir = tmp_path / "era5_output"
    assert_is_a_real_png(str(out_dir / "climatology_january_12utc.png"))
    source = xarray.open_zarr(out_dir / "era5_like.zarr").compute()
    assert_matches_oracle(
        xarray.open_zarr(out_dir / "climatology.zarr").compute(),
        climatology_oracle(source),
    )


def example_common() -> dict:
    """The globals of ``examples/_common.py``, the examples' plumbing."""
    return runpy.run_path(os.path.join(EXAMPLES, "_common.py"))


def test_default_synthetic_input_is_whole_calendar_months():
    common = example_common()
    parser = argparse.ArgumentParser()
    common["add_common_arguments"](parser)
    hours = parser.parse_args([]).hours
    # January and February 2020 (a leap year), and no hour of March.
    expected = pd.date_range("2020-01-01", "2020-03-01", freq="h", inclusive="left")
    assert hours == len(expected) == 60 * 24
    times = synthetic.era5_like(
        hours=hours, resolution=30.0, start=common["SYNTHETIC_START"]
    ).indexes["time"]
    assert times.equals(expected)
    assert sorted(set(times.month)) == [1, 2]


def test_climatology_example_reuses_its_synthetic_input_and_writes_the_same(
    capsys, monkeypatch, tmp_path
):
    monkeypatch.chdir(tmp_path)
    out_dir = str(tmp_path / "out")
    main = example_main("era5_climatology")
    first = main(["--output-dir", out_dir, *TINY])
    path = os.path.join(out_dir, "era5_like.zarr")
    assert f"wrote a synthetic ERA5-like input to {path}" in capsys.readouterr().out
    written_input = read_tree(path)
    written_output = xarray.open_zarr(first["output"]).compute()

    second = main(["--output-dir", out_dir, *TINY])
    stdout = capsys.readouterr().out
    assert f"reusing {path}" in stdout
    assert "wrote a synthetic" not in stdout
    assert read_tree(path) == written_input  # not one byte rewritten
    assert second["output"] == first["output"]
    xarray.testing.assert_identical(
        xarray.open_zarr(second["output"]).compute(), written_output
    )
    assert_matches_oracle(
        written_output, climatology_oracle(xarray.open_zarr(path).compute())
    )


@pytest.mark.parametrize(
    "existing, reason",
    [
        ({"hours": 24}, "replacing one of sizes"),
        ({"resolution": 30.0}, "replacing one of sizes"),
        ({"start": "2021-01-01"}, "replacing one with other 'time' values"),
        ({"seed": 1}, "replacing one with other '2m_temperature' values"),
        ({"chunks": {"time": 12}}, "'2m_temperature' is in other chunks"),
        ({"variables": ["2m_temperature"]}, "replacing one with variables"),
    ],
)
def test_a_synthetic_input_made_otherwise_is_not_reused(tmp_path, existing, reason):
    why_not_reused = example_common()["why_not_reused"]
    path = str(tmp_path / "era5_like.zarr")
    wanted = synthetic.era5_like(hours=48, resolution=10.0)
    options = {"hours": 48, "resolution": 10.0, **existing}
    synthetic.write_era5_like(path, **options)
    assert reason in why_not_reused(path, wanted)


def test_an_incomplete_or_absent_synthetic_input_is_not_reused(tmp_path):
    why_not_reused = example_common()["why_not_reused"]
    path = str(tmp_path / "era5_like.zarr")
    wanted = synthetic.era5_like(hours=48, resolution=10.0)
    assert why_not_reused(path, wanted) == "none there yet"
    synthetic.write_era5_like(path, hours=48, resolution=10.0)
    assert why_not_reused(path, wanted) is None
    # The record of the finished job comes last: without it, the writing
    # was interrupted.
    shutil.rmtree(os.path.join(path, "xarray_beam"))
    assert why_not_reused(path, wanted) == "replacing an incomplete one"


def test_an_input_given_with_the_hours_of_another_run_is_written_again(
    capsys, monkeypatch, tmp_path
):
    monkeypatch.chdir(tmp_path)
    common = example_common()
    args = argparse.Namespace(
        input=None, output_dir=str(tmp_path), hours=24, resolution=10.0
    )
    path = common["input_store"](args)
    args.hours = 48
    assert common["input_store"](args) == path
    stdout = capsys.readouterr().out
    assert "replacing one of sizes" in stdout
    assert xarray.open_zarr(path).sizes["time"] == 48
    assert common["input_store"](args) == path
    assert f"reusing {path}" in capsys.readouterr().out
