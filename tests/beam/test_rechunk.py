"""Splitting and consolidating chunks, with plain xarray slicing as the oracle."""

import collections
import math
import random
import re

import apache_beam as beam
import numpy as np
import pytest
import xarray
from hypothesis import given, settings
from hypothesis import strategies as st

import xarray_beam as xbeam
from xarray_beam.beam import runners
from xarray_beam.model.key import Key, offsets_to_slices

# --- helpers -----------------------------------------------------------------


def _expected_chunk(original: xarray.Dataset, key: Key, chunk: xarray.Dataset):
    """The part of ``original`` that ``key`` and the chunk's sizes describe."""
    source = original if key.vars is None else original[sorted(key.vars)]
    return source.isel(offsets_to_slices(key.offsets, chunk.sizes))


def _assert_chunks_are_slices(original: xarray.Dataset, chunks) -> None:
    for key, chunk in chunks:
        xarray.testing.assert_identical(chunk, _expected_chunk(original, key, chunk))


def _coverage(chunks, sizes: dict[str, int]) -> np.ndarray:
    """How many chunks cover each element of an array with ``sizes``."""
    counts = np.zeros(tuple(sizes.values()), dtype=int)
    for key, chunk in chunks:
        region = offsets_to_slices(
            {d: key.offsets.get(d, 0) for d in sizes}, chunk.sizes
        )
        counts[tuple(region[d] for d in sizes)] += 1
    return counts


def _split(dataset: xarray.Dataset, target_chunks, key: Key | None = None):
    return list(xbeam.split_chunks(key or Key(), dataset, target_chunks))


def _one(results):
    """The single ``(Key, Dataset)`` pair that a consolidation yields."""
    results = list(results)
    assert len(results) == 1, [key for key, _ in results]
    return results[0]


def _shuffled(items, seed: int):
    items = list(items)
    random.Random(seed).shuffle(items)
    return items


def _line(values, dim: str = "x", start: int = 0) -> xarray.Dataset:
    values = np.asarray(values)
    coord = np.arange(start, start + len(values))
    return xarray.Dataset({"foo": (dim, values)}, coords={dim: coord})


# --- split_chunks ------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "size", "target", "expected_starts"),
    [
        (3, 12, 4, [3, 4, 8, 12]),
        (0, 12, 4, [0, 4, 8]),
        (8, 4, 4, [8]),
        (5, 2, 10, [5]),
        (0, 5, 1, [0, 1, 2, 3, 4]),
        (7, 10, 3, [7, 9, 12, 15]),
        (0, 3, 100, [0]),
    ],
)
def test_split_chunks_aligns_to_absolute_multiples(
    offset, size, target, expected_starts
):
    whole = _line(np.arange(offset + size) * 10)
    chunk = whole.isel(x=slice(offset, offset + size))

    pieces = _split(chunk, {"x": target}, Key({"x": offset}))

    assert [key.offsets["x"] for key, _ in pieces] == expected_starts
    stops = [*expected_starts[1:], offset + size]
    for (key, piece), start, stop in zip(pieces, expected_starts, stops, strict=True):
        assert key == Key({"x": start})
        xarray.testing.assert_identical(piece, whole.isel(x=slice(start, stop)))


@pytest.mark.parametrize(
    "target_chunks",
    [
        {"time": 4},
        {"time": 3, "latitude": 2},
        {"latitude": 3, "longitude": 4},
        {"time": 1, "latitude": 7, "longitude": 5},
    ],
)
def test_split_chunks_pieces_equal_xarray_slices_and_tile_the_chunk(
    mixed_dataset, target_chunks
):
    pieces = _split(mixed_dataset, target_chunks)

    _assert_chunks_are_slices(mixed_dataset, pieces)
    assert (_coverage(pieces, dict(mixed_dataset.sizes)) == 1).all()
    expected_count = math.prod(
        math.ceil(mixed_dataset.sizes[d] / n) for d, n in target_chunks.items()
    )
    assert len(pieces) == expected_count


