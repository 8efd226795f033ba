"""Mergeable partial reductions (pure NumPy), with plain xarray as the oracle.

Our reductions accumulate in float64, so values are compared with xarray run
on ``dataset.astype('float64')``, and dtypes with xarray run on the original
dtypes.
"""

import concurrent.futures
import random
import warnings

import numpy as np
import pytest
import xarray
from hypothesis import given, settings
from hypothesis import strategies as st

from xarray_beam.model import reductions
from xarray_beam.model.key import Key
from xarray_beam.model.reductions import STATS, Reducer, check_weights, weights_for

# --- data ----------------------------------------------------------------------


def _floats_1d() -> xarray.Dataset:
    values = np.array([1.5, np.nan, -2.0, 4.0, np.nan, 0.25])
    return xarray.Dataset({"a": ("x", values)}, coords={"x": np.arange(6) * 10})


def _all_nan_1d() -> xarray.Dataset:
    return xarray.Dataset({"a": ("x", np.full(4, np.nan))})


def _floats_2d() -> xarray.Dataset:
    """float32 with scattered NaNs, an all-NaN column and row, and a column
    with a single valid value (so min_count=2 matters)."""
    rng = np.random.default_rng(1)
    values = rng.normal(10.0, 3.0, (5, 4)).astype(np.float32)
    values[rng.random((5, 4)) < 0.2] = np.nan
    values[:, 1] = np.nan
    values[1:, 2] = np.nan
    values[3, :] = np.nan
    return xarray.Dataset(
        {"a": (("x", "y"), values, {"units": "K"})},
        coords={"x": np.arange(5), "y": list("pqrs")},
    )


def _floats_3d() -> xarray.Dataset:
    """Two float64 variables with different dimension orders and NaNs."""
    rng = np.random.default_rng(2)
    a = rng.normal(0.0, 5.0, (4, 3, 5))
    a[rng.random(a.shape) < 0.25] = np.nan
    a[:, 1, 2] = np.nan
    a[:, 2, :] = np.nan
    a[1:, 0, 0] = np.nan
    b = rng.normal(100.0, 1.0, (5, 4))
    b[0, :] = np.nan
    b[2, 1] = np.nan
    return xarray.Dataset(
        {"a": (("x", "y", "z"), a), "b": (("z", "x"), b)},
        coords={"x": np.arange(4) * 1.5, "z": np.arange(5) - 2},
    )


def _ints() -> xarray.Dataset:
    rng = np.random.default_rng(3)
    values = rng.integers(-50, 50, (6, 3)).astype(np.int32)
    return xarray.Dataset({"k": (("x", "y"), values)}, coords={"y": [1, 2, 3]})


def _bools() -> xarray.Dataset:
    rng = np.random.default_rng(4)
    return xarray.Dataset({"flag": (("x", "y"), rng.random((5, 3)) > 0.5)})


CASES = {
    "1d-over-x": (_floats_1d, ["x"]),
    "1d-all-nan": (_all_nan_1d, ["x"]),
    "2d-over-x": (_floats_2d, ["x"]),
    "2d-over-y": (_floats_2d, ["y"]),
    "2d-over-both": (_floats_2d, ["x", "y"]),
    "3d-over-x": (_floats_3d, ["x"]),
    "3d-over-z-and-x": (_floats_3d, ["z", "x"]),
    "3d-over-all": (_floats_3d, ["x", "y", "z"]),
    "int-over-x": (_ints, ["x"]),
    "int-over-both": (_ints, ["x", "y"]),
    "bool-over-y": (_bools, ["y"]),
    "bool-over-both": (_bools, ["x", "y"]),
}

# --- helpers -------------------------------------------------------------------


def _reduce(dataset, dims, stat, weights=None, **options) -> xarray.Dataset:
    reducer = Reducer(stat, weighted=weights is not None, **options)
    return reducer.finalize(reducer.reduce(dataset, dims, weights))


