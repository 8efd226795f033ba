"""The documentation: complete API reference, pages whose examples run as
written, clean build."""

import collections
import pathlib
import re
import subprocess
import sys

import pytest
import xarray
import zarr
from helpers import assert_matches_oracle, climatology_oracle
from markdown_snippets import code_blocks, unbound_names

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


def test_api_reference_lists_every_public_name_once():
    names = _autosummary_names((DOCS / "api.md").read_text())
    repeated = [name for name, n in collections.Counter(names).items() if n > 1]
    assert repeated == []
    assert set(names) == set(xarray_beam.__all__)


# Every page's Python blocks: complete ones run, in page order in one
# namespace, where the getting-started command's store exists; blocks marked
# <!-- fragment --> are only compiled (see markdown_snippets).
PAGES_WITH_PYTHON = sorted(
    path.name for path in DOCS.glob("*.md") if code_blocks(path.read_text(), "python")
)
PAGES_WITH_PROGRAMS = sorted(
    name
    for name in PAGES_WITH_PYTHON
    if any(not b.fragment for b in code_blocks((DOCS / name).read_text(), "python"))
)
SOURCE = "era5_output/era5_like.zarr"
PENCILS = {"time": -1, "latitude": 23, "longitude": 45}
# What each store a page writes must hold, by its path: "source" (the same
# data as the source), "pencils" (the same data in PENCILS chunks),
# "climatology" (xarray's month x hour mean of the source) or "synthetic" (a
# synthetic ERA5-like store of its own). A page writing another store fails
# until its expected content is stated here.
EXPECTED_STORES = {
    "era5_output/copy.zarr": "source",
    "era5_output/pencils.zarr": "pencils",
    "era5_output/shuffled_pencils.zarr": "pencils",
    "era5_output/clim.zarr": "climatology",
    "era5_output/my_climatology.zarr": "climatology",
    "era5_output/era5_20mb.zarr": "synthetic",
}


def _stores_written(code: str) -> set[str]:
    """The stores under era5_output/ a page's code names, the source aside."""
    return set(re.findall(r"era5_output/[\w.-]+\.zarr", code)) - {SOURCE}


def _check_store(path: pathlib.Path, expected: str, source: xarray.Dataset) -> None:
    actual = xarray.open_zarr(path).compute()
    if expected in ("source", "pencils"):
        xarray.testing.assert_equal(actual, source)
    if expected == "pencils":
        group = zarr.open_group(str(path), mode="r")
        for name, variable in source.data_vars.items():
            assert group[name].chunks == tuple(
                source.sizes[d] if PENCILS[d] == -1 else PENCILS[d]
                for d in variable.dims
            ), (path, name)
    if expected == "climatology":
        assert_matches_oracle(actual, climatology_oracle(source))
    if expected == "synthetic":
        assert {"time", "latitude", "longitude"} <= set(actual.dims)
        assert "2m_temperature" in actual


@pytest.mark.parametrize("page", PAGES_WITH_PYTHON)
def test_docs_python_blocks_compile_and_only_marked_ones_are_fragments(page):
    for block in code_blocks((DOCS / page).read_text(), "python"):
        block.compiled(page)  # a SyntaxError names the page and line
        if not block.fragment:
            continue
        # A fragment needs something from outside itself, or it would run.
        assert unbound_names(block.code), f"{page}:{block.line} is complete"


@pytest.mark.parametrize("page", PAGES_WITH_PROGRAMS)
def test_docs_complete_python_blocks_run_and_write_what_they_say(
    page, tmp_path, monkeypatch
):
    blocks = [
        b for b in code_blocks((DOCS / page).read_text(), "python") if not b.fragment
    ]
    monkeypatch.chdir(tmp_path)
    # The getting-started command's store (two days instead of two months, a
    # coarser grid, the same chunks), as the example writes it.
    synthetic.write_era5_like(SOURCE, hours=48, resolution=7.5, mode="w")
    source = xarray.open_zarr(SOURCE).compute()
    namespace: dict = {}
    for block in blocks:
        exec(block.compiled(page), namespace)
    written = set().union(*(_stores_written(b.code) for b in blocks))
    assert written <= set(EXPECTED_STORES), f"say what {page} writes"
    for store in sorted(written):
        _check_store(tmp_path / store, EXPECTED_STORES[store], source)


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
