"""Chunk arithmetic, checked against brute force on small integers."""

import itertools

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest

from xarray_beam.model import chunks as chunks_lib


@pytest.mark.parametrize(
    ("spec", "size", "expected"),
    [
        (10, 25, (10, 10, 5)),
        (5, 25, (5,) * 5),
        (-1, 25, (25,)),
        (100, 25, (25,)),
        ((3, 2, 20), 25, (3, 2, 20)),
        ([25], 25, (25,)),
        (4, 0, ()),
    ],
)
def test_normalize_dim_chunks_expands_every_form(spec, size, expected):
    assert chunks_lib.normalize_dim_chunks("time", spec, size) == expected


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        (0, ValueError, "positive integer or -1"),
        (-2, ValueError, "positive integer or -1"),
        ((3, 3), ValueError, "sum to 6, but the dimension has size 25"),
        ((0, 25), ValueError, "positive integers"),
        (2.5, TypeError, "must be an int"),
        (True, TypeError, "must be an int"),
        ("auto", TypeError, "must be an int"),
    ],
)
def test_normalize_dim_chunks_rejects_bad_specs_naming_the_dim(spec, error, match):
    with pytest.raises(error, match=match) as info:
        chunks_lib.normalize_dim_chunks("time", spec, 25)
    assert "'time'" in str(info.value)


def test_normalize_chunks_for_sizes_fills_missing_dims_with_one_chunk():
    result = chunks_lib.normalize_chunks_for_sizes({"x": 2}, {"x": 5, "y": 3})
    assert result == {"x": (2, 2, 1), "y": (3,)}


def test_normalize_chunks_for_sizes_rejects_unknown_dims():
    with pytest.raises(ValueError, match=r"\['level'\] not found"):
        chunks_lib.normalize_chunks_for_sizes({"level": 1}, {"x": 5})


def test_chunk_grid_enumerates_offsets_in_c_order():
    grid = chunks_lib.ChunkGrid({"x": (2, 2, 1), "y": (3, 1)})
    expected = [{"x": x, "y": y} for x, y in itertools.product([0, 2, 4], [0, 3])]
    assert list(grid.iter_offsets()) == expected
    assert grid.count == 6 and grid.shape == (3, 2)
    assert [grid.offsets_at(i) for i in range(6)] == expected


def test_chunk_grid_ranges_partition_the_offsets():
    grid = chunks_lib.ChunkGrid({"x": (1,) * 7, "y": (2, 2, 2)})
    pieces = [
        list(grid.iter_offsets(lo, hi)) for lo, hi in chunks_lib.index_ranges(21, 4)
    ]
    assert [o for piece in pieces for o in piece] == list(grid.iter_offsets())


def test_chunk_grid_iterates_in_batches_without_changing_order():
    grid = chunks_lib.ChunkGrid({"x": (1,) * 50, "y": (1,) * 3})
    assert list(grid.iter_offsets(batch=7)) == list(grid.iter_offsets())


def test_chunk_grid_without_dims_has_one_chunk():
    grid = chunks_lib.ChunkGrid({})
    assert grid.count == 1
    assert list(grid.iter_offsets()) == [{}]


def test_chunk_grid_slices_use_the_chunk_size_at_each_offset():
    grid = chunks_lib.ChunkGrid({"x": (3, 5, 2), "y": (4,)})
    assert grid.slices({"x": 3}) == {"x": slice(3, 8), "y": slice(0, 4)}


def test_chunk_grid_rejects_offsets_that_do_not_start_a_chunk():
    grid = chunks_lib.ChunkGrid({"x": (3, 5, 2)})
    with pytest.raises(ValueError, match="offset 4 along dimension 'x'"):
        grid.slices({"x": 4})


@hypothesis.given(
    start=st.integers(0, 100), size=st.integers(1, 60), target=st.integers(1, 20)
)
def test_aligned_pieces_tile_the_range_at_multiples_of_the_target(start, size, target):
    pieces = chunks_lib.aligned_pieces(start, size, target)
    assert pieces[0][0] == start and pieces[-1][1] == start + size
    for (_, stop), (next_start, _) in itertools.pairwise(pieces):
        assert stop == next_start and stop % target == 0
    for lo, hi in pieces:
        assert 0 < hi - lo <= target
        assert lo // target == (hi - 1) // target


