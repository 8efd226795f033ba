"""Specification of reading and writing Zarr stores, checked against xarray."""

import itertools
import os
import re

import apache_beam as beam
import numpy as np
import pytest
import xarray
import zarr
from apache_beam.options.pipeline_options import PipelineOptions
from helpers import read_tree

import xarray_beam as xb
from xarray_beam import synthetic
from xarray_beam.model.templates import make_template, replace_template_dims


def _chunks(dataset, sizes):
    """All (Key, chunk) pairs of a dataset cut into blocks of ``sizes``."""
    dims = list(dataset.dims)
    step = {d: sizes.get(d, dataset.sizes[d]) for d in dims}
    starts = [range(0, dataset.sizes[d], step[d]) for d in dims]
    pairs = []
    for offsets in itertools.product(*starts):
        key = xb.Key(dict(zip(dims, offsets, strict=True)))
        region = {d: slice(o, o + step[d]) for d, o in zip(dims, offsets, strict=True)}
        pairs.append((key, dataset.isel(region)))
    return pairs


def _read(path):
    return xarray.open_zarr(path).compute()


def _expected_layout(dataset, name, sizes):
    """The Zarr block shape of a variable, given per-dim sizes (-1 whole)."""
    return tuple(
        n if sizes.get(d, n) == -1 else min(sizes.get(d, n), n)
        for d, n in zip(dataset[name].dims, dataset[name].shape, strict=True)
    )


def _chunk_written(path, name, block):
    """Whether the Zarr chunk object at ``block`` of array ``name`` exists."""
    array = zarr.open_group(path)[name]
    separator = "/" if array.metadata.zarr_format == 3 else "."
    key = separator.join(str(i) for i in block)
    if array.metadata.zarr_format == 3:
        key = "c/" + key
    return os.path.exists(os.path.join(path, name, *key.split("/")))


def _run(build):
    with beam.Pipeline("DirectRunner") as p:
        build(p)


# Round trips


@pytest.mark.parametrize(
    ("zarr_format", "read_chunks", "zarr_chunks", "zarr_shards"),
    [
        (2, {"time": 4, "latitude": 4}, {"time": 4, "latitude": 4}, None),
        (3, {"time": 8, "latitude": 4}, {"time": 4, "latitude": 4}, None),
        (3, {"time": 4}, {"time": 2, "longitude": 3}, {"time": 4, "longitude": 6}),
    ],
    ids=["v2", "v3", "v3_sharded"],
)
def test_chunks_to_zarr_round_trips_exactly(
    tmp_path, mixed_dataset, zarr_format, read_chunks, zarr_chunks, zarr_shards
):
    path = str(tmp_path / "out.zarr")
    _run(
        lambda p: (
            p
            | xb.DatasetToChunks(mixed_dataset, read_chunks)
            | xb.ChunksToZarr(
                path,
                make_template(mixed_dataset),
                zarr_chunks,
                zarr_shards=zarr_shards,
                zarr_format=zarr_format,
            )
        )
    )
    xarray.testing.assert_identical(_read(path), mixed_dataset)

    group = zarr.open_group(path)
    assert group.metadata.zarr_format == zarr_format
    for name in mixed_dataset.data_vars:
        chunks = _expected_layout(mixed_dataset, name, zarr_chunks)
        assert group[name].chunks == chunks, name
        if zarr_shards is None or not mixed_dataset[name].ndim:
            assert group[name].shards is None, name
        else:
            shards = _expected_layout(
                mixed_dataset, name, {**zarr_chunks, **zarr_shards}
            )
            assert group[name].shards == shards, name

    _, chunks = xb.open_zarr(path)
    assert chunks == {
        d: min({**zarr_chunks, **(zarr_shards or {})}.get(d, n), n)
        for d, n in mixed_dataset.sizes.items()
    }


@pytest.mark.parametrize("split_vars", [False, True], ids=["whole", "split_vars"])
def test_chunks_to_zarr_infers_the_template_from_the_chunks(
    tmp_path, mixed_dataset, split_vars
):
    path = str(tmp_path / "out.zarr")
    _run(
        lambda p: (
            p
            | xb.DatasetToChunks(
                mixed_dataset, {"time": 4, "latitude": 3}, split_vars=split_vars
            )
            | xb.ChunksToZarr(path, template=None)
        )
    )
    xarray.testing.assert_identical(_read(path), mixed_dataset)
    assert zarr.open_group(path)["t2m"].chunks == (4, 3, 6)
    assert zarr.open_group(path)["lsm"].chunks == (3, 6)


def test_chunks_to_zarr_takes_the_template_as_a_side_input(tmp_path, mixed_dataset):
    path = str(tmp_path / "out.zarr")

    def build(p):
        template = p | "Template" >> beam.Create([make_template(mixed_dataset)])
        return (
            p
            | xb.DatasetToChunks(mixed_dataset, {"time": 3})
            | xb.ChunksToZarr(path, beam.pvalue.AsSingleton(template), {"time": 3})
        )

    _run(build)
    xarray.testing.assert_identical(_read(path), mixed_dataset)
    assert zarr.open_group(path)["t2m"].chunks == (3, 7, 6)


def test_chunks_to_zarr_writes_split_variable_chunks(tmp_path, mixed_dataset):
    path = str(tmp_path / "out.zarr")
    sizes = {"time": 4, "latitude": 4}
    _run(
        lambda p: (
            p
            | xb.DatasetToChunks(mixed_dataset, sizes, split_vars=True)
            | xb.ChunksToZarr(path, make_template(mixed_dataset), sizes)
        )
    )
    xarray.testing.assert_identical(_read(path), mixed_dataset)


