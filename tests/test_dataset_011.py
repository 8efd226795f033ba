"""xarray-beam 0.11 pipelines on the high-level Dataset (issue 16, item 4).

Every written store is compared with plain xarray on the same data, and
chunk sizes read from the store's metadata are compared with what 0.11's
rules give, worked out here by hand.
"""

import math

import apache_beam as beam
import numpy as np
import pytest
import xarray
import zarr

import xarray_beam as xb
from xarray_beam.beam import runners
from xarray_beam.dataset import Dataset


def _source(time: int = 20, x: int = 12) -> xarray.Dataset:
    values = np.arange(time * x, dtype="f8").reshape(time, x)
    return xarray.Dataset(
        {"t": (("time", "x"), values), "u": (("time",), np.arange(time, dtype="f4"))},
        coords={"time": np.arange(time), "x": np.arange(x) * 10},
        attrs={"title": "small"},
    )


def _array(path, name: str = "t") -> zarr.Array:
    return zarr.open_group(str(path), mode="r")[name]


def _written(path) -> xarray.Dataset:
    return xarray.open_zarr(path).compute()


# --- normalize_chunks: byte sizes -------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "dtype", "previous", "scale"),
    [
        ((100, 100), "f8", {"a": 10, "b": 25}, 2),  # both dims grow twice
        ((100, 100), "f8", {"a": 20, "b": 50}, 0.5),  # both shrink by half
        ((60, 90), "f4", {"a": 2, "b": 3}, 5),
    ],
)
def test_byte_sizes_scale_the_previous_chunks_by_one_factor(
    shape, dtype, previous, scale
):
    template = xarray.Dataset({"v": (("a", "b"), np.zeros(shape, dtype))})
    target = {d: int(c * scale) for d, c in previous.items()}
    limit = f"{math.prod(target.values()) * np.dtype(dtype).itemsize}B"
    result = xb.normalize_chunks(limit, template, previous_chunks=previous)
    assert result == target


def test_byte_sizes_grow_only_dims_that_are_not_whole():
    template = xarray.Dataset({"v": (("a", "b"), np.zeros((5, 4), "i8"))})
    # 'a' is whole already, so only 'b' grows: 80 bytes = 10 int64 = 5 x 2.
    result = xb.normalize_chunks("80B", template, previous_chunks={"a": 5, "b": 1})
    assert result == {"a": 5, "b": 2}


@pytest.mark.parametrize("steps", [50, 100, 300])
def test_byte_sizes_above_one_previous_chunk_are_whole_previous_chunks(steps):
    template = xarray.Dataset({"v": (("time", "a"), np.zeros((1000, 100), "f4"))})
    limit = steps * 100 * 4
    result = xb.normalize_chunks(
        {"time": f"{limit}B", ...: -1}, template, previous_chunks={"time": 24}
    )
    assert result["time"] % 24 == 0 and result["a"] == 100
    assert result["time"] >= 24 and result["time"] * 100 * 4 <= limit * 1.25


def test_byte_sizes_without_previous_chunks_are_square():
    template = xarray.Dataset({"v": (("a", "b"), np.zeros((100, 100), "i1"))})
    side = math.isqrt(1024)
    assert xb.normalize_chunks("1KiB", template) == {"a": side, "b": side}


