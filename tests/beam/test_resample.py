"""Resample on (Key, chunk) pipelines, checked against xarray's resample on
the same data."""

import apache_beam as beam
import numpy as np
import pandas as pd
import pytest
import xarray

import xarray_beam as xbeam
from xarray_beam.beam import runners
from xarray_beam.model.key import Key

STATS = ["mean", "sum", "count", "min", "max", "var", "std"]


def _hourly(hours: int = 55, start: str = "2020-01-31", freq: str = "h"):
    """Float data with NaNs (one whole day at x=1 for 6 hours), integers,
    and a static field without time."""
    times = pd.date_range(start, periods=hours, freq=freq)
    rng = np.random.default_rng(0)
    temperature = rng.normal(280.0, 5.0, size=(hours, 3)).astype(np.float32)
    temperature[rng.random((hours, 3)) < 0.2] = np.nan
    temperature[24:30, 1] = np.nan  # a 6-hour period with no valid value
    return xarray.Dataset(
        {
            "t2m": (("time", "x"), temperature, {"units": "K"}),
            "hits": ("time", rng.integers(0, 10, hours)),
            "orography": ("x", np.array([1.0, 2.0, 3.0])),
        },
        coords={"time": times, "x": [10, 20, 30]},
        attrs={"title": "test"},
    )


def _run(source, chunks, transforms, split_vars=False):
    """Outputs of each transform applied to ``source``'s chunks, in one run."""

    def build(p):
        chunked = p | xbeam.DatasetToChunks(source, chunks, split_vars=split_vars)
        tagged = [
            chunked | f"R{i}" >> t | f"Tag{i}" >> beam.Map(lambda kv, i=i: (i, kv))
            for i, t in enumerate(transforms)
        ]
        return tagged | beam.Flatten()

    outputs = runners.collect(build)
    return [[kv for i, kv in outputs if i == n] for n in range(len(transforms))]


def _assemble(outputs):
    key, dataset = xbeam.consolidate_fully(outputs)
    assert not any(key.offsets.values())
    return dataset


def _assert_matches(got: xarray.Dataset, expected: xarray.Dataset, template):
    """Values, dims, coordinates and dtypes as xarray's (float32 results
    within float32 precision: we accumulate in float64)."""
    assert set(got.data_vars) == set(expected.data_vars)
    for name in expected.data_vars:
        assert got[name].dims == expected[name].dims, name
        assert got[name].dtype == expected[name].dtype, name
        assert template[name].dtype == expected[name].dtype, name
        assert template[name].dims == expected[name].dims, name
    xarray.testing.assert_allclose(got, expected, rtol=1e-6)
    xarray.testing.assert_equal(got.time, expected.time)
    xarray.testing.assert_equal(template.time, expected.time)


def test_daily_statistics_of_chunks_that_cut_days_match_xarray():
    source = _hourly()  # 2 days and 7 hours; chunks of 5 hours cut days
    transforms = [xbeam.Resample("1D", stat, template=source) for stat in STATS]
    results = _run(source, {"time": 5, "x": 2}, transforms)
    for stat, transform, outputs in zip(STATS, transforms, results, strict=True):
        expected = getattr(source.resample(time="1D"), stat)()
        assert expected.sizes["time"] == 3  # the last day is partial
        _assert_matches(_assemble(outputs), expected, transform.output_template())


def test_output_chunks_hold_whole_periods_keyed_by_their_first_period():
    source = _hourly()
    resample = xbeam.Resample("6h", "max", template=source, periods_per_chunk=4)
    (outputs,) = _run(source, {"time": 5, "x": 2}, [resample])
    expected = source.resample(time="6h").max()  # 10 periods
    keys = sorted((k.offsets["time"], k.offsets["x"]) for k, _ in outputs)
    assert keys == [(t, x) for t in (0, 4, 8) for x in (0, 2)]
    for key, chunk in outputs:
        start, x = key.offsets["time"], key.offsets["x"]
        assert chunk.sizes["time"] == min(4, 10 - start)
        region = expected.isel(
            time=slice(start, start + 4), x=slice(x, x + chunk.sizes["x"])
        )
        xarray.testing.assert_allclose(chunk, region)
    assert resample.zarr_chunks({"time": 5, "x": 2}) == {"time": 4, "x": 2}


def test_monthly_means_over_unequal_months_match_xarray():
    source = _hourly(hours=4 * 81, start="2020-01-20", freq="6h")  # Jan 20 - Apr 9
    transforms = [
        xbeam.Resample("1MS", "mean", template=source),
        xbeam.Resample("ME", "count", template=source),
    ]
    results = _run(source, {"time": 7}, transforms)
    for (freq, stat), transform, outputs in zip(
        [("1MS", "mean"), ("ME", "count")], transforms, results, strict=True
    ):
        expected = getattr(source.resample(time=freq), stat)()
        assert expected.sizes["time"] == 4
        _assert_matches(_assemble(outputs), expected, transform.output_template())


def test_gaps_are_nan_for_every_statistic_as_in_xarray():
    # 20 hours, four missing days, 8 hours: output chunks of one day each,
    # four of them without a single time step.
    source = _hourly(hours=28)
    times = source.time.values.copy()
    times[20:] = pd.date_range("2020-02-05 10:00", periods=8, freq="h")
    source = source.assign_coords(time=times)
    transforms = [xbeam.Resample("1D", stat, template=source) for stat in STATS]
    results = _run(source, {"time": 6}, transforms)
    for stat, transform, outputs in zip(STATS, transforms, results, strict=True):
        expected = getattr(source.resample(time="1D"), stat)()
        assert expected.hits.dtype == np.float64  # integers become float
        assert np.isnan(expected.hits.values[1:5]).all()
        assert len(outputs) == expected.sizes["time"]
        _assert_matches(_assemble(outputs), expected, transform.output_template())