@pytest.mark.parametrize(
    ("chunk_input", "zarr_chunks", "zarr_shards", "expected_chunks"),
    [
        (None, {"time": 3, "longitude": 2}, None, {"time": 3, "longitude": 2}),
        ({"time": 4, "latitude": 5}, None, None, {"time": 4, "latitude": 5}),
        (None, {"time": 2}, {"time": 4}, {"time": 2}),
    ],
    ids=["explicit_chunks", "dask_chunks", "sharded"],
)
def test_dataset_to_zarr_round_trips_with_the_asked_chunks(
    tmp_path, mixed_dataset, chunk_input, zarr_chunks, zarr_shards, expected_chunks
):
    path = str(tmp_path / "out.zarr")
    source = mixed_dataset if chunk_input is None else mixed_dataset.chunk(chunk_input)
    _run(
        lambda p: (
            p | xb.DatasetToZarr(source, path, zarr_chunks, zarr_shards=zarr_shards)
        )
    )
    xarray.testing.assert_identical(_read(path), mixed_dataset)
    group = zarr.open_group(path)
    for name in mixed_dataset.data_vars:
        expected = _expected_layout(mixed_dataset, name, expected_chunks)
        assert group[name].chunks == expected, name
    if zarr_shards:
        assert group["t2m"].shards == (4, 7, 6)


def test_variables_not_spanning_a_split_dim_are_written_once_and_right(
    tmp_path, mixed_dataset
):
    path = str(tmp_path / "out.zarr")
    p = beam.Pipeline("DirectRunner")
    _ = (
        p
        | xb.DatasetToChunks(mixed_dataset, {"time": 2})
        | xb.ChunksToZarr(path, make_template(mixed_dataset), {"time": 2})
    )
    result = p.run()
    result.wait_until_finish()

    written = _read(path)
    xarray.testing.assert_identical(written.lsm, mixed_dataset.lsm)
    xarray.testing.assert_identical(written.scale, mixed_dataset.scale)
    assert zarr.open_group(path)["lsm"].chunks == (7, 6)
    counters = result.metrics().query(
        beam.metrics.MetricsFilter().with_name("bytes_written")
    )["counters"]
    assert sum(c.committed for c in counters) == sum(
        var.nbytes for var in mixed_dataset.data_vars.values()
    )


@pytest.mark.slow
def test_multi_process_direct_runner_copies_a_store(tmp_path):
    source = str(tmp_path / "source.zarr")
    target = str(tmp_path / "target.zarr")
    synthetic.write_era5_like(source, hours=48, resolution=10.0)
    dataset, _ = xb.open_zarr(source)
    chunks = {"time": 12, "longitude": 18}
    options = PipelineOptions(
        runner="DirectRunner",
        direct_running_mode="multi_processing",
        direct_num_workers=2,
    )
    with beam.Pipeline(options=options) as p:
        _ = (
            p
            | xb.DatasetToChunks(dataset, chunks)
            | xb.ChunksToZarr(target, make_template(dataset), chunks)
        )
    xarray.testing.assert_identical(_read(target), _read(source))
    assert zarr.open_group(target)["2m_temperature"].chunks == (12, 19, 18)


# open_zarr


def _encoding(dataset, chunks, shards=None):
    encoding = {}
    for name, var in dataset.data_vars.items():
        if not var.ndim:
            continue
        encoding[name] = {"chunks": tuple(chunks[d] for d in var.dims)}
        if shards:
            encoding[name]["shards"] = tuple(shards[d] for d in var.dims)
    return encoding


@pytest.mark.parametrize(
    ("chunks", "shards", "expected"),
    [
        (
            {"time": 4, "latitude": 7, "longitude": 3},
            None,
            {"time": 4, "latitude": 7, "longitude": 3},
        ),
        (
            {"time": 2, "latitude": 7, "longitude": 3},
            {"time": 4, "latitude": 7, "longitude": 6},
            {"time": 4, "latitude": 7, "longitude": 6},
        ),
    ],
    ids=["chunked", "sharded"],
)
def test_open_zarr_returns_lazy_data_and_the_stores_blocks(
    tmp_path, mixed_dataset, chunks, shards, expected
):
    path = str(tmp_path / "in.zarr")
    mixed_dataset.to_zarr(
        path, encoding=_encoding(mixed_dataset, chunks, shards), zarr_format=3
    )
    dataset, got_chunks = xb.open_zarr(path)
    assert got_chunks == expected
    assert list(got_chunks) == list(dataset.dims)
    assert not dataset.chunks
    xarray.testing.assert_identical(dataset.compute(), mixed_dataset)


def test_open_zarr_gives_whole_dims_for_unchunked_stores(tmp_path, mixed_dataset):
    path = str(tmp_path / "in.zarr")
    mixed_dataset.to_zarr(path)
    _, chunks = xb.open_zarr(path)
    assert chunks == dict(mixed_dataset.sizes)


def test_open_zarr_refuses_a_chunks_argument(tmp_path, mixed_dataset):
    path = str(tmp_path / "in.zarr")
    mixed_dataset.to_zarr(path)
    with pytest.raises(ValueError, match="chunks"):
        xb.open_zarr(path, chunks={"time": 2})


