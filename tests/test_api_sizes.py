"""Byte sizes such as max_mem='1GB' work in every Python API that takes one.

Each API is checked by what it plans or holds with a string against the same
call with the number of bytes, and by the error naming the parameter for
text that is not a size; two pipelines run with string sizes.
"""

import numpy as np
import pandas as pd
import pytest
import xarray
import zarr

import xarray_beam as xbeam
from xarray_beam.model import planning, routes
from xarray_beam.model.reductions import Reducer
from xarray_beam.programs import jobs

SHAPE = {"time": 96, "x": 40}
SOURCE = {"time": 24, "x": -1}
TARGET = {"time": -1, "x": 10}
REDUCTIONS = [xbeam.Mean, xbeam.Sum, xbeam.Count, xbeam.Min, xbeam.Max]
REDUCTIONS += [xbeam.Var, xbeam.Std]


@pytest.fixture
def pancakes(tmp_path) -> str:
    """A small Zarr store in time chunks."""
    path = str(tmp_path / "source.zarr")
    rng = np.random.default_rng(0)
    xarray.Dataset(
        {
            "t": (("time", "x"), rng.normal(size=(48, 12)).astype("float32")),
            "p": (("time", "x"), rng.normal(size=(48, 12))),
        },
        coords={"time": pd.date_range("2021-01-01", periods=48, freq="h")},
    ).chunk({"time": 8}).to_zarr(path, consolidated=True)
    return path


@pytest.mark.parametrize(
    "text, count",
    [
        ("4GB", 4 * 10**9),
        ("1GB", 10**9),
        ("1G", 10**9),
        ("256M", 256 * 10**6),
        ("256MB", 256 * 10**6),
        ("256MiB", 256 * 2**20),
        ("1GiB", 2**30),
    ],
)
def test_plan_rechunk_takes_max_mem_as_text_like_rechunker(text, count):
    with_text = xbeam.plan_rechunk(SHAPE, SOURCE, TARGET, 4, max_mem=text)
    with_int = xbeam.plan_rechunk(SHAPE, SOURCE, TARGET, 4, max_mem=count)
    assert with_text.max_mem == count
    assert with_text == with_int


def test_plan_rechunk_takes_min_mem_as_text():
    plan = xbeam.plan_rechunk(
        SHAPE, SOURCE, TARGET, 4, min_mem="1KiB", max_mem="1MiB", method="storage"
    )
    assert (plan.min_mem, plan.max_mem) == (1024, 2**20)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"max_mem": "4 gigs"}, ValueError, r"max_mem: not a size: '4 gigs'"),
        ({"max_mem": "auto"}, ValueError, r"max_mem: not a size: 'auto'"),
        ({"max_mem": ""}, ValueError, r"max_mem: not a size: ''"),
        ({"max_mem": "0.1B"}, ValueError, r"max_mem: size must be at least one"),
        ({"max_mem": 0}, ValueError, r"max_mem must be positive"),
        ({"max_mem": -5}, ValueError, r"max_mem must be positive"),
        ({"max_mem": [1]}, TypeError, r"max_mem must be a number of bytes"),
        ({"max_mem": True}, TypeError, r"max_mem must be a number of bytes"),
        ({"max_mem": 1.5}, TypeError, r"max_mem must be a number of bytes"),
        ({"min_mem": "lots"}, ValueError, r"min_mem: not a size: 'lots'"),
        (
            {"min_mem": "2GB", "max_mem": "1GB"},
            ValueError,
            r"min_mem \(1.9 GiB\) is larger than max_mem \(953.7 MiB\)",
        ),
    ],
)
def test_plan_rechunk_names_the_size_parameter_at_fault(kwargs, error, match):
    with pytest.raises(error, match=match):
        xbeam.plan_rechunk(SHAPE, SOURCE, TARGET, 4, **kwargs)


def test_a_whole_float_is_a_size():
    plan = xbeam.plan_rechunk(SHAPE, SOURCE, TARGET, 4, max_mem=1e9)
    assert plan.max_mem == 10**9


