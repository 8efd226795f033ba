"""A written climatology says what it is: statistic, grouping, source.

Each way of writing one (the transform with ``ChunksToZarr``, the high-level
``Dataset``, the CLI) is run on a tiny store and read back with xarray.
"""

import apache_beam as beam
import pytest
import xarray
from helpers import assert_matches_oracle, climatology_oracle

import xarray_beam as xbeam
from xarray_beam import synthetic
from xarray_beam.programs import cli


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("clim-attrs") / "era5.zarr")
    synthetic.write_era5_like(path, hours=48, resolution=10.0)
    return path


@pytest.fixture(scope="module")
def source(store) -> xarray.Dataset:
    return xarray.open_zarr(store).compute()


def assert_says_what_it_is(
    written: xarray.Dataset, source: xarray.Dataset, store: str, stat: str
) -> None:
    assert written.attrs["climatology_statistic"] == stat
    assert written.attrs["climatology_grouping"] == "month,hour"
    assert written.attrs["climatology_dim"] == "time"
    assert written.attrs["climatology_source"] == store
    assert written.attrs["title"] == source.attrs["title"]  # the source's own
    for name, var in source.data_vars.items():
        assert written[name].attrs["units"] == var.attrs["units"]
        assert written[name].attrs["long_name"] == var.attrs["long_name"]
        assert written[name].attrs["cell_methods"].startswith(f"time: {stat}")


def test_climatology_transform_template_records_statistic_grouping_and_source(
    store, source, tmp_path
):
    output = str(tmp_path / "clim.zarr")
    dataset, chunks = xbeam.open_zarr(store)
    climatology = xbeam.Climatology(("month", "hour"), "max", template=dataset)
    with beam.Pipeline(runner=xbeam.InProcessRunner()) as p:
        _ = (
            p
            | xbeam.DatasetToChunks(dataset, chunks)
            | climatology
            | xbeam.ChunksToZarr(
                output,
                climatology.template(dataset),
                climatology.zarr_chunks(chunks),
            )
        )
    written = xarray.open_zarr(output).compute()
    assert_says_what_it_is(written, source, store, "max")
    assert_matches_oracle(written, climatology_oracle(source, "max"))


def test_dataset_climatology_to_zarr_records_what_it_is(store, source, tmp_path):
    output = str(tmp_path / "clim.zarr")
    ds = xbeam.Dataset.from_zarr(store).climatology(("month", "hour"), "std")
    with beam.Pipeline(runner=xbeam.InProcessRunner()) as p:
        _ = p | ds.to_zarr(output)
    written = xarray.open_zarr(output).compute()
    assert_says_what_it_is(written, source, store, "std")
    assert_matches_oracle(written, climatology_oracle(source, "std"))


def test_cli_climatology_records_what_it_is(store, source, tmp_path, capsys):
    output = str(tmp_path / "clim.zarr")
    assert cli.main(["climatology", store, output, "--by", "month,hour"]) == 0
    written = xarray.open_zarr(output).compute()
    assert_says_what_it_is(written, source, store, "mean")
    assert_matches_oracle(written, climatology_oracle(source, "mean"))


def test_a_dataset_made_in_memory_has_no_source_to_record():
    made = synthetic.era5_like(hours=24, resolution=30.0)
    template = xbeam.climatology_template(made, "season", stat="count")
    assert template.attrs["climatology_statistic"] == "count"
    assert template.attrs["climatology_grouping"] == "season"
    assert "climatology_source" not in template.attrs
