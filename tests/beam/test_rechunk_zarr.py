"""Specification of Zarr-to-Zarr rechunking, checked against xarray and zarr.

Each rechunk must reproduce the source exactly (values, coordinates, attrs,
stored dtypes and encodings) with the requested chunks, whether the plan runs
in one pass or through temporary stores. ``RegionIO`` itself is specified in
test_region_io.py.
"""

import os

import apache_beam as beam
import numpy as np
import pandas as pd
import pytest
import xarray
import zarr
from helpers import FREE_PASSES, read_tree

import xarray_beam as xb
from xarray_beam import synthetic
from xarray_beam.beam import rechunk_zarr

PENCILS = {"time": -1, "latitude": 5, "longitude": 6}
# With time chunks of 4 (48 hours on the 10 degree grid), this budget gives a
# two-pass plan for PENCILS; with time chunks of 2, a four-pass one.
TWO_PASS_MEM = 150_000
FOUR_PASS_MEM = 60_000


def _write_era5(path, time_chunk, **kwargs) -> str:
    """A 48 hour synthetic ERA5-like store on a 10 degree grid."""
    path = str(path)
    kwargs.setdefault("chunks", {"time": time_chunk})
    synthetic.write_era5_like(path, hours=48, resolution=10.0, **kwargs)
    return path


def _write_fine_pancakes(path, time_chunk: int = 4) -> str:
    """Two variables in thin time slices: pencils need a multi-pass plan."""
    return _write_era5(
        path,
        time_chunk,
        variables=("2m_temperature", "sea_surface_temperature"),
    )


@pytest.fixture(scope="module")
def pancakes(tmp_path_factory) -> str:
    """A read-only source: time chunks of 12, whole latitude/longitude."""
    return _write_era5(tmp_path_factory.mktemp("pancakes") / "src.zarr", 12)


@pytest.fixture(scope="module")
def fine_pancakes(tmp_path_factory) -> str:
    """A read-only source whose rechunk to PENCILS takes two passes."""
    return _write_fine_pancakes(tmp_path_factory.mktemp("fine") / "src.zarr")


def _expected_chunks(source_array, dims, target_chunks) -> tuple[int, ...]:
    """Target chunks of one variable: requested sizes, else the source's."""
    chunks = []
    for dim, size, source_chunk in zip(
        dims, source_array.shape, source_array.chunks, strict=True
    ):
        wanted = target_chunks.get(dim)
        if wanted is None:
            chunks.append(source_chunk)
        else:
            chunks.append(size if wanted == -1 else min(wanted, size))
    return tuple(chunks)


def _units(var: xarray.Variable):
    """The encoded units, with CF time references parsed (xarray writes
    'hours since 2022-01-01 00:00:00' back as 'hours since 2022-01-01')."""
    units = var.encoding.get("units")
    if isinstance(units, str) and " since " in units:
        step, reference = units.split(" since ")
        return step, pd.Timestamp(reference)
    return units


def _assert_rechunked(source: str, target: str, target_chunks) -> None:
    """The target holds the source exactly, with the requested chunks."""
    expected = xarray.open_zarr(source).compute()
    actual = xarray.open_zarr(target).compute()
    xarray.testing.assert_identical(actual, expected)

    source_group = zarr.open_group(source, mode="r")
    target_group = zarr.open_group(target, mode="r")
    for name, var in expected.variables.items():
        assert target_group[name].dtype == source_group[name].dtype, name
        for key in ("dtype", "_FillValue"):
            np.testing.assert_equal(
                actual[name].encoding.get(key),
                var.encoding.get(key),
                err_msg=f"encoding[{key!r}] of {name!r}",
            )
        assert _units(actual[name]) == _units(var), name
    for name, var in expected.data_vars.items():
        if var.ndim:
            assert target_group[name].chunks == _expected_chunks(
                source_group[name], var.dims, target_chunks
            ), name


def _passes(plan) -> list[int]:
    return [len(p.stages) for p in plan.plans]


# Sources built by hand with plain xarray.


def _write_1d(path) -> None:
    rng = np.random.default_rng(1)
    time = pd.date_range("2022-01-01", periods=50, freq="h")
    ds = xarray.Dataset(
        {"precip": ("time", rng.random(50), {"units": "mm"})},
        coords={"time": time},
    )
    ds.to_zarr(path, encoding={"precip": {"chunks": (7,)}})


