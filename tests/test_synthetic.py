"""The synthetic ERA5-like data: shape, determinism and physical structure."""

import numpy as np
import pandas as pd
import pytest
import xarray
import zarr

from xarray_beam import synthetic


def test_grid_spans_the_globe_like_era5():
    latitude, longitude = synthetic.grid(0.25)
    assert latitude.size == 721 and longitude.size == 1440
    assert latitude[0] == 90 and latitude[-1] == -90
    assert np.all(np.diff(latitude) < 0)
    assert longitude[0] == 0 and longitude[-1] == 359.75
    assert latitude.dtype == np.float32


@pytest.mark.parametrize("resolution", [0, -1, 0.7, 7])
def test_grid_rejects_resolutions_that_do_not_divide_the_globe(resolution):
    with pytest.raises(ValueError, match="resolution"):
        synthetic.grid(resolution)


def test_era5_like_has_era5_dims_dtypes_and_attrs():
    ds = synthetic.era5_like(hours=30, resolution=5.0)
    assert dict(ds.sizes) == {"time": 30, "latitude": 37, "longitude": 72}
    assert list(ds.data_vars) == list(synthetic.DEFAULT_VARIABLES)
    for var in ds.data_vars.values():
        assert var.dtype == np.float32
        assert var.dims == ("time", "latitude", "longitude")
        assert var.attrs["units"]
    assert ds.time.to_index().equals(pd.date_range("2020-01-01", periods=30, freq="h"))
    assert ds["2m_temperature"].chunks[0] == (24, 6)


def test_values_do_not_depend_on_chunking_or_start():
    whole = synthetic.era5_like(hours=48, resolution=10.0, chunks={"time": 48})
    pieces = synthetic.era5_like(hours=48, resolution=10.0, chunks={"time": 5})
    xarray.testing.assert_identical(whole.compute(), pieces.compute())
    later = synthetic.era5_like(hours=24, resolution=10.0, start="2020-01-02")
    xarray.testing.assert_identical(
        later.compute(), whole.isel(time=slice(24, 48)).compute()
    )


def test_seed_changes_the_noise_only():
    a = synthetic.era5_like(hours=2, resolution=10.0, seed=0).compute()
    b = synthetic.era5_like(hours=2, resolution=10.0, seed=1).compute()
    t2m_a, t2m_b = a["2m_temperature"], b["2m_temperature"]
    assert not np.array_equal(t2m_a, t2m_b)
    assert float(abs(t2m_a - t2m_b).mean()) < 10  # same climate, other weather


def test_sea_surface_temperature_is_nan_exactly_over_land():
    ds = synthetic.era5_like(hours=3, resolution=2.5).compute()
    land = synthetic.land_mask(ds.latitude.values, ds.longitude.values)
    sst = ds["sea_surface_temperature"].values
    assert 0.15 < land.mean() < 0.5
    assert np.isnan(sst[:, land]).all()
    assert not np.isnan(sst[:, ~land]).any()
    for name in ("2m_temperature", "mean_sea_level_pressure"):
        assert not np.isnan(ds[name].values).any()


def _t2m_at(time: str, lat: float, lon: float) -> float:
    latitude, longitude = synthetic.grid(2.5)
    i, j = int(np.argmin(abs(latitude - lat))), int(np.argmin(abs(longitude - lon)))
    times = pd.date_range(time, periods=24, freq="h").values
    return synthetic.values("2m_temperature", times, latitude, longitude)[:, i, j]


def test_seasonal_cycle_has_opposite_sign_in_each_hemisphere():
    # Daily means over the Eurasian and Australian interiors.
    north_jan, north_jul = (
        _t2m_at(d, 50, 90).mean() for d in ("2021-01-15", "2021-07-15")
    )
    south_jan, south_jul = (
        _t2m_at(d, -25, 135).mean() for d in ("2021-01-15", "2021-07-15")
    )
    assert north_jul - north_jan > 10
    assert south_jan - south_jul > 5


def test_diurnal_cycle_follows_local_time_over_land():
    # Over Africa (20 E, local time = UTC + 1:20) afternoon beats pre-dawn.
    day = _t2m_at("2021-04-01", 5, 20)
    assert day[13] - day[3] > 5


def test_values_rejects_unknown_variables():
    with pytest.raises(ValueError, match="unknown variable"):
        synthetic.era5_like(variables=["2t"])


def test_hours_for_size_rounds_up_to_whole_hours():
    per_hour = 73 * 144 * 4 * 2
    assert synthetic.hours_for_size(per_hour * 10, 2.5, 2) == 10
    assert synthetic.hours_for_size(per_hour * 10 + 1, 2.5, 2) == 11


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_write_era5_like_writes_the_same_values_chunk_by_chunk(tmp_path, zarr_format):
    path = str(tmp_path / "era5.zarr")
    written = synthetic.write_era5_like(
        path,
        hours=30,
        resolution=10.0,
        chunks={"time": 12, "longitude": 18},
        zarr_format=zarr_format,
    )
    expected = synthetic.era5_like(hours=30, resolution=10.0).compute()
    xarray.testing.assert_identical(written.compute(), expected)
    array = zarr.open_group(path)["2m_temperature"]
    assert array.chunks == (12, 19, 18)
    assert array.metadata.zarr_format == zarr_format


def test_write_era5_like_refuses_an_existing_store(tmp_path):
    path = str(tmp_path / "era5.zarr")
    synthetic.write_era5_like(path, hours=2, resolution=10.0)
    with pytest.raises(FileExistsError, match="already exists"):
        synthetic.write_era5_like(path, hours=2, resolution=10.0)
    synthetic.write_era5_like(path, hours=3, resolution=10.0, mode="w")
    assert xarray.open_zarr(path).sizes["time"] == 3
