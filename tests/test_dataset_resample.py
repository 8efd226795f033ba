"""Dataset.resample, Dataset.coarsen and the groupby errors that point to
resample, checked against xarray on the same data."""

import os
import pathlib
import re

import apache_beam as beam
import numpy as np
import pandas as pd
import pytest
import xarray

import xarray_beam as xbeam
from xarray_beam import synthetic

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture(scope="module")
def hourly_store(tmp_path_factory) -> str:
    """The synthetic ERA5-like store: 2 days and 7 hours from January 31
    (a partial last day, and February), in Zarr chunks of 5 hours."""
    path = str(tmp_path_factory.mktemp("resample") / "era5.zarr")
    synthetic.write_era5_like(
        path,
        hours=2 * 24 + 7,
        resolution=30.0,
        start="2020-01-31",
        chunks={"time": 5},
    )
    return path


def _grid(nlat: int = 7, nlon: int = 10) -> xarray.Dataset:
    rng = np.random.default_rng(1)
    values = rng.normal(size=(nlat, nlon))
    values[rng.random((nlat, nlon)) < 0.2] = np.nan
    return xarray.Dataset(
        {
            "t": (("lat", "lon"), values),
            "n": (("lat", "lon"), rng.integers(0, 100, (nlat, nlon))),
            "row": ("lat", np.arange(nlat, dtype=np.float32)),
            "scalar": ((), 2.5),
        },
        coords={
            "lat": np.linspace(90.0, -90.0, nlat),
            "lon": np.arange(nlon) * 36.0,
            "cell_area": (("lat",), np.cos(np.deg2rad(np.linspace(90, -90, nlat)))),
        },
    )


# --- resample ------------------------------------------------------------------


def test_daily_max_of_the_synthetic_store_is_xarrays(hourly_store):
    ds = xbeam.Dataset.from_zarr(hourly_store)
    assert ds.chunks["time"] == 5  # chunks cut days

    daily = ds.resample(time="1D").max()

    expected = xarray.open_zarr(hourly_store).compute().resample(time="1D").max()
    assert expected.sizes["time"] == 3  # Jan 31, Feb 1, and 7 hours of Feb 2
    got = daily.collect_with_direct_runner()
    xarray.testing.assert_equal(got, expected)
    assert daily.sizes == dict(expected.sizes)
    assert daily.chunks == {"time": 1, "latitude": 7, "longitude": 12}
    assert daily.ptransform.label == "FromZarr(era5.zarr)|Resample(time=1D).max"


def test_resample_means_of_one_variable_chunks_match_xarray(hourly_store):
    ds = xbeam.Dataset.from_zarr(hourly_store, split_vars=True)
    result = ds.resample({"time": "6h"}).mean(periods_per_chunk=2)
    assert result.chunks["time"] == 2 and result.split_vars
    expected = xarray.open_zarr(hourly_store).compute().resample(time="6h").mean()
    got = result.collect_with_direct_runner()
    # xarray sums float32 in float32, we in float64.
    xarray.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-5)
    for name in expected.data_vars:
        assert got[name].dtype == expected[name].dtype


def test_resample_spans_about_an_input_chunk_per_output_chunk():
    times = pd.date_range("2020-01-01", periods=24 * 10, freq="h")
    source = xarray.Dataset({"t": ("time", np.arange(240.0))}, coords={"time": times})
    ds = xbeam.Dataset.from_xarray(source, {"time": 48})
    assert ds.resample(time="1D").mean().chunks == {"time": 2}
    assert ds.resample(time="6h").mean().chunks == {"time": 8}
    assert ds.resample(time="1MS").mean().chunks == {"time": 1}
    assert ds.resample(time="1D").mean(periods_per_chunk=5).chunks == {"time": 5}


def test_resample_options_are_xarrays():
    times = pd.date_range("2020-01-01 05:00", periods=60, freq="h")
    source = xarray.Dataset(
        {"t": ("time", np.random.default_rng(2).normal(size=60))},
        coords={"time": times},
    )
    ds = xbeam.Dataset.from_xarray(source, {"time": 7})
    options = {"closed": "right", "label": "right", "origin": "start"}
    got = ds.resample(time="5h", **options).std(ddof=1)
    expected = source.resample(time="5h", **options).std(ddof=1)
    xarray.testing.assert_allclose(got.collect_with_direct_runner(), expected)