def _xarray_reduce(dataset, stat, dims, skipna=True, min_count=None, ddof=0):
    """xarray's reduction; for stats other than sum, min_count masks results
    from too few valid values."""
    if stat == "count":
        return dataset.count(dims)
    options = {"skipna": skipna}
    if stat == "sum":
        options["min_count"] = min_count
    if stat in ("var", "std"):
        options["ddof"] = ddof
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        result = getattr(dataset, stat)(dims, **options)
    if min_count is not None and stat != "sum":
        result = result.where(dataset.count(dims) >= min_count)
    return result


def _assert_matches(actual: xarray.Dataset, expected: xarray.Dataset, atol=1e-6):
    xarray.testing.assert_allclose(
        actual.astype(np.float64), expected.astype(np.float64), rtol=1e-6, atol=atol
    )


def _dtypes(dataset: xarray.Dataset) -> dict[str, np.dtype]:
    return {name: var.dtype for name, var in dataset.data_vars.items()}


def _pieces(dataset, cuts: dict[str, list[int]]) -> list[xarray.Dataset]:
    """The blocks of ``dataset`` between the cut positions along each dim."""
    blocks = [dataset]
    for dim, positions in cuts.items():
        edges = [0, *sorted(positions), dataset.sizes[dim]]
        blocks = [
            block.isel({dim: slice(start, stop)})
            for block in blocks
            for start, stop in zip(edges[:-1], edges[1:], strict=True)
        ]
    return blocks


# --- every statistic against xarray --------------------------------------------


@pytest.mark.parametrize("min_count", [None, 2])
@pytest.mark.parametrize("skipna", [True, False])
@pytest.mark.parametrize("stat", STATS)
@pytest.mark.parametrize("case", list(CASES))
def test_statistic_matches_xarray(case, stat, skipna, min_count):
    make, dims = CASES[case]
    dataset = make()
    actual = _reduce(dataset, dims, stat, skipna=skipna, min_count=min_count)
    expected = _xarray_reduce(dataset.astype(np.float64), stat, dims, skipna, min_count)
    _assert_matches(actual, expected)


@pytest.mark.parametrize("skipna", [True, False])
@pytest.mark.parametrize("stat", STATS)
@pytest.mark.parametrize("case", list(CASES))
def test_result_dtypes_match_xarray_on_original_dtypes(case, stat, skipna):
    make, dims = CASES[case]
    dataset = make()
    actual = _reduce(dataset, dims, stat, skipna=skipna)
    expected = _xarray_reduce(dataset, stat, dims, skipna)
    assert _dtypes(actual) == _dtypes(expected)


@pytest.mark.parametrize(
    ("dtype", "stat", "expected"),
    [
        (np.float32, "mean", np.float32),
        (np.float32, "var", np.float32),
        (np.int32, "mean", np.float64),
        (np.int32, "std", np.float64),
        (np.int32, "sum", np.int64),
        (np.int16, "count", np.int64),
        (np.int32, "min", np.int32),
        (np.uint8, "max", np.uint8),
        (np.bool_, "sum", np.int64),
        (np.bool_, "max", np.bool_),
    ],
)
def test_result_dtype_follows_xarray_conventions(dtype, stat, expected):
    dataset = xarray.Dataset({"v": (("x", "y"), np.arange(12).reshape(4, 3) % 5)})
    dataset = dataset.astype(dtype)
    assert _reduce(dataset, ["x"], stat).v.dtype == expected
    assert getattr(dataset, stat)("x").v.dtype == expected


def test_dtype_option_overrides_result_dtype():
    dataset = _floats_2d()
    actual = _reduce(dataset, ["x"], "mean", dtype="float64")
    assert actual.a.dtype == np.float64
    _assert_matches(actual, dataset.astype(np.float64).mean("x"))


@pytest.mark.parametrize("skipna", [True, False])
@pytest.mark.parametrize("ddof", [0, 1])
@pytest.mark.parametrize("stat", ["var", "std"])
@pytest.mark.parametrize(
    "case", ["1d-over-x", "2d-over-x", "2d-over-both", "3d-over-z-and-x", "int-over-x"]
)
def test_var_and_std_with_ddof_match_xarray(case, stat, ddof, skipna):
    make, dims = CASES[case]
    dataset = make()
    actual = _reduce(dataset, dims, stat, skipna=skipna, ddof=ddof)
    expected = _xarray_reduce(dataset.astype(np.float64), stat, dims, skipna, ddof=ddof)
    _assert_matches(actual, expected)


