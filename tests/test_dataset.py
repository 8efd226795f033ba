"""The high-level Dataset: every method against plain xarray on the same data."""

import os
import re

import apache_beam as beam
import numpy as np
import pytest
import xarray
from apache_beam.options.pipeline_options import PipelineOptions
from helpers import read_tree

import xarray_beam as xb
from xarray_beam import synthetic
from xarray_beam.beam import runners
from xarray_beam.dataset import Dataset


@pytest.fixture
def numeric(mixed_dataset):
    """The mixed dataset without its datetime variable (which reductions drop)."""
    return mixed_dataset.drop_vars("valid")


def run(transform: beam.PTransform, **options) -> None:
    with beam.Pipeline("DirectRunner", options=PipelineOptions([], **options)) as p:
        _ = p | transform


def count_elements(ds: Dataset) -> int:
    return len(runners.collect(lambda p: p | ds.ptransform))


def step_labels(ds: Dataset) -> list[str]:
    return ds.ptransform.label.split("|")


# --- construction and properties --------------------------------------------------


@pytest.mark.parametrize("split_vars", [False, True])
def test_from_xarray_round_trip(mixed_dataset, split_vars):
    ds = Dataset.from_xarray(mixed_dataset, {"time": 4, "latitude": 3}, split_vars)
    assert ds.collect_with_direct_runner().identical(mixed_dataset)


@pytest.mark.parametrize("split_vars", [False, True])
def test_properties_match_the_chunks(mixed_dataset, split_vars):
    ds = Dataset.from_xarray(mixed_dataset, {"time": 4, "latitude": 3}, split_vars)
    assert ds.sizes == dict(mixed_dataset.sizes)
    assert ds.chunks == {"time": 4, "latitude": 3, "longitude": 6}
    itemsizes = [v.dtype.itemsize for v in mixed_dataset.data_vars.values()]
    assert ds.itemsize == (max(itemsizes) if split_vars else sum(itemsizes))
    elements = runners.collect(lambda p: p | ds.ptransform)
    assert ds.chunk_count == len(elements)
    biggest = max(
        (v.nbytes for _, c in elements for v in c.data_vars.values())
        if split_vars
        else (c.nbytes - sum(x.nbytes for x in c.coords.values()) for _, c in elements)
    )
    assert ds.bytes_per_chunk == biggest


def test_repr_summarises(mixed_dataset):
    ds = Dataset.from_xarray(mixed_dataset, {"time": 5}).mean("time")
    text = repr(ds)
    assert "FromXarray|Mean(time)" in text
    assert f"{ds.chunk_count} chunks" in text
    assert "t2m" in text and "latitude" in text


def test_constructor_wraps_a_ptransform(numeric):
    ds = Dataset(
        xb.make_template(numeric),
        {"time": 5},
        False,
        xb.DatasetToChunks(numeric, {"time": 5}),
    )
    assert ds.chunks["time"] == 5
    xarray.testing.assert_identical(ds.collect_with_direct_runner(), numeric)
    with pytest.raises(TypeError, match="ptransform"):
        Dataset(numeric, {"time": 5}, False, "not a transform")
    with pytest.raises(TypeError, match="template"):
        Dataset({"time": 5}, {"time": 5}, False, beam.Create([]))


def test_building_runs_nothing_and_writes_nothing(tmp_path, numeric):
    target = tmp_path / "out.zarr"
    ds = Dataset.from_xarray(numeric, {"time": 5}).map_blocks(lambda c: c + 1)
    ds.rechunk({"time": -1}).mean("latitude").to_zarr(target)
    assert not target.exists()
    assert os.listdir(tmp_path) == []


def test_labels_are_deterministic_and_unique(numeric):
    def build():
        ds = Dataset.from_xarray(numeric, {"time": 5})
        return ds.map_blocks(np.abs).map_blocks(np.abs).rechunk({"time": 10}).mean()

    first, second = build(), build()
    assert first.ptransform.label == second.ptransform.label
    assert step_labels(first) == [
        "FromXarray",
        "MapBlocks(absolute)",
        "MapBlocks(absolute)_2",
        "Rechunk",
        "Mean(time,latitude,longitude)",
    ]


# --- normalize_chunks through the API ---------------------------------------------


