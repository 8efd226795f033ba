"""Keys as xarray-beam 0.11 documents them: chunk indices, immutabledict
mappings, the repr, pickling, Beam grouping, and chunk checks."""

import pickle
import re

import apache_beam as beam
import cloudpickle
import dask.array
import numpy as np
import pytest
import xarray
from apache_beam.testing.util import assert_that, equal_to
from immutabledict import immutabledict

import xarray_beam as xbeam
from xarray_beam.beam.coders import KeyCoder
from xarray_beam.model.key import Key

# --- indices -----------------------------------------------------------------


def test_key_with_indices_has_empty_offsets():
    key = Key(indices={"x": 4}, vars={"bar"})

    assert key.indices == {"x": 4}
    assert key.offsets == {}
    assert key.vars == frozenset({"bar"})


def test_key_indices_is_the_third_positional_argument():
    assert Key(None, {"a"}, {"x": 1}) == Key(indices={"x": 1}, vars={"a"})


@pytest.mark.parametrize(
    ("offsets", "indices"),
    [({"x": 400}, {"x": 4}), ({"x": 0}, {"y": 1})],
)
def test_key_rejects_both_offsets_and_indices(offsets, indices):
    with pytest.raises(ValueError, match="offsets or indices, not both"):
        Key(offsets, indices=indices)


def test_key_accepts_empty_offsets_beside_indices():
    assert Key({}, indices={"x": 1}) == Key(indices={"x": 1})
    assert Key({"x": 1}, indices={}) == Key({"x": 1})


def test_keys_with_indices_differ_from_keys_with_offsets():
    assert Key(indices={"x": 1}) != Key({"x": 1})
    assert Key(indices={"x": 1}) != Key(indices={"x": 2})
    assert Key(indices={"x": 1}, vars={"a"}) != Key(indices={"x": 1})


def test_keys_with_indices_are_hashable_whatever_the_insertion_order():
    a = Key(indices={"x": 1, "y": 2}, vars={"a", "b"})
    b = Key(indices={"y": 2, "x": 1}, vars={"b", "a"})

    assert a == b and hash(a) == hash(b)
    assert len({a, b, Key({"x": 1, "y": 2}, {"a", "b"})}) == 2


def test_with_indices_inserts_overrides_and_removes():
    key = Key(indices={"x": 4}, vars={"bar"})

    assert key.with_indices(x=5) == Key(indices={"x": 5}, vars={"bar"})
    assert key.with_indices(y=0) == Key(indices={"x": 4, "y": 0}, vars={"bar"})
    assert key.with_indices(x=None) == Key(vars={"bar"})
    assert Key().with_indices(t=3) == Key(indices={"t": 3})


def test_with_indices_refuses_a_key_with_offsets():
    key = Key({"x": 10})
    with pytest.raises(ValueError, match=re.escape(repr(key)) + ".*has offsets"):
        key.with_indices(x=1)


def test_with_offsets_refuses_a_key_with_indices():
    key = Key(indices={"x": 1})
    with pytest.raises(ValueError, match=re.escape(repr(key)) + ".*has indices"):
        key.with_offsets(x=10)


def test_replace_each_part():
    key = Key({"x": 10}, {"foo"})

    assert key.replace(offsets={"y": 0}) == Key({"y": 0}, {"foo"})
    assert key.replace(vars=None) == Key({"x": 10})
    assert key.replace(offsets=None, indices={"x": 1}) == Key(
        indices={"x": 1}, vars={"foo"}
    )
    assert Key(indices={"x": 1}).replace(indices={"x": 2}) == Key(indices={"x": 2})
    with pytest.raises(ValueError, match="not both"):
        key.replace(indices={"x": 1})


