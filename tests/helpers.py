"""Helpers shared by several test modules."""

import os
import re

import numpy as np
import xarray

import xarray_beam as xb

# Under the default cost model a pass costs a quarter of a second, so the tiny
# stores of tests are rechunked in one pass; tests of temporary stores and
# multi-pass plans take passes for free to get them.
FREE_PASSES = xb.CostModel(per_pass=0)


def read_tree(path) -> dict[str, bytes]:
    """Every file below ``path`` as relative path -> bytes, to check that
    nothing in a directory changed (or that two stores are the same).

    The id of the job in a store's record (the ``xarray_beam`` group's
    attributes, also in the consolidated metadata) is left out: two runs of
    one job write the same store under different ids.
    """
    result = {}
    for root, _, names in os.walk(path):
        for name in names:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                data = f.read()
            if name in ("zarr.json", ".zattrs", ".zmetadata"):
                data = without_job_ids(data)
            result[os.path.relpath(full, path)] = data
    return result


def without_job_ids(data: bytes) -> bytes:
    """Metadata JSON with the ``job`` of job records blanked, else as it is."""
    text = data.decode()
    if '"job"' not in text:
        return data
    return re.sub(r'"job": "[0-9a-f]{32}"', '"job": ""', text).encode()


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