def test_open_zarr_rejects_variables_with_different_chunks(tmp_path, mixed_dataset):
    path = str(tmp_path / "in.zarr")
    encoding = {
        "t2m": {"chunks": (4, 7, 6)},
        "count": {"chunks": (5, 6)},
    }
    mixed_dataset.to_zarr(path, encoding=encoding)
    with pytest.raises(ValueError, match="'time'") as excinfo:
        xb.open_zarr(path)
    assert "'t2m'" in str(excinfo.value)
    assert "'count'" in str(excinfo.value)


# setup_zarr and write_chunk_to_zarr, without Beam


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_setup_then_write_every_chunk_in_a_loop_round_trips(
    tmp_path, mixed_dataset, zarr_format
):
    path = str(tmp_path / "out.zarr")
    template = make_template(mixed_dataset)
    sizes = {"time": 4, "longitude": 2}
    xb.setup_zarr(template, path, sizes, zarr_format=zarr_format)
    for key, chunk in _chunks(mixed_dataset, sizes):
        xb.write_chunk_to_zarr(key, chunk, path, template)
    xarray.testing.assert_identical(_read(path), mixed_dataset)


def test_setup_zarr_writes_coordinates_and_attrs_but_no_data(tmp_path, mixed_dataset):
    path = str(tmp_path / "out.zarr")
    xb.setup_zarr(make_template(mixed_dataset), path, {"time": 5})
    written = _read(path)
    xarray.testing.assert_identical(
        written.coords.to_dataset(), mixed_dataset.coords.to_dataset()
    )
    assert written.attrs == mixed_dataset.attrs
    assert written.t2m.attrs == mixed_dataset.t2m.attrs
    assert written.t2m.isnull().all()
    assert zarr.open_group(path)["t2m"].nchunks_initialized == 0


def test_setup_zarr_writes_in_memory_data_variables_of_the_template(
    tmp_path, mixed_dataset
):
    path = str(tmp_path / "out.zarr")
    template = make_template(mixed_dataset, lazy_vars={"t2m"})
    xb.setup_zarr(template, path)
    written = _read(path)
    for name in ["count", "lsm", "valid", "scale"]:
        xarray.testing.assert_identical(written[name], mixed_dataset[name])


def test_write_chunk_to_zarr_accepts_transposed_chunks(tmp_path, mixed_dataset):
    path = str(tmp_path / "out.zarr")
    template = make_template(mixed_dataset)
    xb.setup_zarr(template, path, {"time": 5})
    for key, chunk in _chunks(mixed_dataset, {"time": 5}):
        flipped = chunk.transpose("longitude", "latitude", "time")
        xb.write_chunk_to_zarr(key, flipped, path, template)
    xarray.testing.assert_identical(_read(path), mixed_dataset)


@pytest.mark.parametrize(
    ("zarr_chunks", "zarr_shards", "unit"),
    [({"time": 5}, None, "chunks"), ({"time": 2}, {"time": 4}, "shards")],
    ids=["chunks", "shards"],
)
def test_write_chunk_to_zarr_checks_the_stores_real_layout(
    tmp_path, mixed_dataset, zarr_chunks, zarr_shards, unit
):
    path = str(tmp_path / "out.zarr")
    template = make_template(mixed_dataset)
    xb.setup_zarr(template, path, zarr_chunks, zarr_shards=zarr_shards)
    before = read_tree(path)
    chunk = mixed_dataset[["t2m"]].isel(time=slice(0, 2))
    with pytest.raises(ValueError, match=f"whole Zarr {unit}.*ConsolidateChunks"):
        xb.write_chunk_to_zarr(xb.Key({"time": 0}), chunk, path, template)
    assert read_tree(path) == before


@pytest.mark.parametrize(
    "make_store",
    [lambda tmp: tmp / "out.zarr", lambda tmp: zarr.storage.MemoryStore()],
    ids=["pathlib", "memory_store"],
)
def test_setup_and_write_accept_paths_and_zarr_stores(
    tmp_path, mixed_dataset, make_store
):
    store = make_store(tmp_path)
    template = make_template(mixed_dataset)
    xb.setup_zarr(template, store, {"time": 5})
    for key, chunk in _chunks(mixed_dataset, {"time": 5}):
        xb.write_chunk_to_zarr(key, chunk, store, template)
    xarray.testing.assert_identical(xarray.open_zarr(store).compute(), mixed_dataset)
    with pytest.raises(FileExistsError):
        xb.setup_zarr(template, store)


