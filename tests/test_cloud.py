"""Writing, rechunking and checking stores in gs:// and s3:// buckets.

Real clients (gcsfs, s3fs) talk to emulators on 127.0.0.1 (see
``emulators``); every store operation of xarray_beam must give the same
result on a bucket as on local disk, with the storage options passed
explicitly, also to the worker processes of a multi-process runner.
"""

import apache_beam as beam
import pytest
import xarray
from apache_beam.options.pipeline_options import PipelineOptions
from helpers import FREE_PASSES

import xarray_beam as xb
from xarray_beam import synthetic
from xarray_beam.io.verify import verify_zarr
from xarray_beam.programs import jobs

pytestmark = pytest.mark.slow  # storage emulators

PENCILS = {"time": -1, "latitude": 5, "longitude": 9}
# With time chunks of 6 (48 hours on the 10 degree grid), this budget gives a
# two-pass plan for PENCILS, so rechunking goes through a temporary store.
TWO_PASS_MEM = 200_000


@pytest.fixture(scope="module")
def local_store(tmp_path_factory) -> str:
    """A read-only synthetic store: 48 hours in time chunks of 12."""
    path = str(tmp_path_factory.mktemp("local") / "era5.zarr")
    synthetic.write_era5_like(path, hours=48, resolution=10.0, chunks={"time": 12})
    return path


@pytest.fixture(scope="module")
def fine_local_store(tmp_path_factory) -> str:
    """A read-only store of two variables in time chunks of 6, whose rechunk to
    PENCILS takes two passes."""
    path = str(tmp_path_factory.mktemp("fine") / "era5.zarr")
    synthetic.write_era5_like(
        path,
        hours=48,
        resolution=10.0,
        chunks={"time": 6},
        variables=("2m_temperature", "sea_surface_temperature"),
    )
    return path


def _copy_with_pipeline(
    source: str,
    target: str,
    storage_options,
    *,
    source_options=None,
    runner_options=None,
) -> None:
    """DatasetToChunks -> ChunksToZarr from ``source`` into ``target``."""
    dataset, chunks = xb.open_zarr(source, **_xarray_kwargs(source_options))
    pipeline_options = PipelineOptions(
        [], runner="DirectRunner", **(runner_options or {})
    )
    with beam.Pipeline(options=pipeline_options) as p:
        _ = (
            p
            | xb.DatasetToChunks(dataset, chunks)
            | xb.ChunksToZarr(
                target,
                xb.make_template(dataset),
                chunks,
                storage_options=storage_options,
            )
        )


def _xarray_kwargs(storage_options) -> dict:
    return {"storage_options": dict(storage_options)} if storage_options else {}


def _load(store: str, storage_options=None) -> xarray.Dataset:
    return xarray.open_zarr(store, **_xarray_kwargs(storage_options)).compute()


def test_pipeline_copies_a_local_store_into_a_bucket_exactly(bucket, local_store):
    url = f"{bucket.new_prefix()}/era5.zarr"
    _copy_with_pipeline(local_store, url, bucket.storage_options)
    copied, chunks = xb.open_zarr(url, storage_options=bucket.storage_options)
    assert chunks == {"time": 12, "latitude": 19, "longitude": 36}
    xarray.testing.assert_identical(copied.compute(), _load(local_store))


def test_rechunk_on_a_bucket_matches_local_rechunk_and_removes_temp_store(
    bucket, fine_local_store, tmp_path
):
    prefix = bucket.new_prefix()
    source, target, temp = (
        f"{prefix}/{name}.zarr" for name in ("source", "pencils", "temp")
    )
    bucket.upload(fine_local_store, source)

    plan = xb.rechunk_zarr(
        source,
        target,
        PENCILS,
        max_mem=TWO_PASS_MEM,
        temp_store=temp,
        storage_options=bucket.storage_options,
        # Local-disk costs with free passes, for the two-pass plan whose
        # temporary store this test follows through the bucket (the default
        # costs re-read this tiny store in one pass).
        cost_model=FREE_PASSES,
    )
    local_target = str(tmp_path / "pencils.zarr")
    xb.rechunk_zarr(
        fine_local_store,
        local_target,
        PENCILS,
        max_mem=TWO_PASS_MEM,
        temp_store=str(tmp_path / "temp.zarr"),
        cost_model=FREE_PASSES,
    )

    assert any(len(p.stages) > 1 for p in plan.plans), str(plan)
    rechunked, chunks = xb.open_zarr(target, storage_options=bucket.storage_options)
    assert chunks == {"time": 48, "latitude": 5, "longitude": 9}
    xarray.testing.assert_identical(rechunked.compute(), _load(local_target))
    xarray.testing.assert_identical(rechunked.compute(), _load(fine_local_store))
    assert not bucket.exists(temp)


def test_climatology_job_on_a_bucket_matches_the_local_job(
    bucket, local_store, tmp_path
):
    prefix = bucket.new_prefix()
    source, target, temp = (
        f"{prefix}/{name}.zarr" for name in ("source", "climatology", "temp")
    )
    bucket.upload(local_store, source)

    jobs.climatology_job(
        source,
        target,
        ("month", "hour"),
        storage_options=bucket.storage_options,
        temp_store=temp,
        beam_args=["--runner=DirectRunner"],
    )
    local_target = str(tmp_path / "climatology.zarr")
    jobs.climatology_job(
        local_store,
        local_target,
        ("month", "hour"),
        temp_store=str(tmp_path / "temp.zarr"),
        beam_args=["--runner=DirectRunner"],
    )

    expected = _load(local_target)
    assert dict(expected.sizes) == {
        "month": 1,
        "hour": 24,
        "latitude": 19,
        "longitude": 36,
    }
    result = _load(target, bucket.storage_options)
    # Each output names its own source; everything else is the same.
    assert result.attrs.pop("climatology_source") == source
    assert expected.attrs.pop("climatology_source") == local_store
    xarray.testing.assert_identical(result, expected)
    assert not bucket.exists(temp)


