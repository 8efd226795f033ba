"""Per-chunk steps of ``xarray_beam.Dataset``, on plain chunks (no pipelines).

Chunks are made by slicing a small dataset with ``isel``, and expected results
come from plain xarray and NumPy on the same dataset.
"""

import collections
import itertools
import math
import re

import numpy as np
import pandas as pd
import pytest
import xarray

from xarray_beam import dataset_steps
from xarray_beam.dataset_steps import (
    CheckVariables,
    ChunkChecker,
    FanOut,
    KeepVariables,
    MapBlocks,
    SelectVariables,
    Transpose,
)
from xarray_beam.model.key import Key
from xarray_beam.model.reductions import STATS, Reducer

# Ragged last chunks along both dimensions: t is 2, 2, 1 and x is 3, 3, 1.
CHUNKS = {"t": 2, "x": 3}


def _source() -> xarray.Dataset:
    """a(t, x) float32, b(x) int32 and c() float64, with coordinates."""
    rng = np.random.default_rng(0)
    return xarray.Dataset(
        {
            "a": (("t", "x"), rng.normal(size=(5, 7)).astype(np.float32)),
            "b": ("x", np.arange(7, dtype=np.int32)),
            "c": ((), np.float64(1.5)),
        },
        coords={"t": np.arange(5) * 10, "x": np.arange(7) * 0.5},
    )


def _starts(dims, sizes, chunks) -> list[dict[str, int]]:
    """Offsets of every chunk over ``dims``, in C order."""
    ranges = [range(0, sizes[d], chunks[d]) for d in dims]
    return [dict(zip(dims, row, strict=True)) for row in itertools.product(*ranges)]


def _slices(offsets, chunks) -> dict[str, slice]:
    return {d: slice(o, o + chunks[d]) for d, o in offsets.items()}


def _chunks(ds, chunks, split_vars=False) -> list[tuple[Key, xarray.Dataset]]:
    """Every ``(Key, Dataset)`` element of ``ds``, cut with ``isel``."""
    if not split_vars:
        return [
            (Key(offsets), ds.isel(_slices(offsets, chunks)))
            for offsets in _starts(list(ds.sizes), ds.sizes, chunks)
        ]
    return [
        (Key(offsets, {name}), ds[[name]].isel(_slices(offsets, chunks)))
        for name, var in ds.data_vars.items()
        for offsets in _starts(var.dims, ds.sizes, chunks)
    ]


def _assert_same_chunks(actual, expected):
    assert [k for k, _ in actual] == [k for k, _ in expected]
    for (_, got), (_, want) in zip(actual, expected, strict=True):
        xarray.testing.assert_identical(got, want)


def _key_pattern(key: Key, problem: str) -> str:
    return re.escape(str(key)) + ".*" + problem


# --- ChunkChecker --------------------------------------------------------------


@pytest.mark.parametrize("split_vars", [False, True])
def test_chunk_checker_passes_valid_chunks_unchanged(split_vars):
    ds = _source()
    check = ChunkChecker(ds, CHUNKS, split_vars)
    for key, chunk in _chunks(ds, CHUNKS, split_vars):
        got_key, got_chunk = check((key, chunk))
        assert got_key is key
        assert got_chunk is chunk


@pytest.mark.parametrize(
    "element, type_names",
    [
        pytest.param([Key({"t": 0, "x": 0}), _source()], ["list"], id="list-not-tuple"),
        pytest.param(
            (Key({"t": 0, "x": 0}), _source(), None), ["tuple"], id="three-tuple"
        ),
        pytest.param(({"t": 0, "x": 0}, _source()), ["dict"], id="dict-key"),
        pytest.param(
            (Key({"t": 0, "x": 0}), _source().a), ["Key", "DataArray"], id="dataarray"
        ),
    ],
)
def test_chunk_checker_rejects_non_key_dataset_pairs(element, type_names):
    check = ChunkChecker(_source(), CHUNKS, split_vars=False)
    with pytest.raises(TypeError, match=r"expected \(Key, xarray.Dataset\) pairs") as e:
        check(element)
    for name in type_names:
        assert name in str(e.value)


def _whole_chunk(offsets):
    """The chunk of the source at ``offsets`` (any offsets, even invalid)."""
    return _source().isel(_slices(offsets, CHUNKS))