def test_chunks_accept_bytes_and_ellipsis(numeric):
    ds = Dataset.from_xarray(numeric, {"time": 2, ...: -1})
    assert ds.chunks == {"time": 2, "latitude": 7, "longitude": 6}
    assert Dataset.from_xarray(numeric, 3).chunks == {
        "time": 3,
        "latitude": 3,
        "longitude": 3,
    }
    with pytest.raises(ValueError, match="auto"):
        Dataset.from_xarray(numeric, {"time": "auto"})
    with pytest.raises(ValueError, match="empty"):
        Dataset.from_xarray(numeric, {"time": ""})
    with pytest.raises(ValueError, match="nope"):
        Dataset.from_xarray(numeric, {"nope": 2})


# --- from_ptransform --------------------------------------------------------------


def _pieces(dataset, chunks, split_vars=False):
    return runners.collect(
        lambda p: p | xb.DatasetToChunks(dataset, chunks, split_vars=split_vars)
    )


@pytest.mark.parametrize("split_vars", [False, True])
def test_from_ptransform_accepts_matching_chunks(numeric, split_vars):
    pieces = _pieces(numeric, {"time": 4}, split_vars)
    ds = Dataset.from_ptransform(
        beam.Create(pieces), numeric, {"time": 4}, split_vars=split_vars
    )
    assert step_labels(ds) == ["Create", "Validate"]
    xarray.testing.assert_identical(ds.collect_with_direct_runner(), numeric)


def _mutate(pieces, index, change):
    key, chunk = pieces[index]
    pieces = list(pieces)
    pieces[index] = change(key, chunk)
    return pieces


@pytest.mark.parametrize(
    "change, split_vars, message",
    [
        (lambda k, c: (k.with_offsets(time=2), c), False, "not a multiple"),
        (lambda k, c: (k, c.isel(time=slice(0, 3))), False, "elements along 'time'"),
        (lambda k, c: (k.with_offsets(level=0), c), False, "offsets for"),
        (lambda k, c: (k, c.drop_vars("lsm")), False, r"missing \['lsm'\]"),
        (lambda k, c: (k, c.assign(t2m=c.t2m.astype("f8"))), False, "dtype"),
        (lambda k, c: (k, c.transpose("longitude", ...)), False, "dims"),
        (lambda k, c: (k.replace(vars={"t2m"}), c), False, "split_vars=False"),
        (lambda k, c: (k.replace(vars={"t2m", "lsm"}), c), True, "exactly one"),
        (lambda k, c: (k.replace(vars={"nope"}), c), True, "nope"),
    ],
)
def test_from_ptransform_names_the_bad_chunk(numeric, change, split_vars, message):
    pieces = _pieces(numeric, {"time": 4}, split_vars)
    pieces.sort(key=lambda e: (str(e[0].vars), sorted(e[0].offsets.items())))
    index = next(
        i for i, (k, _) in enumerate(pieces) if k.vars in (None, frozenset({"t2m"}))
    )
    bad = _mutate(pieces, index, change)
    bad_key = bad[index][0]
    ds = Dataset.from_ptransform(beam.Create(bad), numeric, {"time": 4}, split_vars)
    with pytest.raises(Exception, match=message) as info:
        ds.collect_with_direct_runner()
    # The key is named (its dimensions in any order: the coder sorts them).
    named = re.search(r"chunk (Key\([^)]*\))", str(info.value))
    assert named is not None
    assert named.group(1) == repr(xb.Key(**_sorted_parts(bad_key)))


def _sorted_parts(key):
    parts = {"offsets": dict(sorted(key.offsets.items()))} if key.offsets else {}
    return {**parts, "vars": key.vars}


def test_from_ptransform_rejects_non_keys(numeric):
    ds = Dataset.from_ptransform(beam.Create([("a", numeric)]), numeric, {"time": 4})
    with pytest.raises(Exception, match=r"expected \(Key, xarray.Dataset\)"):
        ds.collect_with_direct_runner()
    with pytest.raises(TypeError, match="PTransform"):
        Dataset.from_ptransform([1, 2], numeric, {"time": 4})


# --- reductions -------------------------------------------------------------------


