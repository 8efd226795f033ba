"""The README's main command: examples/quickstart.py, on a tiny store."""

import pathlib
import runpy
import subprocess
import sys

import xarray

from xarray_beam import synthetic

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"


def test_quickstart_copies_the_synthetic_store_exactly(tmp_path, capsys):
    quickstart = runpy.run_path(str(EXAMPLES / "quickstart.py"))
    quickstart["main"](
        ["--output-dir", str(tmp_path), "--hours", "30", "--resolution", "10"]
    )
    out = capsys.readouterr().out
    assert "copied to" in out and "verified" in out
    expected = synthetic.era5_like(hours=30, resolution=10.0).compute()
    copy = xarray.open_zarr(tmp_path / "era5_like_copy.zarr").compute()
    xarray.testing.assert_allclose(copy, expected)
    xarray.testing.assert_identical(
        copy, xarray.open_zarr(tmp_path / "era5_like.zarr").compute()
    )


def test_quickstart_runs_as_a_script_with_beam_flags(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "quickstart.py"),
            "--output-dir",
            str(tmp_path),
            "--hours",
            "24",
            "--resolution",
            "10",
            "--",
            "--runner",
            "DirectRunner",
            "--direct_running_mode",
            "multi_processing",
            "--direct_num_workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "verified" in result.stdout
