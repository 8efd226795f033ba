"""Pipelines written the way xarray-beam 0.11's README, docs and examples
write them run here unchanged, and give what plain xarray gives.

Each pipeline below uses only calls and argument shapes that 0.11 documents
(``open_zarr`` returning chunks, ``SplitChunks`` and re-keying with
``Key.with_offsets``, ``Mean.PerKey()`` without a dimension, ``Rechunk`` with
``itemsize``, a template made with ``make_template``, and the high-level
``Dataset`` chain applied with ``root |= ...``).
"""

import apache_beam as beam
import numpy as np
import pytest
import xarray

import xarray_beam as xbeam
from xarray_beam import synthetic

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture(scope="module")
def source_path(tmp_path_factory) -> str:
    """Three days of hourly ERA5-like data across a month boundary, stored as
    one-day "pancakes"."""
    path = str(tmp_path_factory.mktemp("era5") / "era5.zarr")
    dataset = synthetic.era5_like(
        hours=72,
        resolution=15.0,
        start="2021-01-30",
        variables=("2m_temperature", "sea_surface_temperature"),
    ).compute()
    dataset.chunk({"time": 24}).to_zarr(path)
    return path


def _by_month_and_hour(key: xbeam.Key, chunk: xarray.Dataset):
    """Re-key a one-hour chunk on its month and hour (the user's own code)."""
    when = chunk.indexes["time"][0]
    new_key = key.with_offsets(time=None, month=when.month - 1, hour=when.hour)
    new_chunk = chunk.squeeze("time", drop=True).expand_dims(
        month=[when.month], hour=[when.hour]
    )
    return new_key, new_chunk


def test_era5_climatology_with_mean_per_key(source_path, tmp_path):
    output = str(tmp_path / "climatology.zarr")
    source, source_chunks = xbeam.open_zarr(source_path)
    months = int(source.time.dt.month.max())
    template = (
        xbeam.make_template(source)
        .isel(time=0, drop=True)
        .expand_dims(month=np.arange(1, months + 1), hour=np.arange(24))
    )
    with beam.Pipeline("DirectRunner") as root:
        (
            root
            | xbeam.DatasetToChunks(source, source_chunks)
            | xbeam.SplitChunks({"time": 1})
            | beam.MapTuple(_by_month_and_hour)
            | xbeam.Mean.PerKey()
            | xbeam.ChunksToZarr(output, template, {"hour": 1, "month": 1})
        )

    actual = xarray.open_zarr(output).compute()
    plain = xarray.open_zarr(source_path).compute()
    expected = (
        plain.groupby(["time.month", "time.hour"])
        .mean("time")
        .transpose("month", "hour", ...)
    )
    assert set(actual.data_vars) == set(expected.data_vars)
    for name in expected.data_vars:
        np.testing.assert_allclose(
            actual[name].values, expected[name].values, rtol=1e-6, err_msg=name
        )


def test_era5_rechunk_with_rechunk_transform(source_path, tmp_path):
    output = str(tmp_path / "pencils.zarr")
    source, source_chunks = xbeam.open_zarr(source_path)
    template = xbeam.make_template(source)
    target_chunks = {"latitude": 5, "longitude": 6, "time": -1}
    with beam.Pipeline("DirectRunner") as root:
        (
            root
            | xbeam.DatasetToChunks(source, source_chunks, split_vars=True)
            | xbeam.Rechunk(source.sizes, source_chunks, target_chunks, itemsize=4)
            | xbeam.ChunksToZarr(output, template, target_chunks)
        )

    actual = xarray.open_zarr(output)
    xarray.testing.assert_identical(
        actual.compute(), xarray.open_zarr(source_path).compute()
    )
    assert actual["2m_temperature"].encoding["chunks"] == (72, 5, 6)


def test_high_level_dataset_chain_applied_with_pipe_assign(source_path, tmp_path):
    output = str(tmp_path / "rechunked.zarr")
    target_chunks = {"time": -1, "latitude": 4}
    with beam.Pipeline("DirectRunner") as root:
        root |= (
            xbeam.Dataset.from_zarr(source_path, split_vars=True)
            .rechunk(target_chunks)
            .to_zarr(output, zarr_chunks=target_chunks)
        )

    actual = xarray.open_zarr(output)
    xarray.testing.assert_identical(
        actual.compute(), xarray.open_zarr(source_path).compute()
    )
    # Dimensions the chunks leave out keep their source chunks.
    longitude = actual.sizes["longitude"]
    assert actual["2m_temperature"].encoding["chunks"] == (72, 4, longitude)