@pytest.mark.parametrize(
    ("arguments", "error", "match"),
    [
        ({"indices": {"x": 1.5}}, TypeError, "index for dimension 'x' must be an int"),
        ({"indices": {"x": True}}, TypeError, "must be an int"),
        ({"indices": {1: 0}}, TypeError, "index dimension names must be str"),
        ({"indices": [("x", 0)]}, TypeError, "indices must be a mapping"),
    ],
)
def test_key_rejects_bad_indices(arguments, error, match):
    with pytest.raises(error, match=match):
        Key(**arguments)


# --- immutable mappings --------------------------------------------------------


def test_offsets_and_indices_equal_immutabledicts():
    assert Key({"x": 10, "y": 0}).offsets == immutabledict({"x": 10, "y": 0})
    assert Key(indices={"x": 4}).indices == immutabledict({"x": 4})
    assert Key(indices={"x": 4}).offsets == immutabledict()
    assert Key({"x": 10}).indices == immutabledict()
    assert isinstance(Key({"x": 10}).offsets, immutabledict)


def test_offsets_and_indices_are_immutable_and_hashable():
    key = Key({"x": 10})
    with pytest.raises(TypeError):
        key.offsets["x"] = 2  # type: ignore[index]
    with pytest.raises(TypeError):
        Key(indices={"x": 1}).indices["x"] = 2  # type: ignore[index]
    by_offsets = {key.offsets: "chunk"}
    assert by_offsets[Key({"x": 10}, {"a"}).offsets] == "chunk"


def test_offsets_do_not_change_with_the_mapping_they_came_from():
    offsets = {"x": 10}
    key = Key(offsets)
    offsets["x"] = 20
    assert key.offsets == {"x": 10}


# --- repr ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "text"),
    [
        (Key(offsets={"x": 10}, vars={"foo"}), "Key(offsets={'x': 10}, vars={'foo'})"),
        (
            Key({"x": 10, "y": 0}, {"foo"}),
            "Key(offsets={'x': 10, 'y': 0}, vars={'foo'})",
        ),
        (Key({"x": 10}), "Key(offsets={'x': 10})"),
        (Key(indices={"x": 4}, vars={"bar"}), "Key(indices={'x': 4}, vars={'bar'})"),
        (Key(indices={"x": 5}), "Key(indices={'x': 5})"),
        (Key(vars={"foo"}), "Key(vars={'foo'})"),
        (Key(), "Key()"),
    ],
)
def test_repr_as_xarray_beam_prints_it(key, text):
    assert repr(key) == text
    assert eval(text) == key


# --- pickling and Beam ---------------------------------------------------------

KEYS = [
    Key(indices={"x": 4}, vars={"bar"}),
    Key(indices={"time": 2**40, "x": 0}),
    Key(indices={"zé": 1}, vars=set()),
    Key({"x": 10}, {"foo"}),
    Key(),
]


@pytest.mark.parametrize("key", KEYS)
def test_keys_pickle_and_encode_and_come_back_equal(key):
    coder = KeyCoder()
    for copy in (
        pickle.loads(pickle.dumps(key)),
        cloudpickle.loads(cloudpickle.dumps(key)),
        coder.decode(coder.encode(key)),
    ):
        assert copy == key
        assert copy.indices == key.indices and copy.offsets == key.offsets
        assert hash(copy) == hash(key)


def test_key_coder_encodes_keys_with_indices_deterministically():
    coder = KeyCoder()
    a = Key(indices=dict([("x", 1), ("y", 2)]), vars={"p", "q"})
    b = Key(indices=dict([("y", 2), ("x", 1)]), vars={"q", "p"})
    assert coder.encode(a) == coder.encode(b)
    assert coder.encode(a) != coder.encode(Key({"x": 1, "y": 2}, {"p", "q"}))


def test_beam_fallback_deterministic_coder_handles_indices():
    coder = beam.coders.FastPrimitivesCoder().as_deterministic_coder("step")
    a = Key(indices=dict([("x", 1), ("y", 2)]))
    b = Key(indices=dict([("y", 2), ("x", 1)]))
    assert coder.encode(a) == coder.encode(b)
    assert coder.decode(coder.encode(a)) == a