def test_all_nan_sum_is_zero_unless_min_count():
    dataset = _all_nan_1d()
    assert _reduce(dataset, ["x"], "sum").a.item() == 0.0
    assert np.isnan(_reduce(dataset, ["x"], "sum", min_count=1).a.item())


def test_variables_without_reduced_dims_are_kept_unchanged():
    dataset = _floats_3d().assign(
        c=("y", np.array([1, 2, 3], np.int8)), scale=((), 2.5)
    )
    result = _reduce(dataset, ["x", "z"], "mean")
    xarray.testing.assert_identical(result.c, dataset.c)
    xarray.testing.assert_identical(result.scale, dataset.scale)


def test_non_numeric_variables_along_reduced_dims_are_dropped():
    dataset = _floats_1d().assign(
        when=("x", np.arange(6).astype("datetime64[D]")),
        name=("x", np.array(list("abcdef"))),
    )
    result = _reduce(dataset, ["x"], "max")
    assert list(result.data_vars) == ["a"]


# --- merging -------------------------------------------------------------------


def _merge_data() -> xarray.Dataset:
    rng = np.random.default_rng(5)
    a = rng.normal(50.0, 10.0, (6, 2, 7))
    a[rng.random(a.shape) < 0.3] = np.nan
    a[:, 1, :] = np.nan
    return xarray.Dataset(
        {
            "a": (("x", "y", "z"), a),
            "k": (("z", "x"), rng.integers(-9, 9, (7, 6)).astype(np.int32)),
        },
        coords={"x": np.arange(6), "y": [10, 20], "z": np.arange(7) * 0.5},
    )


def _merge_in_random_tree(reducer: Reducer, partials, rng: random.Random):
    """Merge like a distributed combiner: halves merged separately, then joined."""
    if len(partials) == 1:
        return partials[0]
    split = rng.randint(1, len(partials) - 1)
    return reducer.merge(
        [
            _merge_in_random_tree(reducer, partials[:split], rng),
            _merge_in_random_tree(reducer, partials[split:], rng),
        ]
    )


@settings(max_examples=50, deadline=None)
@given(
    stat=st.sampled_from(STATS),
    skipna=st.booleans(),
    min_count=st.sampled_from([None, 2]),
    ddof=st.sampled_from([0, 1]),
    x_cuts=st.sets(st.integers(1, 5), max_size=4),
    z_cuts=st.sets(st.integers(1, 6), max_size=4),
    rng=st.randoms(use_true_random=False),
)
def test_merging_partials_of_random_pieces_equals_reducing_the_whole(
    stat, skipna, min_count, ddof, x_cuts, z_cuts, rng
):
    dataset = _merge_data()
    reducer = Reducer(stat, skipna=skipna, min_count=min_count, ddof=ddof)
    partials = [
        reducer.reduce(piece, ["x", "z"])
        for piece in _pieces(dataset, {"x": list(x_cuts), "z": list(z_cuts)})
    ]
    rng.shuffle(partials)
    merged = reducer.finalize(_merge_in_random_tree(reducer, partials, rng))
    whole = reducer.finalize(reducer.reduce(dataset, ["x", "z"]))
    xarray.testing.assert_allclose(merged, whole, rtol=1e-10, atol=1e-10)
    assert _dtypes(merged) == _dtypes(whole)


def test_merge_of_one_partial_finalizes_like_the_partial():
    reducer = Reducer("var")
    partial = reducer.reduce(_floats_3d(), ["x"])
    xarray.testing.assert_identical(
        reducer.finalize(reducer.merge([None, partial])), reducer.finalize(partial)
    )


def test_merging_partials_with_different_kept_sizes_raises():
    dataset = _floats_2d()
    reducer = Reducer("mean")
    first = reducer.reduce(dataset.isel(x=slice(0, 2)), ["x"])
    second = reducer.reduce(dataset.isel(x=slice(2, 5), y=slice(0, 3)), ["x"])
    with pytest.raises(ValueError, match="same size along the kept dimensions"):
        reducer.merge([first, second])


