"""Specification of templates: lazy datasets that describe a whole output."""

import itertools
import random

import dask.array
import numpy as np
import pandas as pd
import pytest
import xarray

import xarray_beam
from xarray_beam.model import templates
from xarray_beam.model.key import Key
from xarray_beam.model.templates import (
    TemplateComputeError,
    make_template,
    merge_skeletons,
    replace_template_dims,
    skeleton_of,
    template_from_skeleton,
)


def _chunks(dataset, sizes):
    """All (Key, chunk) pairs of a dataset cut into blocks of ``sizes``."""
    dims = list(dataset.dims)
    starts = [range(0, dataset.sizes[d], sizes.get(d, dataset.sizes[d])) for d in dims]
    pairs = []
    for offsets in itertools.product(*starts):
        key = Key(dict(zip(dims, offsets, strict=True)))
        region = {
            d: slice(o, o + sizes.get(d, dataset.sizes[d]))
            for d, o in zip(dims, offsets, strict=True)
        }
        pairs.append((key, dataset.isel(region)))
    return pairs


def _template_of_chunks(pairs):
    return template_from_skeleton(merge_skeletons(skeleton_of(k, c) for k, c in pairs))


def test_public_names_are_exported_from_the_package():
    assert xarray_beam.make_template is make_template
    assert xarray_beam.replace_template_dims is replace_template_dims


# make_template


def test_make_template_makes_every_data_variable_dask_backed(mixed_dataset):
    template = make_template(mixed_dataset)
    for name in mixed_dataset.data_vars:
        assert isinstance(template[name].data, dask.array.Array), name
    assert sorted(templates.lazy_variables(template)) == sorted(mixed_dataset.data_vars)


@pytest.mark.parametrize(
    "compute",
    [
        lambda t: t.t2m.values,
        lambda t: t.t2m.compute(),
        lambda t: t.compute(),
        lambda t: np.asarray(t["count"]),
        lambda t: t.scale.values,
        lambda t: float(t.t2m.isel(time=0).mean()),
    ],
    ids=["values", "dataarray_compute", "dataset_compute", "asarray", "0d", "reduce"],
)
def test_computing_a_template_variable_raises_template_compute_error(
    mixed_dataset, compute
):
    template = make_template(mixed_dataset)
    with pytest.raises(TemplateComputeError, match="placeholder"):
        compute(template)


def test_make_template_keeps_coordinates_in_memory_and_equal(mixed_dataset):
    template = make_template(mixed_dataset)
    assert set(template.coords) == set(mixed_dataset.coords)
    for name, coord in mixed_dataset.coords.items():
        assert isinstance(template[name].variable.data, np.ndarray), name
        xarray.testing.assert_identical(template[name], coord)


def test_make_template_preserves_dims_shapes_dtypes_and_attrs(mixed_dataset):
    template = make_template(mixed_dataset)
    assert dict(template.sizes) == dict(mixed_dataset.sizes)
    assert template.attrs == mixed_dataset.attrs
    assert list(template.data_vars) == list(mixed_dataset.data_vars)
    for name, var in mixed_dataset.variables.items():
        got = template.variables[name]
        assert got.dims == var.dims, name
        assert got.shape == var.shape, name
        assert got.dtype == var.dtype, name
        assert got.attrs == var.attrs, name


def test_make_template_preserves_variable_encoding(mixed_dataset):
    mixed_dataset.t2m.encoding = {"dtype": "float64", "units_note": "kept"}
    template = make_template(mixed_dataset)
    assert template.t2m.encoding == mixed_dataset.t2m.encoding


def test_make_template_does_not_modify_its_input(mixed_dataset):
    original = mixed_dataset.copy(deep=True)
    make_template(mixed_dataset)
    xarray.testing.assert_identical(mixed_dataset, original)
    assert isinstance(mixed_dataset.t2m.data, np.ndarray)