@pytest.mark.parametrize(
    "args,kwargs,match",
    [
        ((), {}, "resample takes one dimension at a time.*got none"),
        ((), {"time": "1D", "x": "2D"}, "one dimension at a time"),
        (({"time": "1D"},), {"time": "1D", "lon": "1D"}, "one dimension"),
        ((), {"level": "1D"}, "cannot resample 'level'"),
        ((), {"time": "daily"}, "'daily'.*not a pandas frequency"),
        ((), {"time": "1D", "closed": "both"}, "closed='both'"),
    ],
)
def test_resample_refuses_bad_requests_at_once(args, kwargs, match):
    times = pd.date_range("2020-01-01", periods=4, freq="h")
    source = xarray.Dataset({"t": ("time", np.zeros(4))}, coords={"time": times})
    ds = xbeam.Dataset.from_xarray(source, {"time": 2})
    with pytest.raises(ValueError, match=match):
        ds.resample(*args, **kwargs)


def test_resample_of_a_dimension_without_times_is_refused():
    source = xarray.Dataset({"t": ("x", np.zeros(4))}, coords={"x": np.arange(4)})
    with pytest.raises(ValueError, match="datetime64 values along 'x'"):
        xbeam.Dataset.from_xarray(source).resample(x="1D")


# --- groupby errors ------------------------------------------------------------


@pytest.mark.parametrize(
    "group,suggestion",
    [
        ("time.date", "ds.resample(time='1D').max()"),
        ("time.day", "ds.resample(time='1D').max()"),
        ("time.year", "ds.resample(time='YS').max()"),
        (["time.month", "time.date"], "resample(time='1D')"),
        ("time", "resample(time='1D')"),
    ],
)
def test_groupby_by_periods_is_refused_pointing_to_resample(group, suggestion):
    times = pd.date_range("2020-01-01", periods=4, freq="h")
    source = xarray.Dataset({"t": ("time", np.zeros(4))}, coords={"time": times})
    ds = xbeam.Dataset.from_xarray(source)
    with pytest.raises(ValueError, match=re.escape(suggestion)):
        ds.groupby(group)


def test_climatology_by_a_period_points_to_resample():
    with pytest.raises(ValueError, match=re.escape("Resample('1D', ...)")):
        xbeam.Climatology("date")


def test_groupby_dayofyear_merges_years_unlike_resample():
    times = pd.date_range("2020-12-31", periods=3 * 24, freq="h")  # to 2021-01-02
    times = times.append(pd.date_range("2021-12-31", periods=24, freq="h"))
    source = xarray.Dataset(
        {"t": ("time", np.arange(len(times), dtype=float))}, coords={"time": times}
    )
    ds = xbeam.Dataset.from_xarray(source, {"time": 24})
    by_day_of_year = ds.groupby("time.dayofyear").count()
    daily = ds.resample(time="1D").count()
    counts = by_day_of_year.collect_with_direct_runner().t
    assert counts.sel(dayofyear=366).item() == 48  # Dec 31 of 2020 and 2021
    got = daily.collect_with_direct_runner()
    xarray.testing.assert_equal(got, source.resample(time="1D").count())


# --- coarsen -------------------------------------------------------------------


@pytest.mark.parametrize("stat", ["mean", "sum", "count", "min", "max", "var", "std"])
@pytest.mark.parametrize(
    "boundary,windows",
    [
        ("exact", {"lat": 7, "lon": 5}),
        ("trim", {"lat": 2, "lon": 3}),
        ("pad", {"lat": 2, "lon": 4}),
    ],
)
def test_coarsen_matches_xarray(stat, boundary, windows):
    source = _grid()
    ds = xbeam.Dataset.from_xarray(source, {"lat": 4, "lon": 6})  # not aligned
    coarse = getattr(ds.coarsen(windows, boundary=boundary), stat)()
    expected = getattr(source.coarsen(windows, boundary=boundary), stat)()
    got = coarse.collect_with_direct_runner()
    xarray.testing.assert_allclose(got, expected)
    for name in expected.variables:
        assert got[name].dtype == expected[name].dtype, name
    assert coarse.sizes == dict(expected.sizes)