def test_merging_partials_of_different_groups_raises():
    dataset = _floats_2d()
    reducer = Reducer("mean")
    first = reducer.reduce(dataset.isel(x=slice(0, 2)), ["x"])
    second = reducer.reduce(dataset.isel(x=slice(2, 5)), ["x"])
    first.groups = {"month": 1}
    second.groups = {"month": 2}
    with pytest.raises(ValueError, match="different groups"):
        reducer.merge([first, second])


# --- numerical stability -------------------------------------------------------


@pytest.mark.parametrize("ddof", [0, 1])
def test_variance_of_large_offset_values_matches_two_pass_numpy(ddof):
    rng = np.random.default_rng(6)
    values = 1e8 + rng.normal(0.0, 1.0, 1000)
    naive = (np.sum(values**2) - np.sum(values) ** 2 / values.size) / (
        values.size - ddof
    )
    exact = np.var(values, ddof=ddof)
    assert not np.isclose(naive, exact, rtol=1e-6)  # the data defeats sum of squares
    dataset = xarray.Dataset({"v": ("t", values)})
    reducer = Reducer("var", ddof=ddof)
    whole = reducer.finalize(reducer.reduce(dataset, ["t"])).v.item()
    partials = [
        reducer.reduce(dataset.isel(t=slice(start, start + 37)), ["t"])
        for start in range(0, values.size, 37)
    ]
    merged = reducer.finalize(reducer.merge(partials)).v.item()
    np.testing.assert_allclose(whole, exact, rtol=1e-6)
    np.testing.assert_allclose(merged, exact, rtol=1e-6)


def test_std_of_large_offset_values_merged_from_single_values_is_stable():
    rng = np.random.default_rng(7)
    values = 1e8 + rng.normal(0.0, 0.5, 200)
    dataset = xarray.Dataset({"v": ("t", values)})
    reducer = Reducer("std")
    partials = [reducer.reduce(dataset.isel(t=[i]), ["t"]) for i in range(200)]
    merged = reducer.finalize(reducer.merge(partials)).v.item()
    np.testing.assert_allclose(merged, np.std(values), rtol=1e-6)


# --- weights -------------------------------------------------------------------


def _weights_x() -> xarray.DataArray:
    return xarray.DataArray([0.5, 2.0, 0.0, 1.25], dims="x")


def _weights_zx() -> xarray.DataArray:
    rng = np.random.default_rng(8)
    values = rng.random((5, 4)) * 3
    values[1, 2] = 0.0
    return xarray.DataArray(values, dims=("z", "x"))


@pytest.mark.parametrize("stat", ["mean", "var", "std", "sum"])
@pytest.mark.parametrize(
    ("make_weights", "dims"),
    [
        (_weights_x, ["x"]),
        (_weights_x, ["x", "y"]),
        (_weights_zx, ["x", "z"]),
        (_weights_zx, ["x"]),
    ],
    ids=["x-over-x", "x-over-x-and-y", "zx-over-x-and-z", "zx-over-x"],
)
def test_weighted_statistic_matches_xarray_weighted(stat, make_weights, dims):
    dataset = _floats_3d()[["a"]]
    weights = make_weights()
    actual = _reduce(dataset, dims, stat, weights=weights)
    expected = getattr(dataset.weighted(weights), stat)(dims)
    _assert_matches(actual, expected)


def test_weighted_mean_of_variable_lacking_the_weight_dims_matches_xarray():
    dataset = _floats_3d()  # 'b' has dims ('z', 'x'): no 'y'
    weights = xarray.DataArray([1.0, 2.0, 3.0], dims="y")
    actual = _reduce(dataset, ["x", "y"], "mean", weights=weights)
    expected = dataset.weighted(weights).mean(["x", "y"])
    _assert_matches(actual, expected)


def test_weighted_mean_of_float32_keeps_float32():
    dataset = _floats_2d()
    weights = xarray.DataArray(np.arange(1.0, 6.0), dims="x")
    actual = _reduce(dataset, ["x"], "mean", weights=weights)
    assert actual.a.dtype == np.float32
    _assert_matches(actual, dataset.astype(np.float64).weighted(weights).mean("x"))


