"""Loading windows of Zarr arrays by direct chunk decoding (``fast_load``).

The oracle is xarray's own lazy loading of the same selection.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray
import zarr

import xarray_beam as xbeam
from xarray_beam.beam import runners
from xarray_beam.io import compat, fast_load, region_io


def _dataset() -> xarray.Dataset:
    rng = np.random.default_rng(3)
    values = rng.normal(280, 10, (10, 6, 7)).astype(np.float32)
    values[2, 3, :] = np.nan
    return xarray.Dataset(
        {
            "t2m": (("time", "y", "x"), values),
            "counts": (("time", "y"), rng.integers(0, 99, (10, 6)).astype(np.int16)),
            "scaled": (("y", "x"), rng.normal(0, 1, (6, 7))),
            "scalar": ((), np.float64(2.5)),
        },
        coords={
            "time": pd.date_range("2020-01-01", periods=10, freq="h"),
            "y": np.arange(6.0)[::-1],
            "x": np.arange(7.0),
        },
    )


def _write(path, zarr_format=3, **encoding) -> str:
    ds = _dataset()
    chunks = {"t2m": (4, 3, 5), "counts": (4, 3), "scaled": (3, 5)}
    full = {name: {"chunks": c} for name, c in chunks.items()}
    for name, extra in encoding.items():
        full[name].update(extra)
    ds.to_zarr(str(path), zarr_format=zarr_format, encoding=full, consolidated=False)
    return str(path)


def _open(path) -> xarray.Dataset:
    return xarray.open_zarr(path, chunks=None, consolidated=False)


SELECTIONS = {
    "all": {},
    "time_window": {"time": slice(3, 9)},
    "edges": {"time": slice(7, 10), "y": slice(2, 6), "x": slice(4, 7)},
    "empty": {"time": slice(4, 4)},
}


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("selection", list(SELECTIONS))
def test_windows_load_directly_and_equal_xarray(tmp_path, zarr_format, selection):
    path = _write(tmp_path / "s.zarr", zarr_format)
    indexers = SELECTIONS[selection]
    for name in ("t2m", "counts", "scaled", "scalar"):
        expected = _open(path)[name].isel(
            {d: s for d, s in indexers.items() if d in _open(path)[name].dims}
        )
        variable = expected.variable.copy(deep=False)
        expected = expected.load()

        window = compat.zarr_window(variable)
        assert window is not None, name
        # direct unless chunk_codec leaves the array to zarr (v2 integers
        # without a fill value)
        direct = region_io.RegionIO(window[0]).direct
        assert direct or (zarr_format == 2 and name == "counts")
        assert (fast_load.load(variable) is not None) == direct, name
        if not direct:
            variable.load()
        assert isinstance(variable._data, np.ndarray)
        np.testing.assert_array_equal(variable.values, expected.values, name)
        assert variable.dtype == expected.dtype


@pytest.mark.parametrize(
    "indexers",
    [{"time": slice(0, 10, 2)}, {"time": slice(None, None, -1)}, {"time": 3}],
    ids=["strided", "reversed", "integer"],
)
def test_other_selections_are_left_to_xarray(tmp_path, indexers):
    path = _write(tmp_path / "s.zarr")
    variable = _open(path).t2m.isel(indexers).variable

    assert compat.zarr_window(variable) is None
    assert fast_load.load(variable) is None
    assert not isinstance(variable._data, np.ndarray)  # untouched, still lazy


def test_variables_with_decoding_pending_are_left_to_xarray(tmp_path):
    path = _write(
        tmp_path / "s.zarr",
        scaled={"dtype": "int16", "scale_factor": 0.01, "_FillValue": -999},
    )
    ds = _open(path)

    for name in ("scaled", "time"):
        assert fast_load.load(ds[name].variable.copy(deep=False)) is None, name


def test_arrays_zarr_must_decode_are_left_to_xarray(tmp_path):
    path = _write(tmp_path / "s.zarr", t2m={"shards": (8, 6, 5)})
    variable = _open(path).t2m.variable.copy(deep=False)

    assert compat.zarr_window(variable) is not None
    assert fast_load.load(variable) is None


def test_xarray_beam_open_zarr_variables_take_the_direct_path(tmp_path):
    """If a new xarray represented lazy data differently, this would fail (and
    loading would quietly go through zarr again)."""
    path = _write(tmp_path / "s.zarr")
    dataset, _ = xbeam.open_zarr(path)
    window = compat.zarr_window(dataset.t2m.isel(time=slice(4, 8)).variable)

    assert window is not None
    array, region = window
    assert isinstance(array, zarr.Array)
    assert region == (slice(4, 8), slice(0, 6), slice(0, 7))


@pytest.mark.parametrize("split_vars", [False, True])
def test_dataset_to_chunks_of_a_zarr_store_equals_xarray(tmp_path, split_vars):
    path = _write(tmp_path / "s.zarr")
    dataset, _ = xbeam.open_zarr(path)
    chunks = {"time": 4, "y": 3, "x": 7}
    expected = _open(path).load()

    results = runners.collect(
        lambda p: p | xbeam.DatasetToChunks(dataset, chunks, split_vars=split_vars)
    )

    # t2m and counts: 3 x 2 chunks each; scaled: 2; scalar: 1
    assert len(results) == (15 if split_vars else 6)
    for key, chunk in results:
        indexers = {d: slice(o, o + chunks[d]) for d, o in key.offsets.items()}
        names = list(key.vars) if split_vars else list(expected.data_vars)
        want = expected[names].isel(indexers)
        if split_vars:  # a chunk of one variable has only its dimensions
            want = want.drop_dims([d for d in want.dims if d not in key.offsets])
        xarray.testing.assert_identical(chunk, want)