def test_relative_paths_are_resolved_against_the_working_directory(
    tmp_path, mixed_dataset, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    template = make_template(mixed_dataset)
    xb.setup_zarr(template, "relative.zarr", {"time": 5})
    for key, chunk in _chunks(mixed_dataset, {"time": 5}):
        xb.write_chunk_to_zarr(key, chunk, "relative.zarr", template)
    assert (tmp_path / "relative.zarr").is_dir()
    xarray.testing.assert_identical(_read("relative.zarr"), mixed_dataset)


@pytest.mark.parametrize(
    ("encoding", "check"),
    [
        (
            {"t2m": {"dtype": "float64"}},
            lambda group: group["t2m"].dtype == np.float64,
        ),
        (
            {"count": {"dtype": "int16"}},
            lambda group: group["count"].dtype == np.int16,
        ),
        (
            {"t2m": {"compressors": [zarr.codecs.ZstdCodec(level=5)]}},
            lambda group: (
                [type(c) for c in group["t2m"].compressors] == [zarr.codecs.ZstdCodec]
            ),
        ),
        (
            {"valid": {"units": "minutes since 2000-01-01", "dtype": "int64"}},
            lambda group: group["valid"].attrs["units"] == "minutes since 2000-01-01",
        ),
    ],
    ids=["float64", "int16", "zstd", "time_units"],
)
def test_setup_zarr_honours_encoding_and_values_read_back(
    tmp_path, mixed_dataset, encoding, check
):
    path = str(tmp_path / "out.zarr")
    template = make_template(mixed_dataset)
    xb.setup_zarr(template, path, {"time": 5}, encoding=encoding)
    for key, chunk in _chunks(mixed_dataset, {"time": 5}):
        xb.write_chunk_to_zarr(key, chunk, path, template)
    assert check(zarr.open_group(path))
    written = _read(path)
    for name, var in mixed_dataset.data_vars.items():
        np.testing.assert_array_equal(written[name].values, var.values)


def test_setup_zarr_packs_values_with_scale_factor(tmp_path, mixed_dataset):
    path = str(tmp_path / "out.zarr")
    template = make_template(mixed_dataset)
    encoding = {
        "t2m": {
            "dtype": "int16",
            "scale_factor": 0.01,
            "add_offset": 280.0,
            "_FillValue": np.int16(-32768),
        }
    }
    xb.setup_zarr(template, path, {"time": 5}, encoding=encoding)
    for key, chunk in _chunks(mixed_dataset, {"time": 5}):
        xb.write_chunk_to_zarr(key, chunk, path, template)
    assert zarr.open_group(path)["t2m"].dtype == np.int16
    written = _read(path)
    np.testing.assert_allclose(
        written.t2m.values, mixed_dataset.t2m.values, atol=0.006, equal_nan=True
    )


@pytest.mark.parametrize(
    ("encoding", "check"),
    [
        (
            {"t2m": {"dtype": "float64"}},
            lambda group: group["t2m"].dtype == np.float64,
        ),
        (
            {"t2m": {"compressors": [zarr.codecs.ZstdCodec(level=5)]}},
            lambda group: (
                [type(c) for c in group["t2m"].compressors] == [zarr.codecs.ZstdCodec]
            ),
        ),
    ],
    ids=["float64", "zstd"],
)
def test_chunks_to_zarr_honours_encoding(tmp_path, mixed_dataset, encoding, check):
    path = str(tmp_path / "out.zarr")
    _run(
        lambda p: (
            p
            | xb.DatasetToChunks(mixed_dataset, {"time": 5})
            | xb.ChunksToZarr(
                path, make_template(mixed_dataset), {"time": 5}, encoding=encoding
            )
        )
    )
    assert check(zarr.open_group(path))
    written = _read(path)
    np.testing.assert_array_equal(written.t2m.values, mixed_dataset.t2m.values)


# Store modes


def test_default_mode_refuses_an_existing_store_when_built(tmp_path, mixed_dataset):
    path = str(tmp_path / "out.zarr")
    template = make_template(mixed_dataset)
    xb.setup_zarr(template, path, {"time": 5})
    before = read_tree(path)
    p = beam.Pipeline("DirectRunner")
    chunks = p | xb.DatasetToChunks(mixed_dataset, {"time": 5})
    with pytest.raises(FileExistsError, match=re.escape(path)):
        _ = chunks | xb.ChunksToZarr(path, template, {"time": 5})
    assert read_tree(path) == before


@pytest.mark.parametrize(
    "make",
    [
        lambda path, template: xb.ChunksToZarr(path, None, mode="w-"),
        lambda path, template: xb.ChunksToZarr(path, template, mode="w-"),
    ],
    ids=["inferred_template", "explicit_w_minus"],
)
def test_refusing_modes_raise_file_exists_when_built(tmp_path, mixed_dataset, make):
    path = str(tmp_path / "out.zarr")
    template = make_template(mixed_dataset)
    xb.setup_zarr(template, path)
    before = read_tree(path)
    p = beam.Pipeline("DirectRunner")
    chunks = p | xb.DatasetToChunks(mixed_dataset, {"time": 5})
    with pytest.raises(FileExistsError, match=re.escape(path)):
        _ = chunks | make(path, template)
    assert read_tree(path) == before


def test_setup_zarr_refuses_an_existing_store(tmp_path, mixed_dataset):
    path = str(tmp_path / "out.zarr")
    template = make_template(mixed_dataset)
    xb.setup_zarr(template, path)
    before = read_tree(path)
    with pytest.raises(FileExistsError, match=re.escape(path)):
        xb.setup_zarr(template, path)
    assert read_tree(path) == before


def test_default_mode_refuses_an_existing_store_with_a_side_input_template(
    tmp_path, mixed_dataset
):
    path = str(tmp_path / "out.zarr")
    template = make_template(mixed_dataset)
    xb.setup_zarr(template, path, {"time": 5})
    before = read_tree(path)

    def build(p):
        side = p | "Template" >> beam.Create([template])
        return (
            p
            | xb.DatasetToChunks(mixed_dataset, {"time": 5})
            | xb.ChunksToZarr(path, beam.pvalue.AsSingleton(side), {"time": 5})
        )

    with pytest.raises(Exception, match="already exists"):
        _run(build)
    assert read_tree(path) == before


def test_default_mode_accepts_an_empty_directory(tmp_path, mixed_dataset):
    path = tmp_path / "out.zarr"
    path.mkdir()
    template = make_template(mixed_dataset)
    xb.setup_zarr(template, str(path), {"time": 5})
    for key, chunk in _chunks(mixed_dataset, {"time": 5}):
        xb.write_chunk_to_zarr(key, chunk, str(path), template)
    xarray.testing.assert_identical(_read(str(path)), mixed_dataset)


@pytest.mark.parametrize(
    "make",
    [
        lambda path, template: xb.ChunksToZarr(path, template),
        lambda path, template: xb.ChunksToZarr(path, template, mode="w"),
        lambda path, template: xb.ChunksToZarr(path, None, mode="w"),
    ],
    ids=["default", "w", "w_inferred_template"],
)
def test_a_non_zarr_directory_is_never_overwritten(tmp_path, mixed_dataset, make):
    path = tmp_path / "precious"
    (path / "sub").mkdir(parents=True)
    (path / "notes.txt").write_text("do not delete")
    (path / "sub" / "data.bin").write_bytes(b"\x00\x01")
    before = read_tree(path)
    p = beam.Pipeline("DirectRunner")
    chunks = p | xb.DatasetToChunks(mixed_dataset, {"time": 5})
    with pytest.raises(FileExistsError, match=re.escape(str(path))):
        _ = chunks | make(str(path), make_template(mixed_dataset))
    assert read_tree(path) == before


def test_setup_zarr_mode_w_never_overwrites_a_non_zarr_directory(
    tmp_path, mixed_dataset
):
    path = tmp_path / "precious"
    path.mkdir()
    (path / "notes.txt").write_text("do not delete")
    with pytest.raises(FileExistsError, match=re.escape(str(path))):
        xb.setup_zarr(make_template(mixed_dataset), str(path), mode="w")
    assert read_tree(path) == {"notes.txt": b"do not delete"}


def test_a_plain_file_at_the_store_path_is_refused(tmp_path, mixed_dataset):
    path = tmp_path / "out.zarr"
    path.write_text("not a store")
    for mode in [None, "w"]:
        with pytest.raises(FileExistsError):
            xb.setup_zarr(make_template(mixed_dataset), str(path), mode=mode)
    assert path.read_text() == "not a store"


def test_mode_w_replaces_an_existing_store(tmp_path, mixed_dataset):
    path = str(tmp_path / "out.zarr")
    old = xarray.Dataset(
        {"old": (("time", "x"), np.ones((3, 2)))}, coords={"time": [1, 2, 3]}
    )
    old.to_zarr(path)
    _run(
        lambda p: (
            p
            | xb.DatasetToChunks(mixed_dataset, {"time": 5})
            | xb.ChunksToZarr(path, make_template(mixed_dataset), {"time": 5}, mode="w")
        )
    )
    xarray.testing.assert_identical(_read(path), mixed_dataset)


def test_mode_r_plus_completes_a_partially_written_store(tmp_path, mixed_dataset):
    path = str(tmp_path / "out.zarr")
    template = make_template(mixed_dataset)
    sizes = {"time": 4}

    def write(keep, **kwargs):
        return lambda p: (
            p
            | xb.DatasetToChunks(mixed_dataset, sizes)
            | beam.Filter(lambda kc: keep(kc[0].offsets["time"]))
            | xb.ChunksToZarr(path, template, sizes, **kwargs)
        )

    _run(write(lambda offset: offset < 8))
    partial = _read(path)
    xarray.testing.assert_identical(
        partial.isel(time=slice(0, 8)), mixed_dataset.isel(time=slice(0, 8))
    )
    assert partial.t2m.isel(time=slice(8, None)).isnull().all()

    _run(write(lambda offset: offset >= 8, mode="r+"))
    xarray.testing.assert_identical(_read(path), mixed_dataset)


def test_needs_setup_false_writes_into_a_store_set_up_beforehand(
    tmp_path, mixed_dataset
):
    path = str(tmp_path / "out.zarr")
    template = make_template(mixed_dataset)
    xb.setup_zarr(template, path, {"time": 5, "latitude": 4})
    _run(
        lambda p: (
            p
            | xb.DatasetToChunks(mixed_dataset, {"time": 5, "latitude": 4})
            | xb.ChunksToZarr(path, template, needs_setup=False)
        )
    )
    xarray.testing.assert_identical(_read(path), mixed_dataset)


@pytest.mark.parametrize(
    "kwargs", [{"mode": "r+"}, {"needs_setup": False}], ids=["r_plus", "no_setup"]
)
def test_writing_into_a_missing_store_raises_file_not_found_when_built(
    tmp_path, mixed_dataset, kwargs
):
    path = str(tmp_path / "missing.zarr")
    p = beam.Pipeline("DirectRunner")
    chunks = p | xb.DatasetToChunks(mixed_dataset, {"time": 5})
    with pytest.raises(FileNotFoundError, match=re.escape(path)):
        _ = chunks | xb.ChunksToZarr(path, make_template(mixed_dataset), **kwargs)
    assert not os.path.exists(path)


def test_setup_zarr_r_plus_without_a_store_raises_file_not_found(
    tmp_path, mixed_dataset
):
    path = str(tmp_path / "missing.zarr")
    with pytest.raises(FileNotFoundError):
        xb.setup_zarr(make_template(mixed_dataset), path, mode="r+")


def _with_float64_t2m(dataset):
    return dataset.assign(t2m=dataset.t2m.astype(np.float64))


def _with_boolean_t2m(dataset):
    return dataset.assign(t2m=dataset.t2m > 280)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda t: make_template(_with_boolean_t2m(t)), "bool"),
        (lambda t: replace_template_dims(make_template(t), time=12), "'time': 12"),
        (lambda t: make_template(t.assign(extra=t.t2m * 2)), "extra"),
        (
            lambda t: make_template(
                t.assign_coords(time=t.time.values + np.timedelta64(1, "D"))
            ),
            "'time' coordinate",
        ),
        (lambda t: make_template(t.isel(longitude=slice(0, 3))), "'longitude': 3"),
    ],
    ids=["dtype", "shape", "new_variable", "coordinate_values", "fewer_elements"],
)
def test_mode_r_plus_rejects_a_template_that_does_not_match_the_store(
    tmp_path, mixed_dataset, change, named
):
    path = str(tmp_path / "out.zarr")
    xb.setup_zarr(make_template(mixed_dataset), path, {"time": 5})
    before = read_tree(path)
    p = beam.Pipeline("DirectRunner")
    chunks = p | xb.DatasetToChunks(mixed_dataset, {"time": 5})
    with pytest.raises(ValueError, match=named):
        _ = chunks | xb.ChunksToZarr(path, change(mixed_dataset), mode="r+")
    assert read_tree(path) == before


