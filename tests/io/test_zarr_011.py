"""xarray-beam 0.11's Zarr setup: ``stage_locally``, and templates.

A store whose metadata is staged in a local directory and copied over must
be the same store as one set up in place (the same documents, the same data
through ``xarray.open_zarr``), with the same safety: the job record first,
``setup_done`` last, store modes, consolidated metadata.
"""

import os

import apache_beam as beam
import dask.array
import fsspec.implementations.local
import numpy as np
import pandas as pd
import pytest
import xarray
import zarr
import zarr.storage
from helpers import read_tree, without_job_ids

import xarray_beam as xb
from xarray_beam.io import job_records, staging, zarr_io
from xarray_beam.io.verify import verify_zarr


@pytest.fixture
def dataset() -> xarray.Dataset:
    """Two variables, an index with datetimes, a non-index coordinate."""
    rng = np.random.default_rng(1)
    return xarray.Dataset(
        {
            "t2m": (("time", "x"), rng.normal(size=(6, 4)), {"units": "K"}),
            "mask": (("x",), np.array([True, False, True, True])),
        },
        coords={
            "time": pd.date_range("2020-01-01", periods=6, freq="6h"),
            "x": [10.0, 20.0, 30.0, 40.0],
            "height": (("x",), np.array([1.5, 2.5, 3.5, 4.5], np.float32)),
        },
        attrs={"title": "staged"},
    )


class _CopySpy:
    """Counts the staged setups (each copies from one temporary directory)."""

    def __init__(self, monkeypatch):
        self.setups: set[str] = set()
        real = staging.copy_into

        def copy_into(local_dir, *args, **kwargs):
            self.setups.add(os.path.dirname(os.path.normpath(local_dir)))
            return real(local_dir, *args, **kwargs)

        monkeypatch.setattr(staging, "copy_into", copy_into)

    @property
    def calls(self) -> int:
        return len(self.setups)


# --- stage_locally writes the same store ------------------------------------


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_staged_setup_writes_the_same_documents_as_one_in_place(
    tmp_path, dataset, zarr_format, monkeypatch
):
    spy = _CopySpy(monkeypatch)
    # The coordinates' data is written at setup, so it is copied too.
    template = xb.make_template(dataset, lazy_vars={"t2m", "mask"})
    staged, direct = str(tmp_path / "staged.zarr"), str(tmp_path / "direct.zarr")

    xb.setup_zarr(
        template, staged, {"time": 3}, zarr_format=zarr_format, stage_locally=True
    )
    assert spy.calls == 1
    xb.setup_zarr(
        template, direct, {"time": 3}, zarr_format=zarr_format, stage_locally=False
    )
    assert spy.calls == 1

    assert read_tree(staged) == read_tree(direct)
    root = "zarr.json" if zarr_format == 3 else ".zmetadata"
    assert root in read_tree(staged)
    opened = xarray.open_zarr(staged, consolidated=True).compute()
    xarray.testing.assert_identical(
        opened.coords.to_dataset(), dataset.coords.to_dataset()
    )
    assert "height/c/0" in read_tree(staged) or "height/0" in read_tree(staged)
    assert opened.t2m.encoding["chunks"] == (3, 4)
    record = job_records.read(staged)
    assert record is not None and record.setup_done


def test_a_staged_pipeline_writes_the_source_data(tmp_path, dataset):
    path = str(tmp_path / "out.zarr")
    with beam.Pipeline("DirectRunner") as p:
        _ = p | xb.DatasetToZarr(dataset, path, {"time": 2}, stage_locally=True)

    xarray.testing.assert_identical(xarray.open_zarr(path).compute(), dataset)
    assert verify_zarr(path).complete


def test_by_default_paths_are_staged_and_store_objects_are_not(
    tmp_path, dataset, monkeypatch
):
    spy = _CopySpy(monkeypatch)
    template = xb.make_template(dataset, lazy_vars={"t2m", "mask"})

    xb.setup_zarr(template, str(tmp_path / "path.zarr"))
    assert spy.calls == 1
    xb.setup_zarr(template, tmp_path / "pathlike.zarr")
    assert spy.calls == 2
    memory = zarr.storage.MemoryStore()
    xb.setup_zarr(template, memory)
    assert spy.calls == 2

    xarray.testing.assert_identical(
        xarray.open_zarr(memory).coords.to_dataset(),
        xarray.open_zarr(tmp_path / "path.zarr").coords.to_dataset(),
    )