@pytest.mark.parametrize("split_vars", [False, True])
@pytest.mark.parametrize("stat", ["mean", "sum", "count", "min", "max", "var", "std"])
def test_reductions_match_xarray(numeric, stat, split_vars):
    ds = Dataset.from_xarray(numeric, {"time": 3, "latitude": 4}, split_vars)
    dims = ["time", "longitude"]
    result = getattr(ds, stat)(dims)
    expected = getattr(numeric, stat)(dims)
    actual = result.collect_with_direct_runner()
    xarray.testing.assert_allclose(actual, expected.astype(actual.dtypes))
    for name, var in result.template.data_vars.items():
        assert actual[name].dtype == var.dtype, name
        assert actual[name].dims == var.dims, name
    assert result.chunks == {"latitude": 4}


def test_reduction_options_and_weights(era5_small):
    weights = np.cos(np.deg2rad(era5_small.latitude)).clip(min=0)
    ds = Dataset.from_xarray(era5_small, {"time": 12, "latitude": 5})
    actual = ds.mean(["latitude", "longitude"], weights=weights)
    expected = era5_small.weighted(weights).mean(["latitude", "longitude"])
    xarray.testing.assert_allclose(
        actual.collect_with_direct_runner(), expected, rtol=1e-5, atol=1e-5
    )
    var = ds.var("time", ddof=1, skipna=False).collect_with_direct_runner()
    xarray.testing.assert_allclose(
        var, era5_small.var("time", ddof=1, skipna=False), rtol=1e-4, atol=1e-6
    )


def test_reduction_errors_at_build_time(numeric):
    ds = Dataset.from_xarray(numeric, {"time": 5})
    with pytest.raises(ValueError, match="nope"):
        ds.mean("nope")
    with pytest.raises(ValueError, match="weights"):
        ds.min("time", weights=xarray.DataArray(np.ones(10), dims="time"))
    with pytest.raises(ValueError, match="level"):
        ds.mean("time", weights=xarray.DataArray(np.ones(3), dims="level"))


# --- climatology ------------------------------------------------------------------


@pytest.mark.parametrize("split_vars", [False, True])
def test_climatology_matches_xarray_groupby(era5_small, split_vars):
    ds = Dataset.from_xarray(era5_small, {"time": 10, "latitude": 7}, split_vars)
    result = ds.climatology(("month", "hour"))
    labelled = era5_small.assign_coords(
        month=("time", era5_small.indexes["time"].month),
        hour=("time", era5_small.indexes["time"].hour),
    )
    expected = labelled.groupby(["month", "hour"]).mean()
    actual = result.collect_with_direct_runner()
    xarray.testing.assert_allclose(
        actual,
        expected.transpose(*actual["2m_temperature"].dims).astype(actual.dtypes),
        rtol=1e-5,
    )
    assert result.chunks == {"month": 1, "hour": 24, "latitude": 7, "longitude": 36}


def test_groupby_spelling(era5_small):
    ds = Dataset.from_xarray(era5_small, {"time": 10})
    actual = ds.groupby("time.hour").max().collect_with_direct_runner()
    expected = era5_small.groupby("time.hour").max()
    xarray.testing.assert_allclose(actual, expected)
    with pytest.raises(ValueError, match="'<dim>.<component>'"):
        ds.groupby("hour")
    with pytest.raises(ValueError, match="one dimension"):
        ds.groupby(["time.month", "valid.hour"])


def test_climatology_of_split_variables_needs_the_time_dim(numeric):
    ds = Dataset.from_xarray(numeric, {"time": 5}, split_vars=True)
    with pytest.raises(ValueError, match=r"\['lsm', 'scale'\] lack it"):
        ds.climatology("hour")


# --- map_blocks -------------------------------------------------------------------


@pytest.mark.parametrize("split_vars", [False, True])
def test_map_blocks_infers_the_template(numeric, split_vars):
    ds = Dataset.from_xarray(numeric, {"time": 4, "latitude": 3}, split_vars)
    result = ds.map_blocks(lambda c: c * 2 + 1)
    assert result.chunks == ds.chunks
    xarray.testing.assert_identical(
        result.collect_with_direct_runner(), numeric * 2 + 1
    )


def test_map_blocks_resizes_whole_dims_and_adds_dims(era5_small):
    ds = Dataset.from_xarray(era5_small, {"time": 12, "longitude": -1})

    def coarsen(chunk):
        return chunk.coarsen(longitude=4).mean().expand_dims(member=2)

    result = ds.map_blocks(coarsen)
    assert result.chunks == {"time": 12, "latitude": 19, "longitude": 9, "member": 2}
    expected = coarsen(era5_small)
    xarray.testing.assert_allclose(
        result.collect_with_direct_runner().transpose(*expected.dims), expected
    )


