"""Appending along time: new days of ERA5, idempotent, checked before writing."""

import shutil

import apache_beam as beam
import numpy as np
import pandas as pd
import pytest
import xarray
from helpers import read_tree

import xarray_beam as xb

CHUNKS = {"time": 24}


def _days(start: str, days: int, seed: int) -> xarray.Dataset:
    rng = np.random.default_rng(seed)
    time = pd.date_range(start, periods=24 * days, freq="h")
    return xarray.Dataset(
        {
            "t2m": (("time", "x"), rng.normal(280, 5, (len(time), 4)).astype("f4")),
            "count": (("time",), np.arange(len(time), dtype="i4")),
            "lsm": (("x",), np.array([0.0, 0.5, 1.0, 1.0])),
        },
        coords={"time": time, "x": [0.0, 90.0, 180.0, 270.0]},
        attrs={"title": "days"},
    )


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "era5.zarr"
    first = _days("2020-01-01", 2, seed=0)
    with beam.Pipeline("DirectRunner") as p:
        _ = p | xb.DatasetToZarr(first, path, CHUNKS)
    return path


def _append(store, new, prepare=lambda e: e, **kwargs):
    with beam.Pipeline("DirectRunner") as p:
        _ = (
            p
            | xb.DatasetToChunks(new.drop_vars("lsm"), CHUNKS)
            | beam.Map(prepare)
            | xb.ChunksToZarr(
                store,
                xb.make_template(new.drop_vars("lsm")),
                append_dim="time",
                **kwargs,
            )
        )


def test_append_extends_the_store(store):
    first = xarray.open_zarr(store).compute()
    new = _days("2020-01-03", 1, seed=1)
    _append(store, new)
    expected = xarray.concat([first, new.drop_vars("lsm")], "time", data_vars="minimal")
    actual = xarray.open_zarr(store).compute()
    xarray.testing.assert_identical(actual, expected)
    assert xb.verify_zarr(store).complete


def test_appending_twice_is_a_no_op(store):
    new = _days("2020-01-03", 1, seed=1)
    _append(store, new)
    once = read_tree(store)
    _append(store, new)
    assert read_tree(store) == once


def test_interrupted_append_is_completed_by_running_it_again(store, tmp_path):
    reference = tmp_path / "reference.zarr"
    shutil.copytree(store, reference)
    new = _days("2020-01-03", 3, seed=2)
    _append(reference, new)

    calls = tmp_path / "calls"

    def fail_on_second(element):
        with open(calls, "a+") as f:
            f.seek(0)
            if len(f.read()) >= 1:
                raise RuntimeError("simulated failure")
            f.write("x")
        return element

    with pytest.raises(Exception, match="simulated failure"):
        _append(store, new, prepare=fail_on_second)
    assert not xb.verify_zarr(store).complete
    _append(store, new)
    assert read_tree(store) == read_tree(reference)


@pytest.mark.parametrize(
    "new, message",
    [
        (_days("2020-01-02", 2, seed=3), "overlap"),
        (_days("2020-01-03", 1, seed=3).isel(time=slice(None, None, -1)), "increasing"),
        (_days("2020-01-03", 1, seed=3).rename(t2m="t2"), "'t2' is not in the Zarr"),
        (
            _days("2020-01-03", 1, seed=3).assign(t2m=lambda d: d.t2m.astype("f8")),
            "dtype float64",
        ),
        (_days("2020-01-03", 1, seed=3).assign_coords(x=[1.0, 2, 3, 4]), "'x' coord"),
        (_days("2020-01-03", 1, seed=3).drop_vars("count"), r"lacks variable\(s\)"),
        (_days("2020-01-03", 1, seed=3).isel(x=slice(0, 3)), "dimension 'x'"),
    ],
)
def test_bad_appends_fail_before_writing(store, new, message):
    before = read_tree(store)
    with pytest.raises(ValueError, match=message):
        _append(store, new)
    assert read_tree(store) == before


def test_append_to_a_store_with_a_partial_last_chunk_is_refused(tmp_path):
    path = tmp_path / "ragged.zarr"
    with beam.Pipeline("DirectRunner") as p:
        first = _days("2020-01-01", 2, 0).isel(time=slice(30))
        _ = p | xb.DatasetToZarr(first, path, CHUNKS)
    before = read_tree(path)
    with pytest.raises(ValueError, match="rewrite part of its last chunk"):
        _append(path, _days("2020-01-03", 1, seed=1))
    assert read_tree(path) == before


def test_append_needs_a_store_and_no_overwrite(tmp_path, store):
    new = _days("2020-01-03", 1, seed=1)
    with pytest.raises(FileNotFoundError, match="nope.zarr"):
        _append(tmp_path / "nope.zarr", new)
    with pytest.raises(ValueError, match="mode='w'"):
        xb.ChunksToZarr(store, xb.make_template(new), append_dim="time", mode="w")