def test_split_chunks_over_several_dims_is_the_cartesian_product(mixed_dataset):
    key = Key({"time": 2, "latitude": 1}, {"t2m"})
    chunk = mixed_dataset[["t2m"]].isel(time=slice(2, 10), latitude=slice(1, 7))

    pieces = _split(chunk, {"time": 4, "latitude": 3}, key)

    expected_keys = [
        Key({"time": t, "latitude": lat}, {"t2m"})
        for t in (2, 4, 8)
        for lat in (1, 3, 6)
    ]
    assert len(pieces) == len(expected_keys)
    assert {k for k, _ in pieces} == set(expected_keys)
    _assert_chunks_are_slices(mixed_dataset, pieces)


def test_split_chunks_minus_one_does_not_split(mixed_dataset):
    key = Key({"time": 4, "latitude": 0})
    chunk = mixed_dataset.isel(time=slice(4, 10))

    pieces = _split(chunk, {"time": -1, "latitude": -1}, key)

    assert len(pieces) == 1
    (piece_key, piece) = pieces[0]
    assert piece_key == key
    xarray.testing.assert_identical(piece, chunk)


def test_split_chunks_ignores_dims_missing_from_the_dataset(mixed_dataset):
    chunk = mixed_dataset[["valid"]]
    key = Key({"time": 0}, {"valid"})

    pieces = _split(chunk, {"time": 5, "level": 1, "latitude": 2}, key)

    assert [k for k, _ in pieces] == [
        Key({"time": 0}, {"valid"}),
        Key({"time": 5}, {"valid"}),
    ]
    _assert_chunks_are_slices(mixed_dataset, pieces)


def test_split_chunks_keeps_vars_and_other_offsets(mixed_dataset):
    key = Key({"time": 0, "longitude": 0}, {"t2m", "count"})
    chunk = mixed_dataset[["t2m", "count"]]

    pieces = _split(chunk, {"time": 4}, key)

    assert all(k.vars == {"t2m", "count"} for k, _ in pieces)
    assert all(k.offsets["longitude"] == 0 for k, _ in pieces)
    _assert_chunks_are_slices(mixed_dataset, pieces)


def test_split_chunks_accepts_numpy_integer_sizes():
    dataset = _line(np.arange(6))
    pieces = _split(dataset, {"x": np.int64(4)}, Key({"x": 0}))
    assert [k for k, _ in pieces] == [Key({"x": 0}), Key({"x": 4})]


@pytest.mark.parametrize(
    ("target_chunks", "error", "match"),
    [
        ({"x": 0}, ValueError, "'x' must be positive or -1"),
        ({"x": -2}, ValueError, "'x' must be positive or -1"),
        ({"x": 2.0}, ValueError, "'x' must be an int"),
        ({"x": (2, 2)}, ValueError, "'x' must be an int"),
        ({"x": True}, ValueError, "'x' must be an int"),
        ([("x", 2)], TypeError, "must be a mapping"),
        (2, TypeError, "must be a mapping"),
    ],
)
def test_split_chunks_rejects_invalid_target_chunks(target_chunks, error, match):
    with pytest.raises(error, match=match):
        _split(_line(np.arange(6)), target_chunks, Key({"x": 0}))


# --- split_variables ---------------------------------------------------------


def test_split_variables_makes_one_chunk_per_data_variable(mixed_dataset):
    key = Key({"time": 4, "latitude": 3, "longitude": 0})
    chunk = mixed_dataset.isel(time=slice(4, 8), latitude=slice(3, 6))

    pieces = list(xbeam.split_variables(key, chunk))

    assert [k for k, _ in pieces] == [
        Key({"time": 4, "latitude": 3, "longitude": 0}, {"t2m"}),
        Key({"time": 4, "longitude": 0}, {"count"}),
        Key({"latitude": 3, "longitude": 0}, {"lsm"}),
        Key({"time": 4}, {"valid"}),
        Key({}, {"scale"}),
    ]
    for piece_key, piece in pieces:
        (name,) = piece_key.vars
        assert list(piece.data_vars) == [name]
        xarray.testing.assert_identical(piece[name], chunk[name])
    _assert_chunks_are_slices(mixed_dataset, pieces)


