"""Names and paths: nothing is written or deleted outside the given stores.

Variable and dimension names that would escape the store (or nest groups in
it) are refused when a pipeline is built, before anything is written;
``mode='w'`` never deletes what is not a Zarr store; temporary stores are only
deleted after success, and only if they are xarray_beam's own.
"""

import os
import re

import apache_beam as beam
import numpy as np
import pytest
import xarray
import zarr
import zarr.storage
from helpers import FREE_PASSES, read_tree

import xarray_beam as xb
from xarray_beam.beam import rechunk_zarr
from xarray_beam.io import temp_stores
from xarray_beam.model.zarr_layout import check_names

ESCAPING_NAMES = ["../evil", "/abs", "a/b", "..", "", "a\\b", "a\x00b"]
OTHER_BAD_NAMES = [".", "...", "a\nb", "zarr.json", ".zattrs", ".ZGROUP", 3]


def _named(kind: str, name) -> xarray.Dataset:
    """A tiny dataset with one variable or one dimension called ``name``."""
    if kind == "variable":
        return xarray.Dataset({name: (("x",), np.arange(4.0))})
    return xarray.Dataset({"t": ((name,), np.arange(4.0))})


def _listing(path) -> list[str]:
    """Every file and directory below ``path``, relative to it."""
    found = []
    for root, dirs, files in os.walk(path):
        found += [os.path.relpath(os.path.join(root, n), path) for n in dirs + files]
    return sorted(found)


def _names_it(kind: str, name) -> str:
    return f"{kind} name {re.escape(repr(name))}"


@pytest.mark.parametrize("kind", ["variable", "dimension"])
@pytest.mark.parametrize("name", ESCAPING_NAMES + OTHER_BAD_NAMES, ids=repr)
def test_check_names_rejects_unsafe_names_saying_which(kind, name):
    with pytest.raises(ValueError, match=_names_it(kind, name)):
        check_names(_named(kind, name))


def test_check_names_says_why_a_name_is_refused():
    with pytest.raises(ValueError, match="would escape the store.*'/'"):
        check_names(_named("variable", "../evil"))
    with pytest.raises(ValueError, match="control character '\\\\x00'"):
        check_names(_named("dimension", "a\x00b"))
    with pytest.raises(ValueError, match="Zarr metadata file"):
        check_names(_named("variable", "zarr.json"))


@pytest.mark.parametrize(
    "name",
    ["2m_temperature", "sea surface temperature", "température", ".hidden", "a.b"]
    + ["__xarray_dataarray_variable__"],
)
def test_check_names_accepts_names_zarr_and_xarray_write(name):
    check_names(_named("variable", name))
    check_names(_named("dimension", name))


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("kind", ["variable", "dimension"])
@pytest.mark.parametrize("name", ESCAPING_NAMES, ids=repr)
def test_setup_zarr_rejects_an_unsafe_name_and_writes_nothing(
    tmp_path, kind, name, zarr_format
):
    store = tmp_path / "sub" / "out.zarr"
    store.parent.mkdir()
    before = _listing(tmp_path)
    template = xb.make_template(_named(kind, name))
    with pytest.raises(ValueError, match=_names_it(kind, name)):
        xb.setup_zarr(template, store, zarr_format=zarr_format)
    assert _listing(tmp_path) == before
    assert not store.exists()


@pytest.mark.parametrize("kind", ["variable", "dimension"])
@pytest.mark.parametrize("name", ESCAPING_NAMES, ids=repr)
def test_chunks_to_zarr_rejects_an_unsafe_name_when_the_pipeline_is_built(
    tmp_path, kind, name
):
    dataset = _named(kind, name)
    store = tmp_path / "sub" / "out.zarr"
    store.parent.mkdir()
    before = _listing(tmp_path)
    with (
        pytest.raises(ValueError, match=_names_it(kind, name)),
        beam.Pipeline("DirectRunner") as p,
    ):
        _ = (
            p
            | xb.DatasetToChunks(dataset, {})
            | xb.ChunksToZarr(store, xb.make_template(dataset), mode="w")
        )
    assert _listing(tmp_path) == before


def test_dataset_to_zarr_rejects_an_unsafe_name_when_built(tmp_path):
    with pytest.raises(ValueError, match=_names_it("variable", "../evil")):
        xb.DatasetToZarr(_named("variable", "../evil"), tmp_path / "out.zarr")
    assert _listing(tmp_path) == []


def test_chunks_to_zarr_with_an_inferred_template_rejects_before_writing(tmp_path):
    dataset = _named("variable", "../evil")
    store = tmp_path / "sub" / "out.zarr"
    store.parent.mkdir()
    with (
        pytest.raises(Exception, match=_names_it("variable", "../evil")),
        beam.Pipeline("DirectRunner") as p,
    ):
        _ = p | xb.DatasetToChunks(dataset, {"x": 2}) | xb.ChunksToZarr(store)
    assert _listing(tmp_path) == ["sub"]