def _bad_whole_chunks():
    at = {"t": 2, "x": 3}
    good = _whole_chunk(at)
    return [
        pytest.param(
            Key({"t": 1, "x": 0}),
            _whole_chunk({"t": 1, "x": 0}),
            "offset 1 along 't' is not a multiple of the chunk size 2",
            id="offset-not-multiple",
        ),
        pytest.param(
            Key({"t": 6, "x": 0}),
            _whole_chunk({"t": 6, "x": 0}),
            "offset 6 along 't' is outside the dimension \\(size 5\\)",
            id="offset-beyond-size",
        ),
        pytest.param(
            Key(at),
            good.isel(t=slice(0, 1)),
            "has 1 elements along 't', expected 2",
            id="short-chunk",
        ),
        pytest.param(
            Key({"t": 4, "x": 6}),
            _source().isel(t=slice(3, 5), x=slice(6, 7)),
            "has 2 elements along 't', expected 1",
            id="ragged-last-chunk-too-long",
        ),
        pytest.param(
            Key({**at, "y": 0}),
            good,
            re.escape("has offsets for ['t', 'x', 'y'], expected offsets for exactly"),
            id="extra-offset",
        ),
        pytest.param(
            Key(at),
            good.drop_vars("b"),
            re.escape("has the wrong variables: missing ['b'], unexpected []"),
            id="missing-variable",
        ),
        pytest.param(
            Key(at),
            good.assign(d=good.a * 2),
            re.escape("has the wrong variables: missing [], unexpected ['d']"),
            id="extra-variable",
        ),
        pytest.param(
            Key(at, {"a", "b", "c"}),
            good,
            "has vars set, but split_vars=False",
            id="vars-without-split-vars",
        ),
        pytest.param(
            Key(at),
            good.transpose("x", "t"),
            re.escape("variable 'a' has dims ('x', 't'), the template has ('t', 'x')"),
            id="dims-out-of-order",
        ),
        pytest.param(
            Key(at),
            good.assign(a=good.a.astype(np.float64)),
            "variable 'a' has dtype float64, the template has float32",
            id="wrong-dtype",
        ),
    ]


@pytest.mark.parametrize("key, chunk, problem", _bad_whole_chunks())
def test_chunk_checker_names_key_and_problem(key, chunk, problem):
    check = ChunkChecker(_source(), CHUNKS, split_vars=False)
    with pytest.raises(ValueError, match=_key_pattern(key, problem)):
        check((key, chunk))


def _bad_split_chunks():
    ds = _source()
    b = ds[["b"]].isel(x=slice(0, 3))
    return [
        pytest.param(
            Key({"t": 0, "x": 0}),
            ds[["a", "c"]].isel(t=slice(0, 2), x=slice(0, 3)),
            "has vars=None, but with split_vars=True each key must name exactly one",
            id="no-vars-several-variables",
        ),
        pytest.param(
            Key({"t": 0, "x": 0}, {"a", "b"}),
            ds[["a", "b"]].isel(t=slice(0, 2), x=slice(0, 3)),
            "must name exactly one variable",
            id="several-vars",
        ),
        pytest.param(
            Key({"x": 0}, {"zz"}),
            b,
            re.escape("names variable 'zz', which is not in the template"),
            id="unknown-var",
        ),
        pytest.param(
            Key({"x": 0}, {"b"}),
            b.assign(c=ds.c),
            re.escape("holds variables ['b', 'c'], expected ['b']"),
            id="chunk-holds-other-variable",
        ),
        pytest.param(
            Key({"t": 0, "x": 0}, {"b"}),
            b,
            re.escape("has offsets for ['t', 'x'], expected offsets for exactly ['x']"),
            id="offset-variable-lacks",
        ),
        pytest.param(
            Key({"x": 3}, {"b"}),
            ds[["b"]].isel(x=slice(3, 5)),
            "has 2 elements along 'x', expected 3",
            id="short-chunk",
        ),
        pytest.param(
            Key({"x": 0}, {"b"}),
            b.astype(np.int64),
            "variable 'b' has dtype int64, the template has int32",
            id="wrong-dtype",
        ),
    ]


@pytest.mark.parametrize("key, chunk, problem", _bad_split_chunks())
def test_chunk_checker_split_vars_names_key_and_problem(key, chunk, problem):
    check = ChunkChecker(_source(), CHUNKS, split_vars=True)
    with pytest.raises(ValueError, match=_key_pattern(key, problem)):
        check((key, chunk))


# --- splitting and fanning out -------------------------------------------------