def _write_3d(path) -> None:
    rng = np.random.default_rng(2)
    ds = xarray.Dataset(
        {"q": (("level", "y", "x"), rng.normal(size=(6, 8, 12)), {"units": "kg/kg"})},
        coords={"level": [1000, 850, 700, 500, 300, 100], "y": np.arange(8.0)},
        attrs={"source": "hand-built"},
    )
    ds.to_zarr(path, encoding={"q": {"chunks": (1, 8, 12)}})


def _write_ragged(path) -> None:
    rng = np.random.default_rng(3)
    ds = xarray.Dataset(
        {
            "a": (("y", "x"), rng.normal(size=(13, 17)).astype(np.float32)),
            "b": (("y", "x"), rng.integers(-50, 50, (13, 17)).astype(np.int64)),
        },
        coords={"y": np.arange(13) * 0.5, "x": np.arange(17) * 2.0},
    )
    ds.to_zarr(path, encoding={"a": {"chunks": (5, 17)}, "b": {"chunks": (3, 7)}})


def _write_v2_era5(path) -> None:
    _write_era5(path, 12, zarr_format=2)


def _write_v3_era5(path) -> None:
    _write_era5(path, 12, zarr_format=3)


@pytest.mark.parametrize(
    ("write_source", "target_chunks", "kwargs"),
    [
        (_write_1d, {"time": 20}, {}),
        (_write_3d, {"level": -1, "y": 4, "x": 4}, {}),
        (_write_ragged, {"y": 4, "x": 5}, {}),
        (_write_v2_era5, PENCILS, {"zarr_format": 3}),
        (_write_v3_era5, PENCILS, {"zarr_format": 2}),
    ],
    ids=["1d", "3d", "ragged_last_chunks", "zarr_v2_to_v3", "zarr_v3_to_v2"],
)
def test_rechunk_zarr_reproduces_the_source_with_new_chunks(
    tmp_path, write_source, target_chunks, kwargs
):
    source = str(tmp_path / "src.zarr")
    target = str(tmp_path / "dst.zarr")
    write_source(source)

    xb.rechunk_zarr(source, target, target_chunks, max_mem=2**20, **kwargs)

    _assert_rechunked(source, target, target_chunks)
    expected_format = kwargs.get("zarr_format", 3)
    group = zarr.open_group(target, mode="r")
    assert group.metadata.zarr_format == expected_format
    for _, array in group.arrays():
        assert array.metadata.zarr_format == expected_format


def test_rechunk_zarr_turns_pancakes_into_pencils_in_one_pass(tmp_path, pancakes):
    target = str(tmp_path / "dst.zarr")

    plan = xb.rechunk_zarr(pancakes, target, PENCILS, max_mem=2**20)

    assert _passes(plan) == [1]
    assert np.isnan(xarray.open_zarr(pancakes)["sea_surface_temperature"]).any()
    _assert_rechunked(pancakes, target, PENCILS)
    assert not os.path.exists(target + ".rechunk-temp")


@pytest.mark.slow  # several pipelines
def test_rechunk_zarr_turns_pencils_into_pancakes_through_a_temp_store(tmp_path):
    source = _write_era5(
        tmp_path / "src.zarr", 48, chunks={"time": 48, "latitude": 2, "longitude": 3}
    )
    target = str(tmp_path / "dst.zarr")
    pancake_chunks = {"time": 6, "latitude": -1, "longitude": -1}

    plan = xb.rechunk_zarr(
        source, target, pancake_chunks, max_mem=100_000, cost_model=FREE_PASSES
    )

    assert len(plan.plans[0].stages) > 1
    _assert_rechunked(source, target, pancake_chunks)