# --- compact counts ------------------------------------------------------------


@pytest.mark.parametrize("stat", STATS)
def test_counts_of_nan_free_data_are_a_single_element(stat):
    dataset = _ints().astype(np.float64)
    reducer = Reducer(stat)
    partial = reducer.reduce(dataset, ["x"])
    assert partial.variables["k"].fields["n"].size == 1
    merged = reducer.merge([partial, reducer.reduce(dataset, ["x"])])
    assert merged.variables["k"].fields["n"].size == 1
    assert reducer.finalize(merged).k.shape == (3,)


def test_counts_of_data_with_nans_vary_per_element():
    dataset = _floats_2d()
    partial = Reducer("mean").reduce(dataset, ["x"])
    counts = partial.variables["a"].fields["n"]
    np.testing.assert_array_equal(counts, dataset.a.count("x").values)
    assert counts.shape == (4,)


# --- reduce_groups -------------------------------------------------------------


def _grouped_data() -> xarray.Dataset:
    rng = np.random.default_rng(9)
    values = rng.normal(0.0, 2.0, (12, 3))
    values[rng.random(values.shape) < 0.25] = np.nan
    values[:, 2] = np.nan
    return xarray.Dataset(
        {
            "a": (("time", "x"), values),
            "k": (("x", "time"), rng.integers(0, 20, (3, 12)).astype(np.int32)),
            "const": ("x", np.array([7.0, 8.0, 9.0])),
        },
        coords={"time": np.arange(12), "x": [100, 200, 300]},
    )


GROUP_PATTERNS = {
    "contiguous": np.array([0] * 5 + [1] * 4 + [3] * 3),
    "interleaved": np.array([2, 0, 2, 1, 0, 2, 1, 1, 0, 2, 2, 0]),
}

BIN_PATTERNS = {
    "cyclic": (np.array([0] * 10 + [1] * 2), np.arange(12) % 3),
    # cycles starting mid-way, with incomplete last cycles (folded rows)
    "cyclic_offset": (np.array([0] * 7 + [1] * 5), (np.arange(12) + 2) % 3),
    "sorted": (
        np.array([0] * 6 + [1] * 6),
        np.array([0, 0, 1, 1, 1, 2, 0, 2, 2, 2, 2, 2]),
    ),
    "shuffled": (
        np.array([1, 0, 1, 0, 0, 1, 1, 0, 1, 0, 1, 1]),
        np.array([2, 0, 0, 2, 2, 2, 0, 0, 2, 0, 2, 0]),
    ),
}


@pytest.mark.parametrize("stat", ["mean", "var", "min", "count", "sum"])
@pytest.mark.parametrize("pattern", list(GROUP_PATTERNS))
def test_reduce_groups_equals_reducing_each_group_separately(pattern, stat):
    dataset = _grouped_data()
    groups = GROUP_PATTERNS[pattern]
    reducer = Reducer(stat)
    results = list(reducer.reduce_groups(dataset, "time", groups))
    assert [number for number, _ in results] == sorted(set(groups.tolist()))
    for number, partial in results:
        expected = _reduce(dataset.isel(time=groups == number), ["time"], stat)
        xarray.testing.assert_allclose(
            reducer.finalize(partial), expected, rtol=1e-12, atol=1e-12
        )