def test_map_blocks_with_explicit_template(numeric):
    ds = Dataset.from_xarray(numeric[["t2m"]], {"time": 5})

    def square(chunk):
        return chunk.assign(t2m=chunk.t2m.astype("f8") ** 2)

    template = xb.make_template(square(numeric[["t2m"]]))
    actual = ds.map_blocks(square, template=template).collect_with_direct_runner()
    xarray.testing.assert_identical(actual, square(numeric[["t2m"]]))


def test_map_blocks_errors(numeric):
    ds = Dataset.from_xarray(numeric, {"time": 5})
    with pytest.raises(ValueError, match="pass template="):
        ds.map_blocks(lambda c: c.assign(t2m=c.t2m.copy(data=c.t2m.values)))
    with pytest.raises(ValueError, match="drops dimension 'time'"):
        ds.map_blocks(lambda c: c.mean("time"))
    with pytest.raises(ValueError, match="changes the size of 'time'"):
        ds.map_blocks(lambda c: c.isel(time=slice(0, 3)))  # 2 chunks of 1.5
    lying = ds.map_blocks(
        lambda c: c.isel(time=slice(0, 1)), template=xb.make_template(numeric)
    )
    with pytest.raises(Exception, match=r"returned 1 elements along 'time' for chunk"):
        lying.collect_with_direct_runner()


# --- rechunk ----------------------------------------------------------------------


def test_rechunk_to_same_chunks_is_a_no_op(numeric):
    ds = Dataset.from_xarray(numeric, {"time": 5})
    assert ds.rechunk({"time": 5}) is ds


def test_rechunk_of_a_source_reads_it_again(numeric):
    ds = Dataset.from_xarray(numeric, {"time": 5})
    rechunked = ds.rechunk({"time": 3, "latitude": 2})
    assert step_labels(rechunked) == ["FromXarray"]  # no shuffle
    assert rechunked.chunks == {"time": 3, "latitude": 2, "longitude": 6}
    xarray.testing.assert_identical(rechunked.collect_with_direct_runner(), numeric)


@pytest.mark.parametrize("split_vars", [False, True])
def test_rechunk_after_a_step_shuffles(numeric, split_vars):
    ds = Dataset.from_xarray(numeric, {"time": 5}, split_vars).map_blocks(lambda c: c)
    rechunked = ds.rechunk({"time": -1, "latitude": 2, "longitude": 4}, max_mem=2**12)
    assert step_labels(rechunked)[-1] == "Rechunk"
    assert rechunked.chunks == {"time": 10, "latitude": 2, "longitude": 4}
    elements = runners.collect(lambda p: p | rechunked.ptransform)
    assert len(elements) == rechunked.chunk_count
    for key, chunk in elements:
        for dim, offset in key.offsets.items():
            assert chunk.sizes[dim] == min(
                rechunked.chunks[dim], ds.sizes[dim] - offset
            )
    _, whole = xb.consolidate_fully(elements)
    xarray.testing.assert_identical(whole, numeric)


def test_rechunk_of_zarr_source_rereads_whole_stored_chunks(tmp_path, numeric):
    path = tmp_path / "src.zarr"
    numeric.chunk({"time": 2}).to_zarr(path)
    ds = Dataset.from_zarr(path)
    assert ds.chunks["time"] == 2
    assert step_labels(ds.rechunk({"time": 4})) == ["FromZarr(src.zarr)"]
    assert step_labels(ds.rechunk({"time": 3}))[-1] == "Rechunk"
    byte_sized = xb.normalize_chunks(
        {"time": "1kB"}, ds.template, previous_chunks=ds.chunks
    )
    assert ds.rechunk({"time": "1kB"}).chunks == byte_sized


def test_zarr_to_zarr_rechunk_goes_store_to_store(tmp_path):
    source = synthetic.write_era5_like(
        str(tmp_path / "era5.zarr"), hours=48, resolution=2.5
    )
    target = tmp_path / "pencils.zarr"
    pencils = {"time": -1, "latitude": 23, "longitude": 45}
    ds = Dataset.from_zarr(tmp_path / "era5.zarr").rechunk(pencils, max_mem=2**23)
    write = ds.to_zarr(target)
    assert write.label == "FromZarr(era5.zarr)|Rechunk|ToZarr(pencils.zarr)"
    assert isinstance(write.steps[0][1], xb.RechunkZarr)
    run(write)
    written = xarray.open_zarr(target)
    xarray.testing.assert_identical(written.compute(), source.compute())
    assert written["2m_temperature"].encoding["chunks"] == (48, 23, 45)
    # With other Zarr chunks than the dataset's, the shuffle path writes it.
    other = ds.to_zarr(tmp_path / "other.zarr", zarr_chunks={"latitude": 1})
    assert isinstance(other.steps[-1][1], xb.ChunksToZarr)