def test_split_unique_yields_each_variable_chunk_once():
    ds = _source()
    pieces = [
        piece
        for element in _chunks(ds, CHUNKS)
        for piece in dataset_steps.split_unique(element)
    ]
    keys = [key for key, _ in pieces]
    assert not [k for k, n in collections.Counter(keys).items() if n > 1]
    expected = _chunks(ds, CHUNKS, split_vars=True)
    assert set(keys) == {key for key, _ in expected}
    by_key = dict(pieces)
    for key, chunk in expected:
        xarray.testing.assert_identical(by_key[key], chunk)


def test_split_unique_chunks_reassemble_into_source():
    ds = _source()
    pieces = collections.defaultdict(list)
    for element in _chunks(ds, CHUNKS):
        for key, chunk in dataset_steps.split_unique(element):
            (name,) = key.vars
            pieces[name].append(chunk)
    assert set(pieces) == set(ds.data_vars)
    for name, chunks in pieces.items():
        xarray.testing.assert_identical(xarray.combine_by_coords(chunks), ds[[name]])


def test_fan_out_copies_chunk_to_every_key_along_missing_dims():
    ds = _source()
    chunk = ds[["b"]].isel(x=slice(3, 6))
    out = list(FanOut(ds, CHUNKS)((Key({"x": 3}, {"b"}), chunk)))
    assert len(out) == math.ceil(ds.sizes["t"] / CHUNKS["t"])
    assert [key for key, _ in out] == [
        Key({"t": t, "x": 3}) for t in range(0, ds.sizes["t"], CHUNKS["t"])
    ]
    for key, copy in out:
        assert set(key.offsets) == set(ds.sizes)
        xarray.testing.assert_identical(copy, chunk)


def test_fan_out_copies_scalar_chunk_to_every_key():
    ds = _source()
    out = list(FanOut(ds, CHUNKS)((Key({}, {"c"}), ds[["c"]])))
    assert [key for key, _ in out] == [
        Key(offsets) for offsets in _starts(list(ds.sizes), ds.sizes, CHUNKS)
    ]


def test_fan_out_keeps_chunk_with_all_dims_as_is():
    ds = _source()
    key, chunk = Key({"t": 2, "x": 3}, {"a"}), ds[["a"]].isel(t=[2, 3], x=[3, 4, 5])
    assert list(FanOut(ds, CHUNKS)((key, chunk))) == [(Key(key.offsets), chunk)]


# --- selecting and checking variables ------------------------------------------


def test_select_variables_keeps_first_copy_without_vanished_dims():
    ds = _source()
    select = SelectVariables(["b"], ds.b.dims, split_vars=False)
    out = [piece for element in _chunks(ds, CHUNKS) for piece in select(element)]
    _assert_same_chunks(out, _chunks(ds[["b"]], CHUNKS))


def test_select_variables_drops_copies_at_nonzero_vanished_offsets():
    ds = _source()
    select = SelectVariables(["b"], ["x"], split_vars=False)
    chunk = ds.isel(t=slice(2, 4), x=slice(0, 3))
    assert list(select((Key({"t": 2, "x": 0}), chunk))) == []


def test_select_variables_keeping_all_dims_keeps_every_chunk():
    ds = _source()
    select = SelectVariables(["a", "c"], ["t", "x"], split_vars=False)
    out = [piece for element in _chunks(ds, CHUNKS) for piece in select(element)]
    _assert_same_chunks(out, _chunks(ds[["a", "c"]], CHUNKS))


def test_select_variables_split_keeps_only_selected_keys():
    ds = _source()
    select = SelectVariables(["a", "c"], ["t", "x"], split_vars=True)
    elements = _chunks(ds, CHUNKS, split_vars=True)
    out = [piece for element in elements for piece in select(element)]
    assert out == [(k, c) for k, c in elements if k.vars <= {"a", "c"}]
    assert {name for key, _ in out for name in key.vars} == {"a", "c"}


@pytest.mark.parametrize(
    "vars_, kept",
    [(None, True), ({"a"}, True), ({"b"}, True), ({"c"}, False), ({"a", "c"}, False)],
)
def test_keep_variables_keeps_keys_of_named_variables(vars_, kept):
    element = (Key({"x": 0}, vars_), _source())
    assert KeepVariables(["a", "b"])(element) is kept


def test_check_variables_returns_named_variables_in_order():
    ds = _source()
    key = Key({"t": 0, "x": 0})
    got_key, got = CheckVariables(["c", "a"])((key, ds))
    assert got_key == key
    xarray.testing.assert_identical(got, ds[["c", "a"]])
    assert list(got.data_vars) == ["c", "a"]