def test_staging_a_zarr_store_object_is_refused_before_anything_is_written(dataset):
    memory = zarr.storage.MemoryStore()
    template = xb.make_template(dataset)

    with pytest.raises(ValueError, match="stage_locally=True .* path or URL"):
        xb.setup_zarr(template, memory, stage_locally=True)
    with pytest.raises(ValueError, match="stage_locally=True .* path or URL"):
        xb.ChunksToZarr(memory, template, stage_locally=True)
    with pytest.raises(TypeError, match="stage_locally"):
        xb.ChunksToZarr("out.zarr", template, stage_locally="yes")
    assert dict(memory._store_dict) == {}


# --- the safety guarantees hold when staged ---------------------------------


def test_a_staged_setup_refuses_an_existing_store_unless_mode_says(tmp_path, dataset):
    path = str(tmp_path / "out.zarr")
    template = xb.make_template(dataset)
    xb.setup_zarr(template, path, stage_locally=True)
    before = read_tree(path)

    with pytest.raises(FileExistsError, match="already exists"):
        xb.setup_zarr(template, path, stage_locally=True)
    assert read_tree(path) == before

    changed = xb.make_template(dataset.assign(t2m=dataset.t2m * 2).rename(t2m="t"))
    xb.setup_zarr(changed, path, mode="w", stage_locally=True)
    assert set(xarray.open_zarr(path).data_vars) == {"t", "mask"}


def test_a_staged_setup_never_replaces_a_directory_that_is_not_zarr(tmp_path, dataset):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")

    with pytest.raises(FileExistsError, match="not a Zarr"):
        xb.setup_zarr(
            xb.make_template(dataset), str(precious), mode="w", stage_locally=True
        )
    assert os.listdir(precious) == ["notes.txt"]


class _FailingCopy:
    """Makes the copy of a staged setup fail after its batch of arrays,
    before the root documents and the record's ``setup_done``."""

    def __init__(self, monkeypatch):
        self.batches = 0
        self.failed_at = 0
        local = fsspec.implementations.local.LocalFileSystem
        real = local.pipe

        def pipe(fs, value, *args, **kwargs):
            self.batches += 1
            arrays = any("/t2m/" in path for path in value)
            if arrays and not self.failed_at:
                real(fs, value, *args, **kwargs)
                self.failed_at = self.batches
                raise OSError(28, "No space left on device (simulated)")
            return real(fs, value, *args, **kwargs)

        monkeypatch.setattr(local, "pipe", pipe)


def test_an_interrupted_staged_copy_is_recognised_and_set_up_again(
    tmp_path, dataset, monkeypatch
):
    path = str(tmp_path / "out.zarr")
    template = xb.make_template(dataset, lazy_vars={"t2m", "mask"})
    options = zarr_io.WriteOptions(path, {"time": 2}, stage_locally=True)
    failing = _FailingCopy(monkeypatch)

    with pytest.raises(OSError, match="No space left"):
        zarr_io.setup(template, options)

    record = job_records.read(path)
    assert record is not None
    assert record.job == options.job and not record.setup_done
    assert not verify_zarr(path).complete

    zarr_io.setup(template, options)  # the same job, retried
    # The retry copied arrays, root documents and record again.
    assert failing.batches == failing.failed_at + 3
    record = job_records.read(path)
    assert record is not None and record.setup_done
    direct = str(tmp_path / "direct.zarr")
    xb.setup_zarr(template, direct, {"time": 2}, stage_locally=False)
    assert read_tree(path) == read_tree(direct)


def test_a_staged_setup_writes_the_record_before_any_array(
    tmp_path, dataset, monkeypatch
):
    path = str(tmp_path / "out.zarr")
    seen = []
    real = staging.copy_into

    def copy_into(local_dir, store, *args, **kwargs):
        if set(os.listdir(local_dir)) - {"xarray_beam", "zarr.json"}:  # arrays
            record = job_records.read(store)
            seen.append(record is not None and not record.setup_done)
            seen.append(sorted(os.listdir(store)))
        return real(local_dir, store, *args, **kwargs)

    monkeypatch.setattr(staging, "copy_into", copy_into)
    xb.setup_zarr(xb.make_template(dataset), path, stage_locally=True)

    assert seen == [True, ["xarray_beam", "zarr.json"]]


# --- on object stores (emulators on 127.0.0.1) ------------------------------


def _objects(bucket, url: str) -> dict[str, bytes]:
    """The objects below ``url`` by relative path, job ids blanked."""
    snapshot = bucket.snapshot(url)
    root = url.split("://", 1)[1].rstrip("/")
    objects = {}
    for path, data in snapshot.items():
        name = path[len(root) + 1 :]
        if name.rsplit("/", 1)[-1] in ("zarr.json", ".zattrs", ".zmetadata"):
            data = without_job_ids(data)
        objects[name] = data
    return objects