def test_rechunk_zarr_rejects_a_source_with_an_unsafe_name_when_built(tmp_path):
    source = tmp_path / "src.zarr"
    _named("variable", "a\nb").chunk({"x": 1}).to_zarr(source)
    before = read_tree(tmp_path)
    with pytest.raises(ValueError, match=_names_it("variable", "a\nb")):
        xb.RechunkZarr(str(source), str(tmp_path / "out.zarr"), {"x": -1})
    assert read_tree(tmp_path) == before
    assert _listing(tmp_path) == ["src.zarr"] + [
        os.path.join("src.zarr", p) for p in _listing(source)
    ]


# mode='w' and what it may delete.


def _someone_elses_directory(path) -> None:
    path.mkdir()
    (path / "thesis.tex").write_text("precious")
    (path / "figures").mkdir()
    (path / "figures" / "plot.png").write_bytes(b"\x89PNG")


@pytest.mark.parametrize(
    "as_store", [str, zarr.storage.LocalStore], ids=["path", "LocalStore"]
)
def test_setup_zarr_mode_w_refuses_a_directory_that_is_not_zarr(tmp_path, as_store):
    target = tmp_path / "out.zarr"
    _someone_elses_directory(target)
    before = read_tree(target)
    template = xb.make_template(_named("variable", "t"))
    with pytest.raises(FileExistsError, match="not a Zarr store"):
        xb.setup_zarr(template, as_store(str(target)), mode="w")
    assert read_tree(target) == before
    assert _listing(target) == ["figures", "figures/plot.png", "thesis.tex"]


def test_chunks_to_zarr_mode_w_refuses_a_plain_file_when_built(tmp_path):
    target = tmp_path / "out.zarr"
    target.write_bytes(b"not zarr")
    dataset = _named("variable", "t")
    with (
        pytest.raises(FileExistsError, match="not a Zarr store"),
        beam.Pipeline("DirectRunner") as p,
    ):
        _ = (
            p
            | xb.DatasetToChunks(dataset, {})
            | xb.ChunksToZarr(target, xb.make_template(dataset), mode="w")
        )
    assert target.read_bytes() == b"not zarr"


# Temporary stores of RechunkZarr.

# Time slices of one row; with this budget, columns take two passes.
COLUMNS = {"time": -1, "x": 1}
TWO_PASS_MEM = 4000


@pytest.fixture
def rows(tmp_path) -> str:
    path = tmp_path / "rows.zarr"
    dataset = xarray.Dataset({"t": (("time", "x"), np.arange(256.0).reshape(16, 16))})
    dataset.chunk({"time": 1}).to_zarr(path)
    return str(path)


def test_rechunk_zarr_needs_a_temp_store_for_these_rows(rows):
    plan = xb.plan_store_rechunk(rows, COLUMNS, TWO_PASS_MEM, cost_model=FREE_PASSES)
    assert [len(p.stages) for p in plan.plans] == [2]


def test_rechunk_zarr_refuses_a_temp_store_object_holding_other_files(tmp_path, rows):
    temp = tmp_path / "scratch"
    _someone_elses_directory(temp)
    before = read_tree(temp)
    transform = xb.RechunkZarr(
        rows,
        str(tmp_path / "out.zarr"),
        COLUMNS,
        TWO_PASS_MEM,
        zarr.storage.LocalStore(str(temp)),
    )
    with (
        pytest.raises(FileExistsError, match="not temporary data of xarray_beam"),
        beam.Pipeline("DirectRunner") as p,
    ):
        _ = p | transform
    assert read_tree(temp) == before
    assert not (tmp_path / "out.zarr").exists()


@pytest.mark.parametrize(
    "temp", ["rows.zarr/scratch", "out.zarr", "out.zarr/scratch", "."]
)
def test_rechunk_zarr_refuses_a_temp_store_overlapping_source_or_target(
    tmp_path, rows, temp
):
    before = read_tree(tmp_path)
    with pytest.raises(ValueError, match="overlaps the (source|target) store"):
        xb.RechunkZarr(
            rows,
            str(tmp_path / "out.zarr"),
            COLUMNS,
            TWO_PASS_MEM,
            str(tmp_path / temp),
        )
    assert read_tree(tmp_path) == before


def test_rechunk_zarr_keeps_the_temp_store_when_a_pass_fails(
    tmp_path, rows, monkeypatch
):
    copy = rechunk_zarr._RegionCopier.__call__

    def fail_into_the_target(self, key, token):
        if not self._target.temporary:
            raise OSError("disk full")
        yield from copy(self, key, token)

    monkeypatch.setattr(rechunk_zarr._RegionCopier, "__call__", fail_into_the_target)
    target = str(tmp_path / "out.zarr")
    with pytest.raises(Exception, match="disk full"):
        xb.rechunk_zarr(rows, target, COLUMNS, TWO_PASS_MEM, cost_model=FREE_PASSES)
    temp = zarr.open_group(target + ".rechunk-temp", mode="r")
    assert temp.attrs[temp_stores.MARKER]
    np.testing.assert_array_equal(
        temp["pass1"]["t"][:], np.arange(256.0).reshape(16, 16)
    )