@pytest.mark.slow  # several pipelines
def test_rechunk_zarr_copies_variables_of_mixed_dims(tmp_path, mixed_dataset):
    source = str(tmp_path / "src.zarr")
    target = str(tmp_path / "dst.zarr")
    mixed_dataset.to_zarr(
        source,
        encoding={
            "t2m": {"chunks": (1, 7, 4)},
            "count": {"chunks": (1, 4)},
            "lsm": {"chunks": (2, 6)},
            "valid": {"chunks": (1,)},
        },
    )
    target_chunks = {"time": -1, "latitude": 3}

    plan = xb.rechunk_zarr(
        source, target, target_chunks, max_mem=2000, cost_model=FREE_PASSES
    )

    assert len(plan.plan_for("t2m").stages) > 1
    assert len(plan.plan_for("count").stages) == 1
    _assert_rechunked(source, target, target_chunks)
    group = zarr.open_group(target, mode="r")
    assert group["t2m"].chunks == (10, 3, 4)
    assert group["count"].chunks == (10, 4)
    assert group["lsm"].chunks == (3, 6)
    assert group["valid"].chunks == (10,)
    assert group["scale"].shape == ()
    assert not os.path.exists(target + ".rechunk-temp")


def test_rechunk_zarr_copies_scaled_integers_as_stored(tmp_path):
    source = str(tmp_path / "src.zarr")
    target = str(tmp_path / "dst.zarr")
    rng = np.random.default_rng(4)
    values = rng.normal(280.0, 5.0, (20, 9)).astype(np.float32)
    values[3, 2:5] = np.nan
    ds = xarray.Dataset(
        {"t": (("time", "x"), values, {"units": "K"})},
        coords={"time": pd.date_range("2020-06-01", periods=20, freq="D")},
    )
    encoding = {
        "t": {
            "dtype": "int16",
            "scale_factor": 0.01,
            "add_offset": 280.0,
            "_FillValue": -32768,
            "chunks": (3, 9),
        }
    }
    ds.to_zarr(source, encoding=encoding)
    target_chunks = {"time": -1, "x": 4}

    xb.rechunk_zarr(source, target, target_chunks, max_mem=2**20)

    np.testing.assert_array_equal(
        zarr.open_group(target, mode="r")["t"][...],
        zarr.open_group(source, mode="r")["t"][...],
    )
    assert zarr.open_group(target, mode="r")["t"].dtype == np.int16
    _assert_rechunked(source, target, target_chunks)
    stored = xarray.open_zarr(target)["t"].encoding
    assert stored["scale_factor"] == 0.01
    assert stored["add_offset"] == 280.0


def test_rechunk_zarr_copies_a_big_endian_zarr_v2_store(tmp_path):
    # xarray keeps the byte order of big-endian data (as read from netCDF)
    # when it writes Zarr v2.
    source = str(tmp_path / "src.zarr")
    target = str(tmp_path / "dst.zarr")
    values = np.arange(60, dtype=">f4").reshape(6, 10)
    xarray.Dataset({"v": (("t", "x"), values)}).to_zarr(
        source, zarr_format=2, encoding={"v": {"chunks": (1, 10)}}
    )
    assert zarr.open_group(source, mode="r")["v"].dtype == np.dtype(">f4")

    xb.rechunk_zarr(source, target, {"t": -1, "x": 5}, max_mem=2**20)

    xarray.testing.assert_identical(
        xarray.open_zarr(target).compute(), xarray.open_zarr(source).compute()
    )
    assert zarr.open_group(target, mode="r")["v"].chunks == (6, 5)


def test_rechunk_zarr_writes_target_shards(tmp_path, pancakes):
    target = str(tmp_path / "dst.zarr")

    xb.rechunk_zarr(
        pancakes,
        target,
        PENCILS,
        max_mem=2**20,
        target_shards={"latitude": 10, "longitude": 12},
    )

    _assert_rechunked(pancakes, target, PENCILS)
    group = zarr.open_group(target, mode="r")
    for name in xarray.open_zarr(pancakes).data_vars:
        assert group[name].chunks == (48, 5, 6), name
        assert group[name].shards == (48, 10, 12), name


def test_rechunk_zarr_keeps_source_chunks_of_dims_not_named(tmp_path, pancakes):
    target = str(tmp_path / "dst.zarr")

    xb.rechunk_zarr(pancakes, target, {"latitude": 5}, max_mem=2**20)

    _assert_rechunked(pancakes, target, {"latitude": 5})
    group = zarr.open_group(target, mode="r")
    for name in xarray.open_zarr(pancakes).data_vars:
        assert group[name].chunks == (12, 5, 36), name


# Multi-pass plans and the temporary store.


