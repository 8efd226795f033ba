"""Climatologies and anomalies, checked against xarray's groupby on explicitly
computed labels, reindexed to every label of the grouping."""

import apache_beam as beam
import numpy as np
import pandas as pd
import pytest
import xarray

import xarray_beam as xbeam
from xarray_beam import synthetic
from xarray_beam.beam import runners
from xarray_beam.beam.climatology import Grouping, make_grouping
from xarray_beam.model.key import Key

CHUNKS = {"time": 100, "latitude": 4}  # time chunks split every group
MONTH_HOUR = make_grouping(("month", "hour"))


@pytest.fixture(scope="module")
def era5() -> xarray.Dataset:
    """Hourly data from 2020-01-20 to 2020-03-29 on a 30 degree grid (7 x 12),
    with a NaN-free variable and one that is NaN over land."""
    return synthetic.era5_like(
        hours=24 * 70,
        resolution=30.0,
        start="2020-01-20",
        variables=("2m_temperature", "sea_surface_temperature"),
    ).compute()


# --- oracle --------------------------------------------------------------------


def _labels(dataset: xarray.Dataset, grouping: Grouping) -> dict[str, np.ndarray]:
    """Group labels of each time step, computed without the package (except
    the leap-aligned day of year, whose numbering is the package's own, and
    user functions, which are the user's)."""
    times = dataset.indexes["time"]
    computed = {
        "hour": lambda: np.asarray(times.hour),
        "month": lambda: np.asarray(times.month),
        "season": lambda: np.asarray(dataset["time.season"]),
        "dayofyear": lambda: make_grouping("dayofyear").functions[0](times),
    }
    return {
        name: computed[name]() if name in computed else np.asarray(function(times))
        for name, function in zip(grouping.names, grouping.functions, strict=True)
    }


def _oracle(dataset, grouping: Grouping, stat, min_count=None, **options):
    """xarray's groupby statistic over float64 data, on every label."""
    time_labels = _labels(dataset, grouping)
    labelled = dataset.astype(np.float64).assign_coords(
        {name: ("time", values) for name, values in time_labels.items()}
    )
    names = list(time_labels)
    grouped = labelled.groupby(names[0] if len(names) == 1 else names)
    result = getattr(grouped, stat)("time", **options)
    if min_count is not None:
        result = result.where(grouped.count("time") >= min_count)
    return result.reindex(grouping.coords())


def _assert_chunks_match(outputs, grouping: Grouping, expected, atol=1e-5):
    """Each output chunk equals the oracle at its labels and spatial offsets,
    and keys place it: group positions (0 for a dense last group dimension),
    spatial offsets, no time."""
    assert outputs
    for key, chunk in outputs:
        assert "time" not in key.offsets and "time" not in chunk.dims
        for name, all_labels in zip(grouping.names, grouping.labels, strict=True):
            chunk_labels = chunk[name].values
            if name in grouping.keyed:
                assert chunk.sizes[name] == 1
                position = list(all_labels).index(chunk_labels[0])
                assert key.offsets[name] == position
            else:
                np.testing.assert_array_equal(chunk_labels, all_labels)
                assert key.offsets[name] == 0
        region = {
            dim: slice(key.offsets[dim], key.offsets[dim] + chunk.sizes[dim])
            for dim in ("latitude", "longitude")
        }
        selection = {name: chunk[name].values for name in grouping.names}
        want = expected.sel(selection).isel(region).transpose(*chunk.dims)
        xarray.testing.assert_allclose(
            chunk.astype(np.float64), want, rtol=1e-6, atol=atol
        )


def _present(dataset, grouping: Grouping) -> set:
    """The combinations of keyed labels that occur in the data."""
    if not grouping.keyed:
        return {()}
    time_labels = _labels(dataset, grouping)
    columns = [time_labels[name].tolist() for name in grouping.keyed]
    return set(zip(*columns, strict=True))


def _run(dataset, transform, chunks=CHUNKS):
    return runners.collect(
        lambda p: p | xbeam.DatasetToChunks(dataset, chunks) | transform
    )


# --- statistics per group ------------------------------------------------------