def test_group_by_key_groups_keys_with_indices():
    pairs = [
        (Key(indices=dict([("x", 0), ("y", 1)])), 1),
        (Key(indices=dict([("y", 1), ("x", 0)])), 2),
        (Key({"x": 0, "y": 1}), 3),
        (Key(indices={"x": 1, "y": 1}), 4),
    ]
    expected = [
        (Key(indices={"x": 0, "y": 1}), [1, 2]),
        (Key({"x": 0, "y": 1}), [3]),
        (Key(indices={"x": 1, "y": 1}), [4]),
    ]
    with beam.Pipeline("DirectRunner") as p:
        grouped = (
            p
            | beam.Create(pairs)
            | beam.GroupByKey()
            | beam.MapTuple(lambda key, values: (key, sorted(values)))
        )
        assert_that(grouped, equal_to(expected))


# --- transforms that place chunks by element -----------------------------------


def test_split_chunks_names_a_key_with_indices_only():
    key = Key(indices={"x": 1})
    dataset = xarray.Dataset({"foo": ("x", np.arange(4))})
    with pytest.raises(ValueError, match=re.escape(repr(key)) + ".*chunk indices"):
        list(xbeam.split_chunks(key, dataset, {"x": 2}))


def test_consolidate_chunks_names_a_key_with_indices_only():
    dataset = xarray.Dataset({"foo": ("x", np.arange(4))})
    pieces = [(Key(indices={"x": i}), dataset.isel(x=[i])) for i in range(2)]
    with pytest.raises(ValueError, match=re.escape(repr(pieces[0][0]))):
        list(xbeam.consolidate_chunks(pieces))


def test_writing_a_chunk_with_indices_to_zarr_names_the_key():
    dataset = xarray.Dataset({"t": ("time", np.arange(10.0))})
    template = xbeam.make_template(dataset)
    key = Key(indices={"time": 1})
    with pytest.raises(ValueError, match=re.escape(repr(key)) + ".*chunk indices"):
        xbeam.validate_zarr_chunk(
            key, dataset.isel(time=slice(5, 10)), template, zarr_chunks={"time": 5}
        )


def test_split_and_consolidate_variables_keep_indices():
    dataset = xarray.Dataset(
        {"a": (("x", "y"), np.ones((2, 3))), "b": ("y", [1, 2, 3])}
    )
    key = Key(indices={"x": 1, "y": 2})

    pieces = list(xbeam.split_variables(key, dataset))
    assert [k for k, _ in pieces] == [
        Key(indices={"x": 1, "y": 2}, vars={"a"}),
        Key(indices={"y": 2}, vars={"b"}),
    ]
    ((merged_key, merged),) = xbeam.consolidate_variables(pieces)
    assert merged_key == key.replace(vars={"a", "b"})
    xarray.testing.assert_identical(merged, dataset)


# --- validate_chunk ------------------------------------------------------------


def _dask_backed() -> xarray.Dataset:
    return xarray.Dataset(
        {"foo": ("x", dask.array.arange(4, chunks=2))}, coords={"x": np.arange(4)}
    )


def test_validate_chunk_rejects_a_dask_backed_variable():
    key = Key({"x": 0})
    with pytest.raises(ValueError, match=r"'foo'.*" + re.escape(repr(key)) + ".*Dask"):
        xbeam.validate_chunk(key, _dask_backed())
    xbeam.validate_chunk(key, _dask_backed().compute())


def test_validate_chunk_rejects_a_dask_backed_coordinate():
    chunk = xarray.Dataset(
        {"foo": ("x", np.arange(4))}, coords={"lat": ("x", dask.array.zeros(4))}
    )
    with pytest.raises(ValueError, match="'lat'.*Dask"):
        xbeam.validate_chunk(Key(), chunk)