def test_chained_rechunks_plan_from_the_source(tmp_path, numeric):
    numeric.chunk({"time": 2}).to_zarr(tmp_path / "src.zarr")
    ds = Dataset.from_zarr(tmp_path / "src.zarr")
    twice = ds.rechunk({"latitude": 1}).rechunk({"time": 5})
    assert step_labels(twice) == ["FromZarr(src.zarr)", "Rechunk"]
    assert twice.chunks == {"time": 5, "latitude": 1, "longitude": 6}


# --- variables --------------------------------------------------------------------


def test_split_and_consolidate_variables(numeric):
    ds = Dataset.from_xarray(numeric, {"time": 4, "latitude": 3}).map_blocks(
        lambda c: c
    )
    split = ds.split_variables()
    assert split.split_vars and split.split_variables() is split
    assert step_labels(split)[-1] == "SplitVariables"
    assert count_elements(split) == split.chunk_count
    back = split.consolidate_variables()
    assert not back.split_vars and back.consolidate_variables() is back
    assert count_elements(back) == ds.chunk_count
    xarray.testing.assert_identical(back.collect_with_direct_runner(), numeric)


def test_split_of_a_source_reads_it_split(numeric):
    split = Dataset.from_xarray(numeric, {"time": 4}).split_variables()
    assert split.split_vars and step_labels(split) == ["FromXarray"]


@pytest.mark.parametrize("after_step", [False, True])
@pytest.mark.parametrize("split_vars", [False, True])
def test_getitem_selects_variables(numeric, split_vars, after_step):
    ds = Dataset.from_xarray(numeric, {"time": 4, "latitude": 3}, split_vars)
    if after_step:
        ds = ds.map_blocks(lambda c: c)
    only_lsm = ds["lsm"]
    assert only_lsm.sizes == {"latitude": 7, "longitude": 6}
    assert only_lsm.chunks == {"latitude": 3, "longitude": 6}
    assert count_elements(only_lsm) == only_lsm.chunk_count == 3
    xarray.testing.assert_identical(
        only_lsm.collect_with_direct_runner(), numeric[["lsm"]]
    )
    pair = ds[["t2m", "count"]].collect_with_direct_runner()
    xarray.testing.assert_identical(pair, numeric[["t2m", "count"]])
    with pytest.raises(KeyError, match="nope"):
        ds[["t2m", "nope"]]


def test_transpose(numeric):
    ds = Dataset.from_xarray(numeric, {"time": 4}).transpose("longitude", ...)
    expected = numeric.transpose("longitude", ...)
    actual = ds.collect_with_direct_runner()
    xarray.testing.assert_identical(actual, expected)
    assert actual.t2m.dims == ("longitude", "time", "latitude")
    with pytest.raises(ValueError):
        Dataset.from_xarray(numeric).transpose("nope")


# --- selections on sources --------------------------------------------------------


@pytest.mark.parametrize(
    "method, args",
    [
        ("head", {"time": 3}),
        ("tail", {"time": 3, "latitude": 2}),
        ("isel", {"time": slice(1, 8, 2), "longitude": 0}),
        ("sel", {"latitude": slice(20, -10)}),
    ],
)
def test_selections_on_sources_match_xarray(numeric, method, args):
    ds = getattr(Dataset.from_xarray(numeric, {"time": 4}), method)(**args)
    expected = getattr(numeric, method)(**args)
    assert ds.sizes == dict(expected.sizes)
    assert step_labels(ds) == [
        f"FromXarray.{method}("
        + ",".join(f"{k}={v!r}" for k, v in sorted(args.items()))
        + ")"
    ]
    xarray.testing.assert_identical(ds.collect_with_direct_runner(), expected)


def test_selections_need_a_source(numeric):
    ds = Dataset.from_xarray(numeric, {"time": 4}).map_blocks(lambda c: c)
    for method in ("head", "tail", "isel", "sel"):
        with pytest.raises(ValueError, match=f"{method}\\(\\) works only on a Dataset"):
            getattr(ds, method)(time=1)