@pytest.mark.parametrize(
    ("by", "stat", "options"),
    [
        ("hour", "mean", {}),
        ("month", "var", {"ddof": 1}),
        ("season", "min", {}),
        ("dayofyear", "count", {}),
        (("month", "hour"), "mean", {}),
    ],
    ids=["hour-mean", "month-var", "season-min", "dayofyear-count", "month-hour-mean"],
)
def test_climatology_matches_xarray_groupby(era5, by, stat, options):
    grouping = make_grouping(by)
    outputs = _run(era5, xbeam.Climatology(by, stat, **options))
    _assert_chunks_match(outputs, grouping, _oracle(era5, grouping, stat, **options))
    keyed_labels = {
        tuple(chunk[name].values[0] for name in grouping.keyed) for _, chunk in outputs
    }
    assert keyed_labels == _present(era5, grouping)
    assert len(outputs) == 2 * len(keyed_labels)  # two latitude chunks each
    for _, chunk in outputs:
        dtype = np.int64 if stat == "count" else np.float32
        assert {v.dtype for v in chunk.data_vars.values()} == {np.dtype(dtype)}


def test_climatology_by_function_with_labels_matches_xarray_groupby(era5):
    climatology = xbeam.Climatology(lambda t: t.month % 2, labels=[0, 1])
    assert climatology.grouping.names == ("group",)
    outputs = _run(era5, climatology)
    expected = _oracle(era5, climatology.grouping, "mean")
    _assert_chunks_match(outputs, climatology.grouping, expected)
    assert all(chunk["group"].values.tolist() == [0, 1] for _, chunk in outputs)


def test_climatology_handles_nans_and_min_count(era5):
    min_count = 24 * 20  # January (from the 20th) has 12 days of data
    outputs = _run(era5, xbeam.Climatology("month", "mean", min_count=min_count))
    grouping = make_grouping("month")
    expected = _oracle(era5, grouping, "mean", min_count=min_count)
    _assert_chunks_match(outputs, grouping, expected)
    ((_, whole),) = xbeam.consolidate_chunks(outputs)
    assert whole["2m_temperature"].sel(month=1).isnull().all()
    assert not whole["2m_temperature"].sel(month=[2, 3]).isnull().any()
    ocean = whole["sea_surface_temperature"].sel(month=2)
    assert 0 < int(ocean.isnull().sum()) < ocean.size


def test_month_climatology_across_a_year_boundary_matches_xarray():
    dataset = synthetic.era5_like(
        hours=24 * 20,
        resolution=30.0,
        start="2020-12-22",
        variables=("2m_temperature",),
    ).compute()
    outputs = _run(dataset, xbeam.Climatology("month"), {"time": 100})
    grouping = make_grouping("month")
    _assert_chunks_match(outputs, grouping, _oracle(dataset, grouping, "mean"))


def test_dayofyear_puts_march_first_in_day_61_in_every_year():
    times = pd.to_datetime(
        ["2020-02-27", "2020-02-28", "2020-02-29", "2020-03-01", "2020-03-02"]
        + ["2021-02-27", "2021-02-28", "2021-03-01", "2021-03-02"]
    )
    values = 2.0 ** np.arange(9)  # every mean reveals which days it took
    dataset = xarray.Dataset(
        {"v": (("time", "x"), np.stack([values, -values], axis=1))},
        coords={"time": times},
    )
    outputs = _run(dataset, xbeam.Climatology("dayofyear"), {"time": 4})
    days = {int(chunk.dayofyear.item()): chunk for _, chunk in outputs}
    assert sorted(days) == [58, 59, 60, 61, 62]
    expected = {58: (1 + 32) / 2, 59: (2 + 64) / 2, 60: 4, 61: (8 + 128) / 2}
    expected[62] = (16 + 256) / 2
    for day, mean in expected.items():
        np.testing.assert_array_equal(days[day].v.values, [[mean, -mean]])
    for key, chunk in outputs:
        assert key.offsets["dayofyear"] == chunk.dayofyear.item() - 1


def test_dayofyear_labels_are_leap_aligned():
    times = pd.to_datetime(
        ["2021-03-01", "2020-03-01", "2020-02-29", "2021-02-28", "2021-12-31"]
    )
    day = make_grouping("dayofyear").functions[0](times)
    np.testing.assert_array_equal(day, [61, 61, 60, 59, 366])


# --- templates and writing to Zarr ---------------------------------------------