def test_rechunk_zarr_removes_the_default_temp_store(tmp_path, fine_pancakes):
    target = str(tmp_path / "dst.zarr")

    plan = xb.rechunk_zarr(
        fine_pancakes, target, PENCILS, TWO_PASS_MEM, cost_model=FREE_PASSES
    )

    assert len(plan.plans[0].stages) > 1
    _assert_rechunked(fine_pancakes, target, PENCILS)
    assert not os.path.exists(target + ".rechunk-temp")
    assert sorted(os.listdir(tmp_path)) == ["dst.zarr"]


def test_rechunk_zarr_removes_an_explicit_temp_store_it_created(
    tmp_path, fine_pancakes
):
    target = str(tmp_path / "dst.zarr")
    temp = str(tmp_path / "scratch")

    plan = xb.rechunk_zarr(
        fine_pancakes, target, PENCILS, TWO_PASS_MEM, temp, cost_model=FREE_PASSES
    )

    assert len(plan.plans[0].stages) > 1
    _assert_rechunked(fine_pancakes, target, PENCILS)
    assert not os.path.exists(temp)
    assert not os.path.exists(target + ".rechunk-temp")


@pytest.mark.slow  # several pipelines
def test_rechunk_zarr_keep_temp_leaves_uncompressed_zarr_copies(tmp_path):
    source = _write_fine_pancakes(tmp_path / "src.zarr", time_chunk=2)
    target = str(tmp_path / "dst.zarr")

    plan = xb.rechunk_zarr(
        source,
        target,
        PENCILS,
        max_mem=FOUR_PASS_MEM,
        keep_temp=True,
        cost_model=FREE_PASSES,
    )

    (stages,) = [p.stages for p in plan.plans]
    assert len(stages) > 2
    _assert_rechunked(source, target, PENCILS)
    temp = zarr.open_group(target + ".rechunk-temp", mode="r")
    source_group = zarr.open_group(source, mode="r")
    names = list(xarray.open_zarr(source).data_vars)
    assert sorted(temp.group_keys()) == [f"pass{i}" for i in range(1, len(stages))]
    for number, stage in enumerate(stages[:-1], start=1):
        for name in names:
            array = temp[f"pass{number}"][name]
            assert array.compressors == ()
            assert array.chunks == stage.write_units
            np.testing.assert_array_equal(array[...], source_group[name][...])


# The temp_store location.


def _someone_elses_files(path) -> None:
    os.makedirs(path)
    with open(os.path.join(path, "notes.txt"), "w") as f:
        f.write("not yours")


def _someone_elses_zarr(path) -> None:
    xarray.Dataset({"mine": ("x", np.arange(3))}).to_zarr(path)


@pytest.mark.parametrize(
    "make_temp", [_someone_elses_files, _someone_elses_zarr], ids=["files", "zarr"]
)
def test_rechunk_zarr_refuses_a_temp_store_holding_other_data(
    tmp_path, fine_pancakes, make_temp
):
    target = str(tmp_path / "dst.zarr")
    temp = str(tmp_path / "scratch")
    make_temp(temp)
    before = read_tree(temp)
    transform = xb.RechunkZarr(fine_pancakes, target, PENCILS, TWO_PASS_MEM, temp)
    pipeline = beam.Pipeline("DirectRunner")

    with pytest.raises(FileExistsError, match="scratch"):
        _ = pipeline | transform

    assert read_tree(temp) == before
    assert not os.path.exists(target)


def test_rechunk_zarr_accepts_an_empty_temp_directory_and_empties_it(
    tmp_path, fine_pancakes
):
    target = str(tmp_path / "dst.zarr")
    temp = tmp_path / "scratch"
    temp.mkdir()

    plan = xb.rechunk_zarr(
        fine_pancakes, target, PENCILS, TWO_PASS_MEM, str(temp), cost_model=FREE_PASSES
    )

    assert len(plan.plans[0].stages) > 1
    _assert_rechunked(fine_pancakes, target, PENCILS)
    assert temp.is_dir()
    assert os.listdir(temp) == []


# Target modes and validation when the transform is built.


def test_rechunk_zarr_refuses_an_existing_target_by_default(tmp_path, pancakes):
    target = str(tmp_path / "dst.zarr")
    xarray.Dataset({"old": ("x", np.arange(4.0))}).to_zarr(target)
    before = read_tree(target)

    with pytest.raises(FileExistsError, match="dst.zarr"):
        xb.rechunk_zarr(pancakes, target, PENCILS, max_mem=2**20)

    assert read_tree(target) == before