def test_split_variables_keeps_the_coordinates_of_each_variable(mixed_dataset):
    for _, piece in xbeam.split_variables(Key(), mixed_dataset):
        (name,) = piece.data_vars
        for coord in mixed_dataset[name].coords:
            xarray.testing.assert_identical(piece[coord], mixed_dataset[coord])


# --- consolidate_chunks ------------------------------------------------------

GRIDS = [
    {"time": 4},
    {"time": 3},
    {"latitude": 2},
    {"time": 4, "latitude": 3},
    {"time": 3, "latitude": 2, "longitude": 4},
    {"time": 1},
]


@pytest.mark.parametrize("target_chunks", GRIDS)
def test_consolidate_chunks_reproduces_the_original(mixed_dataset, target_chunks):
    pieces = _split(mixed_dataset, target_chunks)

    key, combined = _one(xbeam.consolidate_chunks(pieces))

    assert key == Key({d: 0 for d in target_chunks})
    xarray.testing.assert_identical(combined, mixed_dataset)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("target_chunks", [{"time": 3}, {"time": 4, "latitude": 3}])
def test_consolidate_chunks_accepts_inputs_in_any_order(
    mixed_dataset, target_chunks, seed
):
    pieces = _shuffled(_split(mixed_dataset, target_chunks), seed)

    key, combined = _one(xbeam.consolidate_chunks(pieces))

    assert key == Key({d: 0 for d in target_chunks})
    xarray.testing.assert_identical(combined, mixed_dataset)


def test_consolidate_chunks_of_a_block_away_from_the_origin(mixed_dataset):
    region = {"time": slice(4, 10), "latitude": slice(3, 7)}
    key = Key({"time": 4, "latitude": 3, "longitude": 0}, {"t2m", "lsm"})
    block = mixed_dataset[["t2m", "lsm"]].isel(region)
    pieces = _shuffled(_split(block, {"time": 2, "latitude": 2}, key), seed=3)

    combined_key, combined = _one(xbeam.consolidate_chunks(pieces))

    assert combined_key == key
    xarray.testing.assert_identical(combined, block)


@pytest.mark.parametrize("target_chunks", [{"time": 4}, {"time": 4, "latitude": 3}])
def test_consolidate_chunks_with_empty_combine_kwargs_matches_default(
    mixed_dataset, target_chunks
):
    pieces = _shuffled(_split(mixed_dataset, target_chunks), seed=0)

    key, combined = _one(xbeam.consolidate_chunks(pieces, combine_kwargs={}))

    assert key == Key({d: 0 for d in target_chunks})
    xarray.testing.assert_identical(combined, mixed_dataset)


def test_consolidate_chunks_passes_combine_kwargs_to_xarray(mixed_dataset):
    pieces = _split(mixed_dataset, {"time": 4, "latitude": 3})
    combine_kwargs = {
        "data_vars": "minimal",
        "coords": "minimal",
        "compat": "override",
        "join": "exact",
        "combine_attrs": "override",
    }

    _, combined = _one(xbeam.consolidate_chunks(pieces, combine_kwargs=combine_kwargs))

    xarray.testing.assert_identical(combined, mixed_dataset)


