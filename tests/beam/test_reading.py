"""DatasetToChunks and ValidateEachChunk (``beam.reading``), with plain xarray as
the oracle."""

import apache_beam as beam
import numpy as np
import pytest
import xarray

import xarray_beam as xbeam
from xarray_beam.beam import runners
from xarray_beam.model.key import Key


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