@hypothesis.given(
    start=st.integers(0, 40), length=st.integers(1, 40), unit=st.integers(1, 10)
)
def test_covers_whole_units_matches_brute_force(start, length, unit):
    dim_size = 50
    stop = min(start + length, dim_size)
    hypothesis.assume(start < stop)
    # Brute force: every unit block touched must lie entirely inside the range.
    blocks = {i // unit for i in range(start, stop)}
    whole = all(
        start <= b * unit and min((b + 1) * unit, dim_size) <= stop for b in blocks
    )
    assert chunks_lib.covers_whole_units(start, stop, unit, dim_size) == whole


def test_index_ranges_cover_every_index_once():
    ranges = chunks_lib.index_ranges(1001, 100)
    covered = np.concatenate([np.arange(lo, hi) for lo, hi in ranges])
    np.testing.assert_array_equal(covered, np.arange(1001))


def _template(shape=(1000, 100), dtypes=("f4",)):
    import xarray

    data_vars = {
        f"v{i}": (("time", "x"), np.zeros(shape, dtype))
        for i, dtype in enumerate(dtypes)
    }
    return xarray.Dataset(data_vars)


def test_normalize_chunks_ints_minus_one_and_ellipsis():
    template = _template()
    assert chunks_lib.normalize_chunks({"time": 10, ...: -1}, template) == {
        "time": 10,
        "x": 100,
    }
    assert chunks_lib.normalize_chunks({"time": 5000}, template) == {
        "time": 1000,
        "x": 100,
    }
    assert chunks_lib.normalize_chunks(7, template) == {"time": 7, "x": 7}


def test_normalize_chunks_keeps_previous_chunks_for_unnamed_dims():
    template = _template()
    result = chunks_lib.normalize_chunks(
        {"time": -1}, template, previous_chunks={"time": 10, "x": 20}
    )
    assert result == {"time": 1000, "x": 20}


def test_normalize_chunks_byte_sizes_come_close_to_the_target():
    template = _template(dtypes=("f4", "f8"))
    result = chunks_lib.normalize_chunks({"time": "120kB", ...: -1}, template)
    # 12 bytes per point across both variables, whole x: 100 time steps.
    assert result == {"time": 100, "x": 100}
    split = chunks_lib.normalize_chunks(
        {"time": "120kB", ...: -1}, template, split_vars=True
    )
    # Only the largest variable (8 bytes) counts when variables are split.
    assert split == {"time": 150, "x": 100}


def test_normalize_chunks_byte_sizes_share_between_dims():
    template = _template(shape=(1000, 1000))
    result = chunks_lib.normalize_chunks("40kB", template)
    assert result == {"time": 100, "x": 100}
    rounded = chunks_lib.normalize_chunks(
        "40kB", template, previous_chunks={"time": 30, "x": 1}
    )
    assert rounded["time"] % 30 == 0
    assert rounded["time"] * rounded["x"] * 4 <= 40_000


def test_normalize_chunks_byte_size_larger_than_data_is_whole():
    template = _template()
    assert chunks_lib.normalize_chunks("1GB", template) == {"time": 1000, "x": 100}


@pytest.mark.parametrize(
    ("chunks", "error", "match"),
    [
        ({"time": "auto"}, ValueError, "'auto' is not supported"),
        ({"time": ""}, ValueError, "empty chunk size for dimension 'time'"),
        ({"time": "lots"}, ValueError, "not a size: 'lots'"),
        ({"time": 0}, ValueError, "dimension 'time' must be positive or -1"),
        ({"time": 2.5}, TypeError, "dimension 'time' must be an int"),
        ({"level": 1}, ValueError, r"dimension\(s\) \['level'\]"),
        ([1, 2], TypeError, "chunks must be a mapping"),
    ],
)
def test_normalize_chunks_errors_name_the_culprit(chunks, error, match):
    with pytest.raises(error, match=match):
        chunks_lib.normalize_chunks(chunks, _template())
