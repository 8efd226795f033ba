"""Shared fixtures: small datasets that exercise the awkward cases."""

import numpy as np
import pandas as pd
import pytest
import xarray

from xarray_beam import synthetic


@pytest.fixture
def mixed_dataset() -> xarray.Dataset:
    """Several variables with different dims, dtypes, NaNs and a 0-d variable.

    time: 10 (hourly datetimes), latitude: 7 (descending), longitude: 6.
    """
    rng = np.random.default_rng(0)
    time = pd.date_range("2021-03-01", periods=10, freq="h")
    latitude = np.linspace(30.0, -30.0, 7)
    longitude = np.arange(6) * 60.0
    t2m = rng.normal(280, 10, (10, 7, 6)).astype(np.float32)
    t2m[2, 3, :] = np.nan
    return xarray.Dataset(
        {
            "t2m": (("time", "latitude", "longitude"), t2m, {"units": "K"}),
            "count": (
                ("time", "longitude"),
                rng.integers(0, 100, (10, 6)).astype(np.int32),
            ),
            "lsm": (("latitude", "longitude"), rng.random((7, 6)) > 0.5),
            "valid": (("time",), time.values + np.timedelta64(6, "h")),
            "scale": ((), np.float64(2.5)),
        },
        coords={"time": time, "latitude": latitude, "longitude": longitude},
        attrs={"title": "mixed"},
    )


@pytest.fixture
def era5_small() -> xarray.Dataset:
    """A tiny in-memory synthetic ERA5-like dataset (48 h on a 10 degree grid)."""
    return synthetic.era5_like(hours=48, resolution=10.0).compute()