def test_consolidate_chunks_returns_a_single_chunk_unchanged(mixed_dataset):
    key = Key({"time": 4}, {"t2m"})
    chunk = mixed_dataset[["t2m"]].isel(time=slice(4, 8))

    result_key, result = _one(xbeam.consolidate_chunks([(key, chunk)]))

    assert result_key == key
    xarray.testing.assert_identical(result, chunk)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (np.array(["a", "bb"]), np.array(["cccc"])),
        (
            np.array(["2021-01-01", "2021-01-02"], dtype="datetime64[s]"),
            np.array(["2021-01-03T12:00"], dtype="datetime64[ms]"),
        ),
    ],
)
def test_consolidate_chunks_widens_text_and_time_units(first, second):
    whole = np.concatenate([first, second])
    pieces = [
        (Key({"x": 0}), _line(first)),
        (Key({"x": len(first)}), _line(second, start=len(first))),
    ]

    _, combined = _one(xbeam.consolidate_chunks(pieces))

    assert combined["foo"].dtype == whole.dtype
    np.testing.assert_array_equal(combined["foo"].values, whole)
    np.testing.assert_array_equal(combined["x"].values, np.arange(len(whole)))


def test_consolidate_chunks_names_a_missing_chunk_of_a_grid(mixed_dataset):
    pieces = _split(mixed_dataset, {"time": 4, "latitude": 3})
    missing = Key({"time": 4, "latitude": 3})
    pieces = [(k, c) for k, c in pieces if k != missing]
    assert len(pieces) == 8

    with pytest.raises(ValueError, match="missing.*" + re.escape(repr(missing))):
        list(xbeam.consolidate_chunks(pieces))


def test_consolidate_chunks_rejects_a_duplicate_key(mixed_dataset):
    pieces = _split(mixed_dataset, {"time": 4})
    duplicate = pieces[1]

    with pytest.raises(ValueError, match="duplicate.*" + re.escape(repr(duplicate[0]))):
        list(xbeam.consolidate_chunks([*pieces, duplicate]))


def test_consolidate_chunks_rejects_overlapping_chunks(mixed_dataset):
    first = (Key({"time": 0}), mixed_dataset.isel(time=slice(0, 4)))
    overlapping = (Key({"time": 2}), mixed_dataset.isel(time=slice(2, 6)))
    last = (Key({"time": 6}), mixed_dataset.isel(time=slice(6, 10)))

    with pytest.raises(ValueError, match="overlap") as info:
        list(xbeam.consolidate_chunks([first, overlapping, last]))
    assert repr(first[0]) in str(info.value)
    assert repr(overlapping[0]) in str(info.value)


def test_consolidate_chunks_rejects_a_gap_between_chunks(mixed_dataset):
    first = (Key({"time": 0}), mixed_dataset.isel(time=slice(0, 4)))
    after_gap = (Key({"time": 6}), mixed_dataset.isel(time=slice(6, 10)))

    with pytest.raises(ValueError, match="gap") as info:
        list(xbeam.consolidate_chunks([after_gap, first]))
    assert repr(first[0]) in str(info.value)
    assert repr(after_gap[0]) in str(info.value)


def test_consolidate_chunks_rejects_chunks_with_different_vars(mixed_dataset):
    t2m = (Key({"time": 0}, {"t2m"}), mixed_dataset[["t2m"]].isel(time=slice(0, 5)))
    count = (
        Key({"time": 5}, {"count"}),
        mixed_dataset[["count"]].isel(time=slice(5, 10)),
    )

    with pytest.raises(ValueError, match="different vars") as info:
        list(xbeam.consolidate_chunks([t2m, count]))
    assert repr(t2m[0]) in str(info.value)
    assert repr(count[0]) in str(info.value)


def test_consolidate_chunks_rejects_a_dtype_mismatch(mixed_dataset):
    pieces = _split(mixed_dataset, {"time": 4})
    odd_key, odd_chunk = pieces[2]
    pieces[2] = (odd_key, odd_chunk.assign(t2m=odd_chunk["t2m"].astype(np.float64)))

    with pytest.raises(ValueError, match="'t2m'.*dtype") as info:
        list(xbeam.consolidate_chunks(pieces))
    assert repr(odd_key) in str(info.value)
    assert "float64" in str(info.value) and "float32" in str(info.value)


