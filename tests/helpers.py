"""Helpers shared by several test modules."""

import os

import numpy as np
import xarray


def read_tree(path) -> dict[str, bytes]:
    """Every file below ``path`` as relative path -> bytes, to check that
    nothing in a directory changed."""
    result = {}
    for root, _, names in os.walk(path):
        for name in names:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                result[os.path.relpath(full, path)] = f.read()
    return result


def climatology_oracle(dataset: xarray.Dataset, stat: str = "mean") -> xarray.Dataset:
    """xarray's month x hour groupby statistic, in float64."""
    labelled = dataset.assign_coords(
        month=("time", dataset.indexes["time"].month),
        hour=("time", dataset.indexes["time"].hour),
    )
    return getattr(labelled.astype("float64").groupby(["month", "hour"]), stat)()


def assert_matches_oracle(actual: xarray.Dataset, expected: xarray.Dataset) -> None:
    """A month x hour climatology equals the oracle at the labels it has."""
    assert sorted(actual.data_vars) == sorted(expected.data_vars)
    for dim in ("month", "hour"):
        np.testing.assert_array_equal(
            np.sort(actual[dim].values), np.sort(expected[dim].values)
        )
    expected = expected.sel(month=actual["month"].values, hour=actual["hour"].values)
    for name, var in expected.data_vars.items():
        np.testing.assert_allclose(
            actual[name].transpose(*var.dims).values,
            var.values,
            rtol=1e-5,
            atol=1e-4,
            err_msg=name,
        )
