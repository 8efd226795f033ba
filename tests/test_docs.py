"""The documentation: complete API reference, runnable guide, clean build."""

import collections
import pathlib
import re
import subprocess
import sys

import pytest

import xarray_beam
from xarray_beam import synthetic

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
FIGURES = DOCS / "figures.py"
BUILD_TIMEOUT_SECONDS = 300


def _autosummary_names(markdown: str) -> list[str]:
    """The names listed in the autosummary tables of a Markdown page."""
    names = []
    for block in re.findall(r"\.\. autosummary::\n(.*?)```", markdown, re.S):
        names += [
            line.strip()
            for line in block.splitlines()
            if line.strip() and not line.strip().startswith(":")
        ]
    return names


def _python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, re.S)


def test_api_reference_lists_every_public_name_once():
    names = _autosummary_names((DOCS / "api.md").read_text())
    repeated = [name for name, n in collections.Counter(names).items() if n > 1]
    assert repeated == []
    assert set(names) == set(xarray_beam.__all__)


def test_getting_started_pipeline_runs_on_the_main_commands_store(
    tmp_path, monkeypatch
):
    (code,) = _python_blocks((DOCS / "getting-started.md").read_text())
    monkeypatch.chdir(tmp_path)
    # The same layout as the README's main command writes, smaller.
    synthetic.write_era5_like(
        "era5_output/era5_like.zarr", hours=48, resolution=10.0, chunks={"time": 24}
    )
    exec(compile(code, "getting-started.md", "exec"), {})
    climatology = xarray_beam.open_zarr("era5_output/my_climatology.zarr")[0]
    assert {"month", "hour", "latitude", "longitude"} <= set(climatology.dims)


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        args,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
    )


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
    # Pages show figures that docs/figures.py draws, when that script exists.
    if FIGURES.exists():
        figures = _run(
            [sys.executable, str(FIGURES), "--output", str(DOCS / "_static/figures")]
        )
        assert figures.returncode == 0, figures.stderr
    html = tmp_path / "html"
    build = _run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html"]
        + [str(DOCS), str(html)]
    )
    assert build.returncode == 0, build.stderr
    assert (html / "index.html").exists()
    assert (html / "api.html").exists()
    assert (html / "generated" / "xarray_beam.Dataset.html").exists()