def test_consolidate_chunks_rejects_chunks_with_different_data_variables(
    mixed_dataset,
):
    pieces = _split(mixed_dataset, {"time": 4})
    odd_key, odd_chunk = pieces[1]
    pieces[1] = (odd_key, odd_chunk.drop_vars("count"))

    with pytest.raises(ValueError, match="different data variables") as info:
        list(xbeam.consolidate_chunks(pieces))
    assert repr(odd_key) in str(info.value)


def test_consolidate_chunks_of_no_chunks_yields_nothing():
    assert list(xbeam.consolidate_chunks([])) == []


# --- consolidate_variables ---------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_consolidate_variables_reproduces_the_original(mixed_dataset, seed):
    key = Key({"time": 4, "latitude": 3, "longitude": 0})
    chunk = mixed_dataset.isel(time=slice(4, 8), latitude=slice(3, 6))
    pieces = _shuffled(xbeam.split_variables(key, chunk), seed)

    merged_key, merged = _one(xbeam.consolidate_variables(pieces))

    assert merged_key == key.replace(vars=set(mixed_dataset.data_vars))
    xarray.testing.assert_identical(merged, chunk)


def test_consolidate_variables_takes_the_union_of_offsets(mixed_dataset):
    count = (Key({"time": 5}, {"count"}), mixed_dataset[["count"]].isel(time=[5]))
    lsm = (
        Key({"latitude": 2}, {"lsm"}),
        mixed_dataset[["lsm"]].isel(latitude=slice(2, 4)),
    )

    key, merged = _one(xbeam.consolidate_variables([count, lsm]))

    assert key == Key({"time": 5, "latitude": 2}, {"count", "lsm"})
    expected = xarray.merge([count[1], lsm[1]], combine_attrs="override")
    xarray.testing.assert_identical(merged, expected)


def test_consolidate_variables_keeps_chunks_at_different_offsets_apart(
    mixed_dataset,
):
    t2m = (Key({"time": 0}), mixed_dataset[["t2m"]].isel(time=slice(0, 4)))
    t2m_later = (Key({"time": 4}), mixed_dataset[["t2m"]].isel(time=slice(4, 8)))
    count = (
        Key({"time": 4}, {"count"}),
        mixed_dataset[["count"]].isel(time=slice(4, 8)),
    )

    merged = list(xbeam.consolidate_variables([t2m, t2m_later, count]))

    assert [key for key, _ in merged] == [
        Key({"time": 0}, {"t2m"}),
        Key({"time": 4}, {"t2m", "count"}),
    ]
    xarray.testing.assert_identical(merged[0][1], t2m[1])
    expected = mixed_dataset[["count", "t2m"]].isel(time=slice(4, 8))
    xarray.testing.assert_identical(merged[1][1], expected)


def test_consolidate_variables_rejects_a_variable_in_two_chunks(mixed_dataset):
    both = (Key({}, {"t2m", "lsm"}), mixed_dataset[["t2m", "lsm"]])
    again = (Key({}, {"t2m"}), mixed_dataset[["t2m"]] + 1)

    with pytest.raises(ValueError, match="data variable 't2m' differs") as info:
        list(xbeam.consolidate_variables([both, again]))
    assert repr(both[0]) in str(info.value)
    assert repr(again[0]) in str(info.value)


def test_consolidate_variables_merges_identical_copies_into_one(mixed_dataset):
    # split_variables repeats variables that lack a split dimension.
    both = (Key({}, {"t2m", "lsm"}), mixed_dataset[["t2m", "lsm"]])
    copy = (Key({}, {"lsm"}), mixed_dataset[["lsm"]].copy(deep=True))

    key, merged = _one(xbeam.consolidate_variables([both, copy]))

    assert key == Key({}, {"t2m", "lsm"})
    xarray.testing.assert_identical(merged, mixed_dataset[["t2m", "lsm"]])


