"""Keys, validation and DatasetToChunks, with plain xarray as the oracle."""

import pickle
import re

import apache_beam as beam
import cloudpickle
import numpy as np
import pytest
import xarray

import xarray_beam as xbeam
from xarray_beam.beam import runners
from xarray_beam.beam.coders import KeyCoder
from xarray_beam.model.key import Key

# --- Key -------------------------------------------------------------------


def test_key_repr_is_short_sorted_and_evaluates_back():
    key = Key({"time": 48, "latitude": 0}, vars={"u10", "t2m"})
    text = repr(key)
    assert text == "Key(offsets={'latitude': 0, 'time': 48}, vars={'t2m', 'u10'})"
    assert eval(text) == key


def test_key_equality_and_hash_ignore_construction_order():
    a = Key({"x": 1, "y": 2}, {"a", "b"})
    b = Key({"y": 2, "x": 1}, {"b", "a"})
    assert a == b and hash(a) == hash(b)
    assert a != Key({"x": 1, "y": 2}, {"a"})
    assert a != Key({"x": 1, "y": 2})
    assert Key() == Key({}, None)


def test_key_is_immutable():
    key = Key({"x": 1})
    with pytest.raises(TypeError):
        key.offsets["x"] = 2  # type: ignore[index]
    with pytest.raises(AttributeError):
        key.vars = {"a"}  # type: ignore[misc]


def test_key_replace_and_with_offsets():
    key = Key({"x": 1, "y": 2}, {"a"})
    assert key.replace(vars=None) == Key({"x": 1, "y": 2})
    assert key.replace(offsets={"z": 3}) == Key({"z": 3}, {"a"})
    assert key.with_offsets(x=None, z=5) == Key({"y": 2, "z": 5}, {"a"})
    assert key.with_offsets(x=None, missing=None) == Key({"y": 2}, {"a"})


@pytest.mark.parametrize(
    ("offsets", "vars_", "error", "match"),
    [
        ({"x": 1.5}, None, TypeError, "offset for dimension 'x' must be an int"),
        ({"x": True}, None, TypeError, "must be an int"),
        ({1: 0}, None, TypeError, "names must be str"),
        ([("x", 0)], None, TypeError, "must be a mapping"),
        ({"x": 0}, "t2m", TypeError, r"not a string: use vars=\{'t2m'\}"),
        ({"x": 0}, {1}, TypeError, "vars must be strings"),
    ],
)
def test_key_rejects_bad_arguments(offsets, vars_, error, match):
    with pytest.raises(error, match=match):
        Key(offsets, vars_)


@pytest.mark.parametrize(
    "key",
    [
        Key(),
        Key({"time": 0}),
        Key({"time": 2**40, "x": -3}, {"a"}),
        Key({"zé": 1}, set()),
        Key({"a": 1, "b": 2}, {"v1", "v2", "v3"}),
    ],
)
def test_key_coder_round_trips(key):
    coder = KeyCoder()
    assert coder.decode(coder.encode(key)) == key
    assert pickle.loads(pickle.dumps(key)) == key
    assert cloudpickle.loads(cloudpickle.dumps(key)) == key


def test_key_coder_is_deterministic_whatever_the_insertion_order():
    coder = KeyCoder()
    a = Key(dict([("x", 1), ("y", 2), ("z", 3)]), {"p", "q"})
    b = Key(dict([("z", 3), ("x", 1), ("y", 2)]), {"q", "p"})
    assert coder.encode(a) == coder.encode(b)
    assert coder.is_deterministic()


def test_key_coder_is_registered_with_beam():
    coder = beam.coders.registry.get_coder(Key)
    assert isinstance(coder, KeyCoder)


def test_beam_fallback_deterministic_coder_is_deterministic_for_keys():
    # Without type hints Beam encodes keys with its fallback deterministic
    # coder, which uses __getstate__; equal keys must give equal bytes.
    coder = beam.coders.FastPrimitivesCoder().as_deterministic_coder("step")
    a = Key(dict([("x", 1), ("y", 2)]), {"p", "q"})
    b = Key(dict([("y", 2), ("x", 1)]), {"q", "p"})
    assert coder.encode(a) == coder.encode(b)
    assert coder.decode(coder.encode(a)) == a