def test_validate_chunk_rejects_a_dask_backed_dataset_in_a_list():
    numpy_backed = _dask_backed().compute()
    with pytest.raises(ValueError, match="'foo'.*Dask"):
        xbeam.validate_chunk(Key(), [numpy_backed, _dask_backed()])


def test_validate_each_chunk_rejects_dask_backed_chunks_in_a_pipeline():
    with (
        pytest.raises(Exception, match="'foo'.*Dask"),
        beam.Pipeline("DirectRunner") as p,
    ):
        _ = p | beam.Create([(Key(), _dask_backed())]) | xbeam.ValidateEachChunk()


def test_validate_chunk_checks_the_dimensions_of_indices():
    dataset = xarray.Dataset({"foo": ("x", np.arange(4))})
    xbeam.validate_chunk(Key(indices={"x": 3}), dataset)
    key = Key(indices={"y": 0})
    with pytest.raises(ValueError, match=re.escape(repr(key)) + r".*indices.*\['y'\]"):
        xbeam.validate_chunk(key, dataset)


def test_dataset_to_chunks_loads_dask_backed_sources_into_memory():
    source = _dask_backed()
    with beam.Pipeline("DirectRunner") as p:
        chunks = p | xbeam.DatasetToChunks(source, {"x": 2}) | xbeam.ValidateEachChunk()
        assert_that(
            chunks | beam.MapTuple(lambda key, chunk: (key, chunk.foo.values.tolist())),
            equal_to([(Key({"x": 0}), [0, 1]), (Key({"x": 2}), [2, 3])]),
        )


# --- offsets_to_slices ---------------------------------------------------------


@pytest.mark.parametrize(
    ("offsets", "sizes", "base"),
    [
        ({"x": 100}, {"x": 10}, None),
        ({"x": 100}, {"x": 10}, {"x": 100}),
        ({"x": 4}, {"x": 3, "y": 2}, None),
        ({}, {"x": 3, "y": 2}, {"y": 0}),
        ({"x": 7, "y": 3}, {"x": 2, "y": 4}, {"x": 5}),
    ],
)
def test_offsets_to_slices_select_what_numpy_slicing_selects(offsets, sizes, base):
    whole = np.arange(20 * 20).reshape(20, 20) if len(sizes) == 2 else np.arange(200)
    dims = ("x", "y")[: whole.ndim]
    array = xarray.DataArray(whole, dims=dims)
    base = base or {}
    starts = [offsets.get(d, 0) - base.get(d, 0) for d in dims]
    stops = [start + sizes[d] for d, start in zip(dims, starts, strict=True)]

    slices = xbeam.offsets_to_slices(offsets, sizes, base)

    assert list(slices) == list(sizes)
    assert all(s.step == 1 for s in slices.values())
    expected = whole[tuple(slice(a, b) for a, b in zip(starts, stops, strict=True))]
    np.testing.assert_array_equal(array.isel(slices).values, expected)


def test_offsets_to_slices_rejects_offsets_without_a_size():
    with pytest.raises(ValueError, match=r"\['z'\] not found in sizes"):
        xbeam.offsets_to_slices({"x": 0, "z": 0}, {"x": 1})


def test_keys_with_indices_group_through_the_key_coder():
    # ConsolidateVariables declares Key output types, so Beam groups with
    # KeyCoder rather than with pickled state.
    dataset = xarray.Dataset({"a": ("x", [1, 2]), "b": ("x", [3, 4])})
    pieces = [
        (Key(indices={"x": i}, vars={name}), dataset[[name]].isel(x=[i]))
        for i in range(2)
        for name in ("a", "b")
    ]
    with beam.Pipeline("DirectRunner") as p:
        merged = (
            p
            | beam.Create(pieces)
            | xbeam.ConsolidateVariables()
            | beam.MapTuple(lambda key, chunk: (key, sorted(chunk.data_vars)))
        )
        assert_that(
            merged,
            equal_to([(Key(indices={"x": i}), ["a", "b"]) for i in range(2)]),
        )
