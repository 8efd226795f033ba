"""Keys, offsets and chunk checks (``model.key``), with plain xarray as the oracle."""

import re

import pytest

import xarray_beam as xbeam
from xarray_beam.model.key import Key

# --- Key -------------------------------------------------------------------


def test_key_repr_keeps_dimension_order_sorts_vars_and_evaluates_back():
    key = Key({"time": 48, "latitude": 0}, vars={"u10", "t2m"})
    text = repr(key)
    assert text == "Key(offsets={'time': 48, 'latitude': 0}, vars={'t2m', 'u10'})"
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


# --- offsets_to_slices -------------------------------------------------------


def test_offsets_to_slices_with_and_without_base():
    sizes = {"x": 10, "y": 5}
    assert xbeam.offsets_to_slices({"x": 100}, sizes) == {
        "x": slice(100, 110, 1),
        "y": slice(0, 5, 1),
    }
    assert xbeam.offsets_to_slices({"x": 100, "y": 5}, sizes, base={"x": 90}) == {
        "x": slice(10, 20, 1),
        "y": slice(5, 10, 1),
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
