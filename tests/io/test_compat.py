"""What ``compat`` relies on in zarr and xarray still holds on the installed
versions.

``compat`` is the one module that reaches past zarr's and xarray's public
API. These tests fail loudly when a release changes what it relies on,
instead of the package quietly losing its fast paths.
"""

import os

import numpy as np
import pytest
import xarray
import zarr
import zarr.storage
from zarr.buffer import default_buffer_prototype

from xarray_beam.io import compat


@pytest.mark.parametrize("kind", ["local", "memory", "fsspec"])
def test_run_executes_store_coroutines_of_every_kind_of_store(tmp_path, kind):
    if kind == "local":
        store = zarr.storage.LocalStore(str(tmp_path))
    elif kind == "memory":
        store = zarr.storage.MemoryStore()
    else:
        store = zarr.storage.FsspecStore.from_url(f"memory://{tmp_path.name}/s")
    value = default_buffer_prototype().buffer.from_bytes(b"abc")

    compat.run(store.set("a/c/0", value))

    assert compat.run(store.exists("a/c/0"))
    found = compat.run(store.get("a/c/0", default_buffer_prototype()))
    assert found.to_bytes() == b"abc"


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_writing_every_chunk_stores_chunks_that_hold_only_the_fill_value(
    tmp_path, zarr_format
):
    def chunk_files(path):
        return sorted(os.listdir(path / "c" if zarr_format == 3 else path))

    every, default = tmp_path / "every", tmp_path / "default"
    for path in (every, default):
        zarr.create_array(
            str(path), shape=(4,), chunks=(2,), dtype="f4", zarr_format=zarr_format
        )

    compat.writing_every_chunk(zarr.open_array(str(every)))[...] = 0.0
    zarr.open_array(str(default))[...] = 0.0

    assert {"0", "1"} <= set(chunk_files(every))
    assert not {"0", "1"} & set(os.listdir(default))  # zarr's default skips them


@pytest.fixture
def store(tmp_path) -> str:
    path = str(tmp_path / "s.zarr")
    xarray.Dataset(
        {
            "t2m": (("time", "x"), np.arange(24, dtype="f4").reshape(6, 4)),
            "packed": (("time", "x"), np.linspace(0, 1, 24).reshape(6, 4)),
        },
        coords={"time": np.arange(6), "x": np.arange(4) * 10.0},
    ).to_zarr(
        path,
        encoding={
            "t2m": {"chunks": (2, 4)},
            "packed": {"dtype": "int16", "scale_factor": 0.001, "_FillValue": -1},
        },
    )
    return path


def test_zarr_window_sees_the_array_behind_a_lazily_opened_variable(store):
    dataset = xarray.open_zarr(store, chunks=None)

    window = compat.zarr_window(dataset.t2m.variable)

    assert window is not None, "xarray's lazy wrappers changed: update compat"
    array, region = window
    assert isinstance(array, zarr.Array) and array.path.endswith("t2m")
    assert region == (slice(0, 6), slice(0, 4))


def test_zarr_window_follows_contiguous_selections(store):
    dataset = xarray.open_zarr(store, chunks=None)

    window = compat.zarr_window(dataset.t2m.isel(time=slice(2, 5), x=[1, 2]).variable)
    plain = compat.zarr_window(dataset.t2m.isel(time=slice(2, 5)).variable)

    assert window is None  # an integer list is not a window
    assert plain is not None and plain[1] == (slice(2, 5), slice(0, 4))


def test_zarr_window_refuses_variables_with_decoding_left_to_do(store):
    dataset = xarray.open_zarr(store, chunks=None)

    assert compat.zarr_window(dataset.packed.variable) is None
    assert compat.zarr_window(dataset.t2m.load().variable) is None
    assert compat.zarr_window(xarray.Variable("x", np.arange(3))) is None


def test_encode_zarr_variable_applies_cf_encoding_as_to_zarr_does():
    times = xarray.Variable(
        "t",
        np.array(["2020-01-01T06", "2020-01-02"], "M8[ns]"),
        encoding={"units": "hours since 2020-01-01", "dtype": "int64"},
    )
    packed = xarray.Variable(
        "x",
        np.array([0.5, np.nan]),
        encoding={"dtype": "int16", "scale_factor": 0.5, "_FillValue": -1},
    )

    assert compat.encode_zarr_variable(times, "t").values.tolist() == [6, 24]
    assert compat.encode_zarr_variable(packed, "x").values.tolist() == [1, -1]
