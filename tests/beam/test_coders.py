"""The deterministic Beam coder of keys (``beam.coders``)."""

import pickle

import apache_beam as beam
import cloudpickle
import pytest

from xarray_beam.beam import runners
from xarray_beam.beam.coders import KeyCoder
from xarray_beam.model.key import Key


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