def test_setup_zarr_r_plus_rejects_zarr_chunks_that_differ_from_the_store(
    tmp_path, mixed_dataset
):
    path = str(tmp_path / "out.zarr")
    template = make_template(mixed_dataset)
    xb.setup_zarr(template, path, {"time": 5})
    with pytest.raises(ValueError, match="'time'"):
        xb.setup_zarr(template, path, {"time": 2}, mode="r+")


@pytest.mark.parametrize("mode", ["w", "w-"])
def test_needs_setup_false_conflicts_with_a_creating_mode(
    tmp_path, mixed_dataset, mode
):
    with pytest.raises(ValueError, match="needs_setup"):
        xb.ChunksToZarr(
            str(tmp_path / "out.zarr"),
            make_template(mixed_dataset),
            needs_setup=False,
            mode=mode,
        )


@pytest.mark.parametrize("mode", ["a", "x", "r", "W", ""])
def test_an_unknown_mode_is_rejected(tmp_path, mixed_dataset, mode):
    path = str(tmp_path / "out.zarr")
    template = make_template(mixed_dataset)
    with pytest.raises(ValueError, match="mode"):
        xb.ChunksToZarr(path, template, mode=mode)
    with pytest.raises(ValueError, match="mode"):
        xb.setup_zarr(template, path, mode=mode)
    assert not os.path.exists(path)