def test_verify_reports_a_complete_bucket_store_then_the_deleted_chunk(
    bucket, local_store
):
    url = f"{bucket.new_prefix()}/era5.zarr"
    bucket.upload(local_store, url)

    before = verify_zarr(url, storage_options=bucket.storage_options)
    # Zarr v3's default chunk key: the second time chunk, hours 12 to 24.
    bucket.filesystem().rm(f"{url}/2m_temperature/c/1/0/0")
    after = verify_zarr(url, storage_options=bucket.storage_options)

    assert before.complete, str(before)
    assert not after.complete
    missing = {a.name: a.missing for a in after.arrays if a.missing}
    assert missing == {"2m_temperature": (((12, 24), (0, 19), (0, 36)),)}


def _write_with_chunks_to_zarr(source: str, target: str, storage_options) -> None:
    _copy_with_pipeline(source, target, storage_options, source_options=storage_options)


def _write_with_setup_zarr(source: str, target: str, storage_options) -> None:
    dataset, chunks = xb.open_zarr(source, storage_options=storage_options)
    xb.setup_zarr(
        xb.make_template(dataset), target, chunks, storage_options=storage_options
    )


def _write_with_rechunk_zarr(source: str, target: str, storage_options) -> None:
    xb.rechunk_zarr(
        source, target, PENCILS, max_mem=TWO_PASS_MEM, storage_options=storage_options
    )


@pytest.mark.parametrize(
    "write",
    [_write_with_chunks_to_zarr, _write_with_setup_zarr, _write_with_rechunk_zarr],
    ids=["ChunksToZarr", "setup_zarr", "rechunk_zarr"],
)
def test_default_mode_refuses_an_existing_bucket_store_and_leaves_it_untouched(
    bucket, local_store, write
):
    prefix = bucket.new_prefix()
    source, existing = f"{prefix}/source.zarr", f"{prefix}/existing.zarr"
    bucket.upload(local_store, source)
    bucket.upload(local_store, existing)
    before = bucket.snapshot(prefix)

    with pytest.raises(FileExistsError, match="already exists"):
        write(source, existing, bucket.storage_options)

    assert bucket.snapshot(prefix) == before


def test_overwrite_mode_replaces_a_bucket_store_without_stale_arrays(
    bucket, local_store
):
    url = f"{bucket.new_prefix()}/era5.zarr"
    bucket.upload(local_store, url)
    dataset, chunks = xb.open_zarr(local_store)
    smaller = dataset[["2m_temperature"]].isel(time=slice(0, 24))

    with beam.Pipeline("DirectRunner") as p:
        _ = (
            p
            | xb.DatasetToChunks(smaller, chunks)
            | xb.ChunksToZarr(
                url,
                xb.make_template(smaller),
                chunks,
                mode="w",
                storage_options=bucket.storage_options,
            )
        )

    xarray.testing.assert_identical(
        _load(url, bucket.storage_options), smaller.compute()
    )
    prefix = url.split("://", 1)[1]
    entries = {
        path[len(prefix) + 1 :].split("/")[0] for path in bucket.filesystem().find(url)
    }
    # the store holds its arrays and the record of the job that wrote it
    assert entries == {
        "2m_temperature",
        "latitude",
        "longitude",
        "time",
        "zarr.json",
        "xarray_beam",
    }


def test_multi_process_workers_write_to_a_bucket_with_explicit_options(
    bucket, local_store
):
    url = f"{bucket.new_prefix()}/era5.zarr"
    _copy_with_pipeline(
        local_store,
        url,
        bucket.storage_options,
        runner_options={
            "direct_running_mode": "multi_processing",
            "direct_num_workers": 2,
        },
    )
    xarray.testing.assert_identical(
        _load(url, bucket.storage_options), _load(local_store)
    )
    assert verify_zarr(url, storage_options=bucket.storage_options).complete


def test_dataset_reads_rechunks_and_resumes_on_a_bucket(bucket, local_store):
    """The high-level Dataset on a bucket: from_zarr -> rechunk -> mean ->
    to_zarr, then a resumed write of a lost chunk."""
    prefix = bucket.new_prefix()
    source, target = f"{prefix}/era5.zarr", f"{prefix}/mean.zarr"
    bucket.upload(local_store, source)
    options = bucket.storage_options
    ds = xb.Dataset.from_zarr(source, storage_options=options)
    mean = ds.rechunk({"time": 24, "latitude": 10}).mean("time")
    with beam.Pipeline("DirectRunner") as p:
        _ = p | mean.to_zarr(target, storage_options=options)
    expected = _load(local_store).mean("time")
    xarray.testing.assert_allclose(
        _load(target, options), expected, rtol=1e-6, atol=1e-6
    )

    fs = bucket.filesystem()
    lost = f"{target}/2m_temperature/c/1/0"
    fs.rm(lost)
    assert not verify_zarr(target, storage_options=options).complete
    with beam.Pipeline("DirectRunner") as p:
        _ = p | mean.to_zarr(target, storage_options=options, resume=True)
    assert verify_zarr(target, storage_options=options).complete
    xarray.testing.assert_allclose(
        _load(target, options), expected, rtol=1e-6, atol=1e-6
    )