def test_rechunk_zarr_mode_w_overwrites_the_target(tmp_path, pancakes):
    target = str(tmp_path / "dst.zarr")
    xarray.Dataset({"old": ("x", np.arange(4.0))}).to_zarr(target)

    xb.rechunk_zarr(pancakes, target, PENCILS, max_mem=2**20, mode="w")

    _assert_rechunked(pancakes, target, PENCILS)
    assert "old" not in zarr.open_group(target, mode="r")


@pytest.mark.parametrize(
    ("target_chunks", "kwargs", "culprit"),
    [
        ({"level": 3}, {}, "level"),
        ({"time": -1, "latitude": -1, "longitude": -1}, {}, "target chunks"),
        ({"time": 0}, {}, "'time'"),
        ({"latitude": -2}, {}, "'latitude'"),
        (PENCILS, {"min_mem": 200_000}, "min_mem"),
        (
            PENCILS,
            {"encoding": {"2m_temperature": {"chunks": (48, 5, 6)}}},
            "2m_temperature",
        ),
    ],
    ids=[
        "unknown_dim",
        "chunks_over_max_mem",
        "zero_size",
        "negative_size",
        "min_mem_over_max_mem",
        "encoding_sets_chunks",
    ],
)
def test_rechunk_zarr_rejects_bad_arguments_when_built(
    tmp_path, pancakes, target_chunks, kwargs, culprit
):
    target = str(tmp_path / "dst.zarr")

    with pytest.raises(ValueError, match=culprit):
        xb.RechunkZarr(pancakes, target, target_chunks, max_mem=100_000, **kwargs)

    assert os.listdir(tmp_path) == []


# Runners and threads.


@pytest.mark.slow
def test_rechunk_zarr_on_multiple_processes_gives_the_same_store(
    tmp_path, fine_pancakes
):
    target = str(tmp_path / "dst.zarr")

    plan = xb.rechunk_zarr(
        fine_pancakes,
        target,
        PENCILS,
        max_mem=TWO_PASS_MEM,
        cost_model=FREE_PASSES,
        pipeline_options=[
            "--direct_running_mode=multi_processing",
            "--direct_num_workers=2",
        ],
    )

    assert len(plan.plans[0].stages) > 1
    _assert_rechunked(fine_pancakes, target, PENCILS)
    assert not os.path.exists(target + ".rechunk-temp")


@pytest.mark.slow  # several pipelines
def test_rechunk_zarr_transform_with_two_threads_gives_the_same_store(
    tmp_path, fine_pancakes
):
    target = str(tmp_path / "dst.zarr")
    transform = xb.RechunkZarr(
        fine_pancakes,
        target,
        PENCILS,
        max_mem=TWO_PASS_MEM,
        num_threads=2,
        cost_model=FREE_PASSES,
    )

    with beam.Pipeline("DirectRunner") as pipeline:
        _ = pipeline | "Rechunk" >> transform

    assert len(transform.plan.plans[0].stages) > 1
    _assert_rechunked(fine_pancakes, target, PENCILS)
    assert not os.path.exists(target + ".rechunk-temp")


# The plan.


def test_rechunk_zarr_plan_prints_the_variables_and_building_writes_nothing(
    tmp_path, fine_pancakes
):
    target = str(tmp_path / "dst.zarr")
    temp = str(tmp_path / "scratch")

    free = {"cost_model": FREE_PASSES}
    default_temp = xb.RechunkZarr(fine_pancakes, target, PENCILS, TWO_PASS_MEM, **free)
    explicit_temp = xb.RechunkZarr(
        fine_pancakes, target, PENCILS, TWO_PASS_MEM, temp, **free
    )

    for transform in (default_temp, explicit_temp):
        text = str(transform.plan)
        assert "2m_temperature" in text
        assert "sea_surface_temperature" in text
        assert len(transform.plan.plans[0].stages) > 1
    assert os.listdir(tmp_path) == []


