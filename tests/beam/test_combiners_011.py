"""Combiners without ``dim`` reduce across the datasets they combine, position
by position (xarray-beam 0.11's ``Mean.Globally()``, ``Mean.PerKey()`` and
``MeanCombineFn()``): checked against xarray on the stacked datasets,
``xarray.concat(members, 'member')`` reduced over ``'member'``."""

import os

import apache_beam as beam
import numpy as np
import pytest
import xarray

import xarray_beam as xbeam
from xarray_beam.beam import runners
from xarray_beam.model.key import Key
from xarray_beam.model.reductions import Reducer

STATS = ["mean", "sum", "count", "min", "max", "var", "std"]
TRANSFORMS = {
    "mean": xbeam.Mean,
    "sum": xbeam.Sum,
    "count": xbeam.Count,
    "min": xbeam.Min,
    "max": xbeam.Max,
    "var": xbeam.Var,
    "std": xbeam.Std,
}


def _members(count: int = 4, seed: int = 0) -> list[xarray.Dataset]:
    """Same-shaped ensemble members: float32 with NaNs (one position NaN in
    every member), int32, a 0-d variable, a string variable, attrs."""
    rng = np.random.default_rng(seed)
    members = []
    for number in range(count):
        t2m = rng.normal(280, 10, (3, 4)).astype(np.float32)
        t2m[0, 0] = np.nan  # NaN in every member
        t2m[number % 3, 1 + number % 3] = np.nan  # NaN in some members
        members.append(
            xarray.Dataset(
                {
                    "t2m": (("latitude", "longitude"), t2m, {"units": "K"}),
                    "count": (("longitude",), rng.integers(0, 50, 4).astype("i4")),
                    "scale": ((), np.float64(rng.random())),
                    "name": (("longitude",), np.array(["a", "b", "c", "d"])),
                },
                coords={
                    "latitude": [10.0, 0.0, -10.0],
                    "longitude": [0.0, 90.0, 180.0, 270.0],
                    "number": number,  # differs: dropped, as xarray drops it
                },
                attrs={"title": "ensemble"},
            )
        )
    return members


NUMERIC = ["t2m", "count", "scale"]


def _stacked(members, stat, **options) -> xarray.Dataset:
    """The oracle: xarray's statistic over the stacked members."""
    stacked = xarray.concat(members, "member")[NUMERIC]
    return getattr(stacked, stat)("member", **options)


def _assert_matches(actual, members, stat, **options):
    """Values match xarray on float64 data, dtypes match xarray on the
    originals, and the coordinates are those of the members (minus the one
    that differs)."""
    as_float = [m[NUMERIC].astype(np.float64) for m in members]
    expected = _stacked(as_float, stat, **options)
    xarray.testing.assert_allclose(
        actual[NUMERIC].astype(np.float64), expected, rtol=1e-6, atol=1e-9
    )
    original = _stacked(members, stat, **options)
    assert {n: actual[n].dtype for n in NUMERIC} == {
        n: original[n].dtype for n in NUMERIC
    }
    assert set(actual.coords) == {"latitude", "longitude"}
    assert "name" not in actual  # non-numeric, as xarray's reductions drop it


# --- Globally -------------------------------------------------------------------


def test_every_statistic_globally_reduces_across_the_datasets():
    members = _members()

    def build(p):
        source = p | beam.Create(members)
        branches = [
            source
            | f"{stat}" >> TRANSFORMS[stat].Globally()
            | f"Tag-{stat}" >> beam.Map(lambda ds, stat=stat: (stat, ds))
            for stat in STATS
        ]
        return branches | beam.Flatten()

    results = dict(runners.collect(build, runner="DirectRunner"))
    assert sorted(results) == sorted(STATS)
    for stat in STATS:
        _assert_matches(results[stat], members, stat)
    assert results["mean"].t2m.attrs == {"units": "K"}
    assert results["mean"].attrs == {"title": "ensemble"}
    # The position that is NaN in every member has no valid value.
    assert results["count"].t2m.values[0, 0] == 0
    assert np.isnan(results["mean"].t2m.values[0, 0])