def test_make_template_lazy_vars_selects_the_variables_made_lazy(mixed_dataset):
    template = make_template(mixed_dataset, lazy_vars={"t2m", "valid"})
    assert sorted(templates.lazy_variables(template)) == ["t2m", "valid"]
    for name in ["count", "lsm", "scale"]:
        xarray.testing.assert_identical(template[name], mixed_dataset[name])
    assert template.t2m.shape == mixed_dataset.t2m.shape


def test_make_template_can_make_a_non_index_coordinate_lazy(mixed_dataset):
    dataset = mixed_dataset.assign_coords(
        area=(("latitude", "longitude"), np.ones((7, 6)))
    )
    template = make_template(dataset, lazy_vars={"area"})
    assert templates.lazy_variables(template) == ["area"]
    assert "area" in template.coords
    assert template.area.shape == (7, 6)
    with pytest.raises(TemplateComputeError):
        template.area.values  # noqa: B018


@pytest.mark.parametrize(
    ("lazy_vars", "named"),
    [({"nope"}, "nope"), ({"t2m", "missing"}, "missing"), ({"time"}, "time")],
    ids=["unknown", "unknown_among_known", "index_coordinate"],
)
def test_make_template_rejects_bad_lazy_vars(mixed_dataset, lazy_vars, named):
    with pytest.raises(ValueError, match=named):
        make_template(mixed_dataset, lazy_vars=lazy_vars)


def test_make_template_rejects_a_non_dataset(mixed_dataset):
    with pytest.raises(TypeError):
        make_template(mixed_dataset.t2m)


def test_make_template_keeps_the_dask_chunks_of_a_chunked_input(mixed_dataset):
    chunked = mixed_dataset.chunk({"time": 3, "latitude": 4})
    template = make_template(chunked)
    for name, var in chunked.data_vars.items():
        if var.ndim:
            assert template[name].chunks == var.chunks, name
    with pytest.raises(TemplateComputeError):
        template.t2m.values  # noqa: B018


def test_make_template_gives_unchunked_input_one_chunk_per_variable(mixed_dataset):
    template = make_template(mixed_dataset)
    for name, var in mixed_dataset.data_vars.items():
        assert template[name].chunks == tuple((n,) for n in var.shape), name


def test_make_template_of_a_full_era5_sized_dataset_builds():
    shape = (350640, 721, 1440)
    dataset = xarray.Dataset(
        {
            "t2m": (
                ("time", "latitude", "longitude"),
                dask.array.zeros(shape, chunks=(1, -1, -1), dtype=np.float32),
            )
        },
        coords={
            "time": pd.date_range("1979-01-01", periods=shape[0], freq="h"),
            "latitude": np.linspace(90, -90, shape[1]),
            "longitude": np.arange(shape[2]) * 0.25,
        },
    )
    template = make_template(dataset)
    assert template.t2m.shape == shape
    assert template.t2m.data.numblocks == (shape[0], 1, 1)
    assert template.t2m.data.npartitions == shape[0]


def test_placeholder_has_the_requested_shape_dtype_and_chunks():
    array = templates.placeholder((6, 4), np.int16, chunks=(2, -1))
    assert array.shape == (6, 4)
    assert array.dtype == np.int16
    assert array.chunks == ((2, 2, 2), (4,))
    with pytest.raises(TemplateComputeError):
        array.compute()


# replace_template_dims


def test_replace_template_dims_with_a_size_resizes_and_drops_the_index(
    mixed_dataset,
):
    template = replace_template_dims(make_template(mixed_dataset), time=24)
    assert dict(template.sizes) == {"time": 24, "latitude": 7, "longitude": 6}
    assert "time" not in template.coords
    assert "time" not in template.indexes
    assert template.t2m.shape == (24, 7, 6)
    assert template["count"].shape == (24, 6)
    assert template.valid.shape == (24,)


@pytest.mark.parametrize(
    "make_values",
    [
        lambda times: times,
        lambda times: times.values,
        lambda times: list(times),
        lambda times: xarray.DataArray(times.values, dims="time"),
    ],
    ids=["pandas_index", "numpy", "list", "dataarray"],
)
def test_replace_template_dims_with_values_sets_the_new_coordinate(
    mixed_dataset, make_values
):
    times = pd.date_range("2022-01-01", periods=4, freq="D")
    template = replace_template_dims(
        make_template(mixed_dataset), time=make_values(times)
    )
    assert dict(template.sizes) == {"time": 4, "latitude": 7, "longitude": 6}
    np.testing.assert_array_equal(template.time.values, times.values)
    assert "time" in template.indexes
    assert isinstance(template.time.variable.data, np.ndarray)
    xarray.testing.assert_identical(template.latitude, mixed_dataset.latitude)