def test_one_variable_chunks_and_a_static_field_match_xarray():
    source = _hourly()
    transforms = [
        xbeam.Resample("1D", stat, template=source) for stat in ("sum", "count")
    ]
    results = _run(source, {"time": 5}, transforms, split_vars=True)
    for stat, transform, outputs in zip(
        ("sum", "count"), transforms, results, strict=True
    ):
        assert {len(k.vars) for k, _ in outputs} == {1}
        expected = getattr(source.resample(time="1D"), stat)()
        assert expected.orography.dims == ("time", "x")  # repeated along time
        _assert_matches(_assemble(outputs), expected, transform.output_template())


def test_options_match_xarrays():
    source = _hourly()
    cases = [
        ("mean", {"skipna": False}),
        ("std", {"ddof": 1}),
        ("var", {"ddof": 1}),
        ("sum", {"min_count": 4}),
    ]
    transforms = [
        xbeam.Resample("7h", stat, template=source, **options)
        for stat, options in cases
    ]
    results = _run(source, {"time": 5}, transforms)
    for (stat, options), outputs in zip(cases, results, strict=True):
        got = _assemble(outputs)
        expected = getattr(source.resample(time="7h"), stat)(**options)
        xarray.testing.assert_allclose(got.t2m, expected.t2m, rtol=1e-6)
        default = getattr(source.resample(time="7h"), stat)()
        assert not default.t2m.equals(expected.t2m)  # the option matters here


def test_closed_and_labelled_on_the_right_as_in_xarray():
    source = _hourly()
    options = {"closed": "right", "label": "right", "offset": "3h"}
    resample = xbeam.Resample("1D", "max", template=source, **options)
    (outputs,) = _run(source, {"time": 5}, [resample])
    expected = source.resample(time="1D", **options).max()
    _assert_matches(_assemble(outputs), expected, resample.output_template())


def test_a_pipeline_to_zarr_gives_xarrays_daily_maxima(tmp_path):
    source = _hourly()
    path = str(tmp_path / "daily.zarr")
    daily = xbeam.Resample("1D", "max", template=source, periods_per_chunk=2)
    with beam.Pipeline(runners.InProcessRunner()) as p:
        _ = (
            p
            | xbeam.DatasetToChunks(source, {"time": 5, "x": 2})
            | daily
            | xbeam.ChunksToZarr(
                path, daily.output_template(), daily.zarr_chunks({"x": 2})
            )
        )
    written = xarray.open_zarr(path)
    assert written.t2m.encoding["chunks"] == (2, 2)
    assert "time: max" in written.t2m.attrs["cell_methods"]
    expected = source.resample(time="1D").max()
    xarray.testing.assert_equal(written.compute(), expected)


def test_merging_through_files_gives_the_same_result(tmp_path):
    source = _hourly()
    resample = xbeam.Resample(
        "1D", "var", template=source, temp_store=str(tmp_path / "spill")
    )
    (outputs,) = _run(source, {"time": 5}, [resample])
    expected = source.resample(time="1D").var()
    _assert_matches(_assemble(outputs), expected, resample.output_template())


def test_chunks_of_other_data_are_refused_naming_the_key():
    source = _hourly()
    shifted = source.assign_coords(time=source.time + np.timedelta64(1, "h"))
    resample = xbeam.Resample("1D", template=shifted)
    # Every chunk is shifted; whichever is reduced first is named.
    with pytest.raises(
        ValueError,
        match=r"chunk Key\(offsets=\{'time': \d+.*along 'time', but the "
        r"template has",
    ):
        _run(source, {"time": 5}, [resample])


def test_chunks_without_time_coordinates_are_refused():
    source = _hourly()
    chunk = source.isel(time=slice(0, 5)).drop_vars("time")
    element = (Key({"time": 0, "x": 0}), chunk)
    resample = xbeam.Resample("1D", template=source)
    with pytest.raises(ValueError, match="no coordinate 'time'"):
        runners.collect(lambda p: p | beam.Create([element]) | resample)


@pytest.mark.parametrize(
    "args,kwargs,error,match",
    [
        (("1D",), {"template": None}, TypeError, "template must be an xarray"),
        (("1D",), {"dim": "x"}, ValueError, "datetime64 values along 'x'"),
        (("1D",), {"dim": "level"}, ValueError, "cannot resample along 'level'"),
        (("1 day",), {}, ValueError, "'1 day'.*not a pandas frequency"),
        (("1D", "median"), {}, ValueError, "unknown statistic 'median'"),
        (("1D",), {"periods_per_chunk": 0}, ValueError, "periods_per_chunk"),
        (("1D",), {"origin": "dawn"}, ValueError, "origin='dawn'"),
    ],
)
def test_bad_options_are_refused_when_built(args, kwargs, error, match):
    kwargs = {"template": _hourly(), **kwargs}
    with pytest.raises(error, match=match):
        xbeam.Resample(*args, **kwargs)


def test_a_dimension_without_coordinate_is_refused():
    source = _hourly().drop_vars("time")
    with pytest.raises(ValueError, match="'time': it has no coordinate"):
        xbeam.Resample("1D", template=source)