def test_consolidate_variables_rejects_differing_coordinates(mixed_dataset):
    t2m = (Key({"time": 0}, {"t2m"}), mixed_dataset[["t2m"]].isel(time=slice(0, 4)))
    shifted = mixed_dataset[["count"]].isel(time=slice(0, 4))
    shifted = shifted.assign_coords(time=shifted.time + np.timedelta64(1, "D"))
    count = (Key({"time": 0}, {"count"}), shifted)

    with pytest.raises(ValueError, match="coordinate 'time' differs") as info:
        list(xbeam.consolidate_variables([t2m, count]))
    assert repr(t2m[0]) in str(info.value)
    assert repr(count[0]) in str(info.value)


# --- consolidate_fully and in_memory_rechunk ---------------------------------


def _variables_then_chunks(dataset, target_chunks):
    return [
        piece
        for key, chunk in xbeam.split_variables(Key(), dataset)
        for piece in xbeam.split_chunks(key, chunk, target_chunks)
    ]


def _chunks_then_variables(dataset, target_chunks):
    # Variables lacking a split dimension repeat, identically, under one key.
    return [
        piece
        for key, chunk in _split(dataset, target_chunks)
        for piece in xbeam.split_variables(key, chunk)
    ]


@pytest.mark.parametrize("split", [_variables_then_chunks, _chunks_then_variables])
@pytest.mark.parametrize("target_chunks", [{"time": 4}, {"time": 3, "latitude": 4}])
def test_consolidate_fully_reproduces_the_original(mixed_dataset, split, target_chunks):
    pieces = _shuffled(split(mixed_dataset, target_chunks), seed=5)

    key, combined = xbeam.consolidate_fully(pieces)

    assert key == Key({d: 0 for d in target_chunks}, set(mixed_dataset.data_vars))
    xarray.testing.assert_identical(combined, mixed_dataset)


def test_consolidate_fully_rejects_empty_input():
    with pytest.raises(ValueError, match="at least one chunk"):
        xbeam.consolidate_fully([])


@pytest.mark.parametrize(
    ("source_chunks", "target_chunks"),
    [
        ({"time": 3}, {"time": 4}),
        ({"time": 4}, {"latitude": 2}),
        ({"time": 1, "latitude": 7}, {"time": 10, "latitude": 3}),
        ({"latitude": 2, "longitude": 5}, {"time": 6, "longitude": -1}),
    ],
)
def test_in_memory_rechunk_matches_splitting_the_original(
    mixed_dataset, source_chunks, target_chunks
):
    root = Key({"time": 0, "latitude": 0, "longitude": 0})
    source = _shuffled(_split(mixed_dataset, source_chunks, root), seed=7)

    rechunked = list(xbeam.in_memory_rechunk(source, target_chunks))

    expected = _split(mixed_dataset, target_chunks, root)
    assert [k for k, _ in rechunked] == [k for k, _ in expected]
    for (_, chunk), (_, expected_chunk) in zip(rechunked, expected, strict=True):
        xarray.testing.assert_identical(chunk, expected_chunk)


def test_in_memory_rechunk_keeps_split_variables_apart(mixed_dataset):
    # As in xarray-beam: one consolidated block per group of vars, then split.
    source = _variables_then_chunks(mixed_dataset, {"time": 3, "latitude": 4})

    rechunked = list(xbeam.in_memory_rechunk(source, {"longitude": 4}))

    expected = []
    for name, variable in mixed_dataset.data_vars.items():
        root = Key({d: 0 for d in ("time", "latitude") if d in variable.dims}, {name})
        expected += _split(mixed_dataset[[name]], {"longitude": 4}, root)
    assert collections.Counter(k for k, _ in rechunked) == collections.Counter(
        k for k, _ in expected
    )
    _assert_chunks_are_slices(mixed_dataset, rechunked)