def test_rechunk_plans_with_text_sizes_as_with_bytes():
    with_text = xbeam.Rechunk(SHAPE, SOURCE, TARGET, 4, "1KiB", "1MB")
    with_int = xbeam.Rechunk(SHAPE, SOURCE, TARGET, 4, 1024, 10**6)
    assert with_text.plan == with_int.plan
    assert (with_text.plan.min_mem, with_text.plan.max_mem) == (1024, 10**6)
    with pytest.raises(ValueError, match="max_mem: not a size: '1 meg'"):
        xbeam.Rechunk(SHAPE, SOURCE, TARGET, 4, max_mem="1 meg")


def test_rechunk_request_holds_bytes_and_names_a_bad_size():
    request = routes.RechunkRequest(
        {"t": 8}, 4, {"t": 2}, {"t": 8}, min_mem="1KB", max_mem="1GiB"
    )
    assert (request.max_mem, request.min_mem) == (2**30, 1000)
    assert routes.choose_route(request).plan.max_mem == 2**30
    with pytest.raises(ValueError, match="max_mem: not a size: 'big'"):
        routes.RechunkRequest({"t": 8}, 4, {"t": 2}, {"t": 8}, max_mem="big")


def test_memory_bounds_default_is_one_gibibyte():
    assert routes.RechunkRequest({"t": 8}, 4, {"t": 2}, {"t": 8}).max_mem == 2**30
    assert planning.memory_bounds("1GiB") == (2**30, None)


def test_plan_store_rechunk_and_rechunk_zarr_plan_with_text_sizes(pancakes, tmp_path):
    target = {"time": -1, "x": 3}
    with_text = xbeam.plan_store_rechunk(pancakes, target, "4MB", "1kB")
    with_int = xbeam.plan_store_rechunk(pancakes, target, 4 * 10**6, 1000)
    assert with_text == with_int
    transform = xbeam.RechunkZarr(
        pancakes, str(tmp_path / "out.zarr"), target, "4MB", min_mem="1kB"
    )
    assert transform.plan == with_int


def test_rechunk_zarr_names_a_bad_size_before_opening_anything(tmp_path):
    missing = str(tmp_path / "no-such.zarr")
    with pytest.raises(ValueError, match="max_mem: not a size: '4 gigs'"):
        xbeam.RechunkZarr(missing, str(tmp_path / "out.zarr"), {"x": 1}, "4 gigs")
    with pytest.raises(ValueError, match="min_mem: not a size: 'x'"):
        xbeam.rechunk_zarr(missing, str(tmp_path / "o.zarr"), {"x": 1}, min_mem="x")
    assert not (tmp_path / "out.zarr").exists()


def test_rechunk_zarr_runs_with_text_sizes_and_explicit_mode(pancakes, tmp_path):
    output = str(tmp_path / "pencils.zarr")
    zarr.open_group(output, mode="w")  # something to replace
    plan = xbeam.rechunk_zarr(
        pancakes,
        output,
        {"time": -1, "x": 3},
        max_mem="100kB",
        min_mem="1KiB",
        mode="w",
        temp_store=str(tmp_path / "temp.zarr"),
    )
    assert plan.plans[0].max_mem == 100_000
    xarray.testing.assert_identical(
        xarray.open_zarr(output).compute(), xarray.open_zarr(pancakes).compute()
    )
    assert zarr.open_group(output, mode="r")["t"].chunks == (48, 3)


@pytest.mark.parametrize("reduction", REDUCTIONS, ids=lambda c: c.__name__)
def test_reductions_take_max_mem_as_text(reduction):
    assert reduction("time", max_mem="64MB").max_mem == 64 * 10**6
    assert reduction.Globally(max_mem="1GiB").max_mem == 2**30
    assert reduction.PerKey(max_mem="2KiB").max_mem == 2048
    with pytest.raises(ValueError, match="max_mem: not a size: 'much'"):
        reduction("time", max_mem="much")


def test_reductions_default_max_mem_is_256_mebibytes():
    assert xbeam.Mean("time").max_mem == 2**28
    assert xbeam.Climatology().max_mem == 2**28


def test_combine_through_storage_takes_max_mem_as_text(tmp_path):
    merge = xbeam.CombineThroughStorage(Reducer(), str(tmp_path / "t"), "1MiB")
    assert merge.max_mem == 2**20
    assert merge.for_any_keys().max_mem == 2**20