def test_group_by_key_groups_equal_keys_built_differently():
    pairs = [
        (Key(dict([("x", 0), ("y", 0)])), 1),
        (Key(dict([("y", 0), ("x", 0)])), 2),
        (Key({"x": 1, "y": 0}), 3),
    ]
    result = runners.collect(
        lambda p: (
            p
            | beam.Create(pairs)
            | beam.GroupByKey()
            | beam.MapTuple(lambda k, v: (k, sorted(v)))
        )
    )
    assert sorted(result, key=repr) == sorted(
        [(Key({"x": 0, "y": 0}), [1, 2]), (Key({"x": 1, "y": 0}), [3])], key=repr
    )


# --- offsets_to_slices -------------------------------------------------------


def test_offsets_to_slices_with_and_without_base():
    sizes = {"x": 10, "y": 5}
    assert xbeam.offsets_to_slices({"x": 100}, sizes) == {"x": slice(100, 110)}
    assert xbeam.offsets_to_slices({"x": 100, "y": 5}, sizes, base={"x": 90}) == {
        "x": slice(10, 20),
        "y": slice(5, 10),
    }


def test_offsets_to_slices_rejects_offsets_without_sizes():
    with pytest.raises(ValueError, match=r"\['z'\] not found in sizes"):
        xbeam.offsets_to_slices({"z": 0}, {"x": 1})


# --- validate_chunk ------------------------------------------------------------


def test_validate_chunk_accepts_consistent_keys(mixed_dataset):
    xbeam.validate_chunk(Key({"time": 0}), mixed_dataset)
    xbeam.validate_chunk(Key({"time": 0}, set(mixed_dataset.data_vars)), mixed_dataset)
    xbeam.validate_chunk(Key({"time": 0}), [mixed_dataset, mixed_dataset[["t2m"]]])


def test_validate_chunk_names_unknown_offset_dims(mixed_dataset):
    key = Key({"level": 0})
    with pytest.raises(ValueError, match=re.escape(repr(key)) + r".*\['level'\]"):
        xbeam.validate_chunk(key, mixed_dataset)


def test_validate_chunk_names_vars_that_differ(mixed_dataset):
    key = Key({"time": 0}, {"t2m"})
    with pytest.raises(ValueError, match=re.escape(repr(key)) + ".*data variables"):
        xbeam.validate_chunk(key, mixed_dataset)


def test_validate_chunk_rejects_wrong_types(mixed_dataset):
    with pytest.raises(TypeError, match="expected a Key"):
        xbeam.validate_chunk({"time": 0}, mixed_dataset)
    with pytest.raises(TypeError, match="must be an xarray.Dataset"):
        xbeam.validate_chunk(Key(), mixed_dataset.t2m)


def test_validate_each_chunk_passes_good_chunks_and_fails_bad_ones(mixed_dataset):
    good = [(Key({"time": 0}), mixed_dataset)]
    assert runners.collect(lambda p: p | beam.Create(good) | xbeam.ValidateEachChunk())[
        0
    ][0] == Key({"time": 0})
    bad = [(Key({"level": 0}), mixed_dataset)]
    with pytest.raises(Exception, match="level"):
        runners.collect(lambda p: p | beam.Create(bad) | xbeam.ValidateEachChunk())


# --- DatasetToChunks -----------------------------------------------------------


def _check_chunks_match_xarray(results, dataset, expected_count):
    assert len(results) == expected_count
    assert len({key for key, _ in results}) == expected_count
    covered = xarray.zeros_like(dataset["t2m"], dtype=int)
    for key, chunk in results:
        xbeam.validate_chunk(key, chunk)
        expected = dataset.isel(xbeam.offsets_to_slices(key.offsets, chunk.sizes))
        if key.vars is not None:
            expected = expected[sorted(key.vars)]
        xarray.testing.assert_identical(chunk, expected)
        if "t2m" in chunk:
            covered[xbeam.offsets_to_slices(key.offsets, chunk.sizes)] += 1
    if any("t2m" in chunk for _, chunk in results):
        assert (covered == 1).all()


@pytest.mark.parametrize(
    ("chunks", "count"),
    [
        ({"time": 4}, 3),  # ragged last chunk
        ({"time": 4, "latitude": 3}, 9),
        ({"time": -1, "longitude": (1, 5)}, 2),  # irregular tuple
        ({}, 1),
    ],
)
def test_dataset_to_chunks_matches_xarray_slices(mixed_dataset, chunks, count):
    results = runners.collect(
        lambda p: p | xbeam.DatasetToChunks(mixed_dataset, chunks)
    )
    _check_chunks_match_xarray(results, mixed_dataset, count)
    for key, _ in results:
        assert set(key.offsets) == set(mixed_dataset.dims)
        assert key.vars is None