def test_climatology_template_has_group_dims_in_place_of_time(era5):
    source = era5.assign(
        land=(("latitude", "longitude"), np.zeros((7, 12), np.int8)),
        issued=("time", era5.time.values),
        n=("time", np.arange(era5.sizes["time"], dtype=np.int32)),
    )
    template = xbeam.climatology_template(source, ("month", "hour"))
    assert dict(template.sizes) == {
        "month": 12,
        "hour": 24,
        "latitude": 7,
        "longitude": 12,
    }
    assert template["2m_temperature"].dims == ("month", "hour", "latitude", "longitude")
    assert template["2m_temperature"].dtype == np.float32
    assert template["n"].dtype == np.float64
    assert template["land"].dims == ("month", "hour", "latitude", "longitude")
    assert template["land"].dtype == np.int8
    assert "issued" not in template and "time" not in template.coords
    np.testing.assert_array_equal(template.month, np.arange(1, 13))
    np.testing.assert_array_equal(template.hour, np.arange(24))
    xarray.testing.assert_identical(template.latitude, era5.latitude)
    counts = xbeam.climatology_template(source, "season", stat="count")
    assert counts["2m_temperature"].dtype == np.int64
    assert counts.season.values.tolist() == ["DJF", "JJA", "MAM", "SON"]


@pytest.mark.slow  # several pipelines
def test_climatology_written_to_zarr_equals_reindexed_oracle(era5, tmp_path):
    by = ("month", "hour")
    plain, stored = tmp_path / "plain.zarr", tmp_path / "stored.zarr"
    temp = tmp_path / "partials"
    climatology = xbeam.Climatology(by)
    through_storage = xbeam.Climatology(by, temp_store=str(temp))
    template = climatology.template(era5)
    zarr_chunks = {"month": 1, "hour": -1}

    def build(p):
        chunks = p | xbeam.DatasetToChunks(era5, {"time": 100})
        first = (
            chunks
            | "Plain" >> climatology
            | "WritePlain" >> xbeam.ChunksToZarr(str(plain), template, zarr_chunks)
        )
        second = (
            chunks
            | "Stored" >> through_storage
            | "WriteStored" >> xbeam.ChunksToZarr(str(stored), template, zarr_chunks)
        )
        return (first, second) | beam.Flatten()

    runners.collect(build)
    expected = _oracle(era5, MONTH_HOUR, "mean")
    for path in (plain, stored):
        written = xarray.open_zarr(path).compute()
        assert written["2m_temperature"].dtype == np.float32
        xarray.testing.assert_allclose(
            written.astype(np.float64),
            expected.transpose(*written["2m_temperature"].dims),
            rtol=1e-6,
            atol=1e-5,
        )
    xarray.testing.assert_allclose(
        xarray.open_zarr(plain).compute(), xarray.open_zarr(stored).compute()
    )
    assert not temp.exists()


# --- anomalies -----------------------------------------------------------------


def _expected_anomaly(dataset, climatology) -> xarray.Dataset:
    times = dataset.indexes["time"]
    at_each_time = climatology.sel(
        month=xarray.DataArray(np.asarray(times.month), dims="time"),
        hour=xarray.DataArray(np.asarray(times.hour), dims="time"),
    ).drop_vars(["month", "hour"])
    return dataset.astype(np.float64) - at_each_time


def _assert_anomaly_chunks(outputs, dataset, climatology):
    expected = _expected_anomaly(dataset, climatology)
    assert len(outputs) == xbeam.DatasetToChunks(dataset, CHUNKS).chunk_count
    for key, chunk in outputs:
        region = {
            dim: slice(key.offsets[dim], key.offsets[dim] + size)
            for dim, size in chunk.sizes.items()
        }
        assert {v.dtype for v in chunk.data_vars.values()} == {np.dtype(np.float32)}
        xarray.testing.assert_allclose(
            chunk.astype(np.float64),
            expected.isel(region).transpose(*chunk.dims),
            rtol=1e-6,
            atol=1e-5,
        )


def test_anomaly_subtracts_the_climatology_of_each_time_step(era5):
    climatology = _oracle(era5, MONTH_HOUR, "mean")
    outputs = _run(era5, xbeam.Anomaly(climatology, ("month", "hour")))
    _assert_anomaly_chunks(outputs, era5, climatology)


def test_anomaly_takes_the_climatology_as_a_singleton_side_input(era5):
    climatology = _oracle(era5, MONTH_HOUR, "mean").astype(np.float32)

    def build(p):
        side = beam.pvalue.AsSingleton(p | "Climatology" >> beam.Create([climatology]))
        return (
            p
            | xbeam.DatasetToChunks(era5, CHUNKS)
            | xbeam.Anomaly(side, ("month", "hour"))
        )

    _assert_anomaly_chunks(runners.collect(build), era5, climatology)