def test_replace_template_dims_keeps_the_attrs_of_a_replaced_index(mixed_dataset):
    mixed_dataset.latitude.attrs["units"] = "degrees_north"
    template = replace_template_dims(
        make_template(mixed_dataset), latitude=[10.0, 0.0, -10.0]
    )
    assert template.latitude.attrs == {"units": "degrees_north"}


def test_replace_template_dims_makes_variables_along_replaced_dims_lazy(
    mixed_dataset,
):
    template = make_template(mixed_dataset, lazy_vars={"t2m"})
    replaced = replace_template_dims(template, time=3)
    for name in ["t2m", "count", "valid"]:
        var = replaced[name]
        assert isinstance(var.data, dask.array.Array), name
        assert var.dtype == mixed_dataset[name].dtype, name
        assert var.attrs == mixed_dataset[name].attrs, name
        expected_shape = tuple(
            3 if d == "time" else mixed_dataset.sizes[d] for d in var.dims
        )
        assert var.shape == expected_shape, name
    with pytest.raises(TemplateComputeError):
        replaced["count"].values  # noqa: B018


def test_replace_template_dims_leaves_other_variables_alone(mixed_dataset):
    template = make_template(mixed_dataset, lazy_vars={"t2m"})
    replaced = replace_template_dims(template, time=3)
    for name in ["lsm", "scale", "latitude", "longitude"]:
        xarray.testing.assert_identical(replaced[name], mixed_dataset[name])
    assert replaced.attrs == mixed_dataset.attrs


def test_replace_template_dims_gives_replaced_dims_a_single_chunk(mixed_dataset):
    template = make_template(mixed_dataset.chunk({"time": 2, "latitude": 3}))
    replaced = replace_template_dims(template, time=100)
    assert replaced.t2m.chunks == ((100,), (3, 3, 1), (6,))


def test_replace_template_dims_several_dims_at_once(mixed_dataset):
    replaced = replace_template_dims(
        make_template(mixed_dataset), time=5, longitude=np.arange(3.0)
    )
    assert replaced.t2m.shape == (5, 7, 3)
    assert replaced.lsm.shape == (7, 3)
    np.testing.assert_array_equal(replaced.longitude.values, np.arange(3.0))


def test_replace_template_dims_to_a_huge_size_builds():
    template = make_template(
        xarray.Dataset({"t2m": (("time", "x"), np.zeros((2, 1440), np.float32))})
    )
    replaced = replace_template_dims(template, time=350640)
    assert replaced.t2m.shape == (350640, 1440)


def test_replace_template_dims_rejects_an_unknown_dim(mixed_dataset):
    with pytest.raises(ValueError, match="level"):
        replace_template_dims(make_template(mixed_dataset), level=3)


# skeleton_of / merge_skeletons / template_from_skeleton


@pytest.mark.parametrize(
    "sizes",
    [{"time": 4}, {"time": 3, "latitude": 4}, {"time": 10}, {"longitude": 1}],
    ids=["ragged_time", "two_dims", "one_chunk", "unit_chunks"],
)
def test_template_from_chunks_in_any_order_matches_the_dataset(mixed_dataset, sizes):
    pairs = _chunks(mixed_dataset, sizes)
    random.Random(0).shuffle(pairs)
    template, chunk_sizes = _template_of_chunks(pairs)

    assert dict(template.sizes) == dict(mixed_dataset.sizes)
    xarray.testing.assert_identical(
        template.coords.to_dataset(), mixed_dataset.coords.to_dataset()
    )
    assert sorted(templates.lazy_variables(template)) == sorted(mixed_dataset.data_vars)
    for name, var in mixed_dataset.data_vars.items():
        got = template[name]
        assert (got.dims, got.shape, got.dtype) == (var.dims, var.shape, var.dtype)
        assert got.attrs == var.attrs
    assert template.attrs == mixed_dataset.attrs
    expected_chunks = {
        d: min(sizes.get(d, n), n) for d, n in mixed_dataset.sizes.items()
    }
    assert chunk_sizes == expected_chunks