def test_in_memory_rechunk_rejects_repeated_keys(mixed_dataset):
    pieces = _split(mixed_dataset, {"time": 5})

    with pytest.raises(ValueError, match="not unique") as info:
        list(xbeam.in_memory_rechunk([*pieces, pieces[0]], {"time": 2}))
    assert repr(pieces[0][0]) in str(info.value)


# --- properties --------------------------------------------------------------


def _grid_dataset(sizes: dict[str, int]) -> xarray.Dataset:
    """A dataset with a variable over all dims and one over the first dim only."""
    shape = tuple(sizes.values())
    first = next(iter(sizes))
    values = np.arange(math.prod(shape), dtype=np.float64).reshape(shape)
    values[(0,) * len(shape)] = np.nan
    coords = {d: np.arange(n)[::-1] * 1.5 for d, n in sizes.items()}
    return xarray.Dataset(
        {
            "a": (tuple(sizes), values, {"units": "m"}),
            "b": (first, np.arange(sizes[first], dtype=np.int16)),
        },
        coords=coords,
        attrs={"note": "grid"},
    )


@st.composite
def _rechunk_cases(draw):
    ndim = draw(st.integers(1, 2))
    dims = ["x", "y"][:ndim]
    sizes = {d: draw(st.integers(1, 12)) for d in dims}
    source = {d: draw(st.integers(1, sizes[d] + 1)) for d in dims}
    target = {d: draw(st.one_of(st.just(-1), st.integers(1, 14))) for d in dims}
    seed = draw(st.integers(0, 2**16))
    return sizes, source, target, seed


@settings(max_examples=50, deadline=None)
@given(_rechunk_cases())
def test_in_memory_rechunk_properties(case):
    sizes, source_chunks, target_chunks, seed = case
    original = _grid_dataset(sizes)
    root = Key({d: 0 for d in sizes})
    source = _shuffled(_split(original, source_chunks, root), seed)

    rechunked = list(xbeam.in_memory_rechunk(source, target_chunks))

    for key, chunk in rechunked:
        for dim, target in target_chunks.items():
            start, size = key.offsets[dim], chunk.sizes[dim]
            stop = start + size
            if target == -1:
                assert (start, stop) == (0, sizes[dim])
            else:
                assert start % target == 0
                assert size <= target
                assert stop % target == 0 or stop == sizes[dim]
    _assert_chunks_are_slices(original, rechunked)
    assert (_coverage(rechunked, sizes) == 1).all()
    key, combined = _one(xbeam.consolidate_chunks(_shuffled(rechunked, seed + 1)))
    assert key == root
    xarray.testing.assert_identical(combined, original)


@settings(max_examples=50, deadline=None)
@given(
    offset=st.integers(0, 30),
    size=st.integers(1, 20),
    target=st.integers(1, 10),
)
def test_split_chunks_cuts_exactly_at_multiples_inside_the_chunk(offset, size, target):
    chunk = _line(np.arange(size), start=offset)

    pieces = _split(chunk, {"x": target}, Key({"x": offset}))

    starts = [key.offsets["x"] for key, _ in pieces]
    multiples_inside = [m for m in range(offset + 1, offset + size) if m % target == 0]
    assert starts == [offset, *multiples_inside]
    stops = [*starts[1:], offset + size]
    for start, stop, (_, piece) in zip(starts, stops, pieces, strict=True):
        np.testing.assert_array_equal(
            piece["foo"].values, np.arange(start, stop) - offset
        )


# --- Beam transforms ---------------------------------------------------------


def test_split_chunks_transform_cuts_into_xarray_slices(mixed_dataset):
    source = _split(mixed_dataset, {"time": 4})

    result = runners.collect(
        lambda p: (
            p | beam.Create(source) | xbeam.SplitChunks({"time": 3, "latitude": 5})
        )
    )

    expected = [
        piece
        for key, chunk in source
        for piece in xbeam.split_chunks(key, chunk, {"time": 3, "latitude": 5})
    ]
    assert collections.Counter(k for k, _ in result) == collections.Counter(
        k for k, _ in expected
    )
    _assert_chunks_are_slices(mixed_dataset, result)
    assert (_coverage(result, dict(mixed_dataset.sizes)) == 1).all()