def test_building_the_transforms_writes_nothing(tmp_path, mixed_dataset):
    path = str(tmp_path / "out.zarr")
    p = beam.Pipeline("DirectRunner")
    _ = (
        p
        | xb.DatasetToChunks(mixed_dataset, {"time": 5})
        | xb.ChunksToZarr(path, make_template(mixed_dataset), {"time": 5})
    )
    _ = p | "Whole" >> xb.DatasetToZarr(mixed_dataset, str(tmp_path / "b.zarr"))
    assert os.listdir(tmp_path) == []


# Construction-time argument checks


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"zarr_chunks": {"level": 2}}, "level"),
        ({"zarr_chunks": {"time": 0}}, "time"),
        ({"zarr_chunks": {"time": -2}}, "time"),
        ({"zarr_chunks": {"time": 2.5}}, "time"),
        ({"zarr_shards": {"level": 4}}, "level"),
        (
            {"zarr_chunks": {"time": 2}, "zarr_shards": {"time": 4}, "zarr_format": 2},
            "zarr_format",
        ),
        ({"zarr_chunks": {"time": 2}, "zarr_shards": {"time": 5}}, "multiple"),
        ({"encoding": {"nope": {"dtype": "float64"}}}, "nope"),
        ({"zarr_format": 4}, "zarr_format"),
        ({"num_threads": 0}, "num_threads"),
    ],
    ids=[
        "unknown_chunk_dim",
        "zero_chunk",
        "negative_chunk",
        "float_chunk",
        "unknown_shard_dim",
        "shards_need_v3",
        "shards_not_multiple",
        "encoding_unknown_variable",
        "bad_format",
        "zero_threads",
    ],
)
def test_chunks_to_zarr_rejects_bad_arguments_when_built(
    tmp_path, mixed_dataset, kwargs, named
):
    path = str(tmp_path / "out.zarr")
    with pytest.raises(ValueError, match=named):
        xb.ChunksToZarr(path, make_template(mixed_dataset), **kwargs)
    assert not os.path.exists(path)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"zarr_chunks": {"level": 2}}, "level"),
        ({"zarr_chunks": {"time": 0}}, "time"),
        (
            {"zarr_chunks": {"time": 2}, "zarr_shards": {"time": 4}, "zarr_format": 2},
            "zarr_format",
        ),
        ({"zarr_chunks": {"time": 2}, "zarr_shards": {"time": 3}}, "multiple"),
        ({"encoding": {"nope": {"dtype": "float64"}}}, "nope"),
    ],
    ids=[
        "unknown_chunk_dim",
        "zero_chunk",
        "shards_need_v3",
        "shards_not_multiple",
        "encoding_unknown_variable",
    ],
)
def test_dataset_to_zarr_and_setup_zarr_reject_bad_arguments(
    tmp_path, mixed_dataset, kwargs, named
):
    path = str(tmp_path / "out.zarr")
    with pytest.raises(ValueError, match=named):
        xb.DatasetToZarr(mixed_dataset, path, **kwargs)
    with pytest.raises(ValueError, match=named):
        xb.setup_zarr(make_template(mixed_dataset), path, **kwargs)
    assert not os.path.exists(path)


