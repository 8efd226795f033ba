"""Store locations and modes, on local disk and through fsspec URLs."""

import os
import uuid

import apache_beam as beam
import fsspec
import numpy as np
import pytest
import xarray
import zarr

import xarray_beam as xbeam
from xarray_beam.io import stores


def _line() -> xarray.Dataset:
    return xarray.Dataset(
        {"t": (("time", "x"), np.arange(20.0).reshape(10, 2))},
        coords={"time": np.arange(10)},
    )


def test_normalize_store_makes_local_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert stores.normalize_store("out.zarr") == str(tmp_path / "out.zarr")
    assert stores.normalize_store(tmp_path / "a.zarr") == str(tmp_path / "a.zarr")
    assert stores.normalize_store("gs://bucket/x.zarr") == "gs://bucket/x.zarr"
    store = zarr.storage.MemoryStore()
    assert stores.normalize_store(store) is store


@pytest.mark.parametrize(("value", "error"), [("", ValueError), (3, TypeError)])
def test_normalize_store_rejects_non_paths(value, error):
    with pytest.raises(error):
        stores.normalize_store(value)


def test_store_state_tells_what_is_at_a_location(tmp_path):
    assert stores.store_state(str(tmp_path / "nothing")) == "missing"
    (tmp_path / "empty").mkdir()
    assert stores.store_state(str(tmp_path / "empty")) == "empty"
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    assert stores.store_state(str(tmp_path / "notes")) == "other"
    (tmp_path / "file.txt").write_text("x")
    assert stores.store_state(str(tmp_path / "file.txt")) == "other"
    for zarr_format in (2, 3):
        path = str(tmp_path / f"v{zarr_format}.zarr")
        _line().to_zarr(path, zarr_format=zarr_format)
        assert stores.store_state(path) == "zarr"


@pytest.mark.parametrize(
    ("state", "mode", "error"),
    [
        ("zarr", "w-", FileExistsError),
        ("other", "w-", FileExistsError),
        ("other", "w", FileExistsError),
        ("missing", "r+", FileNotFoundError),
        ("empty", "r+", FileNotFoundError),
        ("other", "r+", FileNotFoundError),
    ],
)
def test_check_mode_refuses_what_could_damage_data(tmp_path, state, mode, error):
    path = tmp_path / "target"
    if state == "zarr":
        _line().to_zarr(path)
    elif state == "empty":
        path.mkdir()
    elif state == "other":
        path.mkdir()
        (path / "thesis.tex").write_text("precious")
    with pytest.raises(error, match=str(path)):
        stores.check_mode(str(path), mode)
    if state == "other":
        assert (path / "thesis.tex").read_text() == "precious"


@pytest.mark.parametrize(
    ("state", "mode"),
    [
        ("missing", "w-"),
        ("empty", "w-"),
        ("zarr", "w"),
        ("missing", "w"),
        ("zarr", "r+"),
    ],
)
def test_check_mode_allows_safe_writes(tmp_path, state, mode):
    path = tmp_path / "target"
    if state == "zarr":
        _line().to_zarr(path)
    elif state == "empty":
        path.mkdir()
    stores.check_mode(str(path), mode)


def test_check_mode_name_resolves_xarray_beam_needs_setup():
    assert stores.check_mode_name(None) == "w-"
    assert stores.check_mode_name(None, needs_setup=False) == "r+"
    with pytest.raises(ValueError, match="conflicts"):
        stores.check_mode_name("w", needs_setup=False)
    with pytest.raises(ValueError, match="mode must be"):
        stores.check_mode_name("a")


def test_fsspec_urls_round_trip_through_chunks_to_zarr():
    url = f"memory://xarray-beam-test-{uuid.uuid4().hex}/out.zarr"
    ds = _line()
    with beam.Pipeline("DirectRunner") as p:
        _ = (
            p
            | xbeam.DatasetToChunks(ds, {"time": 5})
            | xbeam.ChunksToZarr(url, xbeam.make_template(ds), {"time": 5})
        )
    back, chunks = xbeam.open_zarr(url)
    assert chunks == {"time": 5, "x": 2}
    xarray.testing.assert_identical(back.compute(), ds)
    fs, path = fsspec.core.url_to_fs(url)
    assert fs.exists(os.path.join(path, "t", "zarr.json"))
    with pytest.raises(FileExistsError, match=url), beam.Pipeline("DirectRunner") as p:
        _ = (
            p
            | xbeam.DatasetToChunks(ds, {"time": 5})
            | xbeam.ChunksToZarr(url, xbeam.make_template(ds), {"time": 5})
        )
