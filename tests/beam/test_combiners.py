"""Mean, Sum, Count, Min, Max, Var and Std as Beam transforms, checked against
plain xarray on the same (float64) data."""

import os

import apache_beam as beam
import numpy as np
import pytest
import xarray

import xarray_beam as xbeam
from xarray_beam.beam import runners
from xarray_beam.model.key import Key
from xarray_beam.model.reductions import Reducer

TRANSFORMS = {
    "mean": xbeam.Mean,
    "sum": xbeam.Sum,
    "count": xbeam.Count,
    "min": xbeam.Min,
    "max": xbeam.Max,
    "var": xbeam.Var,
    "std": xbeam.Std,
}
NUMERIC = ["t2m", "count"]  # numeric variables of mixed_dataset that have 'time'

# --- helpers -------------------------------------------------------------------


def _run_branches(dataset, chunks, transforms: dict[str, beam.PTransform]):
    """Run every transform on the chunks of ``dataset``, in one pipeline, and
    return the output ``(key, chunk)`` pairs of each, by name."""

    def build(p):
        source = p | xbeam.DatasetToChunks(dataset, chunks)
        branches = [
            source
            | name >> transform
            | f"Tag-{name}" >> beam.Map(lambda pair, name=name: (name, pair))
            for name, transform in transforms.items()
        ]
        return branches | beam.Flatten()

    results = {name: [] for name in transforms}
    for name, pair in runners.collect(build):
        results[name].append(pair)
    return results


def _xarray_reduce(dataset, stat, dims, **options):
    if stat == "count":
        return dataset.count(dims)
    return getattr(dataset, stat)(dims, **options)


def _assert_matches_xarray(actual, dataset, stat, dims, **options):
    """Values match xarray on float64 data; dtypes match xarray on the originals."""
    actual = actual[NUMERIC]
    expected = _xarray_reduce(
        dataset[NUMERIC].astype(np.float64), stat, dims, **options
    )
    xarray.testing.assert_allclose(
        actual.astype(np.float64), expected, rtol=1e-6, atol=1e-6
    )
    original = _xarray_reduce(dataset[NUMERIC], stat, dims, **options)
    assert {n: v.dtype for n, v in actual.items()} == {
        n: v.dtype for n, v in original.items()
    }


def _consolidated(pairs) -> xarray.Dataset:
    ((_, whole),) = xbeam.consolidate_chunks(pairs)
    return whole


# --- every statistic ------------------------------------------------------------


def test_each_statistic_over_time_matches_xarray(mixed_dataset):
    outputs = _run_branches(
        mixed_dataset,
        {"time": 3, "latitude": 4},
        {stat: transform("time") for stat, transform in TRANSFORMS.items()},
    )
    for stat, pairs in outputs.items():
        assert sorted(key.offsets["latitude"] for key, _ in pairs) == [0, 4], stat
        assert all("time" not in key.offsets for key, _ in pairs), stat
        result = _consolidated(pairs)
        _assert_matches_xarray(result, mixed_dataset, stat, "time")
        # Like xarray, variables without the reduced dim are reduced over
        # nothing (count -> ones, var -> zeros, the rest unchanged).
        expected_lsm = getattr(mixed_dataset[["lsm", "t2m"]], stat)("time").lsm
        xarray.testing.assert_identical(result.lsm, expected_lsm)
        # Like xarray, a 0-d variable is reduced over nothing (count -> 1).
        xarray.testing.assert_identical(
            result.scale, _xarray_reduce(mixed_dataset.scale, stat, [])
        )
        assert "valid" not in result, stat


def test_reducing_over_two_dims_drops_both_from_keys_and_data(mixed_dataset):
    dims = ("time", "longitude")
    outputs = _run_branches(
        mixed_dataset,
        {"time": 3, "latitude": 4, "longitude": 4},
        {"mean": xbeam.Mean(dims), "var": xbeam.Var(dims, ddof=1)},
    )
    for stat, pairs in outputs.items():
        offsets = sorted((dict(key.offsets) for key, _ in pairs), key=repr)
        assert offsets == [{"latitude": 0}, {"latitude": 4}], stat
        result = _consolidated(pairs)
        options = {"ddof": 1} if stat == "var" else {}
        _assert_matches_xarray(result, mixed_dataset, stat, list(dims), **options)
        assert result["count"].dims == ()


def test_fanout_gives_the_same_results(mixed_dataset):
    outputs = _run_branches(
        mixed_dataset,
        {"time": 2, "latitude": 4},
        {"plain": xbeam.Std("time"), "fanout": xbeam.Std("time", fanout=2)},
    )
    plain = _consolidated(outputs["plain"])
    xarray.testing.assert_allclose(
        _consolidated(outputs["fanout"]), plain, rtol=1e-6, atol=0
    )
    _assert_matches_xarray(plain, mixed_dataset, "std", "time")


