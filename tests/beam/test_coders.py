"""Beam coders: the deterministic coder of keys, and the coders of chunks and
partial results that size them without pickling (``beam.coders``)."""

import pickle
import threading

import apache_beam as beam
import cloudpickle
import numpy as np
import pytest
import xarray

import xarray_beam as xbeam
from xarray_beam.beam import runners
from xarray_beam.beam.coders import DatasetCoder, KeyCoder, PartialCoder
from xarray_beam.model.key import Key
from xarray_beam.model.reductions import Reducer


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


def _chunk(hours: int = 48) -> xarray.Dataset:
    rng = np.random.default_rng(0)
    return xarray.Dataset(
        {"t": (("time", "x"), rng.random((hours, 50), dtype=np.float32))},
        coords={"time": np.arange(hours).astype("datetime64[h]"), "x": np.arange(50)},
    )


def test_dataset_coder_round_trips_and_sizes_by_nbytes():
    chunk = _chunk()
    coder = DatasetCoder()
    assert coder.decode(coder.encode(chunk)).identical(chunk)
    encoded = len(coder.encode(chunk))
    assert chunk.nbytes <= coder.estimate_size(chunk) <= 2 * encoded


def test_size_estimates_do_not_pickle():
    # Beam's default coder sizes an element by pickling it; ours must not
    # (a chunk that cannot be pickled shows it).
    chunk = _chunk().assign_attrs(lock=threading.Lock())
    with pytest.raises(TypeError):
        DatasetCoder().encode(chunk)
    assert DatasetCoder().estimate_size(chunk) >= chunk.nbytes
    partial = Reducer("mean").reduce(_chunk(), ["time"])
    assert PartialCoder().estimate_size(partial) >= partial.nbytes > 0
    assert PartialCoder().decode(PartialCoder().encode(partial)).nbytes == (
        partial.nbytes
    )


def test_chunks_and_partials_travel_with_their_coders(tmp_path):
    source = _chunk(96)
    source.to_zarr(tmp_path / "in.zarr", zarr_format=3)
    ds, _ = xbeam.open_zarr(str(tmp_path / "in.zarr"))
    pipeline = beam.Pipeline(xbeam.InProcessRunner())
    chunks = pipeline | xbeam.DatasetToChunks(ds, {"time": 24})
    climatology = chunks | xbeam.Climatology("hour", template=ds)
    assert isinstance(
        beam.coders.registry.get_coder(chunks.element_type).value_coder(),
        DatasetCoder,
    )
    daily = chunks | xbeam.Resample("1D", "max", template=ds)
    for result, step in ((climatology, "ReduceGroups"), (daily, "ReducePeriods")):
        partials = result.producer.inputs[0]
        while not partials.producer.full_label.endswith(step):
            partials = partials.producer.inputs[0]
        assert isinstance(
            beam.coders.registry.get_coder(partials.element_type).value_coder(),
            PartialCoder,
        )
    assert isinstance(
        beam.coders.registry.get_coder(daily.element_type).value_coder(),
        DatasetCoder,
    )