def test_globally_options_skipna_ddof_min_count_and_fanout():
    members = _members()
    transforms = {
        "mean-propagate": xbeam.Mean.Globally(skipna=False, fanout=2),
        "var-ddof1": xbeam.Var.Globally(ddof=1),
        "std-ddof1": xbeam.Std.Globally(None, True, None, 3, ddof=1),
        "sum-min-count": xbeam.Sum.Globally(min_count=4),
    }

    def build(p):
        source = p | beam.Create(members)
        return [
            source
            | name >> transform
            | f"Tag-{name}" >> beam.Map(lambda ds, name=name: (name, ds))
            for name, transform in transforms.items()
        ] | beam.Flatten()

    results = dict(runners.collect(build, runner="DirectRunner"))
    _assert_matches(results["mean-propagate"], members, "mean", skipna=False)
    _assert_matches(results["var-ddof1"], members, "var", ddof=1)
    _assert_matches(results["std-ddof1"], members, "std", ddof=1)
    _assert_matches(results["sum-min-count"], members, "sum", min_count=4)
    # skipna=False: a NaN in any member makes the mean NaN there.
    any_nan = np.isnan(np.stack([m.t2m.values for m in members])).any(axis=0)
    np.testing.assert_array_equal(
        np.isnan(results["mean-propagate"].t2m.values), any_nan
    )


@pytest.mark.parametrize("stat", ["mean", "sum", "count", "max"])
def test_globally_with_dim_reduces_inside_then_across(stat):
    """Variables lacking ``dim`` (count, scale) are reduced across the
    datasets, as over the stack in xarray."""
    members = _members()
    reducer = Reducer(stat)
    fn = xbeam.ReduceCombineFn(reducer, "latitude")
    accumulators = [fn.add_input(fn.create_accumulator(), member) for member in members]
    result = fn.extract_output(fn.merge_accumulators(accumulators))
    stacked = xarray.concat([m[NUMERIC] for m in members], "member")
    as_float = stacked.astype(np.float64)
    expected = getattr(as_float, stat)(["member", "latitude"])
    xarray.testing.assert_allclose(
        result[NUMERIC].astype(np.float64), expected, rtol=1e-6
    )
    original = getattr(stacked, stat)(["member", "latitude"])
    assert {n: result[n].dtype for n in NUMERIC} == {
        n: original[n].dtype for n in NUMERIC
    }


def test_mean_globally_with_dim_in_a_pipeline():
    members = _members()
    outputs = runners.collect(
        lambda p: p | beam.Create(members) | xbeam.Mean.Globally("latitude"),
        runner="DirectRunner",
    )
    stacked = xarray.concat([m[NUMERIC] for m in members], "member")
    expected = stacked.astype(np.float64).mean(["member", "latitude"])
    xarray.testing.assert_allclose(
        outputs[0][NUMERIC].astype(np.float64), expected, rtol=1e-6
    )
    assert outputs[0].t2m.dims == ("longitude",)


# --- PerKey and Mean(dim=None) -----------------------------------------------------


def test_mean_per_key_averages_the_datasets_of_each_key():
    first, second = _members(3, seed=1), _members(2, seed=2)
    pairs = [("north", m) for m in first] + [(("south", 2), m) for m in second]
    outputs = runners.collect(
        lambda p: p | beam.Create(pairs) | xbeam.Mean.PerKey(fanout=2),
        runner="DirectRunner",
    )
    results = dict(outputs)
    assert sorted(results, key=repr) == sorted(["north", ("south", 2)], key=repr)
    _assert_matches(results["north"], first, "mean")
    _assert_matches(results[("south", 2)], second, "mean")