def test_climatology_takes_max_mem_as_text():
    assert xbeam.Climatology("month", max_mem="128MB").max_mem == 128 * 10**6
    with pytest.raises(ValueError, match="max_mem: not a size: '2 GB RAM'"):
        xbeam.Climatology("month", max_mem="2 GB RAM")


def test_dataset_methods_take_sizes_as_text():
    source = xarray.Dataset(
        {"t": (("time", "x"), np.zeros((48, 6)))},
        coords={"time": pd.date_range("2000-01-01", periods=48, freq="h")},
    )
    ds = xbeam.Dataset.from_xarray(source, {"time": 8})
    rechunked = ds.mean("x").rechunk({"time": 48}, max_mem="1MiB", min_mem="1KB")
    plan = rechunked.rechunk_route().plan
    assert (plan.max_mem, plan.min_mem) == (2**20, 1000)
    with pytest.raises(ValueError, match="max_mem: not a size: 'one'"):
        ds.rechunk({"time": 48}, max_mem="one")
    with pytest.raises(ValueError, match="max_mem: not a size: 'two'"):
        ds.mean("time", max_mem="two")
    with pytest.raises(ValueError, match="max_mem: not a size: 'three'"):
        ds.climatology("hour", max_mem="three")
    assert ds.climatology("hour", max_mem="64MB").chunks["hour"] == 24


def test_dataset_to_zarr_rechunks_store_to_store_with_text_sizes(pancakes, tmp_path):
    ds = xbeam.Dataset.from_zarr(pancakes).rechunk(
        {"time": -1, "x": 4}, max_mem="200kB", min_mem="1KiB"
    )
    route = ds.rechunk_route(to_zarr=True)
    assert route.route == "storage"
    assert route.plan.plans[0].max_mem == 200_000


def test_mean_with_a_text_max_mem_spills_and_matches_xarray(tmp_path):
    rng = np.random.default_rng(1)
    source = xarray.Dataset({"t": (("time", "x"), rng.normal(size=(40, 5)))})
    ds = xbeam.Dataset.from_xarray(source, {"time": 4})
    # 16 bytes of partial results: every chunk's partials spill to files.
    actual = ds.mean(
        "time", temp_store=str(tmp_path / "spill"), max_mem="16B"
    ).collect_with_direct_runner()
    xarray.testing.assert_allclose(actual, source.mean("time"))


def test_jobs_name_a_bad_size_before_opening_the_source(tmp_path):
    missing = str(tmp_path / "no-such.zarr")
    output = str(tmp_path / "out.zarr")
    with pytest.raises(ValueError, match="max_mem: not a size: '4 gigs'"):
        jobs.rechunk_job(missing, output, {"x": 1}, "4 gigs", out=lambda _: None)
    with pytest.raises(ValueError, match="min_mem: not a size: 'tiny'"):
        jobs.rechunk_job(missing, output, {"x": 1}, min_mem="tiny")
    with pytest.raises(ValueError, match="max_mem: not a size: 'lots'"):
        jobs.climatology_job(missing, output, max_mem="lots", out=lambda _: None)
    # Good sizes get as far as the missing source.
    with pytest.raises(FileNotFoundError):
        jobs.rechunk_job(missing, output, {"x": 1}, "1GB", out=lambda _: None)
    with pytest.raises(FileNotFoundError):
        jobs.climatology_job(missing, output, max_mem="1GB", out=lambda _: None)


def test_resample_takes_max_mem_as_text():
    source = xarray.Dataset(
        {"t": ("time", np.arange(48.0))},
        coords={"time": pd.date_range("2000-01-01", periods=48, freq="h")},
    )
    assert xbeam.Resample("1D", template=source, max_mem="64MB").max_mem == 64 * 10**6
    assert xbeam.Resample("1D", template=source).max_mem == 2**28
    with pytest.raises(ValueError, match="max_mem: not a size: 'heaps'"):
        xbeam.Resample("1D", template=source, max_mem="heaps")
    ds = xbeam.Dataset.from_xarray(source, {"time": 12})
    with pytest.raises(ValueError, match="max_mem: not a size: 'oodles'"):
        ds.resample(time="1D").max(max_mem="oodles")
    daily = ds.resample(time="1D").max(max_mem="1KiB", temp_store=False)
    xarray.testing.assert_identical(
        daily.collect_with_direct_runner(), source.resample(time="1D").max()
    )