@pytest.mark.parametrize(
    ("source_chunks", "target_chunks", "expected_chunks"),
    [
        ({"time": 2}, {"time": 4}, {"time": 4}),
        (
            {"time": 1, "latitude": 3},
            {"time": 5, "latitude": -1},
            {"time": 5},
        ),
    ],
)
def test_consolidate_chunks_transform_builds_the_target_chunks(
    mixed_dataset, source_chunks, target_chunks, expected_chunks
):
    root = Key({d: 0 for d in source_chunks})
    source = _split(mixed_dataset, source_chunks, root)

    result = runners.collect(
        lambda p: p | beam.Create(source) | xbeam.ConsolidateChunks(target_chunks)
    )

    expected = _split(mixed_dataset, expected_chunks, root)
    assert {k for k, _ in result} == {k for k, _ in expected}
    _assert_chunks_are_slices(mixed_dataset, result)


def test_split_variables_transform_matches_split_variables(mixed_dataset):
    source = _split(mixed_dataset, {"time": 5})

    result = runners.collect(lambda p: p | beam.Create(source) | xbeam.SplitVariables())

    expected = [
        piece for key, chunk in source for piece in xbeam.split_variables(key, chunk)
    ]
    assert collections.Counter(k for k, _ in result) == collections.Counter(
        k for k, _ in expected
    )
    _assert_chunks_are_slices(mixed_dataset, result)


def test_consolidate_variables_transform_merges_chunks_at_the_same_offsets(
    mixed_dataset,
):
    names = ["t2m", "count", "valid"]
    chunks = _split(mixed_dataset[names], {"time": 4})
    source = [
        piece for key, chunk in chunks for piece in xbeam.split_variables(key, chunk)
    ]

    result = runners.collect(
        lambda p: p | beam.Create(source) | xbeam.ConsolidateVariables()
    )

    assert {k for k, _ in result} == {k for k, _ in chunks}
    assert all(k.vars is None for k, _ in result)
    _assert_chunks_are_slices(mixed_dataset[names], result)


def test_consolidate_chunks_transform_rejects_a_chunk_crossing_a_boundary(
    mixed_dataset,
):
    crossing = (Key({"time": 2}), mixed_dataset.isel(time=slice(2, 6)))
    source = [(Key({"time": 0}), mixed_dataset.isel(time=slice(0, 2))), crossing]

    with pytest.raises(Exception, match=re.escape(repr(crossing[0])) + ".*crossing"):
        runners.collect(
            lambda p: p | beam.Create(source) | xbeam.ConsolidateChunks({"time": 4})
        )


def test_consolidate_chunks_transform_rejects_a_missing_first_chunk(mixed_dataset):
    source = [
        (Key({"time": 2}), mixed_dataset.isel(time=slice(2, 4))),
        (Key({"time": 4}), mixed_dataset.isel(time=slice(4, 8))),
    ]

    with pytest.raises(Exception, match=r"first chunk is missing") as info:
        runners.collect(
            lambda p: p | beam.Create(source) | xbeam.ConsolidateChunks({"time": 4})
        )
    assert repr(Key({"time": 0})) in str(info.value)


@pytest.mark.parametrize("transform", [xbeam.ConsolidateChunks, xbeam.SplitChunks])
@pytest.mark.parametrize(
    ("target_chunks", "error"),
    [
        ({"time": 0}, ValueError),
        ({"time": -2}, ValueError),
        ({"time": 1.5}, ValueError),
        ({"time": (2, 2)}, ValueError),
        ("time", TypeError),
    ],
)
def test_transforms_validate_target_chunks_when_constructed(
    transform, target_chunks, error
):
    with pytest.raises(error, match="time"):
        transform(target_chunks)