def test_check_variables_names_key_and_missing_variables():
    key = Key({"t": 2, "x": 3})
    chunk = _whole_chunk(key.offsets).drop_vars(["a", "c"])
    with pytest.raises(ValueError, match=_key_pattern(key, re.escape("['a', 'c']"))):
        CheckVariables(["a", "b", "c"])((key, chunk))


# --- Transpose -----------------------------------------------------------------


def test_transpose_orders_dims_like_xarray():
    key = Key({"t": 2, "x": 3})
    chunk = _whole_chunk(key.offsets)
    got_key, got = Transpose(["x", "t"])((key, chunk))
    assert got_key is key
    xarray.testing.assert_identical(got, chunk.transpose("x", "t"))
    assert got.a.dims == ("x", "t")


def test_transpose_skips_dims_chunk_lacks():
    ds = _source()
    key = Key({"x": 3}, {"b"})
    chunk = ds[["b"]].isel(x=slice(3, 6))
    _, got = Transpose(["x", "t"])((key, chunk))
    xarray.testing.assert_identical(got, chunk.transpose("x"))


# --- MapBlocks -----------------------------------------------------------------


def test_map_blocks_keeps_keys_of_same_shaped_output():
    ds = _source()

    def double(chunk):
        return chunk * 2

    step = MapBlocks(double, double(ds), CHUNKS, split_vars=False)
    for key, chunk in _chunks(ds, CHUNKS):
        got_key, got = step((key, chunk))
        assert got_key == key
        xarray.testing.assert_identical(got, double(chunk))


def test_map_blocks_rekeys_output_without_reduced_dims():
    ds = _source()

    def mean_x(chunk):
        return chunk.mean("x")

    step = MapBlocks(mean_x, mean_x(ds), {"t": 2}, split_vars=False)
    chunks = {"t": 2, "x": ds.sizes["x"]}
    for key, chunk in _chunks(ds, chunks):
        got_key, got = step((key, chunk))
        assert got_key == key.with_offsets(x=None)
        xarray.testing.assert_identical(got, mean_x(chunk))


def test_map_blocks_gives_new_dims_offset_zero():
    ds = _source()

    def add_member(chunk):
        return chunk.expand_dims(member=3)

    step = MapBlocks(add_member, add_member(ds), {**CHUNKS, "member": 3}, False)
    key = Key({"t": 4, "x": 6})
    got_key, _ = step((key, _whole_chunk(key.offsets)))
    assert got_key == Key({"t": 4, "x": 6, "member": 0})


def test_map_blocks_split_vars_keys_result_variables_and_dims():
    ds = _source()

    def sum_t(chunk):
        return chunk.sum("t").rename({"a": "total"})

    chunks = {"t": ds.sizes["t"], "x": 3}
    step = MapBlocks(sum_t, sum_t(ds[["a"]]), chunks, split_vars=True)
    key = Key({"t": 0, "x": 6}, {"a"})
    chunk = ds[["a"]].isel(x=slice(6, 9))
    got_key, got = step((key, chunk))
    assert got_key == Key({"x": 6}, {"total"})
    xarray.testing.assert_identical(got, sum_t(chunk))


def test_map_blocks_rejects_wrong_size_naming_function_and_key():
    ds = _source()

    def double_x(chunk):
        return xarray.concat([chunk, chunk], "x", data_vars="all")

    step = MapBlocks(double_x, ds, CHUNKS, split_vars=False)
    key = Key({"t": 2, "x": 3})
    problem = "'double_x' returned 6 elements along 'x' for chunk "
    with pytest.raises(ValueError, match=problem + re.escape(str(key))):
        step((key, _whole_chunk(key.offsets)))


def test_map_blocks_rejects_dims_template_lacks():
    ds = _source()

    def add_member(chunk):
        return chunk.expand_dims(member=2)

    step = MapBlocks(add_member, ds, CHUNKS, split_vars=False)
    key = Key({"t": 0, "x": 0})
    problem = "'add_member' returned dimension 'member' for chunk "
    with pytest.raises(ValueError, match=problem + re.escape(str(key))):
        step((key, _whole_chunk(key.offsets)))


def test_map_blocks_rejects_non_dataset_naming_function_and_key():
    ds = _source()

    def to_array(chunk):
        return chunk.a

    step = MapBlocks(to_array, ds, CHUNKS, split_vars=False)
    key = Key({"t": 0, "x": 0})
    problem = "'to_array' returned a DataArray for chunk "
    with pytest.raises(TypeError, match=problem + re.escape(str(key))):
        step((key, _whole_chunk(key.offsets)))


# --- reduced_template ----------------------------------------------------------


