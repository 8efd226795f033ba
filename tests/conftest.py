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


# --- object stores on emulators (127.0.0.1 only), one per test module ---------


@pytest.fixture(scope="module")
def gs(tmp_path_factory):
    """A bucket on a GCS emulator started for this test module."""
    import emulators

    with emulators.gcs_bucket(tmp_path_factory.mktemp("gcs-emulator")) as bucket:
        yield bucket


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A bucket on an S3 emulator (moto) started for this test module."""
    import emulators

    with emulators.s3_bucket(tmp_path_factory.mktemp("s3-emulator")) as bucket:
        yield bucket


@pytest.fixture(params=["gs", "s3"])
def bucket(request):
    """The same bucket on each emulator in turn."""
    return request.getfixturevalue(request.param)