@pytest.mark.slow
def test_a_staged_setup_on_a_bucket_equals_one_in_place(bucket, dataset, tmp_path):
    template = xb.make_template(dataset, lazy_vars={"t2m", "mask"})
    prefix = bucket.new_prefix()
    staged, direct = f"{prefix}/staged.zarr", f"{prefix}/direct.zarr"
    options = bucket.storage_options

    xb.setup_zarr(
        template, staged, {"time": 3}, storage_options=options, stage_locally=True
    )
    xb.setup_zarr(
        template, direct, {"time": 3}, storage_options=options, stage_locally=False
    )
    local = str(tmp_path / "local.zarr")
    xb.setup_zarr(template, local, {"time": 3}, stage_locally=False)

    assert _objects(bucket, staged) == _objects(bucket, direct)
    assert _objects(bucket, staged) == read_tree(local)
    record = job_records.read(staged, options)
    assert record is not None and record.setup_done
    with pytest.raises(FileExistsError, match="already exists"):
        xb.setup_zarr(template, staged, storage_options=options, stage_locally=True)


@pytest.mark.slow
def test_a_staged_pipeline_writes_a_bucket_store_equal_to_the_source(bucket, dataset):
    url = f"{bucket.new_prefix()}/out.zarr"
    options = bucket.storage_options
    with beam.Pipeline("DirectRunner") as p:
        _ = (
            p
            | xb.DatasetToChunks(dataset, {"time": 2})
            | xb.ChunksToZarr(
                url,
                xb.make_template(dataset),
                {"time": 2},
                storage_options=options,
                stage_locally=True,
            )
        )

    written = xarray.open_zarr(url, storage_options=dict(options)).compute()
    xarray.testing.assert_identical(written, dataset)
    assert verify_zarr(url, storage_options=options).complete


# --- templates, as xarray-beam makes them ------------------------------------


@pytest.fixture
def with_coords() -> xarray.Dataset:
    """Data, an index, a non-index coordinate along x and a scalar one."""
    return xarray.Dataset(
        {
            "a": (("t", "x"), np.arange(24.0).reshape(6, 4)),
            "b": (("x",), np.arange(4, dtype=np.int16)),
        },
        coords={
            "t": np.arange(6),
            "lat": (("x",), np.linspace(-45.0, 45.0, 4)),
            "step": ((), np.float64(6.0)),
        },
    )


def test_make_template_makes_data_and_non_index_coordinates_lazy(with_coords):
    template = xb.make_template(with_coords)

    lazy = {
        name
        for name, var in template.variables.items()
        if isinstance(var.data, dask.array.Array)
    }
    assert lazy == {"a", "b", "lat", "step"}
    assert template.variables["t"].identical(with_coords.variables["t"])
    for name, var in with_coords.variables.items():
        assert template[name].dims == var.dims, name
        assert template[name].dtype == var.dtype, name


def test_make_template_loads_the_variables_it_does_not_make_lazy(with_coords):
    chunked = with_coords.chunk({"t": 2, "x": 2})
    template = xb.make_template(chunked, lazy_vars={"a"})

    assert template.a.chunks == chunked.a.chunks
    for name in ["b", "lat", "step"]:
        assert isinstance(template[name].data, np.ndarray), name
        xarray.testing.assert_identical(template[name], with_coords[name])


def test_make_template_keeps_the_dask_chunks_of_lazy_variables(with_coords):
    chunked = with_coords.chunk({"t": 4, "x": 3})
    template = xb.make_template(chunked)
    for name in ["a", "b", "lat"]:
        assert template[name].chunks == chunked[name].chunks, name


def test_replace_template_dims_refuses_a_dataset_that_is_not_a_template(
    with_coords,
):
    with pytest.raises(ValueError, match="no variable .* is lazy.*make_template"):
        xb.replace_template_dims(with_coords, t=12)
    with pytest.raises(TypeError, match="xarray.Dataset"):
        xb.replace_template_dims(with_coords.a, t=12)

    replaced = xb.replace_template_dims(xb.make_template(with_coords), t=12)
    assert dict(replaced.sizes) == {"t": 12, "x": 4}
    dask_backed = xb.replace_template_dims(with_coords.chunk(), t=np.arange(12))
    np.testing.assert_array_equal(dask_backed.t.values, np.arange(12))
