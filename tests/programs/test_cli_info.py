"""``xarray-beam info``: dimensions, time range and step, units, compression,
sizes in memory and on disk, chunks per variable; locally and in a bucket."""

import os

import numpy as np
import pandas as pd
import pytest
import xarray

from xarray_beam import synthetic
from xarray_beam.model.units import format_bytes
from xarray_beam.programs import cli, store_info


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """Ten days of hourly data on a 30 degree grid, in one-day chunks (v3)."""
    path = str(tmp_path_factory.mktemp("info") / "era5.zarr")
    synthetic.write_era5_like(path, hours=240, resolution=30.0)
    return path


def bytes_below(path: str) -> int:
    """The sizes of the files below ``path``, summed (the oracle for "on disk")."""
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )


def info(capsys, *argv: str) -> list[str]:
    assert cli.main(["info", *argv]) == 0
    return capsys.readouterr().out.splitlines()


def row(lines: list[str], name: str) -> list[str]:
    """The cells of a variable's row (cells are separated by two spaces)."""
    (line,) = [line for line in lines if f"  {name}  " in line]
    return [cell.strip() for cell in line.strip().split("  ") if cell.strip()]


def test_info_shows_the_time_range_step_and_count(capsys, store):
    lines = info(capsys, store)

    assert "time: 2020-01-01T00 .. 2020-01-10T23, hourly (1h), 240 steps" in lines
    assert "dimensions: time=240, latitude=7, longitude=12" in lines
    assert "latitude: 90 .. -90, 7 values, step -30" in lines


def test_info_shows_units_sizes_chunks_and_codecs_per_variable(capsys, store):
    source = xarray.open_zarr(store)

    lines = info(capsys, store)

    for name in source.data_vars:
        kind, shown, dtype, dims, units, size, on_disk, *layout, codecs = row(
            lines, name
        )
        assert (kind, shown, dtype) == ("data", name, "float32")
        assert dims == "(time, latitude, longitude)"
        assert units == source[name].attrs["units"]
        assert size == format_bytes(source[name].nbytes)
        assert on_disk == format_bytes(bytes_below(os.path.join(store, name)))
        assert layout == ["10 x (24, 7, 12)"]
        assert codecs == "zstd"
    time_row = row(lines, "time")
    assert time_row[:4] == ["coord", "time", "datetime64[ns]", "(time)"]
    assert time_row[-2:] == ["1 x (240,)", "zstd"]


def test_info_totals_memory_and_disk(capsys, store):
    source = xarray.open_zarr(store)
    objects = sum(len(names) for _, _, names in os.walk(store))

    lines = info(capsys, store)

    on_disk = format_bytes(bytes_below(store))
    assert lines[0] == (
        f"{store}: Zarr format 3, 4 data variables, {format_bytes(source.nbytes)} "
        f"in memory, {on_disk} on disk in {objects:,} objects"
    )
    assert (
        lines[-1]
        == f"total: {format_bytes(source.nbytes)} in memory, {on_disk} on disk"
    )


def test_info_names_zarr_v2_codecs(capsys, tmp_path):
    path = str(tmp_path / "v2.zarr")
    synthetic.write_era5_like(path, hours=48, resolution=30.0, zarr_format=2)

    lines = info(capsys, path)

    assert "Zarr format 2" in lines[0]
    cells = row(lines, "2m_temperature")
    assert cells[-2:] == ["2 x (24, 7, 12)", "blosc/lz4"]


def test_info_shows_shards_and_the_chunks_inside_them(capsys, tmp_path):
    path = str(tmp_path / "sharded.zarr")
    data = xarray.Dataset(
        {"t": (("time", "x"), np.zeros((40, 6), "f4"), {"units": "K"})},
        coords={"time": pd.date_range("2021-01-01", periods=40, freq="D")},
    )
    data.to_zarr(
        path,
        zarr_format=3,
        encoding={"t": {"chunks": (5, 6), "shards": (20, 6), "compressors": None}},
    )

    lines = info(capsys, path)

    assert "time: 2021-01-01 .. 2021-02-09, daily (1d), 40 steps" in lines
    cells = row(lines, "t")
    assert cells[-2:] == ["8 x (5, 6) in 2 shards (20, 6)", "none"]


@pytest.mark.parametrize(
    "times, expected",
    [
        (
            pd.date_range("2020-01-01", "2020-03-01T23:00", freq="h"),
            "2020-01-01T00 .. 2020-03-01T23, hourly (1h), 1464 steps",
        ),
        (
            pd.date_range("1979-01-01", periods=4, freq="6h"),
            "1979-01-01T00 .. 1979-01-01T18, every 6h, 4 steps",
        ),
        (
            pd.date_range("2000-01-01", periods=3, freq="D"),
            "2000-01-01 .. 2000-01-03, daily (1d), 3 steps",
        ),
        (
            pd.date_range("2000-01-01", periods=14, freq="MS"),
            "2000-01-01 .. 2001-02-01, monthly, 14 steps",
        ),
        (
            pd.to_datetime(
                ["2020-01-01T00:30", "2020-01-01T01:00", "2020-01-01T03:00"]
            ),
            "2020-01-01T00:30 .. 2020-01-01T03:00, irregular steps of 30min to 2h, "
            "3 steps",
        ),
        (
            pd.to_datetime(["2020-01-01", "2020-01-02", None]),
            "2020-01-01 .. 2020-01-02, daily (1d), 3 steps (1 NaT)",
        ),
        (pd.to_datetime(["2020-05-17T12:00"]), "2020-05-17T12, 1 step"),
        (
            pd.date_range("2020-01-01", periods=3, freq="10s"),
            "2020-01-01T00:00:00 .. 2020-01-01T00:00:20, every 10s, 3 steps",
        ),
    ],
    ids=["hourly", "6h", "daily", "monthly", "irregular", "nat", "one", "10s"],
)
def test_describe_times_says_range_frequency_and_count(times, expected):
    assert store_info.describe_times(np.asarray(times.values)) == expected


@pytest.mark.slow  # a storage emulator
def test_info_on_a_bucket_counts_the_objects_sizes(capsys, gs, store):
    url = gs.new_prefix() + "/era5.zarr"
    gs.upload(store, url)

    lines = info(capsys, url, "--storage-option", "token=anon")

    on_disk = format_bytes(bytes_below(store))
    assert lines[0].startswith(f"{url}: Zarr format 3, 4 data variables")
    assert f"{on_disk} on disk" in lines[0]
    assert "time: 2020-01-01T00 .. 2020-01-10T23, hourly (1h), 240 steps" in lines
    cells = row(lines, "2m_temperature")
    assert cells[6] == format_bytes(bytes_below(os.path.join(store, "2m_temperature")))
