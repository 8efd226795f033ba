"""Field problems of climatologies, coordinates and corrupt stores.

Static variables (without ``time``) in climatologies and anomalies, NaT in
datetime coordinates when writing, and corrupt chunks when reading. Plain
xarray (and numpy) is the oracle throughout; the stores are real Zarr stores
on disk.
"""

from __future__ import annotations

import os
import re

import apache_beam as beam
import numpy as np
import pandas as pd
import pytest
import xarray
import zarr

import xarray_beam as xb
from xarray_beam.beam import runners
from xarray_beam.io import region_io
from xarray_beam.model.key import Key

# --- static variables in climatologies and anomalies ---------------------------

CHUNKS = {"time": 48, "latitude": 2}
MONTH_HOUR = ("month", "hour")


def _mentioning(*parts: str) -> str:
    """A regex matching text that contains every part, in any order."""
    return "(?s)" + "".join(f"(?=.*{re.escape(part)})" for part in parts)


def _era5_with_static_fields() -> xarray.Dataset:
    """Ten days of hourly data across a month boundary (January 25 to
    February 3) on a 3 x 4 grid, with two static fields as ERA5 has them:
    surface geopotential (float32, NaN at one point) and a land-sea mask
    (int8), plus a 0-d variable."""
    rng = np.random.default_rng(0)
    time = pd.date_range("2021-01-25", periods=24 * 10, freq="h")
    t2m = rng.normal(280.0, 5.0, (len(time), 3, 4)).astype(np.float32)
    t2m[7, 1, 2] = np.nan
    z = rng.normal(5000.0, 100.0, (3, 4)).astype(np.float32)
    z[2, 3] = np.nan
    lsm = (rng.random((3, 4)) > 0.5).astype(np.int8)
    return xarray.Dataset(
        {
            "2m_temperature": (("time", "latitude", "longitude"), t2m),
            "geopotential_at_surface": (("latitude", "longitude"), z),
            "land_sea_mask": (("latitude", "longitude"), lsm),
        },
        coords={
            "time": time,
            "latitude": [10.0, 0.0, -10.0],
            "longitude": [0.0, 90.0, 180.0, 270.0],
        },
    )


@pytest.fixture(scope="module")
def era5() -> xarray.Dataset:
    return _era5_with_static_fields()


def _xarray_climatology(dataset: xarray.Dataset, by, stat: str = "mean"):
    """xarray's groupby statistic, group dimensions first."""
    names = [by] if isinstance(by, str) else list(by)
    grouped = dataset.groupby(
        [f"time.{n}" for n in names] if len(names) > 1 else f"time.{names[0]}"
    )
    result = getattr(grouped, stat)("time")
    return result.transpose(*names, ...)


@pytest.fixture(scope="module")
def climatology_runs(era5, tmp_path_factory):
    """One pipeline computing climatologies of ``era5`` in every read mode:
    one variable per element or all together, merged by Beam's combine or
    through files (``temp_store``), with and without ``template``. Returns
    the stores written, by mode, and the outputs collected, by label."""
    root = tmp_path_factory.mktemp("climatology")
    stores = {}

    def build(p):
        chunks = {
            split: p
            | f"Read{split}" >> xb.DatasetToChunks(era5, CHUNKS, split_vars=split)
            for split in (True, False)
        }
        outputs = []
        for split in (True, False):
            for through_storage in (False, True):
                for with_template in (True, False):
                    mode = (split, through_storage, with_template)
                    name = "-".join(str(int(flag)) for flag in mode)
                    climatology = xb.Climatology(
                        MONTH_HOUR,
                        template=era5 if with_template else None,
                        temp_store=str(root / f"temp-{name}")
                        if through_storage
                        else None,
                    )
                    stores[mode] = root / f"clim-{name}.zarr"
                    outputs.append(
                        chunks[split]
                        | f"Climatology{name}" >> climatology
                        | f"Write{name}"
                        >> xb.ChunksToZarr(
                            str(stores[mode]),
                            climatology.template(era5),
                            climatology.zarr_chunks(CHUNKS),
                        )
                        | f"Done{name}" >> beam.Map(lambda key: ("written", key))
                    )
            label = f"count-{int(split)}"
            outputs.append(
                chunks[split]
                | f"Count{int(split)}"
                >> xb.Climatology("month", "count", template=era5)
                | f"Label{label}" >> beam.Map(lambda kv, label=label: (label, kv))
            )
        return outputs | beam.Flatten()

    collected: dict[str, list] = {}
    for label, value in runners.collect(build):
        collected.setdefault(label, []).append(value)
    return stores, collected


