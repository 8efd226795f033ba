"""Consolidating, rechunking and their checks as xarray-beam 0.11 documents
them, with plain xarray as the oracle."""

import inspect

import apache_beam as beam
import numpy as np
import pytest
import xarray
from apache_beam.testing.util import assert_that, equal_to

import xarray_beam as xbeam
from xarray_beam.model.key import Key


def _dataset() -> xarray.Dataset:
    """'a' over (x, y), 'b' over x only, 'c' over y only, with coordinates."""
    return xarray.Dataset(
        {
            "a": (("x", "y"), np.arange(24.0).reshape(6, 4)),
            "b": ("x", np.arange(6) * 10),
            "c": ("y", np.array([1.5, 2.5, 3.5, 4.5])),
        },
        coords={"x": np.arange(6) * 100, "y": ["p", "q", "r", "s"]},
        attrs={"title": "algebra"},
    )


def _pieces(dataset, chunks, key=None):
    return list(xbeam.split_chunks(key or Key({"x": 0, "y": 0}), dataset, chunks))


# --- consolidate_chunks ----------------------------------------------------------


def test_consolidate_chunks_is_a_generator():
    pieces = _pieces(_dataset(), {"x": 2})
    result = xbeam.consolidate_chunks(pieces)
    assert inspect.isgenerator(result)
    ((key, combined),) = result
    assert key == Key({"x": 0, "y": 0})
    xarray.testing.assert_identical(combined, _dataset())


def test_consolidate_chunks_yields_one_block_per_group_of_vars():
    dataset = _dataset()[["a", "b"]]
    pieces = [
        (key.replace(vars={name}), chunk[[name]])
        for key, chunk in _pieces(dataset, {"x": 2})
        for name in ("a", "b")
    ]

    result = dict(
        (key.vars, (key, chunk)) for key, chunk in xbeam.consolidate_chunks(pieces)
    )

    assert set(result) == {frozenset({"a"}), frozenset({"b"})}
    for name in ("a", "b"):
        key, chunk = result[frozenset({name})]
        assert key == Key({"x": 0, "y": 0}, {name})
        xarray.testing.assert_identical(chunk, dataset[[name]])


def test_consolidate_chunks_rejects_repeated_keys():
    pieces = _pieces(_dataset(), {"x": 3})
    with pytest.raises(ValueError, match="not unique") as info:
        list(xbeam.consolidate_chunks([*pieces, pieces[1]]))
    assert repr(pieces[1][0]) in str(info.value)


def test_consolidate_chunks_rejects_groups_of_vars_at_different_offsets():
    dataset = _dataset()
    a_pieces = [
        (k.replace(vars={"a"}), c[["a"]]) for k, c in _pieces(dataset, {"x": 3})
    ]
    b_whole = (Key({"x": 0, "y": 0}, {"b"}), dataset[["b"]].isel(x=slice(0, 3)))
    with pytest.raises(ValueError, match="different offsets") as info:
        list(xbeam.consolidate_chunks([*a_pieces, b_whole]))
    assert repr(b_whole[0]) in str(info.value)
    assert repr(a_pieces[1][0]) in str(info.value)


# --- consolidate_variables -------------------------------------------------------


def test_consolidate_variables_of_keys_without_vars_names_the_variables():
    dataset = _dataset()
    parts = [
        (Key({"x": 0, "y": 0}), dataset[["a"]]),
        (Key({"x": 0, "y": 0}), dataset[["b", "c"]]),
    ]

    result = xbeam.consolidate_variables(parts)

    assert inspect.isgenerator(result)
    ((key, merged),) = result
    assert key == Key({"x": 0, "y": 0}, {"a", "b", "c"})
    expected = xarray.merge([dataset[["a"]], dataset[["b", "c"]]])
    xarray.testing.assert_identical(merged, expected)


def test_consolidate_variables_merges_chunks_lacking_a_dimension():
    dataset = _dataset()
    block = dataset.isel(x=slice(2, 4))
    parts = [
        (Key({"x": 2, "y": 0}, {"a"}), block[["a"]]),
        (Key({"x": 2}, {"b"}), block[["b"]]),
        (Key({"y": 0}, {"c"}), block[["c"]]),
    ]

    ((key, merged),) = xbeam.consolidate_variables(parts)

    assert key == Key({"x": 2, "y": 0}, {"a", "b", "c"})
    xarray.testing.assert_identical(merged, block)


def test_consolidate_variables_merges_per_location_when_offsets_disagree():
    dataset = _dataset()
    parts = [
        (Key({"x": x}, {name}), dataset[[name]].isel(x=slice(x, x + 3)))
        for x in (0, 3)
        for name in ("a", "b")
    ]

    merged = list(xbeam.consolidate_variables(parts))

    assert [key for key, _ in merged] == [
        Key({"x": 0}, {"a", "b"}),
        Key({"x": 3}, {"a", "b"}),
    ]
    for (_, chunk), x in zip(merged, (0, 3), strict=True):
        expected = dataset[["a", "b"]].isel(x=slice(x, x + 3))
        xarray.testing.assert_identical(chunk, expected)


def test_consolidate_variables_passes_merge_kwargs_to_xarray():
    dataset = _dataset()
    first = dataset[["a"]].assign_attrs(title="first")
    second = dataset[["b"]].assign_attrs(title="second")
    parts = [(Key(), first), (Key(), second)]

    ((_, merged),) = xbeam.consolidate_variables(
        parts, merge_kwargs={"combine_attrs": "drop"}
    )

    expected = xarray.merge([first, second], combine_attrs="drop")
    xarray.testing.assert_identical(merged, expected)


# --- consolidate_fully -----------------------------------------------------------


