"""cos(latitude) weights work as documented, float rounding at the poles and all.

``np.cos(np.deg2rad(lat))`` for float32 latitude is -4.4e-8 at +-90 degrees:
such rounding counts as 0, while a real negative weight is still refused.
"""

import numpy as np
import pytest
import xarray

import xarray_beam as xbeam
from xarray_beam.model import reductions


@pytest.fixture
def float32_grid() -> xarray.Dataset:
    """ERA5's layout: float32 latitude from 90 to -90, poles included."""
    latitude = np.linspace(90, -90, 19).astype(np.float32)
    rng = np.random.default_rng(7)
    return xarray.Dataset(
        {
            "t2m": (
                ("time", "latitude", "longitude"),
                rng.normal(280, 10, size=(4, 19, 8)).astype(np.float32),
            )
        },
        coords={"latitude": latitude, "longitude": np.arange(8) * 45.0},
    )


def test_float32_cos_latitude_dips_below_zero_at_the_poles(float32_grid):
    # The premise: without forgiving rounding, these weights were refused.
    weights = np.cos(np.deg2rad(float32_grid.latitude))
    assert weights.dtype == np.float32
    assert weights.values.min() < 0


def test_cos_latitude_weights_of_float32_latitude_match_xarray(float32_grid):
    weights = np.cos(np.deg2rad(float32_grid.latitude))
    ds = xbeam.Dataset.from_xarray(float32_grid, {"latitude": 5, "time": 2})
    actual = ds.mean(["latitude", "longitude"], weights=weights)
    expected = float32_grid.weighted(weights.clip(min=0)).mean(
        ["latitude", "longitude"]
    )
    xarray.testing.assert_allclose(
        actual.collect_with_direct_runner(), expected, rtol=1e-6
    )


def test_rounding_below_zero_is_clipped_to_zero_not_changed_in_place(float32_grid):
    weights = np.cos(np.deg2rad(float32_grid.latitude))
    before = weights.values.copy()
    checked = reductions.check_weights(weights, ["latitude"])
    assert checked.values.min() == 0
    assert checked.dtype == np.float32
    np.testing.assert_array_equal(checked.values, before.clip(min=0))
    np.testing.assert_array_equal(weights.values, before)  # the caller's array
    assert checked.dims == weights.dims
    np.testing.assert_array_equal(checked.latitude, weights.latitude)


@pytest.mark.parametrize("negative", [-1e-6, -9e-7, -4.4e-8])
def test_weights_within_a_millionth_below_zero_count_as_zero(negative):
    weights = xarray.DataArray([1.0, negative, 2.0], dims="x")
    assert reductions.check_weights(weights, ["x"]).values.tolist() == [1, 0, 2]


def test_rounding_of_large_weights_is_judged_relative_to_them():
    area = xarray.DataArray([5e8, -1.0, 2e8], dims="x")  # m^2, rounding ~1e-8
    assert reductions.check_weights(area, ["x"]).values.tolist() == [5e8, 0, 2e8]


@pytest.mark.parametrize(
    "values, at",
    [
        ([1.0, -2e-6, 0.5], "x=1"),
        ([1.0, -0.5, 2.0], "x=1"),
        ([1e3, -0.01, 2.0], "x=1"),
    ],
)
def test_larger_negative_weights_are_still_refused(values, at):
    weights = xarray.DataArray(values, dims="x")
    with pytest.raises(ValueError, match=f"weights must not be negative, .* at {at}"):
        reductions.check_weights(weights, ["x"])
    with pytest.raises(ValueError, match="weights must not be negative"):
        xbeam.Mean("x", weights=weights)


def test_negative_integer_weights_are_refused():
    weights = xarray.DataArray([1, -1, 2], dims="x")
    with pytest.raises(ValueError, match="must not be negative, got -1 at x=1"):
        xbeam.Sum("x", weights=weights)