def test_climatology_passes_static_variables_through_when_reading_one_variable_per_element(  # noqa: E501
    era5, climatology_runs
):
    """With ``template``, every read mode writes exactly xarray's
    ``groupby(['time.month', 'time.hour']).mean()``, static variables
    broadcast along month and hour with their own values and dtype."""
    stores, _ = climatology_runs
    expected = _xarray_climatology(era5, MONTH_HOUR)
    assert expected["geopotential_at_surface"].dims[:2] == MONTH_HOUR
    for (split, _through_storage, with_template), path in stores.items():
        if not with_template:
            continue
        written = xarray.open_zarr(path).compute()
        for name in era5.data_vars:
            assert written[name].dtype == era5[name].dtype, (name, split)
        xarray.testing.assert_allclose(
            written.transpose(*expected.dims),
            expected,
            rtol=1e-6,
        )


def test_static_variables_of_a_climatology_are_broadcast_along_every_label_without_template(  # noqa: E501
    era5, climatology_runs
):
    """Without ``template`` the output has every month: the time-dependent
    variables are NaN in months without data, as before, and static ones
    are broadcast along all of them, whatever the read mode (as
    ``climatology_template`` promises)."""
    stores, _ = climatology_runs
    present = _xarray_climatology(era5, MONTH_HOUR)
    all_months = present.reindex(month=np.arange(1, 13))
    written = {
        (split, through_storage): xarray.open_zarr(path).compute()
        for (split, through_storage, with_template), path in stores.items()
        if not with_template
    }
    assert len(written) == 4
    for result in written.values():
        np.testing.assert_array_equal(result.month, np.arange(1, 13))
        xarray.testing.assert_allclose(
            result["2m_temperature"].transpose(*all_months["2m_temperature"].dims),
            all_months["2m_temperature"],
            rtol=1e-6,
        )
        for name in ("geopotential_at_surface", "land_sea_mask"):
            static = era5[name].broadcast_like(result[name])
            # cell_methods records the statistic and grouping of the output
            xarray.testing.assert_identical(
                result[name].drop_vars(["month", "hour"]).drop_attrs(),
                static.transpose(*result[name].dims)
                .drop_vars(["month", "hour"])
                .drop_attrs(),
            )
            assert "mean" in result[name].attrs["cell_methods"]
    first, *others = written.values()
    for other in others:
        xarray.testing.assert_identical(other, first)


def test_static_variables_count_once_per_group_as_in_xarray(era5, climatology_runs):
    """Other statistics treat static variables as xarray does (a count of 1
    where defined), reading one variable per element or all together."""
    _, collected = climatology_runs
    expected = _xarray_climatology(era5, "month", "count")
    for split in (1, 0):
        outputs = collected[f"count-{split}"]
        names = set()
        for key, chunk in outputs:
            names.update(chunk.data_vars)
            region = {
                dim: slice(offset, offset + chunk.sizes[dim])
                for dim, offset in key.offsets.items()
            }
            want = expected[list(chunk.data_vars)].isel(region)
            xarray.testing.assert_identical(chunk.transpose(*want.dims), want)
        assert names == set(expected.data_vars)