def _mixed() -> xarray.Dataset:
    """float32, int32, bool and datetime64 variables, and 0-d ones."""
    rng = np.random.default_rng(1)
    return xarray.Dataset(
        {
            "f": (("t", "x"), rng.normal(size=(4, 3)).astype(np.float32)),
            "i": (("t", "x"), rng.integers(0, 9, (4, 3)).astype(np.int32)),
            "flag": (("t", "x"), rng.random((4, 3)) > 0.5),
            "when": ("t", pd.date_range("2000-01-01", periods=4).values),
            "s": ((), np.float64(2.5)),
            "n": ((), np.int32(3)),
        },
        coords={"t": np.arange(4), "x": [10.0, 20.0, 30.0], "label": "mixed"},
    )


@pytest.mark.parametrize("dims", [("t",), ("t", "x")])
@pytest.mark.parametrize("stat", STATS)
def test_reduced_template_matches_xarray_dims_and_dtypes(stat, dims):
    ds = _mixed()
    got = dataset_steps.reduced_template(ds, dims, Reducer(stat))
    want = getattr(ds.drop_vars("when"), stat)(dims)
    assert set(got.data_vars) == set(want.data_vars)
    for name, var in want.data_vars.items():
        assert (got[name].dims, got[name].dtype) == (var.dims, var.dtype), name
    assert set(got.coords) == set(want.coords)
    assert dict(got.sizes) == dict(want.sizes)


@pytest.mark.parametrize("stat", STATS)
def test_reduced_template_drops_non_numeric_along_reduced_dims(stat):
    got = dataset_steps.reduced_template(_mixed(), ["t"], Reducer(stat))
    assert "when" not in got
    assert "flag" in got


@pytest.mark.parametrize("dims", [("t",), ("t", "x")])
@pytest.mark.parametrize("stat", STATS)
def test_reduced_template_matches_reducer_output(stat, dims):
    ds = _mixed()
    reducer = Reducer(stat)
    got = dataset_steps.reduced_template(ds, dims, reducer)
    want = reducer.finalize(reducer.reduce(ds, dims))
    assert set(got.data_vars) == set(want.data_vars)
    for name, var in want.data_vars.items():
        assert (got[name].dims, got[name].dtype) == (var.dims, var.dtype), name


# --- chunk arithmetic ----------------------------------------------------------

CHUNKINGS = [CHUNKS, {"t": 5, "x": 7}, {"t": 1, "x": 2}, {"t": 4, "x": 1}]


@pytest.mark.parametrize("split_vars", [False, True])
@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_chunk_count_counts_elements(chunks, split_vars):
    ds = _source()
    per_dim = {d: math.ceil(size / chunks[d]) for d, size in ds.sizes.items()}
    if split_vars:
        want = sum(
            math.prod(per_dim[d] for d in var.dims) for var in ds.data_vars.values()
        )
    else:
        want = math.prod(per_dim.values())
    assert dataset_steps.chunk_count(ds, chunks, split_vars) == want
    assert want == len(_chunks(ds, chunks, split_vars))


@pytest.mark.parametrize("split_vars", [False, True])
@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_bytes_per_chunk_is_largest_chunk(chunks, split_vars):
    ds = _source()
    want = max(
        sum(var.nbytes for var in chunk.data_vars.values())
        for _, chunk in _chunks(ds, chunks, split_vars)
    )
    assert dataset_steps.bytes_per_chunk(ds, chunks, split_vars) == want


def test_bytes_per_chunk_of_dataset_without_variables_is_zero():
    ds = xarray.Dataset(coords={"x": np.arange(3)})
    assert dataset_steps.bytes_per_chunk(ds, {"x": 2}, split_vars=False) == 0
    assert dataset_steps.bytes_per_chunk(ds, {"x": 2}, split_vars=True) == 0


@pytest.mark.parametrize("dims", [["t", "x"], ["x"], ["x", "t"], []])
@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_grid_covers_dims_with_regular_chunks(chunks, dims):
    sizes = _source().sizes
    grid = dataset_steps.grid(chunks, sizes, dims)
    assert grid.dims == tuple(dims)
    for dim in dims:
        assert sum(grid.chunks[dim]) == sizes[dim]
        assert len(grid.chunks[dim]) == math.ceil(sizes[dim] / chunks[dim])
        assert set(grid.chunks[dim][:-1]) <= {chunks[dim]}
    assert grid.count == math.prod(math.ceil(sizes[d] / chunks[d]) for d in dims)
    assert list(grid.iter_offsets()) == _starts(dims, sizes, chunks)
