"""The ERA5 examples, run on tiny synthetic inputs, against xarray as the oracle."""

import os
import runpy
import subprocess
import sys

import numpy as np
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