def test_consolidate_fully_of_keys_without_vars_names_the_variables():
    dataset = _dataset()
    pieces = _pieces(dataset, {"x": 2, "y": 3})
    assert all(key.vars is None for key, _ in pieces)

    key, combined = xbeam.consolidate_fully(pieces)

    assert key == Key({"x": 0, "y": 0}, {"a", "b", "c"})
    xarray.testing.assert_identical(combined, dataset)


def test_consolidate_fully_of_chunks_that_do_not_share_every_dimension():
    dataset = _dataset()
    pieces = [
        piece
        for key, variable in xbeam.split_variables(Key(), dataset)
        for piece in xbeam.split_chunks(key, variable, {"x": 4, "y": 3})
    ]
    assert {frozenset(key.offsets) for key, _ in pieces} == {
        frozenset({"x", "y"}),
        frozenset({"x"}),
        frozenset({"y"}),
    }

    key, combined = xbeam.consolidate_fully(reversed(pieces))

    assert key == Key({"x": 0, "y": 0}, {"a", "b", "c"})
    xarray.testing.assert_identical(combined, dataset)


def test_consolidate_fully_takes_merge_and_combine_kwargs_by_keyword():
    dataset = _dataset()
    pieces = _pieces(dataset, {"x": 3})

    key, combined = xbeam.consolidate_fully(
        pieces,
        merge_kwargs={"compat": "equals", "join": "exact"},
        combine_kwargs={"combine_attrs": "override"},
    )

    assert key == Key({"x": 0, "y": 0}, {"a", "b", "c"})
    xarray.testing.assert_identical(combined, dataset)
    with pytest.raises(TypeError):
        xbeam.consolidate_fully(pieces, {})  # type: ignore[misc]


def test_consolidate_fully_rejects_chunks_at_different_offsets_of_a_shared_dim():
    dataset = _dataset()
    a = (Key({"x": 0}, {"a"}), dataset[["a"]].isel(x=slice(0, 3)))
    b = (Key({"x": 3}, {"b"}), dataset[["b"]].isel(x=slice(3, 6)))
    with pytest.raises(ValueError, match="different offsets along 'x'") as info:
        xbeam.consolidate_fully([a, b])
    assert repr(a[0]) in str(info.value) and repr(b[0]) in str(info.value)


# --- in_memory_rechunk -----------------------------------------------------------


def test_in_memory_rechunk_matches_xarray_slices():
    dataset = _dataset()
    pieces = _pieces(dataset, {"x": 4, "y": 1})

    rechunked = list(xbeam.in_memory_rechunk(pieces, {"x": 3, "y": -1}))

    assert [key for key, _ in rechunked] == [
        Key({"x": 0, "y": 0}),
        Key({"x": 3, "y": 0}),
    ]
    for (_, chunk), x in zip(rechunked, (0, 3), strict=True):
        xarray.testing.assert_identical(chunk, dataset.isel(x=slice(x, x + 3)))


def test_in_memory_rechunk_rejects_repeated_keys():
    pieces = _pieces(_dataset(), {"x": 2})
    with pytest.raises(ValueError, match="not unique") as info:
        list(xbeam.in_memory_rechunk([*pieces, pieces[0]], {"x": 3}))
    assert repr(pieces[0][0]) in str(info.value)


# --- Rechunk ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "target", "named"),
    [
        ({"x": 2, "y": 4}, {"x": 3}, r"\['y'\] only in source_chunks"),
        ({"x": 2}, {"x": 3, "y": 2}, r"\['y'\] only in target_chunks"),
        ({"y": 2}, {"x": 3}, r"\['y'\] only in source_chunks, \['x'\] only in target"),
    ],
)
def test_rechunk_rejects_chunks_for_different_dimensions_when_built(
    source, target, named
):
    with pytest.raises(ValueError, match=named):
        xbeam.Rechunk({"x": 6, "y": 4}, source, target, itemsize=8)


def test_rechunk_keeps_dimensions_missing_from_both_whole():
    rechunk = xbeam.Rechunk({"x": 6, "y": 4}, {"x": 2}, {"x": 3}, itemsize=8)
    assert rechunk.target_chunks == {"x": 3, "y": 4}


def test_rechunk_pipeline_matches_xarray_slices():
    dataset = _dataset()
    source = {"x": 4, "y": 1}
    target = {"x": 3, "y": -1}
    pieces = _pieces(dataset, source)
    rechunk = xbeam.Rechunk(dict(dataset.sizes), source, target, itemsize=24)

    with beam.Pipeline("DirectRunner") as p:
        result = (
            p
            | beam.Create(pieces)
            | rechunk
            | beam.MapTuple(lambda key, chunk: (key, chunk.to_dict(data="list")))
        )
        expected = [
            (
                Key({"x": x, "y": 0}),
                dataset.isel(x=slice(x, x + 3)).to_dict(data="list"),
            )
            for x in (0, 3)
        ]
        assert_that(result, equal_to(expected))


def test_consolidate_variables_transform_gives_keys_without_vars():
    dataset = _dataset()
    pieces = [
        (key.replace(vars=set(names)), chunk[names])
        for key, chunk in _pieces(dataset, {"x": 3})
        for names in (["a"], ["b", "c"])
    ]

    with beam.Pipeline("DirectRunner") as p:
        result = (
            p
            | beam.Create(pieces)
            | xbeam.ConsolidateVariables()
            | beam.MapTuple(lambda key, chunk: (key, chunk.to_dict(data="list")))
        )
        expected = [
            (
                Key({"x": x, "y": 0}),
                dataset.isel(x=slice(x, x + 3)).to_dict(data="list"),
            )
            for x in (0, 3)
        ]
        assert_that(result, equal_to(expected))