def test_skipna_false_and_min_count_mask_results(mixed_dataset):
    outputs = _run_branches(
        mixed_dataset,
        {"time": 3, "latitude": 4},
        {
            "mean": xbeam.Mean("time", skipna=False),
            "sum": xbeam.Sum("time", min_count=10),
        },
    )
    mean = _consolidated(outputs["mean"])
    _assert_matches_xarray(mean, mixed_dataset, "mean", "time", skipna=False)
    assert np.isnan(mean.t2m.sel(latitude=0.0)).all()
    total = _consolidated(outputs["sum"])
    _assert_matches_xarray(total, mixed_dataset, "sum", "time", min_count=10)
    assert np.isnan(total.t2m.sel(latitude=0.0)).all()
    assert not np.isnan(total.t2m.sel(latitude=10.0)).any()


# --- Globally, PerKey and the CombineFn -------------------------------------------


def test_mean_globally_reduces_a_pcollection_of_datasets(mixed_dataset):
    outputs = runners.collect(
        lambda p: (
            p
            | xbeam.DatasetToChunks(mixed_dataset, {"time": 3})
            | beam.Values()
            | xbeam.Mean.Globally("time", fanout=2)
        )
    )
    assert len(outputs) == 1
    _assert_matches_xarray(outputs[0], mixed_dataset, "mean", "time")


def test_mean_per_key_reduces_the_datasets_of_each_key(mixed_dataset):
    first = mixed_dataset.isel(time=slice(0, 4))
    second = mixed_dataset.isel(time=slice(4, 10))
    doubled = mixed_dataset[NUMERIC] * 2
    outputs = runners.collect(
        lambda p: (
            p
            | beam.Create(
                [("a", first), ("b", doubled.isel(time=[0, 1])), ("a", second)]
                + [("b", doubled.isel(time=slice(2, 10)))]
            )
            | xbeam.Mean.PerKey("time")
        )
    )
    results = dict(outputs)
    assert sorted(results) == ["a", "b"]
    _assert_matches_xarray(results["a"], mixed_dataset, "mean", "time")
    _assert_matches_xarray(results["b"], doubled, "mean", "time")


def test_mean_combine_fn_merges_accumulators_like_xarray(mixed_dataset):
    fn = xbeam.MeanCombineFn("time")
    left = fn.create_accumulator()
    left = fn.add_input(left, mixed_dataset.isel(time=slice(0, 4)))
    left = fn.add_input(left, mixed_dataset.isel(time=slice(4, 5)))
    right = fn.add_input(fn.create_accumulator(), mixed_dataset.isel(time=slice(5, 10)))
    result = fn.extract_output(fn.merge_accumulators([left, right]))
    _assert_matches_xarray(result, mixed_dataset, "mean", "time")


def test_mean_combine_fn_over_every_dim_reduces_to_a_scalar():
    fn = xbeam.MeanCombineFn(["x", "y"])
    data = xarray.Dataset({"a": (("x", "y"), np.arange(6.0).reshape(2, 3))})
    accumulator = fn.add_input(fn.create_accumulator(), data)
    accumulator = fn.add_input(accumulator, data + 6)
    assert fn.extract_output(accumulator).a.item() == pytest.approx(5.5)


def test_combine_fn_of_no_inputs_is_an_empty_dataset():
    fn = xbeam.MeanCombineFn("time")
    xarray.testing.assert_identical(
        fn.extract_output(fn.create_accumulator()), xarray.Dataset()
    )


def test_combine_fn_rejects_inputs_it_cannot_reduce(mixed_dataset):
    fn = xbeam.ReduceCombineFn(Reducer("max"), "height")
    with pytest.raises(TypeError, match="expected an xarray.Dataset"):
        fn.add_input(None, mixed_dataset.t2m)
    with pytest.raises(ValueError, match=r"dimension\(s\) \['height'\]"):
        fn.add_input(None, mixed_dataset)


# --- merging through storage ---------------------------------------------------


def test_temp_store_gives_identical_results_and_is_removed(mixed_dataset, tmp_path):
    temp = tmp_path / "partials"
    outputs = _run_branches(
        mixed_dataset,
        {"time": 3, "latitude": 4},
        {
            "plain": xbeam.Var("time"),
            "stored": xbeam.Var("time", temp_store=str(temp), max_mem=1),
        },
    )
    stored = dict(outputs["stored"])
    plain = dict(outputs["plain"])
    assert sorted(stored, key=repr) == sorted(plain, key=repr)
    for key, chunk in plain.items():
        xarray.testing.assert_allclose(stored[key], chunk, rtol=1e-12, atol=0)
        assert stored[key].t2m.dtype == chunk.t2m.dtype
    _assert_matches_xarray(_consolidated(stored.items()), mixed_dataset, "var", "time")
    assert not os.path.exists(temp)


def test_existing_non_empty_temp_store_is_refused_when_built(mixed_dataset, tmp_path):
    temp = tmp_path / "partials"
    temp.mkdir()
    (temp / "leftover.pkl").write_bytes(b"old")
    pipeline = beam.Pipeline()
    chunks = pipeline | xbeam.DatasetToChunks(mixed_dataset, {"time": 5})
    with pytest.raises(FileExistsError, match="already holds data"):
        _ = chunks | xbeam.Mean("time", temp_store=str(temp))
    assert (temp / "leftover.pkl").read_bytes() == b"old"