def test_mean_without_dim_averages_chunks_sharing_a_key_and_keeps_keys():
    members = _members(3)
    chunks = {"latitude": 2, "longitude": 3}

    def build(p):
        sources = [
            p | f"Member{i}" >> xbeam.DatasetToChunks(m.drop_vars("number"), chunks)
            for i, m in enumerate(members)
        ]
        return sources | beam.Flatten() | xbeam.Mean()

    outputs = runners.collect(build, runner="DirectRunner")
    one_member = runners.collect(
        lambda p: p | xbeam.DatasetToChunks(members[0], chunks),
        runner="DirectRunner",
    )
    assert sorted(repr(k) for k, _ in outputs) == sorted(repr(k) for k, _ in one_member)
    assert len(outputs) == 4
    for key, chunk in outputs:
        region = dict(zip(chunk.t2m.dims, (slice(None),) * 2, strict=True))
        for dim in ("latitude", "longitude"):
            start = key.offsets.get(dim, 0)
            region[dim] = slice(start, start + chunk.sizes[dim])
        expected = _stacked([m.isel(region) for m in members], "mean")
        xarray.testing.assert_allclose(chunk[NUMERIC], expected, rtol=1e-6)
    ((_, whole),) = xbeam.consolidate_chunks(outputs)
    _assert_matches(whole, members, "mean")


# --- the CombineFn ----------------------------------------------------------------


def test_mean_combine_fn_without_dim_merges_like_the_stacked_mean():
    members = _members(5)
    fn = xbeam.MeanCombineFn()
    assert fn.dim is None
    left = fn.add_input(fn.create_accumulator(), members[0])
    left = fn.add_input(left, members[1])
    right = fn.create_accumulator()
    for member in members[2:]:
        right = fn.add_input(right, member)
    result = fn.extract_output(fn.merge_accumulators([left, right]))
    _assert_matches(result, members, "mean")


def test_mean_combine_fn_skipna_and_dtype_options():
    members = _members(3)
    propagate = xbeam.MeanCombineFn(None, False, "float32")
    accumulator = propagate.create_accumulator()
    for member in members:
        accumulator = propagate.add_input(accumulator, member)
    result = propagate.extract_output(accumulator)
    as_float = [m[NUMERIC].astype(np.float64) for m in members]
    expected = _stacked(as_float, "mean", skipna=False)
    assert result.t2m.dtype == np.float32 and result["count"].dtype == np.float32
    np.testing.assert_allclose(result.t2m.values, expected.t2m.values, rtol=1e-6)


def test_float32_values_accumulate_in_float64():
    big = xarray.Dataset({"v": ("x", np.full(2, 1e8, np.float32))})
    small = xarray.Dataset({"v": ("x", np.ones(2, np.float32))})
    fn = xbeam.ReduceCombineFn(Reducer("sum"))
    accumulator = fn.create_accumulator()
    for member in [big] + [small] * 8:
        accumulator = fn.add_input(accumulator, member)
    # In float32, 1e8 + 1 == 1e8, so eight ones added one by one vanish.
    assert fn.extract_output(accumulator).v.values.tolist() == [1e8 + 8] * 2


def test_a_variable_missing_from_some_datasets_is_reduced_over_the_others():
    members = _members(3)
    fn = xbeam.ReduceCombineFn(Reducer("count"))
    accumulator = fn.create_accumulator()
    for member in [members[0].drop_vars("count"), members[1], members[2]]:
        accumulator = fn.add_input(accumulator, member)
    result = fn.extract_output(accumulator)
    assert result["count"].values.tolist() == [2, 2, 2, 2]
    expected = _stacked(members, "count")
    np.testing.assert_array_equal(result.t2m.values, expected.t2m.values)


# --- merging through storage ----------------------------------------------------