def test_anomaly_of_static_variables_is_what_xarray_gives(era5):
    """``ds.groupby('time.month') - climatology`` broadcasts a static field
    along time, with value field - climatology = 0 where both are defined;
    Anomaly gives that value (without adding a time dimension, so the output
    keeps the source's layout) in both read modes; a static variable missing
    from the climatology passes through."""
    climatology = _xarray_climatology(era5, "month").drop_vars("land_sea_mask")
    expected = era5.groupby("time.month") - climatology

    def build(p):
        outputs = []
        for split in (True, False):
            outputs.append(
                p
                | f"Read{split}" >> xb.DatasetToChunks(era5, CHUNKS, split_vars=split)
                | f"Anomaly{split}" >> xb.Anomaly(climatology, "month")
                | f"Label{split}" >> beam.Map(lambda kv, split=split: (split, kv))
            )
        return outputs | beam.Flatten()

    results: dict[bool, list] = {True: [], False: []}
    for split, value in runners.collect(build):
        results[split].append(value)
    for split, outputs in results.items():
        _, anomaly = xb.consolidate_fully(outputs)
        xarray.testing.assert_allclose(
            anomaly["2m_temperature"],
            expected["2m_temperature"].drop_vars("month"),
            rtol=1e-5,
            atol=1e-4,
        )
        static = anomaly["geopotential_at_surface"]
        assert static.dims == ("latitude", "longitude"), split
        assert static.dtype == np.float32
        oracle = expected["geopotential_at_surface"]
        assert (oracle == oracle.isel(time=0)).where(oracle.notnull(), True).all()
        xarray.testing.assert_identical(
            static, oracle.isel(time=0, drop=True).astype(np.float32)
        )
        xarray.testing.assert_identical(anomaly["land_sea_mask"], era5["land_sea_mask"])


def test_anomaly_of_a_static_variable_whose_climatology_varies_is_refused(era5):
    """A static field whose climatology differs between groups would have an
    anomaly that varies in time, which a chunk without time cannot hold."""
    climatology = _xarray_climatology(era5, "month")
    climatology["geopotential_at_surface"] += xarray.DataArray(
        [0.0, 1.0], dims="month"
    ).astype(np.float32)
    static = era5[["geopotential_at_surface"]]
    with pytest.raises(
        ValueError,
        match=_mentioning("'geopotential_at_surface'", "'time'", "month"),
    ):
        runners.collect(
            lambda p: (
                p
                | beam.Create([(Key({"latitude": 0, "longitude": 0}), static)])
                | xb.Anomaly(climatology, "month")
            )
        )


# --- NaT in coordinates --------------------------------------------------------


def _with_nat() -> xarray.Dataset:
    """Eight hourly steps whose ``time`` index has a NaT (a missing step), and
    a ``valid_time`` coordinate with another NaT."""
    time = pd.date_range("2021-03-01", periods=8, freq="h").values.copy()
    valid = time + np.timedelta64(6, "h")
    time[5] = np.datetime64("NaT")
    valid[2] = np.datetime64("NaT")
    rng = np.random.default_rng(1)
    return xarray.Dataset(
        {"2m_temperature": (("time", "x"), rng.random((8, 3)).astype(np.float32))},
        coords={"time": time, "x": [0, 1, 2], "valid_time": ("time", valid)},
    )


def test_nat_in_datetime_coordinates_round_trips_through_zarr_exactly(tmp_path):
    """NaT equals NaT for the identity of labels, as in xarray: a dataset with
    NaT in its time index and in a datetime coordinate is written, chunk by
    chunk, by ``ChunksToZarr`` and by ``Dataset.to_zarr``, and reads back
    identical."""
    dataset = _with_nat()
    template = dataset.chunk({"time": 4})  # valid_time is written with the chunks
    plain, high_level = tmp_path / "plain.zarr", tmp_path / "dataset.zarr"
    with beam.Pipeline(xb.InProcessRunner()) as p:
        _ = (
            p
            | xb.DatasetToChunks(dataset, {"time": 4})
            | xb.ChunksToZarr(str(plain), template, {"time": 4})
        )
        _ = p | xb.Dataset.from_xarray(dataset, {"time": 4}).to_zarr(str(high_level))
    for path in (plain, high_level):
        written = xarray.open_zarr(path).compute()
        xarray.testing.assert_identical(written, dataset)
    # An existing store with NaT labels matches its own template.
    xb.setup_zarr(template, str(plain), {"time": 4}, mode="r+")