@pytest.mark.parametrize(
    "template",
    [lambda ds: ds.t2m, lambda ds: {"t2m": ds.t2m}, lambda ds: "template.zarr"],
    ids=["dataarray", "dict", "str"],
)
def test_chunks_to_zarr_rejects_a_template_of_the_wrong_type(
    tmp_path, mixed_dataset, template
):
    with pytest.raises(TypeError, match="template"):
        xb.ChunksToZarr(str(tmp_path / "out.zarr"), template(mixed_dataset))


def test_setup_zarr_rejects_a_template_of_the_wrong_type(tmp_path, mixed_dataset):
    with pytest.raises(TypeError, match="template"):
        xb.setup_zarr(mixed_dataset.t2m, str(tmp_path / "out.zarr"))


def test_chunks_to_zarr_rejects_a_store_of_the_wrong_type(mixed_dataset):
    with pytest.raises(TypeError, match="store"):
        xb.ChunksToZarr(42, make_template(mixed_dataset))


# validate_zarr_chunk


def _t2m_chunk(dataset, **region):
    return dataset[["t2m"]].isel({d: slice(*r) for d, r in region.items()})


@pytest.mark.parametrize(
    ("region", "zarr_chunks", "zarr_shards", "dim", "unit"),
    [
        ({"time": (0, 5)}, {"time": 10}, None, "time", "chunks"),
        ({"time": (0, 5)}, None, None, "time", "chunks"),
        ({"time": (2, 6)}, {"time": 4}, None, "time", "chunks"),
        ({"time": (4, 6)}, {"time": 4}, None, "time", "chunks"),
        ({"latitude": (1, 3)}, {"latitude": 2}, None, "latitude", "chunks"),
        ({"longitude": (3, 6)}, {"longitude": 2}, None, "longitude", "chunks"),
        ({"time": (0, 2)}, {"time": 2}, {"time": 4}, "time", "shards"),
        ({"time": (2, 6)}, {"time": 2}, {"time": 4}, "time", "shards"),
    ],
    ids=[
        "half_a_chunk",
        "default_whole_dim_chunks",
        "offset_not_multiple",
        "partial_chunk_not_last",
        "descending_latitude",
        "offset_3_of_2",
        "one_chunk_of_a_shard",
        "straddles_two_shards",
    ],
)
def test_validate_zarr_chunk_rejects_chunks_not_covering_whole_blocks(
    mixed_dataset, region, zarr_chunks, zarr_shards, dim, unit
):
    key = xb.Key({d: r[0] for d, r in region.items()})
    chunk = _t2m_chunk(mixed_dataset, **region)
    with pytest.raises(ValueError) as excinfo:
        xb.validate_zarr_chunk(
            key, chunk, make_template(mixed_dataset), zarr_chunks, zarr_shards
        )
    message = str(excinfo.value)
    assert repr(key) in message
    assert "'t2m'" in message
    assert f"{dim!r}" in message
    assert unit in message
    assert "ConsolidateChunks" in message
    assert "Rechunk" in message


@pytest.mark.parametrize(
    ("region", "zarr_chunks", "zarr_shards", "template_chunks"),
    [
        ({"time": (8, 10)}, {"time": 4}, None, None),
        ({"time": (0, 8)}, {"time": 4}, None, None),
        ({"time": (4, 8), "latitude": (4, 7)}, {"time": 4, "latitude": 4}, None, None),
        ({"time": (4, 8)}, {"time": 2}, {"time": 4}, None),
        ({"time": (8, 10)}, {"time": 2}, {"time": 4}, None),
        ({}, {"time": -1}, None, None),
        ({"time": (5, 10)}, None, None, {"time": 5}),
        ({"time": (0, 10)}, None, None, {"time": 5}),
    ],
    ids=[
        "ragged_last_chunk",
        "two_chunks",
        "two_dims_ragged_latitude",
        "one_shard",
        "ragged_last_shard",
        "whole_dim",
        "template_dask_chunks",
        "all_template_dask_chunks",
    ],
)
def test_validate_zarr_chunk_accepts_chunks_covering_whole_blocks(
    mixed_dataset, region, zarr_chunks, zarr_shards, template_chunks
):
    source = mixed_dataset.chunk(template_chunks) if template_chunks else mixed_dataset
    key = xb.Key({d: r[0] for d, r in region.items()})
    chunk = mixed_dataset.isel({d: slice(*r) for d, r in region.items()})
    xb.validate_zarr_chunk(key, chunk, make_template(source), zarr_chunks, zarr_shards)


def test_validate_zarr_chunk_accepts_variables_missing_from_a_chunk(mixed_dataset):
    chunk = mixed_dataset[["count"]].isel(time=slice(5, 10))
    xb.validate_zarr_chunk(
        xb.Key({"time": 5}), chunk, make_template(mixed_dataset), {"time": 5}
    )