@pytest.mark.parametrize("skipna", [True, False])
@pytest.mark.parametrize("stat", ["mean", "var", "min", "max", "count", "sum"])
@pytest.mark.parametrize("pattern", list(BIN_PATTERNS))
def test_reduce_groups_with_bins_equals_reducing_each_bin_separately(
    pattern, stat, skipna
):
    dataset = _grouped_data()
    groups, bins = BIN_PATTERNS[pattern]
    hours = xarray.Variable(("hour",), [0, 6, 12])
    reducer = Reducer(stat, skipna=skipna)
    results = dict(reducer.reduce_groups(dataset, "time", groups, bins, hours))
    assert sorted(results) == sorted(set(groups.tolist()))
    for number, partial in results.items():
        final = reducer.finalize(partial)
        assert final.a.dims == ("hour", "x")
        assert final.k.dims == ("hour", "x")
        np.testing.assert_array_equal(final.hour, [0, 6, 12])
        for position in range(3):
            actual = final.isel(hour=position, drop=True)
            selected = (groups == number) & (bins == position)
            if selected.any():
                expected = _reduce(
                    dataset.isel(time=selected), ["time"], stat, skipna=skipna
                )
                _assert_matches(actual, expected, atol=1e-12)
            else:
                empty = 0.0 if stat in ("count", "sum") else np.nan
                np.testing.assert_array_equal(actual.a, np.full(3, empty))
                np.testing.assert_array_equal(actual.k, np.full(3, empty))
                # As xarray's groupby: count gives ones, var zeros, the rest
                # leave a variable without the grouped dim as it is.
                expected = getattr(dataset, stat)("time").const
                xarray.testing.assert_identical(actual.const, expected)


def _threaded_map(calls: list):
    """A map_fn that runs items on threads and records what it was given."""

    def map_fn(fn, items):
        calls.append(list(items))
        with concurrent.futures.ThreadPoolExecutor(len(items)) as pool:
            return list(pool.map(fn, items))

    return map_fn


@pytest.mark.parametrize("stat", ["mean", "var", "max", "count"])
def test_reduce_groups_through_map_fn_equals_serial_reduction(stat):
    rng = np.random.default_rng(4)
    shape = (48, 80, 60)  # a group: 24 rows of float64 and float32, 1.3 MiB
    a = rng.normal(size=shape)
    a[rng.random(shape) < 0.1] = np.nan
    dataset = xarray.Dataset(
        {
            "a": (("time", "y", "x"), a),
            "b": (("time", "y", "x"), rng.normal(size=shape).astype("f4")),
            "const": ("x", np.arange(60.0)),
        }
    )
    assert reductions.PARALLEL_BYTES <= (24 * 80 * 60 * 12) < 2 * 2**20
    groups = np.repeat([0, 1], 24)
    bins = np.arange(48) % 6
    hours = xarray.Variable(("hour",), np.arange(6) * 4)
    reducer = Reducer(stat)
    calls: list = []
    threaded = list(
        reducer.reduce_groups(
            dataset, "time", groups, bins, hours, map_fn=_threaded_map(calls)
        )
    )
    serial = list(reducer.reduce_groups(dataset, "time", groups, bins, hours))
    assert calls == [["a", "b"], ["a", "b"]]  # each group's variables, at once
    assert [n for n, _ in threaded] == [n for n, _ in serial] == [0, 1]
    for (_, mine), (_, theirs) in zip(threaded, serial, strict=True):
        xarray.testing.assert_identical(
            reducer.finalize(mine), reducer.finalize(theirs)
        )


@pytest.mark.parametrize("across", [False, True])
def test_reduce_through_map_fn_equals_serial_reduction(across):
    rng = np.random.default_rng(5)
    shape = (40, 60, 70)  # 1.3 MiB of float64 a variable
    dataset = xarray.Dataset(
        {
            "a": (("time", "y", "x"), rng.normal(size=shape)),
            "flat": (("y", "x"), rng.normal(size=shape[1:])),
            "label": ("x", np.array(["p"] * 70)),
            "b": (("time", "y", "x"), rng.normal(size=shape).astype("f4")),
        }
    )
    reducer = Reducer("var")
    calls: list = []
    mapped = reducer.reduce(
        dataset, ["time"], across=across, map_fn=_threaded_map(calls)
    )
    serial = reducer.reduce(dataset, ["time"], across=across)
    assert calls == [["a", "b"]]
    in_order = [name for name in dataset.data_vars if name in serial.variables]
    assert list(mapped.variables) == list(serial.variables) == in_order
    xarray.testing.assert_identical(reducer.finalize(mapped), reducer.finalize(serial))
    small = dataset.isel(x=slice(0, 2))
    reducer.reduce(small, ["time"], map_fn=_threaded_map(calls))
    assert len(calls) == 1  # too small to be worth threads