def test_chunk_labels_with_nat_match_the_template_and_mismatches_name_the_element():
    dataset = _with_nat()
    template = xb.make_template(dataset)
    second_half = dataset.isel(time=slice(4, 8))
    xb.validate_zarr_chunk(Key({"time": 4}), second_half, template, {"time": 4})
    hours = pd.to_datetime(["2021-03-01T04", "2021-03-01T05", "2021-03-01T06"])
    filled = second_half.assign_coords(time=[*hours, second_half.time.values[3]])
    with pytest.raises(
        ValueError, match=_mentioning("'time'", "element 1 is", "05:00", "has", "NaT")
    ):
        xb.validate_zarr_chunk(Key({"time": 4}), filled, template, {"time": 4})
    late = second_half.assign_coords(
        time=[*second_half.time.values[:3], np.datetime64("2021-03-01T09", "ns")]
    )
    with pytest.raises(ValueError, match=_mentioning("element 3 is", "09:00")):
        xb.validate_zarr_chunk(Key({"time": 4}), late, template, {"time": 4})


@pytest.mark.parametrize(
    ("coordinate", "values", "encoding", "detail"),
    [
        ("latitude", [10.1, 0.3, -10.7], {"dtype": "float32"}, "10.1000003"),
        (
            "time",
            np.array(["2021-03-01T00", "NaT", "2021-03-01T01"], "M8[ns]"),
            {"units": "hours since 2021-03-01", "dtype": "int16"},
            "NaT in the template",
        ),
    ],
    ids=["float32-latitude", "nat-in-int16-hours"],
)
def test_an_index_that_would_not_read_back_as_written_is_refused_before_the_store_exists(  # noqa: E501
    tmp_path, coordinate, values, encoding, detail
):
    """The labels a store gets are checked against the template before the
    store is created, with a message naming the coordinate and what differs
    (not after, with a message blaming the new store). A NaT stored as 16-bit
    hours reads back as the epoch, for instance."""
    dataset = xarray.Dataset(
        {"v": ((coordinate,), np.arange(3.0))}, coords={coordinate: values}
    )
    dataset[coordinate].encoding.update(encoding)
    path = tmp_path / "out.zarr"
    with pytest.raises(
        ValueError,
        match=_mentioning(f"coordinate {coordinate!r}", "read back", detail),
    ):
        xb.setup_zarr(dataset.chunk(), str(path))
    assert not path.exists()


# --- corrupt chunks -------------------------------------------------------------


def _corrupt_store(path, zarr_format: int) -> tuple[str, np.ndarray]:
    """A store of one 8 x 6 float32 array in 4 x 3 chunks, the chunk at
    (1, 1) overwritten with garbage; returns its stored key and the data."""
    data = np.arange(48, dtype=np.float32).reshape(8, 6)
    xarray.Dataset({"2m_temperature": (("time", "x"), data)}).to_zarr(
        path,
        zarr_format=zarr_format,
        encoding={"2m_temperature": {"chunks": (4, 3)}},
        consolidated=True,
    )
    key = "c/1/1" if zarr_format == 3 else "1.1"
    with open(os.path.join(path, "2m_temperature", *key.split("/")), "wb") as f:
        f.write(b"not a compressed chunk" * 3)
    return key, data


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("direct", [True, False], ids=["direct", "zarr-python"])
def test_a_chunk_that_cannot_be_decoded_is_named_with_its_array_and_store(
    tmp_path, zarr_format, direct
):
    path = str(tmp_path / "era5.zarr")
    key, data = _corrupt_store(path, zarr_format)
    array = zarr.open_group(path, mode="r")["2m_temperature"]
    io = region_io.RegionIO(array, direct=direct)
    assert io.direct == direct
    out = np.zeros((8, 6), np.float32)
    with pytest.raises(ValueError) as caught:
        io.read((slice(0, 8), slice(0, 6)), out)
    message = str(caught.value)
    assert f"chunk {key!r}" in message
    assert "array '2m_temperature'" in message
    assert path in message
    assert caught.value.__cause__ is not None
    assert str(caught.value.__cause__) in message  # the codec's own words
    # Readable chunks are unaffected.
    io.read((slice(0, 4), slice(0, 6)), out[:4])
    np.testing.assert_array_equal(out[:4], data[:4])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_reading_a_corrupt_store_in_a_pipeline_names_the_chunk(tmp_path):
    path = str(tmp_path / "era5.zarr")
    key, _ = _corrupt_store(path, 3)
    source, chunks = xb.open_zarr(path)
    with pytest.raises(
        ValueError, match=_mentioning(f"chunk {key!r}", "'2m_temperature'", path)
    ):
        runners.collect(lambda p: p | xb.DatasetToChunks(source, chunks))