def test_template_from_chunks_refuses_to_compute(mixed_dataset):
    template, _ = _template_of_chunks(_chunks(mixed_dataset, {"time": 5}))
    with pytest.raises(TemplateComputeError):
        template.t2m.values  # noqa: B018


def test_merge_skeletons_is_independent_of_grouping(mixed_dataset):
    skeletons = [skeleton_of(k, c) for k, c in _chunks(mixed_dataset, {"time": 2})]
    flat = template_from_skeleton(merge_skeletons(skeletons))
    nested = template_from_skeleton(
        merge_skeletons(
            [merge_skeletons(skeletons[3:]), merge_skeletons(skeletons[:3])]
        )
    )
    xarray.testing.assert_identical(
        flat[0].coords.to_dataset(), nested[0].coords.to_dataset()
    )
    assert flat[1] == nested[1]
    for name in mixed_dataset.data_vars:
        assert flat[0][name].shape == nested[0][name].shape


def test_template_from_split_variable_chunks(mixed_dataset):
    pairs = []
    for name, var in mixed_dataset.data_vars.items():
        single = mixed_dataset[[name]]
        for key, chunk in _chunks(single, {"time": 4}):
            offsets = {d: o for d, o in key.offsets.items() if d in var.dims}
            pairs.append((Key(offsets, vars={name}), chunk))
    template, _ = _template_of_chunks(pairs)
    assert dict(template.sizes) == dict(mixed_dataset.sizes)
    for name, var in mixed_dataset.data_vars.items():
        assert (template[name].dims, template[name].shape) == (var.dims, var.shape)
    np.testing.assert_array_equal(template.time.values, mixed_dataset.time.values)


@pytest.mark.parametrize("dim", ["time", "latitude"])
def test_template_from_chunks_with_a_gap_names_the_dimension(mixed_dataset, dim):
    pairs = _chunks(mixed_dataset, {dim: 2})
    pairs = [(k, c) for k, c in pairs if k.offsets[dim] != 2]
    with pytest.raises(ValueError, match=f"'{dim}'.*missing"):
        _template_of_chunks(pairs)


@pytest.mark.parametrize("dim", ["time", "latitude"])
def test_template_from_chunks_with_an_overlap_names_the_dimension(mixed_dataset, dim):
    pairs = _chunks(mixed_dataset, {dim: 2})
    extra = mixed_dataset.isel({dim: slice(1, 3)})
    pairs.append((Key({**pairs[0][0].offsets, dim: 1}), extra))
    with pytest.raises(ValueError, match=f"'{dim}'.*overlapping"):
        _template_of_chunks(pairs)


def test_merge_skeletons_rejects_chunks_of_different_sizes_at_one_offset(
    mixed_dataset,
):
    first = skeleton_of(Key({"time": 0}), mixed_dataset.isel(time=slice(0, 2)))
    second = skeleton_of(Key({"time": 0}), mixed_dataset.isel(time=slice(0, 3)))
    with pytest.raises(ValueError, match="'time'"):
        merge_skeletons([first, second])


def test_merge_skeletons_rejects_a_variable_with_two_dtypes(mixed_dataset):
    first = skeleton_of(Key({"time": 0}), mixed_dataset.isel(time=slice(0, 5)))
    other = mixed_dataset.isel(time=slice(5, 10))
    other["t2m"] = other.t2m.astype(np.float64)
    second = skeleton_of(Key({"time": 5}), other)
    with pytest.raises(ValueError, match="'t2m'"):
        merge_skeletons([first, second])


def test_template_from_an_empty_skeleton_is_an_error():
    with pytest.raises(ValueError, match="no chunks"):
        template_from_skeleton(merge_skeletons([]))