def test_coarsen_aligns_chunks_to_windows_and_keys_by_window():
    ds = xbeam.Dataset.from_xarray(_grid(), {"lat": 3, "lon": 7})
    coarse = ds.coarsen(lat=2, lon=2, boundary="trim").mean()
    # Chunks of 3 and 7 become 2 and 6 (whole windows), then 1 and 3.
    assert coarse.chunks == {"lat": 1, "lon": 3}
    assert "Rechunk" not in coarse.ptransform.label  # the source is re-read
    mapped = ds.map_blocks(lambda chunk: chunk)
    after_a_step = mapped.coarsen(lat=2, lon=2, boundary="trim").mean()
    assert "|Rechunk|" in after_a_step.ptransform.label  # a shuffle
    expected = _grid().coarsen(lat=2, lon=2, boundary="trim").mean()
    xarray.testing.assert_allclose(after_a_step.collect_with_direct_runner(), expected)
    aligned = xbeam.Dataset.from_xarray(_grid(), {"lat": 4, "lon": 10})
    assert (
        "Rechunk" not in aligned.coarsen(lat=2, boundary="pad").max().ptransform.label
    )


def test_coarsen_of_one_variable_chunks_keeps_variables_without_windows():
    source = _grid()
    ds = xbeam.Dataset.from_xarray(source, {"lat": 2, "lon": 5}, split_vars=True)
    got = ds.coarsen(lon=5).max().collect_with_direct_runner()
    xarray.testing.assert_allclose(got, source.coarsen(lon=5).max())


def test_coarsen_writes_to_zarr(tmp_path):
    source = _grid()
    path = os.fspath(tmp_path / "coarse.zarr")
    coarse = (
        xbeam.Dataset.from_xarray(source, {"lat": 4})
        .coarsen(lat=2, lon=5, boundary="pad")
        .mean()
    )
    with beam.Pipeline(xbeam.InProcessRunner()) as p:
        _ = p | coarse.to_zarr(path)
    expected = source.coarsen(lat=2, lon=5, boundary="pad").mean()
    xarray.testing.assert_allclose(xarray.open_zarr(path).compute(), expected)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (
            {"lat": 2},
            ValueError,
            "cannot coarsen 'lat' of size 7 by windows of 2.*'trim'",
        ),
        ({"level": 2}, ValueError, "cannot coarsen 'level'"),
        ({"lat": 0}, ValueError, "window along 'lat' must be a positive int"),
        ({"lat": 7, "boundary": "wrap"}, ValueError, "boundary must be one of"),
        ({"lat": 7, "side": "right"}, ValueError, "side='left' only"),
        ({}, ValueError, "at least one dimension"),
    ],
)
def test_coarsen_refuses_bad_windows_at_once(kwargs, error, match):
    ds = xbeam.Dataset.from_xarray(_grid(), {"lat": 4})
    with pytest.raises(error, match=match):
        ds.coarsen(**kwargs)


def test_coarsen_options_xarray_refuses_are_refused_when_built():
    ds = xbeam.Dataset.from_xarray(_grid(), {"lat": 4})
    with pytest.raises(TypeError, match=re.escape("coarsen(lat=7).std()")):
        ds.coarsen(lat=7).std(ddof=1)


# --- documentation -------------------------------------------------------------


def test_the_daily_statistics_example_in_the_docs_runs(tmp_path, monkeypatch):
    page = (DOCS / "aggregations.md").read_text()
    section = page.split("## Daily and monthly statistics\n")[1].split("\n## ")[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "aggregations.md", "exec"), {})  # it asserts its results
    daily = xarray.open_zarr(tmp_path / "daily_max.zarr")
    assert daily.sizes["time"] == 4  # 3 days and 7 hours