def test_temp_store_without_dim_matches_and_is_removed(tmp_path):
    members = _members(4)
    temps = {name: tmp_path / name for name in ("chunks", "globally", "per-key")}
    chunks = {"latitude": 2}

    def build(p):
        created = p | "Members" >> beam.Create(members)
        keyed = [
            p | f"Chunks{i}" >> xbeam.DatasetToChunks(m.drop_vars("number"), chunks)
            for i, m in enumerate(members)
        ] | "FlattenChunks" >> beam.Flatten()
        by_chunk = keyed | "Mean" >> xbeam.Var(
            ddof=1, temp_store=str(temps["chunks"]), max_mem=1
        )
        globally = created | "Globally" >> xbeam.Var.Globally(
            ddof=1, temp_store=str(temps["globally"]), max_mem=1
        )
        per_key = (
            created
            | "ByParity" >> beam.Map(lambda m: (int(m.number) % 2, m))
            | "PerKey"
            >> xbeam.Var.PerKey(ddof=1, temp_store=str(temps["per-key"]), max_mem=1)
        )
        return (
            by_chunk | "TagChunks" >> beam.Map(lambda pair: ("chunks", pair)),
            globally | "TagGlobally" >> beam.Map(lambda ds: ("globally", ds)),
            per_key | "TagPerKey" >> beam.Map(lambda pair: ("per-key", pair)),
        ) | beam.Flatten()

    outputs = runners.collect(build, runner="DirectRunner")
    by_name: dict[str, list] = {"chunks": [], "globally": [], "per-key": []}
    for name, value in outputs:
        by_name[name].append(value)
    _assert_matches(by_name["globally"][0], members, "var", ddof=1)
    assert len(by_name["globally"]) == 1
    whole = xbeam.consolidate_fully(by_name["chunks"])[1]
    _assert_matches(whole, members, "var", ddof=1)
    assert sorted(k.offsets["latitude"] for k, _ in by_name["chunks"]) == [0, 2]
    per_key = dict(by_name["per-key"])
    assert sorted(per_key) == [0, 1]
    _assert_matches(per_key[0], members[0::2], "var", ddof=1)
    _assert_matches(per_key[1], members[1::2], "var", ddof=1)
    assert not any(os.path.exists(t) for t in temps.values())


# --- errors -----------------------------------------------------------------------


def test_datasets_of_different_sizes_are_refused_naming_the_variable():
    members = _members(2)
    smaller = members[1].isel(longitude=slice(0, 3))
    with pytest.raises(ValueError, match=r"variable 't2m' of sizes .*'longitude': 4"):
        runners.collect(
            lambda p: p | beam.Create([members[0], smaller]) | xbeam.Mean.Globally(),
            runner="DirectRunner",
        )


def test_datasets_with_different_index_coordinates_are_refused():
    members = _members(2)
    shifted = members[1].assign_coords(longitude=members[1].longitude + 1)
    fn = xbeam.MeanCombineFn()
    accumulator = fn.add_input(fn.create_accumulator(), members[0])
    with pytest.raises(ValueError, match="coordinate 'longitude' differs"):
        fn.add_input(accumulator, shifted)


def test_chunks_sharing_a_key_with_different_coordinates_are_refused():
    members = _members(2)
    pairs = [
        (Key({"latitude": 0}), members[0].isel(latitude=[0])),
        (Key({"latitude": 0}), members[1].isel(latitude=[1])),
    ]
    with pytest.raises(ValueError, match="coordinate 'latitude' differs"):
        runners.collect(
            lambda p: p | beam.Create(pairs) | xbeam.Mean(), runner="DirectRunner"
        )


def test_weights_without_dim_are_refused():
    weights = xarray.DataArray(np.ones(3), dims="latitude")
    with pytest.raises(ValueError, match="weights need dim"):
        xbeam.Mean.Globally(weights=weights)
    with pytest.raises(ValueError, match="weights need dim"):
        xbeam.ReduceCombineFn(Reducer("mean", weighted=True), None, weights)
