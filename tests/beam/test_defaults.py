"""The fast path is the default: reductions spill large partial results to
a local temporary directory on local runners, and DatasetToChunks reads one
chunk ahead, without options (issue 17)."""

import tempfile

import apache_beam as beam
import dask.array
import numpy as np
import pytest
import xarray

import xarray_beam as xbeam
from xarray_beam import synthetic
from xarray_beam.beam import combiners, runners
from xarray_beam.io import temp_stores
from xarray_beam.model.reductions import Reducer


@pytest.fixture(scope="module")
def era5() -> xarray.Dataset:
    return synthetic.era5_like(hours=72, resolution=15.0).compute()


@pytest.fixture
def spills(monkeypatch, tmp_path) -> list[str]:
    """Where partial results get spilled, with this machine's temporary
    directory moved to ``tmp_path``."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen: list[str] = []
    spill = temp_stores.spill

    def recording_spill(temp, *args):
        seen.append(temp.location)
        return spill(temp, *args)

    monkeypatch.setattr(temp_stores, "spill", recording_spill)
    return seen


def _climatology(era5, **options) -> xarray.Dataset:
    climatology = xbeam.Climatology(("month", "hour"), template=era5, **options)
    chunks = runners.collect(
        lambda p: p | xbeam.DatasetToChunks(era5, {"time": 24}) | climatology
    )
    return xbeam.consolidate_fully(chunks)[1]


def _expected(era5) -> xarray.Dataset:
    expected = era5.groupby(["time.month", "time.hour"]).mean("time")
    return expected.transpose("month", "hour", ...)


def test_large_partials_spill_to_a_local_temporary_directory(
    era5, spills, tmp_path, monkeypatch
):
    monkeypatch.setattr(combiners, "AUTO_SPILL_BYTES", 0)

    result = _climatology(era5)

    assert spills
    assert all(location.startswith(str(tmp_path)) for location in spills)
    assert list(tmp_path.iterdir()) == []  # removed after the merge
    xarray.testing.assert_allclose(result, _expected(era5), rtol=1e-6, atol=1e-5)


def test_small_partials_and_temp_store_false_use_beams_combine(
    era5, spills, monkeypatch
):
    small = _climatology(era5)  # partial results far below the threshold
    monkeypatch.setattr(combiners, "AUTO_SPILL_BYTES", 0)
    refused = _climatology(era5, temp_store=False)

    assert spills == []
    for result in (small, refused):
        xarray.testing.assert_allclose(result, _expected(era5), rtol=1e-6, atol=1e-5)


def test_mean_spills_only_with_a_template(era5, spills, monkeypatch):
    monkeypatch.setattr(combiners, "AUTO_SPILL_BYTES", 0)

    def mean(**options):
        chunks = runners.collect(
            lambda p: (
                p
                | xbeam.DatasetToChunks(era5, {"time": 24})
                | xbeam.Mean("time", **options)
            )
        )
        return xbeam.consolidate_fully(chunks)[1]

    without = mean()
    assert spills == []
    with_template = mean(template=era5)
    assert spills
    for result in (without, with_template):
        xarray.testing.assert_allclose(result, era5.mean("time"), rtol=1e-6, atol=1e-5)


def test_runners_elsewhere_keep_beams_combine(era5):
    elsewhere = beam.Pipeline(runner="PortableRunner")
    here = beam.Pipeline(runners.InProcessRunner())
    reducer = Reducer("mean")

    def merge(pipeline):
        return combiners.choose_merge(
            pipeline, reducer, None, None, 2**28, None, estimate=2**40
        )

    assert isinstance(merge(elsewhere), beam.CombinePerKey)
    assert isinstance(merge(here), combiners.CombineThroughStorage)
    # A fanout is a request for Beam's combine.
    fanned = combiners.choose_merge(here, reducer, 4, None, 2**28, None, 2**40)
    assert not isinstance(fanned, combiners.CombineThroughStorage)


def test_partial_bytes_counts_float64_fields_of_each_group(era5):
    grid = era5.sizes["latitude"] * era5.sizes["longitude"]
    numeric = [v for v in era5.data_vars.values() if v.dtype.kind == "f"]

    assert combiners.partial_bytes(era5, ["time"], groups=288) == (
        len(numeric) * grid * 288 * 24
    )


def test_dataset_to_chunks_reads_one_chunk_ahead_unless_chunks_are_large():
    small = xarray.Dataset({"t": (("time", "x"), np.zeros((10, 4), "f4"))})
    large = xarray.Dataset(
        {"t": (("time", "x"), dask.array.zeros((4, 2**27), "f4", chunks=(1, -1)))}
    )

    assert xbeam.DatasetToChunks(small, {"time": 2}).num_threads == 2
    # One chunk of the large dataset holds 512 MiB: read one at a time.
    assert xbeam.DatasetToChunks(large, {"time": 1}).num_threads == 1
    assert xbeam.DatasetToChunks(small, {"time": 2}, num_threads=1).num_threads == 1