def test_temp_store_clean_up_removes_only_spill_files(mixed_dataset, tmp_path):
    """An empty directory the user made is kept; files that are not ours (here
    one that appears while the pipeline runs) are never deleted."""
    temp = tmp_path / "partials"
    temp.mkdir()

    def drop_a_file(element):
        (temp / "notes.txt").write_text("mine")
        return element

    with beam.Pipeline("DirectRunner") as p:
        _ = (
            p
            | xbeam.DatasetToChunks(mixed_dataset, {"time": 5})
            | beam.Map(drop_a_file)
            | xbeam.Mean("time", temp_store=str(temp), max_mem=1)
        )
    assert sorted(os.listdir(temp)) == ["notes.txt"]
    assert (temp / "notes.txt").read_text() == "mine"


# --- weights -------------------------------------------------------------------


def _latitude_weights(dataset) -> xarray.DataArray:
    return np.cos(np.deg2rad(dataset.latitude)).drop_vars("latitude")


def test_weighted_mean_matches_xarray_weighted(mixed_dataset):
    weights = _latitude_weights(mixed_dataset)
    dims = ["latitude", "longitude"]
    outputs = _run_branches(
        mixed_dataset,
        {"time": 3, "latitude": 4},
        {"mean": xbeam.Mean(dims, weights=weights)},
    )
    result = _consolidated(outputs["mean"])
    names = ["t2m", "count", "lsm"]
    expected = mixed_dataset[names].astype(np.float64).weighted(weights).mean(dims)
    xarray.testing.assert_allclose(
        result[names].astype(np.float64), expected, rtol=1e-6, atol=1e-6
    )
    assert result.t2m.dtype == np.float32


def test_weighted_mean_of_one_variable_slices_weights_by_key_offsets(mixed_dataset):
    dataset = mixed_dataset[["t2m"]]
    weights = _latitude_weights(dataset) * xarray.DataArray(
        np.arange(1.0, 7.0), dims="longitude"
    )
    dims = ["latitude", "longitude"]
    outputs = _run_branches(
        dataset,
        {"time": 3, "latitude": 4, "longitude": 4},
        {"mean": xbeam.Mean(dims, weights=weights)},
    )
    result = _consolidated(outputs["mean"])
    expected = dataset.astype(np.float64).weighted(weights).mean(dims)
    xarray.testing.assert_allclose(
        result.astype(np.float64), expected, rtol=1e-6, atol=1e-6
    )


# --- errors --------------------------------------------------------------------


def test_chunks_of_mismatched_sizes_for_one_key_raise(mixed_dataset):
    chunks = [
        (Key({"time": 0, "latitude": 0}), mixed_dataset.isel(time=slice(0, 5))),
        (
            Key({"time": 5, "latitude": 0}),
            mixed_dataset.isel(time=slice(5, 10), latitude=slice(0, 3)),
        ),
    ]
    with pytest.raises(ValueError, match="same size along the kept dimensions"):
        runners.collect(lambda p: p | beam.Create(chunks) | xbeam.Mean("time"))


@pytest.mark.parametrize("fanout", [0, -2, 1.5])
def test_invalid_fanout_is_rejected(fanout):
    with pytest.raises(ValueError, match="fanout must be a positive int"):
        xbeam.Mean("time", fanout=fanout)


@pytest.mark.parametrize("dim", [[], ["time", 3]])
def test_invalid_dim_is_rejected(dim):
    with pytest.raises(ValueError, match="dim must be a name or a list of names"):
        xbeam.Sum(dim)


def test_weights_not_spanning_reduced_dims_are_rejected(mixed_dataset):
    with pytest.raises(ValueError, match="do not vary along the reduced dimensions"):
        xbeam.Mean("time", weights=_latitude_weights(mixed_dataset))


def test_weights_that_are_not_a_data_array_are_rejected():
    with pytest.raises(TypeError, match="must be an xarray.DataArray"):
        xbeam.Mean("latitude", weights=np.ones(7))


def test_weights_on_count_are_rejected(mixed_dataset):
    with pytest.raises(ValueError, match="weights do not apply to 'count'"):
        xbeam.Count("latitude", weights=_latitude_weights(mixed_dataset))


def test_unknown_statistic_is_rejected_by_the_reducer():
    with pytest.raises(ValueError, match="unknown statistic 'median'"):
        xbeam.ReduceCombineFn(Reducer("median"), "time")


def test_negative_ddof_is_rejected():
    with pytest.raises(ValueError, match="ddof must be a non-negative int"):
        xbeam.Var("time", ddof=-1)


def test_non_positive_max_mem_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="max_mem must be positive"):
        xbeam.CombineThroughStorage(Reducer(), str(tmp_path / "t"), max_mem=0)