def test_dataset_to_chunks_uses_dask_chunks_when_chunks_is_none(mixed_dataset):
    chunked = mixed_dataset.chunk({"time": 5, "latitude": 4})
    results = runners.collect(lambda p: p | xbeam.DatasetToChunks(chunked))
    _check_chunks_match_xarray(results, mixed_dataset, 4)


def test_dataset_to_chunks_split_vars_keys_only_the_variables_dims(mixed_dataset):
    chunks = {"time": 5, "latitude": 4}
    results = runners.collect(
        lambda p: p | xbeam.DatasetToChunks(mixed_dataset, chunks, split_vars=True)
    )
    # t2m: 2x2 chunks, count: 2, lsm: 2, valid: 2, scale: 1
    _check_chunks_match_xarray(results, mixed_dataset, 4 + 2 + 2 + 2 + 1)
    for key, chunk in results:
        (name,) = key.vars
        assert set(key.offsets) == set(mixed_dataset[name].dims)
        assert list(chunk.data_vars) == [name]


def test_dataset_to_chunks_with_several_datasets_cuts_the_same_regions(mixed_dataset):
    second = mixed_dataset[["count"]] * 2
    results = runners.collect(
        lambda p: (
            p
            | xbeam.DatasetToChunks(
                [mixed_dataset, second], {"time": 3, "longitude": 4}
            )
        )
    )
    assert len(results) == 4 * 2
    for key, (first_chunk, second_chunk) in results:
        slices = xbeam.offsets_to_slices(key.offsets, first_chunk.sizes)
        xarray.testing.assert_identical(first_chunk, mixed_dataset.isel(slices))
        xarray.testing.assert_identical(
            second_chunk, second.isel({d: slices[d] for d in second.dims})
        )


def test_dataset_to_chunks_generates_keys_on_workers_above_threshold(mixed_dataset):
    transform = xbeam.DatasetToChunks(
        mixed_dataset, {"time": 1, "latitude": 2}, shard_keys_threshold=5
    )
    assert transform.chunk_count == 40
    results = runners.collect(lambda p: p | transform)
    _check_chunks_match_xarray(results, mixed_dataset, 40)


def test_dataset_to_chunks_loads_several_keys_at_once(mixed_dataset):
    results = runners.collect(
        lambda p: p | xbeam.DatasetToChunks(mixed_dataset, {"time": 1}, num_threads=4)
    )
    _check_chunks_match_xarray(results, mixed_dataset, 10)


def test_dataset_to_chunks_reads_lazy_zarr_data(tmp_path, era5_small):
    path = str(tmp_path / "src.zarr")
    era5_small.to_zarr(path, zarr_format=3)
    source, chunks = xbeam.open_zarr(path)
    results = runners.collect(
        lambda p: p | xbeam.DatasetToChunks(source, {"time": 24, "latitude": 10})
    )
    assert len(results) == 4
    for key, chunk in results:
        assert all(isinstance(v.data, np.ndarray) for v in chunk.variables.values())
        expected = era5_small.isel(xbeam.offsets_to_slices(key.offsets, chunk.sizes))
        xarray.testing.assert_identical(chunk, expected)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"chunks": {"level": 2}}, ValueError, r"\['level'\] not found"),
        ({"chunks": {"time": 0}}, ValueError, "'time' must be a positive"),
        ({"chunks": {"time": (3, 3)}}, ValueError, "sum to 6"),
        ({"chunks": None}, ValueError, "not Dask-backed"),
        ({"chunks": {"time": 2}, "num_threads": 0}, ValueError, "num_threads"),
    ],
)
def test_dataset_to_chunks_rejects_bad_arguments_at_construction(
    mixed_dataset, kwargs, error, match
):
    with pytest.raises(error, match=match):
        xbeam.DatasetToChunks(mixed_dataset, **kwargs)


def test_dataset_to_chunks_rejects_unaligned_or_foreign_inputs(mixed_dataset):
    with pytest.raises(ValueError, match="must be aligned"):
        xbeam.DatasetToChunks([mixed_dataset, mixed_dataset.isel(time=[0])], {})
    with pytest.raises(TypeError, match="item 1 is a DataArray"):
        xbeam.DatasetToChunks([mixed_dataset, mixed_dataset.t2m], {})
    with pytest.raises(ValueError, match=r"lacks \['t2m'"):
        xbeam.DatasetToChunks(
            [mixed_dataset, mixed_dataset[["count"]]], {}, split_vars=True
        )