def test_validate_zarr_chunk_rejects_an_unknown_data_variable(mixed_dataset):
    key = xb.Key({"time": 0})
    chunk = mixed_dataset.isel(time=slice(0, 5))
    chunk["extra"] = chunk.t2m * 2
    with pytest.raises(ValueError, match="'extra'") as excinfo:
        xb.validate_zarr_chunk(key, chunk, make_template(mixed_dataset), {"time": 5})
    assert repr(key) in str(excinfo.value)


def test_validate_zarr_chunk_rejects_a_wrong_dtype(mixed_dataset):
    key = xb.Key({"time": 5})
    chunk = _with_float64_t2m(mixed_dataset.isel(time=slice(5, 10)))
    with pytest.raises(ValueError, match="'t2m'") as excinfo:
        xb.validate_zarr_chunk(key, chunk, make_template(mixed_dataset), {"time": 5})
    message = str(excinfo.value)
    assert repr(key) in message
    assert "float64" in message
    assert "float32" in message


@pytest.mark.parametrize(
    ("offsets", "region"),
    [
        ({"time": 4}, {"time": (0, 4)}),
        ({"time": 0}, {"time": (4, 8)}),
        ({"latitude": 4}, {"latitude": (0, 3)}),
    ],
    ids=["time_shifted_forward", "time_shifted_back", "latitude_shifted"],
)
def test_validate_zarr_chunk_rejects_labels_that_differ_from_the_template(
    mixed_dataset, offsets, region
):
    key = xb.Key(offsets)
    chunk = mixed_dataset.isel({d: slice(*r) for d, r in region.items()})
    (dim,) = offsets
    with pytest.raises(ValueError, match=f"'{dim}'") as excinfo:
        xb.validate_zarr_chunk(
            key, chunk, make_template(mixed_dataset), {"time": 4, "latitude": 4}
        )
    assert repr(key) in str(excinfo.value)


def test_validate_zarr_chunk_rejects_a_chunk_beyond_the_template(mixed_dataset):
    key = xb.Key({"time": 8})
    chunk = mixed_dataset[["t2m"]].isel(time=slice(0, 4)).drop_vars("time")
    with pytest.raises(ValueError, match="'time'"):
        xb.validate_zarr_chunk(key, chunk, make_template(mixed_dataset), {"time": 4})


def test_validate_zarr_chunk_rejects_a_variable_with_other_dims(mixed_dataset):
    key = xb.Key({"time": 0})
    chunk = mixed_dataset[["t2m"]].isel(time=slice(0, 5), longitude=0)
    with pytest.raises(ValueError, match="'t2m'"):
        xb.validate_zarr_chunk(key, chunk, make_template(mixed_dataset), {"time": 5})


def test_validate_zarr_chunk_accepts_a_transposed_chunk(mixed_dataset):
    chunk = mixed_dataset.isel(time=slice(0, 5)).transpose()
    xb.validate_zarr_chunk(
        xb.Key({"time": 0}), chunk, make_template(mixed_dataset), {"time": 5}
    )


def test_validate_zarr_chunk_rejects_a_key_that_is_not_a_key(mixed_dataset):
    with pytest.raises(TypeError):
        xb.validate_zarr_chunk({"time": 0}, mixed_dataset, make_template(mixed_dataset))


# Invalid chunks inside a pipeline


def test_misaligned_chunks_fail_the_pipeline_before_being_written(
    tmp_path, mixed_dataset
):
    path = str(tmp_path / "out.zarr")
    with pytest.raises(Exception, match="ConsolidateChunks") as excinfo:
        _run(
            lambda p: (
                p
                | xb.DatasetToChunks(mixed_dataset, {"time": (5, 3, 2)})
                | xb.ChunksToZarr(path, make_template(mixed_dataset), {"time": 5})
            )
        )
    message = str(excinfo.value)
    assert re.search(r"Key\(offsets=\{.*'time': [58]\}", message)
    assert re.search(r"variable '(t2m|count|valid)'", message)
    assert "'time'" in message
    for name, block in [("t2m", (1, 0, 0)), ("count", (1, 0)), ("valid", (1,))]:
        assert not _chunk_written(path, name, block), name
    assert _read(path).t2m.isel(time=slice(5, None)).isnull().all()


@pytest.mark.parametrize(
    ("spoil", "named"),
    [
        (
            lambda key, chunk: (key, _with_float64_t2m(chunk)),
            "dtype float64",
        ),
        (
            lambda key, chunk: (
                key.with_offsets(time=(key.offsets["time"] + 5) % 10),
                chunk,
            ),
            "coordinate of chunk",
        ),
        (
            lambda key, chunk: (key, chunk.assign(extra=chunk.t2m)),
            "'extra'",
        ),
    ],
    ids=["dtype", "labels", "unknown_variable"],
)
def test_chunks_disagreeing_with_the_template_fail_before_any_write(
    tmp_path, mixed_dataset, spoil, named
):
    path = str(tmp_path / "out.zarr")
    with pytest.raises(Exception, match=named):
        _run(
            lambda p: (
                p
                | xb.DatasetToChunks(mixed_dataset, {"time": 5})
                | beam.MapTuple(spoil)
                | xb.ChunksToZarr(path, make_template(mixed_dataset), {"time": 5})
            )
        )
    group = zarr.open_group(path)
    for name in mixed_dataset.data_vars:
        assert group[name].nchunks_initialized == 0, name