def test_reduce_groups_keeps_small_groups_off_map_fn():
    dataset = _grouped_data()  # a few hundred bytes a group
    calls: list = []
    reducer = Reducer("mean")
    results = list(
        reducer.reduce_groups(
            dataset, "time", GROUP_PATTERNS["contiguous"], map_fn=_threaded_map(calls)
        )
    )
    assert calls == []
    assert [number for number, _ in results] == [0, 1, 3]


@pytest.mark.parametrize("stat", ["mean", "var", "sum"])
def test_weighted_reduce_groups_equals_weighted_reduction_of_each_bin(stat):
    dataset = _grouped_data()
    groups, bins = BIN_PATTERNS["sorted"]
    weights = xarray.DataArray(np.linspace(0.0, 2.0, 12), dims="time")
    hours = xarray.Variable(("hour",), [0, 6, 12])
    reducer = Reducer(stat, weighted=True)
    results = reducer.reduce_groups(dataset, "time", groups, bins, hours, weights)
    for number, partial in results:
        final = reducer.finalize(partial)
        for position in range(3):
            selected = (groups == number) & (bins == position)
            if selected.any():
                expected = getattr(
                    dataset[["a", "k"]]
                    .isel(time=selected)
                    .weighted(weights.isel(time=selected)),
                    stat,
                )("time")
                actual = final[["a", "k"]].isel(hour=position, drop=True)
                _assert_matches(actual, expected, atol=1e-12)


# --- errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"stat": "median"}, "unknown statistic 'median'"),
        ({"min_count": 0}, "min_count must be a positive int"),
        ({"min_count": 1.5}, "min_count must be a positive int"),
        ({"stat": "var", "ddof": -1}, "ddof must be a non-negative int"),
        ({"stat": "min", "weighted": True}, "weights do not apply to 'min'"),
        ({"stat": "var", "ddof": 1, "weighted": True}, "ddof does not apply"),
    ],
)
def test_invalid_reducer_options_raise_value_error(options, message):
    with pytest.raises(ValueError, match=message):
        Reducer(**options)


@pytest.mark.parametrize(
    ("weights", "error", "message"),
    [
        (xarray.DataArray([1.0, np.nan], dims="x"), ValueError, "must not contain NaN"),
        (xarray.DataArray([1.0, -0.5], dims="x"), ValueError, "must not be negative"),
        (np.array([1.0, 2.0]), TypeError, "must be an xarray.DataArray"),
        (xarray.DataArray(["a", "b"], dims="x"), TypeError, "must be numeric"),
        (xarray.DataArray([1.0, 2.0], dims="y"), ValueError, "do not vary along"),
    ],
    ids=["nan", "negative", "numpy", "strings", "not-spanning"],
)
def test_invalid_weights_raise(weights, error, message):
    with pytest.raises(error, match=message):
        check_weights(weights, ["x"])


def test_valid_weights_are_returned_unchanged():
    weights = xarray.DataArray([[1, 0], [2, 3]], dims=("x", "y"))
    assert check_weights(weights, ["y"]) is weights
    assert check_weights(None, ["y"]) is None


def test_weights_for_slices_weights_to_the_chunk():
    weights = xarray.DataArray(np.arange(10.0), dims="x")
    chunk = xarray.Dataset({"a": (("x", "y"), np.zeros((3, 2)))})
    part = weights_for(weights, {"x": 4, "y": 2}, chunk, Key({"x": 4, "y": 2}))
    np.testing.assert_array_equal(part.values, [4.0, 5.0, 6.0])


def test_weights_for_rejects_dims_the_chunk_lacks():
    weights = xarray.DataArray(np.ones((3, 2)), dims=("x", "level"))
    chunk = xarray.Dataset({"a": ("x", np.zeros(3))})
    with pytest.raises(ValueError, match=r"dimension\(s\) \['level'\]"):
        weights_for(weights, {"x": 0}, chunk, Key({"x": 0}))


def test_weights_for_rejects_weights_shorter_than_the_chunk():
    weights = xarray.DataArray(np.ones(5), dims="x")
    chunk = xarray.Dataset({"a": ("x", np.zeros(3))})
    with pytest.raises(ValueError, match="reaches element 7"):
        weights_for(weights, {"x": 4}, chunk, Key({"x": 4}))