def test_pipe(numeric):
    ds = Dataset.from_xarray(numeric, {"time": 4})
    assert ds.pipe(lambda d, dim: d.mean(dim), "time").sizes == {
        "latitude": 7,
        "longitude": 6,
    }


# --- to_zarr ----------------------------------------------------------------------


def test_to_zarr_writes_the_template_chunks(tmp_path, numeric):
    ds = Dataset.from_xarray(numeric, {"time": 4, "latitude": 3})
    run(ds.to_zarr(tmp_path / "out.zarr"))
    written = xarray.open_zarr(tmp_path / "out.zarr")
    xarray.testing.assert_identical(written.compute(), numeric)
    assert written.t2m.encoding["chunks"] == (4, 3, 6)


def test_to_zarr_chunks_per_shard(tmp_path, numeric):
    ds = Dataset.from_xarray(numeric, {"time": 4, "latitude": 4})
    run(ds.to_zarr(tmp_path / "out.zarr", zarr_chunks_per_shard={"time": 2}))
    written = xarray.open_zarr(tmp_path / "out.zarr")
    assert written.t2m.encoding["shards"] == (4, 4, 6)
    assert written.t2m.encoding["chunks"] == (2, 4, 6)
    xarray.testing.assert_identical(written.compute(), numeric)
    with pytest.raises(ValueError, match="does not divide"):
        ds.to_zarr(tmp_path / "x.zarr", zarr_chunks_per_shard={"time": 3})
    with pytest.raises(ValueError, match="not both"):
        ds.to_zarr(
            tmp_path / "x.zarr", zarr_chunks={"time": 2}, zarr_chunks_per_shard={}
        )


def test_to_zarr_rejects_chunks_not_covering_zarr_chunks(tmp_path, numeric):
    ds = Dataset.from_xarray(numeric, {"time": 4})
    with pytest.raises(ValueError, match=r"\.rechunk\(\{'time': 3\}\)"):
        ds.to_zarr(tmp_path / "out.zarr", zarr_chunks={"time": 3})
    assert not (tmp_path / "out.zarr").exists()


def test_to_zarr_refuses_an_existing_store(tmp_path, numeric):
    ds = Dataset.from_xarray(numeric, {"time": 4})
    path = tmp_path / "out.zarr"
    run(ds.to_zarr(path))
    before = read_tree(path)
    with pytest.raises(FileExistsError, match="out.zarr"):
        run(ds.map_blocks(lambda c: c + 1).to_zarr(path))
    assert read_tree(path) == before
    run(ds.map_blocks(lambda c: c + 1).to_zarr(path, mode="w"))
    xarray.testing.assert_identical(xarray.open_zarr(path).compute(), numeric + 1)


@pytest.mark.slow
def test_to_zarr_multi_process_runner(tmp_path, era5_small):
    ds = Dataset.from_xarray(era5_small, {"time": 12}).mean("time")
    run(
        ds.to_zarr(tmp_path / "mean.zarr"),
        direct_running_mode="multi_processing",
        direct_num_workers=2,
    )
    xarray.testing.assert_allclose(
        xarray.open_zarr(tmp_path / "mean.zarr").compute(), era5_small.mean("time")
    )


# --- end to end -------------------------------------------------------------------


def test_zarr_rechunk_map_blocks_climatology_to_zarr(tmp_path):
    """The pipeline of the issue: from_zarr -> rechunk -> map_blocks ->
    climatology -> to_zarr, against plain xarray."""
    source = synthetic.write_era5_like(
        str(tmp_path / "era5.zarr"), hours=72, resolution=10.0
    ).compute()

    def celsius(chunk):
        return chunk[["2m_temperature"]] - 273.15

    ds = (
        Dataset.from_zarr(tmp_path / "era5.zarr")
        .rechunk({"time": 36, "latitude": 10})
        .map_blocks(celsius)
        .climatology(("month", "hour"))
    )
    run(ds.to_zarr(tmp_path / "clim.zarr"))
    actual = xarray.open_zarr(tmp_path / "clim.zarr").compute()
    hours = celsius(source).groupby("time.hour").mean()
    expected = hours.expand_dims(month=[1]).transpose("month", "hour", ...)
    xarray.testing.assert_allclose(
        actual.transpose(*expected.dims), expected, rtol=1e-5
    )