def test_byte_size_for_one_dim_keeps_the_others():
    template = xarray.Dataset({"v": (("a", "b"), np.zeros((1000, 50), "f4"))})
    result = xb.normalize_chunks(
        {"a": "20kB"}, template, previous_chunks={"a": 10, "b": 25}
    )
    assert result == {"a": 20_000 // (4 * 25), "b": 25}


@pytest.mark.parametrize(("split_vars", "itemsize"), [(False, 8 + 1), (True, 8)])
def test_byte_sizes_count_all_variables_or_the_largest(split_vars, itemsize):
    template = xarray.Dataset(
        {"f": ("x", np.zeros(10_000, "f8")), "i": ("x", np.zeros(10_000, "i1"))}
    )
    result = xb.normalize_chunks({"x": "36kB"}, template, split_vars)
    assert result == {"x": 36_000 // itemsize}


@pytest.mark.parametrize("chunks", ["auto", {...: "auto"}])
def test_auto_is_refused_even_for_a_dataset_without_dims(chunks):
    with pytest.raises(ValueError, match="'auto' is not supported"):
        xb.normalize_chunks(chunks, xarray.Dataset())
    assert xb.normalize_chunks({}, xarray.Dataset()) == {}


def test_different_byte_sizes_are_refused():
    template = xarray.Dataset({"v": (("a", "b"), np.zeros((10, 10)))})
    with pytest.raises(ValueError, match=r"different byte sizes .*'a': '1KiB'"):
        xb.normalize_chunks({"a": "1KiB", "b": "2KiB"}, template)
    with pytest.raises(ValueError, match="different byte sizes"):
        xb.normalize_chunks({"a": "1KiB", ...: "2KiB"}, template)
    same = xb.normalize_chunks({"a": "1KiB", "b": "1024B"}, template)
    assert same == xb.normalize_chunks("1KiB", template)


def test_from_xarray_byte_sizes_keep_the_shape_of_the_whole_dataset():
    # 0.11 takes the source's sizes as the previous chunks of from_xarray:
    # 20 x 12 scaled by 1/2 is 10 x 6, which holds 60 * (8 + 4) bytes.
    ds = Dataset.from_xarray(_source(), f"{10 * 6 * 12}B")
    assert ds.chunks == {"time": 10, "x": 6}
    assert Dataset.from_xarray(_source(), {"time": 5}).chunks == {"time": 5, "x": 12}


# --- pipeline= and label= ---------------------------------------------------------


def test_bound_dataset_writes_without_applying_to_the_pipeline(tmp_path):
    source = _source()
    with beam.Pipeline("DirectRunner") as p:
        ds = Dataset.from_xarray(source, {"time": 5}, pipeline=p, label="Read")
        written = ds.to_zarr(tmp_path / "out.zarr", label="Write")
        assert isinstance(written, beam.pvalue.PCollection)
        assert {"Read", "Write"} <= p.applied_labels
        assert ds.pipeline is p
    xarray.testing.assert_identical(_written(tmp_path / "out.zarr"), source)
    assert _array(tmp_path / "out.zarr").chunks == (5, 12)


def test_unbound_to_zarr_is_still_a_transform(tmp_path):
    ds = Dataset.from_xarray(_source(), {"time": 5})
    write = ds.to_zarr(tmp_path / "out.zarr", label="Write")
    assert isinstance(write, beam.PTransform) and ds.pipeline is None
    assert write.label.split("|")[-1] == "Write"
    with beam.Pipeline("DirectRunner") as p:
        _ = p | write
    xarray.testing.assert_identical(_written(tmp_path / "out.zarr"), _source())


def test_bound_from_zarr_shares_its_reading_step_between_outputs(tmp_path):
    source = _source()
    source.chunk({"time": 4}).to_zarr(tmp_path / "in.zarr")
    with beam.Pipeline("DirectRunner") as p:
        ds = Dataset.from_zarr(tmp_path / "in.zarr", pipeline=p, label="In")
        assert ds.chunks == {"time": 4, "x": 12}
        ds.to_zarr(tmp_path / "copy.zarr")
        ds.map_blocks(lambda c: c * 2).to_zarr(tmp_path / "double.zarr")
        ds.rechunk({"time": 10}).mean("time").to_zarr(tmp_path / "mean.zarr")
        reads = [label for label in p.applied_labels if label.startswith("In")]
        assert "In" in reads and not any(label.split("/")[0] != "In" for label in reads)
    xarray.testing.assert_identical(_written(tmp_path / "copy.zarr"), source)
    xarray.testing.assert_identical(_written(tmp_path / "double.zarr"), source * 2)
    xarray.testing.assert_allclose(
        _written(tmp_path / "mean.zarr"), source.mean("time", keep_attrs=True)
    )


def test_pipeline_of_the_0_11_module_docstring(tmp_path):
    """from_zarr(pipeline=p) -> rechunk -> map_blocks -> to_zarr, no p |."""
    source = _source()[["t"]]
    source.chunk({"time": 5}).to_zarr(tmp_path / "in.zarr")
    with beam.Pipeline("DirectRunner") as p:
        (
            Dataset.from_zarr(tmp_path / "in.zarr", pipeline=p)
            .rechunk({"time": -1, "x": 4})
            .map_blocks(lambda x: x.median("time"))
            .to_zarr(tmp_path / "out.zarr")
        )
    xarray.testing.assert_allclose(
        _written(tmp_path / "out.zarr"), source.median("time", keep_attrs=True)
    )
    assert _array(tmp_path / "out.zarr").chunks == (4,)


def test_bound_zarr_to_zarr_rechunk_goes_store_to_store(tmp_path):
    source = _source()[["t"]]
    source.chunk({"time": 2}).to_zarr(tmp_path / "in.zarr")
    with beam.Pipeline("DirectRunner") as p:
        ds = Dataset.from_zarr(tmp_path / "in.zarr", pipeline=p)
        rechunked = ds.rechunk({"time": -1, "x": 3})
        assert rechunked.rechunk_route(to_zarr=True).route == "storage"
        rechunked.to_zarr(tmp_path / "out.zarr", label="Write")
        assert "Write" in p.applied_labels
    xarray.testing.assert_identical(_written(tmp_path / "out.zarr"), source)
    assert _array(tmp_path / "out.zarr").chunks == (20, 3)


def test_two_bound_datasets_with_the_same_labels_get_unique_steps(tmp_path):
    source = _source()
    with beam.Pipeline("DirectRunner") as p:
        for name in ("a", "b"):
            ds = Dataset.from_xarray(source, {"time": 10}, pipeline=p)
            ds.map_blocks(lambda c: c + 1).to_zarr(tmp_path / f"{name}.zarr")
    for name in ("a", "b"):
        xarray.testing.assert_identical(_written(tmp_path / f"{name}.zarr"), source + 1)


def test_bound_dataset_can_still_be_collected():
    pipeline = beam.Pipeline("DirectRunner")
    ds = Dataset.from_xarray(_source(), {"time": 5}, pipeline=pipeline)
    collected = ds.map_blocks(lambda c: c - 1).collect_with_direct_runner()
    xarray.testing.assert_identical(collected, _source() - 1)
    assert not pipeline.applied_labels  # the bound pipeline was not touched


def test_labels_name_the_steps():
    ds = Dataset.from_xarray(_source(), {"time": 5}, label="Read")
    chained = (
        ds.map_blocks(lambda c: c, label="Same")
        .rechunk({"time": 4}, label="Rechunk4")
        .mean("x", label="MeanX")
    )
    assert chained.ptransform.label == "Read|Same|Rechunk4|MeanX"


# --- rechunk(split_vars=) ---------------------------------------------------------


def _keys(ds: Dataset) -> list[xb.Key]:
    return [key for key, _ in runners.collect(lambda p: p | ds.ptransform)]


@pytest.mark.parametrize("first", ["source", "map_blocks"])
def test_rechunk_can_split_and_consolidate_variables(first):
    source = _source()
    ds = Dataset.from_xarray(source, {"time": 5})
    if first == "map_blocks":
        ds = ds.map_blocks(lambda c: c + 0)
    split = ds.rechunk({"time": 4, "x": 6}, split_vars=True)
    assert split.split_vars and split.chunks == {"time": 4, "x": 6}
    keys = _keys(split)
    assert sorted(len(key.vars) for key in keys) == [1] * len(keys)
    assert len(keys) == 5 * 2 + 5  # t in 5 x 2 chunks, u in 5
    xarray.testing.assert_identical(split.collect_with_direct_runner(), source)
    back = split.rechunk({"time": 10}, split_vars=False)
    assert not back.split_vars and back.chunks == {"time": 10, "x": 6}
    assert all(key.vars is None for key in _keys(back))
    xarray.testing.assert_identical(back.collect_with_direct_runner(), source)


# --- to_zarr: Zarr chunks and shards ----------------------------------------------


def test_to_zarr_byte_size_chunks_keep_the_shape_of_the_dataset_chunks(tmp_path):
    source = _source()[["t"]]
    ds = Dataset.from_xarray(source, {"time": 10, "x": 12})
    # Half of each side of the 10 x 12 dataset chunks: 5 x 6 float64.
    _run(ds.to_zarr(tmp_path / "out.zarr", zarr_chunks=f"{5 * 6 * 8}B"))
    assert _array(tmp_path / "out.zarr").chunks == (5, 6)
    xarray.testing.assert_identical(_written(tmp_path / "out.zarr"), source)


def test_to_zarr_byte_size_for_one_dim_keeps_the_other(tmp_path):
    source = _source()[["t"]]
    ds = Dataset.from_xarray(source, {"time": 10, "x": 12})
    _run(ds.to_zarr(tmp_path / "out.zarr", zarr_chunks={"x": f"{10 * 3 * 8}B"}))
    assert _array(tmp_path / "out.zarr").chunks == (10, 3)
    xarray.testing.assert_identical(_written(tmp_path / "out.zarr"), source)


def test_to_zarr_chunks_per_shard_with_ellipsis(tmp_path):
    source = _source()
    ds = Dataset.from_xarray(source, {"time": 10, "x": 12})
    _run(ds.to_zarr(tmp_path / "out.zarr", zarr_chunks_per_shard={"time": 2, ...: 3}))
    array = _array(tmp_path / "out.zarr")
    assert (array.shards, array.chunks) == ((10, 12), (10 // 2, 12 // 3))
    # 'u' lacks 'x': its shards are the dataset's time chunks, split in two.
    u = _array(tmp_path / "out.zarr", "u")
    assert (u.shards, u.chunks) == ((10,), (5,))
    xarray.testing.assert_identical(_written(tmp_path / "out.zarr"), source)


def test_to_zarr_chunks_per_shard_default_one_per_dim(tmp_path):
    source = _source()
    ds = Dataset.from_xarray(source, {"time": 10, "x": 12})
    _run(ds.to_zarr(tmp_path / "out.zarr", zarr_chunks_per_shard={"x": 4}))
    array = _array(tmp_path / "out.zarr")
    assert (array.shards, array.chunks) == ((10, 12), (10, 3))
    xarray.testing.assert_identical(_written(tmp_path / "out.zarr"), source)


@pytest.mark.parametrize("shards", [-1, 10, {"time": -1}])
def test_to_zarr_whole_dim_shards_round_up_to_whole_chunks(tmp_path, shards):
    source = _source(time=10)[["t"]]
    ds = Dataset.from_xarray(source, {"time": 10, "x": 12})
    if shards == 10:
        shards = {"time": 10}
    _run(ds.to_zarr(tmp_path / "out.zarr", zarr_chunks={"time": 4}, zarr_shards=shards))
    array = _array(tmp_path / "out.zarr")
    assert array.chunks == (4, 12)
    assert array.shards == (math.ceil(10 / 4) * 4, 12)
    xarray.testing.assert_identical(_written(tmp_path / "out.zarr"), source)


def test_to_zarr_chunks_per_shard_within_given_shards(tmp_path):
    source = _source(time=10)[["t"]]
    ds = Dataset.from_xarray(source, {"time": -1, "x": 6})
    write = ds.to_zarr(
        tmp_path / "out.zarr",
        zarr_shards={"time": -1},
        zarr_chunks_per_shard={"time": 5, "x": 2},
    )
    _run(write)
    array = _array(tmp_path / "out.zarr")
    assert (array.shards, array.chunks) == ((10, 6), (2, 3))
    xarray.testing.assert_identical(_written(tmp_path / "out.zarr"), source)


def test_to_zarr_chunks_per_shard_errors(tmp_path):
    ds = Dataset.from_xarray(_source(), {"time": 10, "x": 12})
    with pytest.raises(ValueError, match=r"\['level'\]"):
        ds.to_zarr(tmp_path / "a.zarr", zarr_chunks_per_shard={"level": 2})
    with pytest.raises(ValueError, match="'x'=5 does not divide"):
        ds.to_zarr(tmp_path / "a.zarr", zarr_chunks_per_shard={...: 5})
    with pytest.raises(ValueError, match="not both"):
        ds.to_zarr(tmp_path / "a.zarr", zarr_chunks={"x": 6}, zarr_chunks_per_shard={})
    assert not (tmp_path / "a.zarr").exists()


def _run(transform: beam.PTransform) -> None:
    with beam.Pipeline("DirectRunner") as p:
        _ = p | transform


# --- map_blocks -------------------------------------------------------------------


def test_map_blocks_resizes_split_dims_that_divide_evenly():
    source = _source()[["t"]]
    ds = Dataset.from_xarray(source, {"time": 5, "x": 4})
    coarse = ds.map_blocks(lambda c: c.coarsen(x=2, time=5).mean())
    assert coarse.chunks == {"time": 1, "x": 2}
    want = source.coarsen(x=2, time=5).mean()
    xarray.testing.assert_allclose(coarse.collect_with_direct_runner(), want)


@pytest.mark.parametrize(
    ("chunks", "func", "match"),
    [
        ({"x": 4}, lambda c: c.isel(x=slice(0, 1)), r"its 3 chunks do not divide"),
        ({"x": 5}, lambda c: c.isel(x=slice(0, 2)), "chunks of 5 do not divide 12"),
    ],
)
def test_map_blocks_refuses_uneven_resizes(chunks, func, match):
    ds = Dataset.from_xarray(_source()[["t"]], chunks)
    with pytest.raises(ValueError, match=match):
        ds.map_blocks(func)


def test_map_blocks_refuses_chunks_that_change_the_chunk_count():
    ds = Dataset.from_xarray(_source()[["t"]], {"x": 4})
    coarsen = lambda c: c.coarsen(x=2).mean()  # noqa: E731
    with pytest.raises(ValueError, match=r"gives 'x' 6 chunk\(s\) of 1"):
        ds.map_blocks(coarsen, chunks={"x": 1})
    with pytest.raises(ValueError, match=r"gives 'time' 4 chunk\(s\)"):
        ds.map_blocks(lambda c: c, chunks={"time": 5})
    assert ds.map_blocks(coarsen, chunks={"x": 2}).chunks["x"] == 2


def test_map_blocks_on_split_variables_keeps_the_variables():
    source = _source()
    ds = Dataset.from_xarray(source, {"time": 5}, split_vars=True)
    with pytest.raises(ValueError, match=r"from \['t', 'u'\] to \['t'\]"):
        ds.map_blocks(lambda c: c[["t"]] if "t" in c else c)
    with pytest.raises(ValueError, match="split_vars=True"):
        ds.map_blocks(lambda c: c.rename({"t": "v"}) if "t" in c else c)
    same = ds.map_blocks(lambda c: c * 3)
    xarray.testing.assert_identical(same.collect_with_direct_runner(), source * 3)


# --- from_ptransform --------------------------------------------------------------


def _chunks_of(source: xarray.Dataset, size: int) -> list:
    return [
        (xb.Key({"time": i, "x": 0}), source.isel(time=slice(i, i + size)))
        for i in range(0, source.sizes["time"], size)
    ]


@pytest.mark.parametrize(
    "chunks", [["time", 5], "5B", {"time": "40B"}, {"time": 5.0}, {"time": True}]
)
def test_from_ptransform_needs_a_mapping_of_ints(chunks):
    source = _source()
    with pytest.raises(TypeError, match="from_ptransform needs"):
        Dataset.from_ptransform(
            beam.Create(_chunks_of(source, 5)), template=source, chunks=chunks
        )


def test_from_ptransform_accepts_a_pcollection(tmp_path):
    source = _source()
    with beam.Pipeline("DirectRunner") as p:
        pieces = p | "Make" >> beam.Create(_chunks_of(source, 5))
        ds = Dataset.from_ptransform(
            pieces, template=source, chunks={"time": 5, ...: -1}, label="Check"
        )
        assert ds.pipeline is p
        ds.to_zarr(tmp_path / "out.zarr")
        assert "Check" in p.applied_labels
    xarray.testing.assert_identical(_written(tmp_path / "out.zarr"), source)
    with pytest.raises(ValueError, match="made from a PCollection"):
        ds.collect_with_direct_runner()


def test_constructor_takes_a_pcollection(tmp_path):
    source = _source()
    with beam.Pipeline("DirectRunner") as p:
        pieces = p | "Make" >> beam.Create(_chunks_of(source, 10))
        ds = Dataset(xb.make_template(source), {"time": 10}, False, pieces)
        assert ds.ptransform is pieces and ds.pipeline is p
        ds.transpose("x", "time", label="Flip").to_zarr(tmp_path / "out.zarr")
        assert "Flip" in p.applied_labels
    xarray.testing.assert_identical(
        _written(tmp_path / "out.zarr"), source.transpose("x", "time")
    )


@pytest.mark.parametrize("split_vars", [False, True])
def test_from_ptransform_fills_in_zero_offsets_and_vars(split_vars):
    """0.11 fills in keys: offsets left out are 0, vars are the chunk's."""
    source = _source(time=10)
    pieces = []
    for name in ["t", "u"] if split_vars else [None]:
        data = source if name is None else source[[name]]
        for start in (0, 5):
            offsets = {"time": start} if start else {}  # 'x' (and time 0) left out
            pieces.append((xb.Key(offsets), data.isel(time=slice(start, start + 5))))
    ds = Dataset.from_ptransform(
        beam.Create(pieces), template=source, chunks={"time": 5}, split_vars=split_vars
    )
    keys = sorted(_keys(ds), key=repr)
    if split_vars:
        want = [xb.Key({"time": s, "x": 0}, {"t"}) for s in (0, 5)]
        want += [xb.Key({"time": s}, {"u"}) for s in (0, 5)]
    else:
        want = [xb.Key({"time": s, "x": 0}) for s in (0, 5)]
    assert keys == sorted(want, key=repr)
    xarray.testing.assert_identical(ds.collect_with_direct_runner(), source)


def test_to_zarr_passes_stage_locally_to_the_write():
    source = xarray.Dataset({"t": ("x", np.arange(4.0))})
    memory = zarr.storage.MemoryStore()

    with pytest.raises(ValueError, match="stage_locally=True"):
        Dataset.from_xarray(source, {"x": 2}).to_zarr(memory, stage_locally=True)
