"""Synthetic store -> DatasetToChunks -> ChunksToZarr, on both DirectRunner modes."""

import apache_beam as beam
import pytest
import xarray
import zarr
from apache_beam.options.pipeline_options import PipelineOptions

import xarray_beam as xbeam
from xarray_beam import synthetic

RUNNERS = {
    "in_memory": {},
    "multi_processing": {
        "direct_running_mode": "multi_processing",
        "direct_num_workers": 2,
    },
}
LAYOUTS = {
    "v2": {"zarr_format": 2},
    "v3": {"zarr_format": 3},
    "v3_sharded": {"zarr_format": 3, "zarr_shards": {"time": 48, "latitude": -1}},
}


@pytest.fixture(scope="module")
def source_store(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("source") / "era5.zarr")
    synthetic.write_era5_like(
        path, hours=72, resolution=5.0, chunks={"time": 12}, zarr_format=3
    )
    return path


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize(
    "mode",
    [
        pytest.param(mode, marks=[pytest.mark.slow] if "processing" in mode else [])
        for mode in sorted(RUNNERS)
    ],
)
def test_round_trip_reproduces_the_store_exactly(tmp_path, source_store, mode, layout):
    source, chunks = xbeam.open_zarr(source_store)
    assert chunks == {"time": 12, "latitude": 37, "longitude": 72}
    kwargs = LAYOUTS[layout]
    zarr_chunks = {"time": 24, "latitude": 10}
    # Read in pancakes of one day, split each into latitude bands, and group
    # them into whole shards where the output is sharded.
    read_chunks = {"time": 48 if "zarr_shards" in kwargs else 24}
    output = str(tmp_path / "copy.zarr")
    options = PipelineOptions([], runner="DirectRunner", **RUNNERS[mode])
    with beam.Pipeline(options=options) as p:
        chunks_pc = (
            p
            | xbeam.DatasetToChunks(source, read_chunks, num_threads=2)
            | xbeam.SplitChunks({"latitude": 10})
        )
        if "zarr_shards" in kwargs:
            chunks_pc |= xbeam.ConsolidateChunks({"latitude": -1})
        _ = chunks_pc | xbeam.ChunksToZarr(
            output, xbeam.make_template(source), zarr_chunks, num_threads=2, **kwargs
        )
    expected = xarray.open_zarr(source_store).compute()
    xarray.testing.assert_identical(xarray.open_zarr(output).compute(), expected)
    array = zarr.open_group(output)["2m_temperature"]
    assert array.metadata.zarr_format == kwargs["zarr_format"]
    assert array.chunks == (24, 10, 72)
    if "zarr_shards" in kwargs:
        assert array.shards == (48, 40, 72)