@pytest.mark.slow  # several pipelines
def test_anomaly_of_a_selection_matches_the_climatology_by_label(era5):
    """Chunks of a selection have offsets counted from its start; the full
    climatology is matched to them by their labels, not their offsets."""
    climatology = _oracle(era5, MONTH_HOUR, "mean")
    region = era5.isel(latitude=slice(3, 9), longitude=slice(5, 20))
    outputs = _run(region, xbeam.Anomaly(climatology, ("month", "hour")))
    expected = _expected_anomaly(era5, climatology).isel(
        latitude=slice(3, 9), longitude=slice(5, 20)
    )
    _, whole = xbeam.consolidate_fully(outputs)
    xarray.testing.assert_allclose(
        whole.astype(np.float64), expected.transpose(*whole.dims), atol=1e-5
    )
    outside = era5.assign_coords(latitude=era5.latitude + 0.5)
    with pytest.raises(Exception, match="labels the climatology lacks"):
        _run(outside, xbeam.Anomaly(climatology, ("month", "hour")))


# --- errors --------------------------------------------------------------------


@pytest.mark.parametrize("by", ["minute", "week", ("month", "minute")])
def test_grouping_by_something_not_a_time_component_is_rejected(by):
    with pytest.raises(ValueError, match="it is not a time component"):
        xbeam.Climatology(by)


def test_grouping_function_without_labels_is_rejected():
    with pytest.raises(ValueError, match="needs labels"):
        xbeam.Climatology(lambda t: t.month)


def test_labels_for_a_named_group_are_rejected():
    with pytest.raises(ValueError, match="labels only apply"):
        xbeam.Climatology("month", labels=[1, 2])


def test_unknown_statistic_is_rejected():
    with pytest.raises(ValueError, match="unknown statistic 'median'"):
        xbeam.Climatology("month", "median")


def test_template_without_the_time_dim_is_rejected(era5):
    with pytest.raises(ValueError, match="cannot group along 'date'"):
        xbeam.Climatology("month", dim="date", template=era5)


def test_template_with_non_datetime_time_is_rejected(era5):
    numbered = era5.assign_coords(time=np.arange(era5.sizes["time"]))
    with pytest.raises(ValueError, match="datetime64"):
        xbeam.Climatology("month", template=numbered)


def test_weights_with_dims_the_data_lacks_are_rejected(era5):
    weights = xarray.DataArray(np.ones((era5.sizes["time"], 2)), dims=("time", "level"))
    with pytest.raises(ValueError, match=r"dimension\(s\) \['level'\]"):
        xbeam.Climatology("month", weights=weights, template=era5)


def test_non_datetime_time_without_template_fails_when_run():
    dataset = xarray.Dataset(
        {"v": ("time", np.arange(6.0))}, coords={"time": np.arange(6)}
    )
    with pytest.raises(ValueError, match="needs datetime64 values along 'time'"):
        runners.collect(
            lambda p: (
                p
                | beam.Create([(Key({"time": 0}), dataset)])
                | xbeam.Climatology("month")
            )
        )


def test_anomaly_with_climatology_lacking_group_dims_is_rejected(era5):
    monthly = _oracle(era5, make_grouping("month"), "mean")
    with pytest.raises(ValueError, match=r"lacks group dimension\(s\) \['hour'\]"):
        xbeam.Anomaly(monthly, ("month", "hour"))


@pytest.mark.slow  # several pipelines
def test_anomaly_uses_the_labels_of_the_climatology_it_is_given(era5):
    # A climatology of January and February only: March has no climatology.
    partial = _oracle(era5, make_grouping("month"), "mean").sel(month=[1, 2])
    early = era5.sel(time=slice(None, "2020-02-29"))
    outputs = _run(early, xbeam.Anomaly(partial, "month"))
    _, anomalies = xbeam.consolidate_fully(outputs)
    expected = early - partial.sel(month=early.indexes["time"].month).drop_vars(
        "month"
    ).rename(month="time").assign_coords(time=early.time)
    for name in early.data_vars:
        np.testing.assert_allclose(
            anomalies[name].values, expected[name].values, rtol=1e-5, atol=1e-4
        )
    with pytest.raises(Exception, match="not among its labels"):
        _run(era5, xbeam.Anomaly(partial, "month"))


def test_anomaly_of_something_not_a_dataset_is_rejected():
    with pytest.raises(TypeError, match="must be an xarray.Dataset"):
        xbeam.Anomaly({"month": [1]}, "month")