@pytest.mark.slow  # several pipelines
def test_rechunk_zarr_resumes_after_a_failure_in_a_later_pass(tmp_path, monkeypatch):
    """A two-pass rechunk fails in its second pass; resumed, it keeps the temp
    store, skips what was written, and gives the uninterrupted result."""
    source = _write_era5(
        tmp_path / "src.zarr", 48, chunks={"time": 48, "latitude": 2, "longitude": 3}
    )
    pancake_chunks = {"time": 6, "latitude": -1, "longitude": -1}
    free = {"cost_model": FREE_PASSES}
    reference = str(tmp_path / "reference.zarr")
    plan = xb.rechunk_zarr(source, reference, pancake_chunks, max_mem=100_000, **free)
    assert len(plan.plans[0].stages) == 2

    target = str(tmp_path / "dst.zarr")
    real_call = rechunk_zarr._RegionCopier.__call__
    copies = {"final": 0}

    def failing_call(self, key, token):
        if not self._target.temporary:
            copies["final"] += 1
            if copies["final"] > 3:
                raise RuntimeError("simulated failure in the last pass")
        yield from real_call(self, key, token)

    monkeypatch.setattr(rechunk_zarr._RegionCopier, "__call__", failing_call)
    with pytest.raises(Exception, match="simulated failure"):
        xb.rechunk_zarr(source, target, pancake_chunks, max_mem=100_000, **free)
    monkeypatch.setattr(rechunk_zarr._RegionCopier, "__call__", real_call)
    temp = target + ".rechunk-temp"
    assert os.path.exists(temp)  # kept after the failure
    assert not xb.verify_zarr(target).complete
    temp_files = {
        p: os.stat(os.path.join(temp, p)).st_ino for p in read_tree(temp) if "/c/" in p
    }
    assert temp_files

    with pytest.raises(FileExistsError):
        xb.rechunk_zarr(source, target, pancake_chunks, max_mem=100_000, **free)
    xb.rechunk_zarr(
        source,
        target,
        pancake_chunks,
        max_mem=100_000,
        resume=True,
        keep_temp=True,
        **free,
    )
    # The first pass was complete: its objects were kept, not rewritten.
    assert {p: os.stat(os.path.join(temp, p)).st_ino for p in temp_files} == temp_files
    assert xb.verify_zarr(target).complete
    assert read_tree(target) == read_tree(reference)


def test_building_rechunk_zarr_opens_the_source_once(pancakes, tmp_path, monkeypatch):
    """Each open of a store on object storage costs a dozen requests."""
    opened = []
    open_zarr, open_group = xarray.open_zarr, zarr.open_group

    def counting_open_zarr(store, *args, **kwargs):
        opened.append(("xarray", str(store)))
        return open_zarr(store, *args, **kwargs)

    def counting_open_group(store=None, *args, **kwargs):
        opened.append(("zarr", str(store)))
        return open_group(store, *args, **kwargs)

    monkeypatch.setattr(xarray, "open_zarr", counting_open_zarr)
    monkeypatch.setattr(zarr, "open_group", counting_open_group)
    transform = rechunk_zarr.RechunkZarr(
        pancakes, str(tmp_path / "out.zarr"), PENCILS, max_mem=2**24
    )

    of_source = [how for how, store in opened if store == str(pancakes)]
    assert sorted(of_source) == ["xarray", "zarr"]
    assert transform.plan.plans  # planned from that one opening


@pytest.mark.parametrize(
    ("stores", "remote"),
    [
        (("/tmp/a.zarr", "/tmp/b.zarr"), False),
        (("gs://bucket/a.zarr", "/tmp/b.zarr"), True),
        (("/tmp/a.zarr", "s3://bucket/b.zarr"), True),
        (("memory://a.zarr",), False),
    ],
)
def test_rechunks_through_object_storage_are_planned_with_its_costs(stores, remote):
    from xarray_beam.model import planning

    expected = planning.CostModel.object_store() if remote else planning.CostModel()
    assert rechunk_zarr.cost_model_for(*stores) == expected


def test_a_local_rechunk_is_planned_with_local_disk_costs(tmp_path):
    from xarray_beam.model import planning

    source = synthetic.era5_like(hours=48, resolution=30.0).chunk({"time": 24})
    source.to_zarr(tmp_path / "in.zarr")
    transform = xb.RechunkZarr(
        str(tmp_path / "in.zarr"), str(tmp_path / "out.zarr"), {"time": -1}
    )
    assert transform.plan == rechunk_zarr.plan_store_rechunk(
        str(tmp_path / "in.zarr"), {"time": -1}, cost_model=planning.CostModel()
    )
