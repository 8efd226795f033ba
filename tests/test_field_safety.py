"""Never lose data, the way users and clusters behave.

Each section is a scenario seen in the field: the output is the input, a
resume of another job, a setup interrupted or retried by the runner, a
store that fools ``verify``, a lost source chunk. Every test checks that
the input stays byte-identical and that the output is complete and correct,
or refused with a message that says what is wrong.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import apache_beam as beam
import numpy as np
import pandas as pd
import pytest
import xarray
import zarr
import zarr.storage
from helpers import read_tree

import xarray_beam as xb
from xarray_beam import synthetic
from xarray_beam.beam import runners
from xarray_beam.io import files, locations, region_io, staging
from xarray_beam.io._direct import chunk_files
from xarray_beam.model.key import Key
from xarray_beam.programs import cli, jobs

PENCILS = {"time": -1, "latitude": 2}


@pytest.fixture
def source(tmp_path) -> str:
    path = str(tmp_path / "era5.zarr")
    synthetic.write_era5_like(path, hours=24, resolution=30.0, chunks={"time": 6})
    return path


# --- 1. Output = input ------------------------------------------------------------


def _spellings(source: str, tmp_path) -> dict[str, str]:
    """The source store, and places inside it, spelled as users spell them."""
    link = tmp_path / "link.zarr"
    link.symlink_to(source)
    name = os.path.basename(source)
    return {
        "same": source,
        "dotdot": os.path.join(source, "..", name),
        "relative": os.path.relpath(source),
        "symlink": str(link),
        "inside": os.path.join(source, "inner.zarr"),
        "inside_via_symlink": str(link / "inner.zarr"),
    }


SPELLINGS = ["same", "dotdot", "relative", "symlink", "inside", "inside_via_symlink"]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_rechunk_zarr_refuses_to_write_its_source_however_spelled(
    source, tmp_path, monkeypatch, spelling
):
    monkeypatch.chdir(tmp_path)
    target = _spellings(source, tmp_path)[spelling]
    before = read_tree(source)

    with pytest.raises(ValueError, match="destroy data the job reads"):
        xb.rechunk_zarr(source, target, PENCILS, mode="w")

    assert read_tree(source) == before


@pytest.mark.parametrize("spelling", ["same", "dotdot", "symlink", "inside"])
def test_chunks_to_zarr_refuses_the_store_its_pipeline_reads(
    source, tmp_path, spelling
):
    target = _spellings(source, tmp_path)[spelling]
    dataset, chunks = xb.open_zarr(source)
    before = read_tree(source)

    with (
        pytest.raises(ValueError, match="input store"),
        beam.Pipeline(xb.InProcessRunner()) as p,
    ):
        _ = (
            p
            | xb.DatasetToChunks(dataset, chunks)
            | xb.ChunksToZarr(target, xb.make_template(dataset), mode="w")
        )

    assert read_tree(source) == before


def test_chunks_to_zarr_refuses_a_source_opened_lazily_with_dask(source, tmp_path):
    dataset = xarray.open_zarr(source)
    before = read_tree(source)

    with (
        pytest.raises(ValueError, match="same store as the input store"),
        beam.Pipeline(xb.InProcessRunner()) as p,
    ):
        _ = (
            p
            | xb.DatasetToChunks(dataset)
            | xb.ChunksToZarr(source, xb.make_template(dataset), mode="w")
        )

    assert read_tree(source) == before


@pytest.mark.parametrize("rechunk", [True, False], ids=["rechunk", "copy"])
def test_dataset_to_zarr_refuses_its_source(source, rechunk):
    ds = xb.Dataset.from_zarr(source)
    if rechunk:
        ds = ds.rechunk(PENCILS)
    before = read_tree(source)

    with (
        pytest.raises(ValueError, match="destroy data the job reads"),
        beam.Pipeline(xb.InProcessRunner()) as p,
    ):
        _ = p | ds.to_zarr(source, mode="w")

    assert read_tree(source) == before


def test_a_target_that_holds_the_source_is_refused(tmp_path):
    outer = tmp_path / "outer.zarr"
    inner = str(outer / "era5.zarr")
    synthetic.write_era5_like(inner, hours=12, resolution=30.0)
    before = read_tree(inner)

    with pytest.raises(ValueError, match="a store that holds the source"):
        xb.rechunk_zarr(inner, str(outer), PENCILS, mode="w")

    assert read_tree(inner) == before


@pytest.mark.parametrize(
    "command",
    [
        ["rechunk", "{src}", "{dst}", "--target-chunks", "time=-1", "--mode", "w"],
        ["climatology", "{src}", "{dst}", "--mode", "w"],
    ],
    ids=["rechunk", "climatology"],
)
def test_cli_refuses_output_equal_to_input_in_one_line(source, capsys, command):
    before = read_tree(source)
    argv = [
        a.format(src=source, dst=os.path.join(source, "..", "era5.zarr"))
        for a in command
    ]

    code = cli.main(argv)

    assert code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "destroy data the job reads" in err[0]
    assert read_tree(source) == before


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ("gs://bucket/era5.zarr", "gcs://bucket/era5.zarr/", "same"),
        ("s3://bucket/a/b.zarr", "s3a://bucket/a", "inside"),
        ("gs://bucket/a", "gs://bucket/a/b.zarr", "holds"),
        ("gs://bucket/a.zarr", "gs://bucket/a.zarr2", None),
        ("gs://bucket/a.zarr", "s3://bucket/a.zarr", None),
        ("memory://x/y", "memory://x/y/", "same"),
    ],
)
def test_object_store_locations_compare_protocol_bucket_and_prefix(a, b, expected):
    assert locations.overlap(locations.location(a), locations.location(b)) == expected


def test_distinct_stores_side_by_side_are_not_refused(source, tmp_path):
    target = str(tmp_path / "era5.zarr2")

    xb.rechunk_zarr(source, target, PENCILS)

    xarray.testing.assert_identical(
        xarray.open_zarr(target).compute(), xarray.open_zarr(source).compute()
    )
    assert np.all(xarray.open_zarr(target)["2m_temperature"].notnull())


# --- 2. Resume of another job --------------------------------------------------------


def test_resuming_a_rechunk_with_other_target_chunks_is_refused(source, tmp_path):
    target = str(tmp_path / "pencils.zarr")
    xb.rechunk_zarr(source, target, PENCILS)
    before = read_tree(target)

    with pytest.raises(Exception, match=r"another job.*chunks: \[24, 2, 12\]"):
        xb.rechunk_zarr(source, target, {"time": -1, "latitude": 3}, resume=True)

    assert read_tree(target) == before


def test_resuming_a_climatology_with_another_statistic_is_refused(
    source, tmp_path, capsys
):
    target = str(tmp_path / "clim.zarr")
    assert cli.main(["climatology", source, target, "--stat", "mean"]) == 0
    _lose_a_chunk(target, "2m_temperature")
    before = read_tree(target)
    capsys.readouterr()

    code = cli.main(["climatology", source, target, "--stat", "max", "--resume"])

    err = capsys.readouterr().err
    assert code == 1 and "another job" in err and "max" in err
    assert read_tree(target) == before


def test_resuming_the_same_job_completes_it(source, tmp_path, capsys):
    target = str(tmp_path / "clim.zarr")
    assert cli.main(["climatology", source, target]) == 0
    expected = xarray.open_zarr(target).compute()
    _lose_a_chunk(target, "2m_temperature")

    assert cli.main(["climatology", source, target, "--resume"]) == 0

    xarray.testing.assert_identical(xarray.open_zarr(target).compute(), expected)
    assert xb.verify_zarr(target).complete


def _lose_a_chunk(store: str, name: str) -> str:
    chunk = sorted(
        os.path.join(root, f)
        for root, _, files in os.walk(os.path.join(store, name))
        for f in files
        if f != "zarr.json"
    )[0]
    os.remove(chunk)
    return chunk


# --- 3. Resume after an interrupted setup -------------------------------------------


class _Interrupt:
    """Makes the metadata setup fail once, after the store's record and root
    were written and before its arrays were, as a kill or a full disk would."""

    def __init__(self, monkeypatch):
        self.calls = 0
        real = staging.copy_into

        def copy_into(local_dir, *args, **kwargs):
            if set(os.listdir(local_dir)) - {"xarray_beam", "zarr.json", ".zgroup"}:
                self.calls += 1  # the copy that brings the arrays
                if self.calls == 1:
                    raise OSError(28, "No space left on device (simulated)")
            return real(local_dir, *args, **kwargs)

        monkeypatch.setattr(staging, "copy_into", copy_into)


def test_a_rechunk_whose_setup_was_interrupted_resumes(source, tmp_path, monkeypatch):
    target = str(tmp_path / "pencils.zarr")
    interrupt = _Interrupt(monkeypatch)
    with pytest.raises(Exception, match="No space left"):
        xb.rechunk_zarr(source, target, PENCILS)
    assert not xb.verify_zarr(target).complete

    xb.rechunk_zarr(source, target, PENCILS, resume=True)

    assert interrupt.calls == 2
    xarray.testing.assert_identical(
        xarray.open_zarr(target).compute(), xarray.open_zarr(source).compute()
    )
    assert xb.verify_zarr(target).complete


def test_a_climatology_killed_with_spill_files_left_resumes(source, tmp_path, capsys):
    target = str(tmp_path / "clim.zarr")
    spill = tmp_path / "clim.zarr.climatology-temp"
    spill.mkdir()
    leftover = spill / f"{'a' * 32}-1-0.pkl"
    leftover.write_bytes(b"partial result of a killed run")

    assert cli.main(["climatology", source, target, "--resume"]) == 0

    assert not spill.exists()
    assert xb.verify_zarr(target).complete


def test_a_temp_store_holding_other_files_is_still_refused(source, tmp_path):
    spill = tmp_path / "spill"
    spill.mkdir()
    (spill / "notes.txt").write_text("not ours")
    dataset, chunks = xb.open_zarr(source)

    with pytest.raises(FileExistsError, match="not temporary data"):
        _ = (
            beam.Pipeline(xb.InProcessRunner())
            | xb.DatasetToChunks(dataset, chunks, split_vars=True)
            | xb.Climatology("hour", temp_store=str(spill))
        )
    assert (spill / "notes.txt").read_text() == "not ours"


# --- 4. verify cannot be fooled -------------------------------------------------------


def test_verify_does_not_call_a_half_set_up_store_complete(
    source, tmp_path, monkeypatch
):
    target = str(tmp_path / "pencils.zarr")
    _Interrupt(monkeypatch)
    with pytest.raises(Exception, match="No space left"):
        xb.rechunk_zarr(source, target, PENCILS)

    report = xb.verify_zarr(target)

    assert not report.complete
    assert "setup interrupted" in str(report)


def test_verify_does_not_call_an_empty_store_complete(tmp_path):
    import zarr

    zarr.open_group(str(tmp_path / "empty.zarr"), mode="w")

    report = xb.verify_zarr(str(tmp_path / "empty.zarr"))

    assert not report.complete and "no arrays" in str(report)


def _with_fill_value_chunks() -> xarray.Dataset:
    t2m = np.arange(48.0, dtype="f4").reshape(12, 4)
    t2m[6:, :] = np.nan  # a chunk holding only the fill value
    return xarray.Dataset(
        {"t2m": (("time", "x"), t2m)},
        coords={"number": 0, "time": np.arange(12)},  # a scalar coordinate of 0
    )


def test_our_outputs_with_fill_value_chunks_verify_complete(tmp_path):
    data = _with_fill_value_chunks()
    target = str(tmp_path / "out.zarr")
    with beam.Pipeline(xb.InProcessRunner()) as p:
        _ = p | xb.DatasetToZarr(data, target, {"time": 6})

    report = xb.verify_zarr(target)

    assert report.complete, str(report)
    assert not any(a.absent or a.missing for a in report.arrays)
    xarray.testing.assert_identical(xarray.open_zarr(target).compute(), data)


def test_absent_chunks_of_foreign_stores_read_as_fill_values(tmp_path):
    data = _with_fill_value_chunks()
    target = str(tmp_path / "foreign.zarr")
    data.chunk({"time": 6}).to_zarr(target)  # zarr skips the all-NaN chunk

    report = xb.verify_zarr(target)

    assert report.complete
    (t2m,) = [a for a in report.arrays if a.name == "t2m"]
    assert t2m.absent and not t2m.missing
    assert "read as the fill value" in str(t2m)


def test_a_chunk_lost_from_our_output_is_missing(source, tmp_path):
    target = str(tmp_path / "pencils.zarr")
    xb.rechunk_zarr(source, target, PENCILS)
    _lose_a_chunk(target, "2m_temperature")

    report = xb.verify_zarr(target)

    assert not report.complete
    assert "1 of" in str(report) and "missing" in str(report)


# --- 5. Missing chunks are not laundered into NaN -------------------------------------


def test_a_lost_source_chunk_warns_with_a_count_by_default(source, tmp_path, capsys):
    _lose_a_chunk(source, "2m_temperature")

    code = cli.main(
        ["rechunk", source, str(tmp_path / "p.zarr"), "--target-chunks", "time=-1"]
    )

    assert code == 0
    assert "warning: 1 chunk(s) were missing from the input" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["rechunk", "climatology"])
def test_a_lost_source_chunk_can_be_refused(source, tmp_path, capsys, command):
    lost = _lose_a_chunk(source, "2m_temperature")
    argv = [command, source, str(tmp_path / "out.zarr"), "--missing-chunks", "error"]
    if command == "rechunk":
        argv += ["--target-chunks", "time=-1"]

    code = cli.main(argv)

    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    key = os.path.relpath(lost, os.path.join(source, "2m_temperature"))
    assert key in err[0] and "missing" in err[0]


def test_a_missing_temporary_chunk_is_an_error(tmp_path):
    from xarray_beam.beam import rechunk_zarr
    from xarray_beam.io import chunk_writer, region_io, temp_stores

    temp = temp_stores.claim(str(tmp_path / "temp.zarr"), None, "zarr")
    spec = temp_stores.TempArray("pass1", "t", (4, 6), (2, 3), np.dtype("f4"), np.nan)
    temp_stores.create_zarr(temp, [spec])
    where = rechunk_zarr._Location(temp.location, "pass1", temporary=True)
    writer = where.writer("t", 1, resume=False)
    writer.write((slice(0, 4), slice(0, 6)), np.ones((4, 6), "f4"))
    os.remove(tmp_path / "temp.zarr" / "pass1" / "t" / "c" / "1" / "0")
    reader = where.reader("t", 1, "fill")  # what sources accept, temporaries do not

    with pytest.raises(region_io.MissingChunkError, match="'c/1/0' .* is missing"):
        reader.read((slice(0, 4), slice(0, 6)), np.empty((4, 6), "f4"))
    assert isinstance(writer, chunk_writer.ArrayWriter)


# --- 6. Setup and writes are safe under retries ---------------------------------------


@pytest.mark.parametrize("mode", ["w-", "w"])
def test_a_setup_run_again_by_the_runner_keeps_what_was_written(
    tmp_path, monkeypatch, mode
):
    """A runner that re-executes the setup step (side inputs computed again)
    and retries a write bundle: nothing is wiped, nothing refused."""
    from xarray_beam.beam import zarr as zarr_transforms
    from xarray_beam.io import zarr_io

    data = _with_fill_value_chunks()
    target = str(tmp_path / "out.zarr")
    transform = xb.ChunksToZarr(target, xb.make_template(data), {"time": 6}, mode=mode)
    real_call = zarr_transforms._WriteChunks.__call__
    replays = []

    def write_then_replay(self, element, target_layout):
        yield from real_call(self, element, target_layout)
        if not replays:  # after the first write: setup again, and retry it
            replays.append(zarr_io.setup(transform.template, transform.options))
            yield from real_call(self, element, target_layout)

    monkeypatch.setattr(zarr_transforms._WriteChunks, "__call__", write_then_replay)
    with beam.Pipeline(xb.InProcessRunner()) as p:
        _ = p | xb.DatasetToChunks(data, {"time": 6}) | transform

    assert len(replays) == 1
    xarray.testing.assert_identical(xarray.open_zarr(target).compute(), data)
    assert xb.verify_zarr(target).complete


def test_a_new_run_with_mode_w_still_replaces_the_store(tmp_path):
    target = str(tmp_path / "out.zarr")
    first = _with_fill_value_chunks()
    second = first.isel(time=slice(0, 6))
    for data in (first, second):
        with beam.Pipeline(xb.InProcessRunner()) as p:
            _ = p | xb.DatasetToZarr(data, target, {"time": 6}, mode="w")

    xarray.testing.assert_identical(xarray.open_zarr(target).compute(), second)


# --- 7. Cluster assumptions ---------------------------------------------------------


def _remote_pipeline() -> beam.Pipeline:
    # Only built, never run: building is all the checks need.
    return beam.Pipeline(runner="FlinkRunner")


def _small() -> xarray.Dataset:
    return xarray.Dataset({"t": (("time", "x"), np.arange(12.0).reshape(6, 2))})


def test_a_local_target_is_refused_on_a_runner_whose_workers_run_elsewhere(tmp_path):
    target = str(tmp_path / "out.zarr")
    p = _remote_pipeline()
    chunks = p | xb.DatasetToChunks(_small(), {"time": 3})

    with pytest.raises(ValueError, match="local path.*file://"):
        _ = chunks | xb.ChunksToZarr(target, xb.make_template(_small()))
    assert not os.path.exists(target)


def test_a_shared_file_system_target_is_accepted_on_remote_runners(tmp_path):
    p = _remote_pipeline()
    chunks = p | xb.DatasetToChunks(_small(), {"time": 3})

    _ = chunks | xb.ChunksToZarr(
        f"file://{tmp_path}/a.zarr", xb.make_template(_small())
    )

    assert not os.path.exists(tmp_path / "a.zarr")  # built, not run


def test_a_local_temp_store_is_refused_on_a_remote_runner(tmp_path, source):
    p = _remote_pipeline()
    dataset, chunks = xb.open_zarr(f"file://{source}")
    climatology = xb.Climatology("month", temp_store=str(tmp_path / "spill"))
    read = p | xb.DatasetToChunks(dataset, chunks, split_vars=True)

    with pytest.raises(ValueError, match="temp_store .* is a local path"):
        _ = read | climatology


def test_a_local_source_is_refused_on_a_remote_runner(source):
    dataset, chunks = xb.open_zarr(source)

    with pytest.raises(ValueError, match="source store .* is a local path"):
        _ = _remote_pipeline() | xb.DatasetToChunks(dataset, chunks)


def test_rechunk_zarr_refuses_local_stores_on_a_remote_runner(source, tmp_path):
    rechunk = xb.RechunkZarr(source, str(tmp_path / "out.zarr"), PENCILS)

    with pytest.raises(ValueError, match="local path"):
        _ = _remote_pipeline() | rechunk


def test_the_dask_runner_is_refused_naming_its_limits():
    p = beam.Pipeline(runner="apache_beam.runners.dask.dask_runner.DaskRunner")

    with pytest.raises(ValueError, match="DaskRunner re-executes"):
        _ = p | xb.DatasetToChunks(_small(), {"time": 3})


PORTABLE = [
    "--runner=PortableRunner",
    "--job_endpoint=embed",
    "--environment_type=LOOPBACK",
]


@pytest.mark.slow
def test_rechunk_climatology_and_dataset_jobs_run_on_the_portable_runner(
    source, tmp_path
):
    from apache_beam.options.pipeline_options import PipelineOptions

    expected = xarray.open_zarr(source).compute()
    pencils, clim, means = (str(tmp_path / n) for n in ("p.zarr", "c.zarr", "m.zarr"))

    xb.rechunk_zarr(source, pencils, PENCILS, pipeline_options=PORTABLE)
    dataset, chunks = xb.open_zarr(source)
    climatology = xb.Climatology("hour", temp_store=str(tmp_path / "spill"))
    ds = xb.Dataset.from_zarr(source)
    with beam.Pipeline(options=PipelineOptions(PORTABLE)) as p:
        _ = (
            p
            | xb.DatasetToChunks(dataset, chunks, split_vars=True)
            | climatology
            | xb.ChunksToZarr(clim, climatology.template(dataset), {"hour": 1})
        )
        _ = p | "Means" >> ds.mean("time").to_zarr(means)

    xarray.testing.assert_identical(xarray.open_zarr(pencils).compute(), expected)
    oracle = expected.groupby("time.hour").mean()
    actual = xarray.open_zarr(clim).compute()
    for name in oracle.data_vars:
        np.testing.assert_allclose(
            actual[name].transpose(*oracle[name].dims).values,
            oracle[name].values,
            rtol=1e-5,
            err_msg=name,
        )
    np.testing.assert_allclose(
        xarray.open_zarr(means)["2m_temperature"].values,
        expected["2m_temperature"].mean("time").values,
        rtol=1e-5,
    )


# --- 8. Realistic stores: static variables, NaT labels, decode errors ----------

# --- static variables in climatologies and anomalies ---------------------------

CHUNKS = {"time": 48, "latitude": 2}
MONTH_HOUR = ("month", "hour")


def _mentioning(*parts: str) -> str:
    """A regex matching text that contains every part, in any order."""
    return "(?s)" + "".join(f"(?=.*{re.escape(part)})" for part in parts)


def _era5_with_static_fields() -> xarray.Dataset:
    """Ten days of hourly data across a month boundary (January 25 to
    February 3) on a 3 x 4 grid, with two static fields as ERA5 has them:
    surface geopotential (float32, NaN at one point) and a land-sea mask
    (int8), plus a 0-d variable."""
    rng = np.random.default_rng(0)
    time = pd.date_range("2021-01-25", periods=24 * 10, freq="h")
    t2m = rng.normal(280.0, 5.0, (len(time), 3, 4)).astype(np.float32)
    t2m[7, 1, 2] = np.nan
    z = rng.normal(5000.0, 100.0, (3, 4)).astype(np.float32)
    z[2, 3] = np.nan
    lsm = (rng.random((3, 4)) > 0.5).astype(np.int8)
    return xarray.Dataset(
        {
            "2m_temperature": (("time", "latitude", "longitude"), t2m),
            "geopotential_at_surface": (("latitude", "longitude"), z),
            "land_sea_mask": (("latitude", "longitude"), lsm),
        },
        coords={
            "time": time,
            "latitude": [10.0, 0.0, -10.0],
            "longitude": [0.0, 90.0, 180.0, 270.0],
        },
    )


@pytest.fixture(scope="module")
def era5() -> xarray.Dataset:
    return _era5_with_static_fields()


def _xarray_climatology(dataset: xarray.Dataset, by, stat: str = "mean"):
    """xarray's groupby statistic, group dimensions first."""
    names = [by] if isinstance(by, str) else list(by)
    grouped = dataset.groupby(
        [f"time.{n}" for n in names] if len(names) > 1 else f"time.{names[0]}"
    )
    result = getattr(grouped, stat)("time")
    return result.transpose(*names, ...)


@pytest.fixture(scope="module")
def climatology_runs(era5, tmp_path_factory):
    """One pipeline computing climatologies of ``era5`` in every read mode:
    one variable per element or all together, merged by Beam's combine or
    through files (``temp_store``), with and without ``template``. Returns
    the stores written, by mode, and the outputs collected, by label."""
    root = tmp_path_factory.mktemp("climatology")
    stores = {}

    def build(p):
        chunks = {
            split: p
            | f"Read{split}" >> xb.DatasetToChunks(era5, CHUNKS, split_vars=split)
            for split in (True, False)
        }
        outputs = []
        for split in (True, False):
            for through_storage in (False, True):
                for with_template in (True, False):
                    mode = (split, through_storage, with_template)
                    name = "-".join(str(int(flag)) for flag in mode)
                    climatology = xb.Climatology(
                        MONTH_HOUR,
                        template=era5 if with_template else None,
                        temp_store=str(root / f"temp-{name}")
                        if through_storage
                        else None,
                    )
                    stores[mode] = root / f"clim-{name}.zarr"
                    outputs.append(
                        chunks[split]
                        | f"Climatology{name}" >> climatology
                        | f"Write{name}"
                        >> xb.ChunksToZarr(
                            str(stores[mode]),
                            climatology.template(era5),
                            climatology.zarr_chunks(CHUNKS),
                        )
                        | f"Done{name}" >> beam.Map(lambda key: ("written", key))
                    )
            label = f"count-{int(split)}"
            outputs.append(
                chunks[split]
                | f"Count{int(split)}"
                >> xb.Climatology("month", "count", template=era5)
                | f"Label{label}" >> beam.Map(lambda kv, label=label: (label, kv))
            )
        return outputs | beam.Flatten()

    collected: dict[str, list] = {}
    for label, value in runners.collect(build):
        collected.setdefault(label, []).append(value)
    return stores, collected


def test_climatology_passes_static_variables_through_when_reading_one_variable_per_element(  # noqa: E501
    era5, climatology_runs
):
    """With ``template``, every read mode writes exactly xarray's
    ``groupby(['time.month', 'time.hour']).mean()``, static variables
    broadcast along month and hour with their own values and dtype."""
    stores, _ = climatology_runs
    expected = _xarray_climatology(era5, MONTH_HOUR)
    assert expected["geopotential_at_surface"].dims[:2] == MONTH_HOUR
    for (split, _through_storage, with_template), path in stores.items():
        if not with_template:
            continue
        written = xarray.open_zarr(path).compute()
        for name in era5.data_vars:
            assert written[name].dtype == era5[name].dtype, (name, split)
        xarray.testing.assert_allclose(
            written.transpose(*expected.dims),
            expected,
            rtol=1e-6,
        )


def test_static_variables_of_a_climatology_are_broadcast_along_every_label_without_template(  # noqa: E501
    era5, climatology_runs
):
    """Without ``template`` the output has every month: the time-dependent
    variables are NaN in months without data, as before, and static ones
    are broadcast along all of them, whatever the read mode (as
    ``climatology_template`` promises)."""
    stores, _ = climatology_runs
    present = _xarray_climatology(era5, MONTH_HOUR)
    all_months = present.reindex(month=np.arange(1, 13))
    written = {
        (split, through_storage): xarray.open_zarr(path).compute()
        for (split, through_storage, with_template), path in stores.items()
        if not with_template
    }
    assert len(written) == 4
    for result in written.values():
        np.testing.assert_array_equal(result.month, np.arange(1, 13))
        xarray.testing.assert_allclose(
            result["2m_temperature"].transpose(*all_months["2m_temperature"].dims),
            all_months["2m_temperature"],
            rtol=1e-6,
        )
        for name in ("geopotential_at_surface", "land_sea_mask"):
            static = era5[name].broadcast_like(result[name])
            # cell_methods records the statistic and grouping of the output
            xarray.testing.assert_identical(
                result[name].drop_vars(["month", "hour"]).drop_attrs(),
                static.transpose(*result[name].dims)
                .drop_vars(["month", "hour"])
                .drop_attrs(),
            )
            assert "mean" in result[name].attrs["cell_methods"]
    first, *others = written.values()
    for other in others:
        xarray.testing.assert_identical(other, first)


def test_static_variables_count_once_per_group_as_in_xarray(era5, climatology_runs):
    """Other statistics treat static variables as xarray does (a count of 1
    where defined), reading one variable per element or all together."""
    _, collected = climatology_runs
    expected = _xarray_climatology(era5, "month", "count")
    for split in (1, 0):
        outputs = collected[f"count-{split}"]
        names = set()
        for key, chunk in outputs:
            names.update(chunk.data_vars)
            region = {
                dim: slice(offset, offset + chunk.sizes[dim])
                for dim, offset in key.offsets.items()
            }
            want = expected[list(chunk.data_vars)].isel(region)
            xarray.testing.assert_identical(chunk.transpose(*want.dims), want)
        assert names == set(expected.data_vars)


def test_anomaly_of_static_variables_is_what_xarray_gives(era5):
    """``ds.groupby('time.month') - climatology`` broadcasts a static field
    along time, with value field - climatology = 0 where both are defined;
    Anomaly gives that value (without adding a time dimension, so the output
    keeps the source's layout) in both read modes; a static variable missing
    from the climatology passes through."""
    climatology = _xarray_climatology(era5, "month").drop_vars("land_sea_mask")
    expected = era5.groupby("time.month") - climatology

    def build(p):
        outputs = []
        for split in (True, False):
            outputs.append(
                p
                | f"Read{split}" >> xb.DatasetToChunks(era5, CHUNKS, split_vars=split)
                | f"Anomaly{split}" >> xb.Anomaly(climatology, "month")
                | f"Label{split}" >> beam.Map(lambda kv, split=split: (split, kv))
            )
        return outputs | beam.Flatten()

    results: dict[bool, list] = {True: [], False: []}
    for split, value in runners.collect(build):
        results[split].append(value)
    for split, outputs in results.items():
        _, anomaly = xb.consolidate_fully(outputs)
        xarray.testing.assert_allclose(
            anomaly["2m_temperature"],
            expected["2m_temperature"].drop_vars("month"),
            rtol=1e-5,
            atol=1e-4,
        )
        static = anomaly["geopotential_at_surface"]
        assert static.dims == ("latitude", "longitude"), split
        assert static.dtype == np.float32
        oracle = expected["geopotential_at_surface"]
        assert (oracle == oracle.isel(time=0)).where(oracle.notnull(), True).all()
        xarray.testing.assert_identical(
            static, oracle.isel(time=0, drop=True).astype(np.float32)
        )
        xarray.testing.assert_identical(anomaly["land_sea_mask"], era5["land_sea_mask"])


def test_anomaly_of_a_static_variable_whose_climatology_varies_is_refused(era5):
    """A static field whose climatology differs between groups would have an
    anomaly that varies in time, which a chunk without time cannot hold."""
    climatology = _xarray_climatology(era5, "month")
    climatology["geopotential_at_surface"] += xarray.DataArray(
        [0.0, 1.0], dims="month"
    ).astype(np.float32)
    static = era5[["geopotential_at_surface"]]
    with pytest.raises(
        ValueError,
        match=_mentioning("'geopotential_at_surface'", "'time'", "month"),
    ):
        runners.collect(
            lambda p: (
                p
                | beam.Create([(Key({"latitude": 0, "longitude": 0}), static)])
                | xb.Anomaly(climatology, "month")
            )
        )


# --- NaT in coordinates --------------------------------------------------------


def _with_nat() -> xarray.Dataset:
    """Eight hourly steps whose ``time`` index has a NaT (a missing step), and
    a ``valid_time`` coordinate with another NaT."""
    time = pd.date_range("2021-03-01", periods=8, freq="h").values.copy()
    valid = time + np.timedelta64(6, "h")
    time[5] = np.datetime64("NaT")
    valid[2] = np.datetime64("NaT")
    rng = np.random.default_rng(1)
    return xarray.Dataset(
        {"2m_temperature": (("time", "x"), rng.random((8, 3)).astype(np.float32))},
        coords={"time": time, "x": [0, 1, 2], "valid_time": ("time", valid)},
    )


def test_nat_in_datetime_coordinates_round_trips_through_zarr_exactly(tmp_path):
    """NaT equals NaT for the identity of labels, as in xarray: a dataset with
    NaT in its time index and in a datetime coordinate is written, chunk by
    chunk, by ``ChunksToZarr`` and by ``Dataset.to_zarr``, and reads back
    identical."""
    dataset = _with_nat()
    template = dataset.chunk({"time": 4})  # valid_time is written with the chunks
    plain, high_level = tmp_path / "plain.zarr", tmp_path / "dataset.zarr"
    with beam.Pipeline(xb.InProcessRunner()) as p:
        _ = (
            p
            | xb.DatasetToChunks(dataset, {"time": 4})
            | xb.ChunksToZarr(str(plain), template, {"time": 4})
        )
        _ = p | xb.Dataset.from_xarray(dataset, {"time": 4}).to_zarr(str(high_level))
    for path in (plain, high_level):
        written = xarray.open_zarr(path).compute()
        xarray.testing.assert_identical(written, dataset)
    # An existing store with NaT labels matches its own template.
    xb.setup_zarr(template, str(plain), {"time": 4}, mode="r+")


def test_chunk_labels_with_nat_match_the_template_and_mismatches_name_the_element():
    dataset = _with_nat()
    template = xb.make_template(dataset)
    second_half = dataset.isel(time=slice(4, 8))
    xb.validate_zarr_chunk(Key({"time": 4}), second_half, template, {"time": 4})
    hours = pd.to_datetime(["2021-03-01T04", "2021-03-01T05", "2021-03-01T06"])
    filled = second_half.assign_coords(time=[*hours, second_half.time.values[3]])
    with pytest.raises(
        ValueError, match=_mentioning("'time'", "element 1 is", "05:00", "has", "NaT")
    ):
        xb.validate_zarr_chunk(Key({"time": 4}), filled, template, {"time": 4})
    late = second_half.assign_coords(
        time=[*second_half.time.values[:3], np.datetime64("2021-03-01T09", "ns")]
    )
    with pytest.raises(ValueError, match=_mentioning("element 3 is", "09:00")):
        xb.validate_zarr_chunk(Key({"time": 4}), late, template, {"time": 4})


@pytest.mark.parametrize(
    ("coordinate", "values", "encoding", "detail"),
    [
        ("latitude", [10.1, 0.3, -10.7], {"dtype": "float32"}, "10.1000003"),
        (
            "time",
            np.array(["2021-03-01T00", "NaT", "2021-03-01T01"], "M8[ns]"),
            {"units": "hours since 2021-03-01", "dtype": "int16"},
            "NaT in the template",
        ),
    ],
    ids=["float32-latitude", "nat-in-int16-hours"],
)
def test_an_index_that_would_not_read_back_as_written_is_refused_before_the_store_exists(  # noqa: E501
    tmp_path, coordinate, values, encoding, detail
):
    """The labels a store gets are checked against the template before the
    store is created, with a message naming the coordinate and what differs
    (not after, with a message blaming the new store). A NaT stored as 16-bit
    hours reads back as the epoch, for instance."""
    dataset = xarray.Dataset(
        {"v": ((coordinate,), np.arange(3.0))}, coords={coordinate: values}
    )
    dataset[coordinate].encoding.update(encoding)
    path = tmp_path / "out.zarr"
    with pytest.raises(
        ValueError,
        match=_mentioning(f"coordinate {coordinate!r}", "read back", detail),
    ):
        xb.setup_zarr(dataset.chunk(), str(path))
    assert not path.exists()


def test_a_coordinate_that_cannot_be_stored_is_named_among_others(tmp_path):
    """All coordinates are checked in one round trip; when that fails, the
    message still names the one at fault, and no store is created."""
    dataset = xarray.Dataset(
        {"v": (("x", "y"), np.zeros((3, 2)))}, coords={"x": [1, 2, 3], "y": [0.5, 1.5]}
    )
    dataset = dataset.chunk().assign_coords(
        label=("x", np.array([1, "a", None], object)), height=("y", [2.0, 10.0])
    )
    path = tmp_path / "out.zarr"
    with pytest.raises(
        ValueError, match=_mentioning("coordinate 'label'", "cannot be stored")
    ):
        xb.setup_zarr(dataset, str(path))
    assert not path.exists()
    xb.setup_zarr(dataset.drop_vars("label"), str(path))
    assert xarray.open_zarr(path).height.values.tolist() == [2.0, 10.0]


# --- corrupt chunks -------------------------------------------------------------


def _corrupt_store(path, zarr_format: int) -> tuple[str, np.ndarray]:
    """A store of one 8 x 6 float32 array in 4 x 3 chunks, the chunk at
    (1, 1) overwritten with garbage; returns its stored key and the data."""
    data = np.arange(48, dtype=np.float32).reshape(8, 6)
    xarray.Dataset({"2m_temperature": (("time", "x"), data)}).to_zarr(
        path,
        zarr_format=zarr_format,
        encoding={"2m_temperature": {"chunks": (4, 3)}},
        consolidated=True,
    )
    key = "c/1/1" if zarr_format == 3 else "1.1"
    with open(os.path.join(path, "2m_temperature", *key.split("/")), "wb") as f:
        f.write(b"not a compressed chunk" * 3)
    return key, data


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("direct", [True, False], ids=["direct", "zarr-python"])
def test_a_chunk_that_cannot_be_decoded_is_named_with_its_array_and_store(
    tmp_path, zarr_format, direct
):
    path = str(tmp_path / "era5.zarr")
    key, data = _corrupt_store(path, zarr_format)
    array = zarr.open_group(path, mode="r")["2m_temperature"]
    io = region_io.RegionIO(array, direct=direct)
    assert io.direct == direct
    out = np.zeros((8, 6), np.float32)
    with pytest.raises(ValueError) as caught:
        io.read((slice(0, 8), slice(0, 6)), out)
    message = str(caught.value)
    assert f"chunk {key!r}" in message
    assert "array '2m_temperature'" in message
    assert path in message
    assert caught.value.__cause__ is not None
    assert str(caught.value.__cause__) in message  # the codec's own words
    # Readable chunks are unaffected.
    io.read((slice(0, 4), slice(0, 6)), out[:4])
    np.testing.assert_array_equal(out[:4], data[:4])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_reading_a_corrupt_store_in_a_pipeline_names_the_chunk(tmp_path):
    path = str(tmp_path / "era5.zarr")
    key, _ = _corrupt_store(path, 3)
    source, chunks = xb.open_zarr(path)
    with pytest.raises(
        ValueError, match=_mentioning(f"chunk {key!r}", "'2m_temperature'", path)
    ):
        runners.collect(lambda p: p | xb.DatasetToChunks(source, chunks))


# --- 9. The CLI's errors, partial files, file modes, descriptors -----------------

_O_DIRECT = getattr(os, "O_DIRECT", 0)
_CORRUPT_CHUNK = os.path.join("2m_temperature", "c", "1", "0", "0")

# The command.


@pytest.fixture(scope="module")
def small_store(tmp_path_factory) -> str:
    """Two days of hourly data on a 30 degree grid, in one-day chunks."""
    path = str(tmp_path_factory.mktemp("field-safety") / "small.zarr")
    synthetic.write_era5_like(path, hours=48, resolution=30.0)
    return path


@pytest.fixture
def corrupt_store(small_store, tmp_path) -> str:
    """A copy of the small store with one chunk object overwritten by garbage."""
    path = str(tmp_path / "corrupt.zarr")
    shutil.copytree(small_store, path)
    with open(os.path.join(path, _CORRUPT_CHUNK), "wb") as f:
        f.write(b"these bytes are not a compressed chunk" * 4)
    return path


def run(argv: list[str]) -> int:
    """The exit code of the command run in this process (argparse exits too)."""
    try:
        return cli.main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)


def rechunk_argv(source: str, target: str) -> list[str]:
    return ["rechunk", source, target, "--target-chunks", "time=-1"]


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def fail_reads_with(monkeypatch, error: BaseException) -> None:
    """Make every region read of a store (inside a pipeline step) raise."""

    def failing_read(self, region, out):
        raise error

    monkeypatch.setattr(region_io.RegionIO, "read", failing_read)


@pytest.mark.parametrize(
    "beam_args",
    [[], ["--", "--direct_running_mode", "multi_threading"]],
    ids=["in_memory", "multi_threading"],  # workers print tracebacks
)
def test_a_corrupt_chunk_gives_one_line_naming_the_step_and_exit_code_1(
    capsys, tmp_path, corrupt_store, beam_args
):
    code = run([*rechunk_argv(corrupt_store, str(tmp_path / "out.zarr")), *beam_args])

    line = one_line(capsys.readouterr().err)
    assert code == 1, line
    assert line.startswith("xarray-beam rechunk: error in step 'RechunkZarr/"), line
    assert "Zstd decompression error: invalid input data" in line
    assert "[while running" not in line
    assert "Traceback" not in line


def test_a_value_error_in_a_step_is_a_failure_not_a_usage_error(
    capsys, monkeypatch, tmp_path, small_store
):
    fail_reads_with(monkeypatch, ValueError("injected failure\nsecond line"))

    code = run(rechunk_argv(small_store, str(tmp_path / "out.zarr")))

    line = one_line(capsys.readouterr().err)
    assert code == 1, line
    assert line.startswith("xarray-beam rechunk: error in step 'RechunkZarr/"), line
    assert "': ValueError: injected failure" in line
    assert "second line" not in line
    assert "[while running" not in line


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_before_or_after_the_subcommand_shows_the_traceback(
    capsys, monkeypatch, tmp_path, small_store, where
):
    fail_reads_with(monkeypatch, ValueError("injected failure"))
    argv = rechunk_argv(small_store, str(tmp_path / "out.zarr"))
    argv = ["--verbose", *argv] if where == "before" else [*argv, "--verbose"]

    code = run(argv)

    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback (most recent call last)" in err
    assert "ValueError: injected failure" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("xarray-beam rechunk: error in step 'RechunkZarr/"), err


def test_ctrl_c_in_a_step_prints_interrupted_and_exits_130(
    capsys, monkeypatch, tmp_path, small_store
):
    fail_reads_with(monkeypatch, KeyboardInterrupt())

    out = str(tmp_path / "out.zarr")
    code = run(rechunk_argv(small_store, out))

    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 130, err
    assert 1 <= len(lines) <= 3, err  # and says how far the output got
    assert lines[0].startswith("xarray-beam rechunk: interrupted: 0 of "), err
    assert "--resume" in lines[-1]


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_ctrl_c_outside_a_step_prints_interrupted_and_exits_130(
    capsys, monkeypatch, tmp_path, small_store, verbose
):
    def interrupted_job(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(jobs, "rechunk_job", interrupted_job)
    argv = rechunk_argv(small_store, str(tmp_path / "out.zarr"))

    code = run([*argv, "--verbose"] if verbose else argv)

    err = capsys.readouterr().err
    assert code == 130, err
    assert err.strip().splitlines()[-1] == "xarray-beam rechunk: interrupted"
    assert ("Traceback" in err) == verbose
    if not verbose:
        one_line(err)


def test_an_unexpected_error_outside_a_step_gives_one_line_and_exit_code_1(
    capsys, monkeypatch, tmp_path, small_store
):
    def broken_job(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("something broke\nwith details")

    monkeypatch.setattr(jobs, "rechunk_job", broken_job)

    code = run(rechunk_argv(small_store, str(tmp_path / "out.zarr")))

    line = one_line(capsys.readouterr().err)
    assert code == 1, line
    assert line.startswith("xarray-beam rechunk: error: RuntimeError: something broke")


def test_usage_errors_keep_exit_code_2(capsys, tmp_path):
    code = run(["verify", str(tmp_path / "nothing-here.zarr")])

    line = one_line(capsys.readouterr().err)
    assert code == 2, line
    assert line.startswith("xarray-beam verify: error:")


@pytest.mark.parametrize(
    "argv, verbose",
    [
        (["info", "x.zarr"], False),
        (["--verbose", "info", "x.zarr"], True),
        (["info", "x.zarr", "--verbose"], True),
        (["-v", "verify", "x.zarr"], True),
        (["verify", "x.zarr", "-v"], True),
    ],
)
def test_verbose_is_a_global_flag_before_or_after_the_subcommand(argv, verbose):
    assert cli.build_parser().parse_args(argv).verbose is verbose


@pytest.mark.parametrize("subcommand", [None, "rechunk", "climatology", "verify"])
def test_help_documents_verbose(capsys, subcommand):
    argv = ["--help"] if subcommand is None else [subcommand, "--help"]
    assert run(argv) == 0
    out = capsys.readouterr().out
    assert "--verbose" in out
    assert "traceback" in out


def console_script() -> str:
    return os.path.join(os.path.dirname(sys.executable), "xarray-beam")


@pytest.mark.slow  # a new Python process
def test_console_script_reports_a_failing_step_in_one_line(tmp_path, corrupt_store):
    target = str(tmp_path / "out.zarr")
    completed = subprocess.run(
        [console_script(), *rechunk_argv(corrupt_store, target)],
        capture_output=True,
        text=True,
        check=False,
    )

    line = one_line(completed.stderr)  # no Beam log records, no traceback
    assert completed.returncode == 1, completed.stderr
    assert line.startswith("xarray-beam rechunk: error in step 'RechunkZarr/"), line
    assert "Zstd decompression error" in line


# Files: partial files, descriptors and permissions.


def open_descriptors() -> list[str]:
    """What this process's file descriptors refer to."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("no /proc/self/fd on this system")
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        # The descriptor listdir itself used is closed by now.
        with contextlib.suppress(OSError):
            targets.append(os.readlink(os.path.join("/proc/self/fd", fd)))
    return targets


def descriptors_under(directory: str) -> list[str]:
    return [target for target in open_descriptors() if target.startswith(directory)]


def o_direct_opens(directory: str) -> bool:
    """Whether the file system of ``directory`` lets files open with O_DIRECT."""
    if not _O_DIRECT:
        return False
    path = os.path.join(directory, "probe")
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | _O_DIRECT))
    except OSError:
        return False
    finally:
        if os.path.exists(path):
            os.remove(path)
    return True


def writes_under(directory: str, write: Callable, fail: Callable) -> Callable:
    """A stand-in for ``write`` that, for files in ``directory``, writes at
    most a page the first time and calls ``fail`` instead afterwards."""
    calls = []

    def stand_in(fd: int, data: Any) -> int:
        if not os.readlink(f"/proc/self/fd/{fd}").startswith(directory):
            return write(fd, data)
        calls.append(fd)
        if len(calls) > 1:
            return fail()
        return write(fd, memoryview(data)[:4096])

    return stand_in


def disk_full() -> int:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def broken() -> int:
    raise RuntimeError("injected failure while writing")


def first_run_only(fd: int, runs: list[memoryview]) -> int:
    """``os.writev`` that writes only part of the first run (a short write)."""
    return os.write(fd, runs[0][: max(1, runs[0].nbytes // 2)])


@pytest.fixture
def fd_check(tmp_path) -> Iterator[str]:
    """The test's directory; no descriptor may be left open on it, nor any
    descriptor at all."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("no /proc/self/fd on this system")
    directory = str(tmp_path)
    before = len(os.listdir("/proc/self/fd"))
    yield directory
    assert descriptors_under(directory) == []
    assert len(os.listdir("/proc/self/fd")) == before


def leftovers(directory: str) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(root, name), directory)
        for root, _, names in os.walk(directory)
        for name in names
    )


@pytest.mark.parametrize("exclusive", [False, True], ids=["replace", "exclusive"])
@pytest.mark.parametrize("failure", [disk_full, broken], ids=["enospc", "exception"])
def test_a_failed_write_file_leaves_no_partial_file(
    monkeypatch, fd_check, exclusive, failure
):
    path = os.path.join(fd_check, "a.zarr", "t", "c", "0")
    monkeypatch.setattr(os, "writev", first_run_only)
    monkeypatch.setattr(os, "write", writes_under(fd_check, os.write, failure))
    runs = [memoryview(b"x" * 5000), memoryview(b"y" * 3000)]

    with pytest.raises((OSError, RuntimeError)) as raised:
        files.write_file(path, runs, exclusive=exclusive)

    monkeypatch.undo()
    if failure is disk_full:
        assert isinstance(raised.value, OSError)
        assert raised.value.errno == errno.ENOSPC
    else:
        assert "injected failure" in str(raised.value)
    assert leftovers(fd_check) == []


def test_a_failed_write_file_leaves_the_file_already_there(monkeypatch, fd_check):
    path = os.path.join(fd_check, "c", "0")
    files.write_file(path, [memoryview(b"old bytes")])

    def full_disk_writev(fd: int, runs: list[memoryview]) -> int:
        return disk_full()

    monkeypatch.setattr(os, "writev", full_disk_writev)
    with pytest.raises(OSError) as raised:
        files.write_file(path, [memoryview(b"new bytes")])
    monkeypatch.undo()

    assert raised.value.errno == errno.ENOSPC
    assert leftovers(fd_check) == [os.path.join("c", "0")]
    with open(path, "rb") as f:
        assert f.read() == b"old bytes"


def test_a_failed_rename_leaves_no_partial_file(fd_check):
    path = os.path.join(fd_check, "c", "0")
    os.makedirs(os.path.join(path, "in-the-way"))  # a directory is no file

    with pytest.raises(OSError):
        files.write_file(path, [memoryview(b"bytes")])

    assert leftovers(fd_check) == []


def test_a_failed_write_runs_removes_its_file(monkeypatch, fd_check):
    path = os.path.join(fd_check, "x.partial")

    def full_disk_writev(fd: int, runs: list[memoryview]) -> int:
        return disk_full()

    monkeypatch.setattr(os, "writev", full_disk_writev)
    with pytest.raises(OSError) as raised:
        files.write_runs(path, [memoryview(b"bytes")])
    monkeypatch.undo()

    assert raised.value.errno == errno.ENOSPC
    assert leftovers(fd_check) == []


def direct_or_skip(directory: str, direct: bool) -> None:
    if direct and not o_direct_opens(directory):
        pytest.skip("no O_DIRECT on this file system")


@pytest.mark.parametrize("direct", [True, False], ids=["o_direct", "buffered"])
@pytest.mark.parametrize("failure", [disk_full, broken], ids=["enospc", "exception"])
def test_a_failed_chunk_file_write_leaves_no_partial_file_nor_descriptor(
    monkeypatch, fd_check, direct, failure
):
    direct_or_skip(fd_check, direct)
    chunk = chunk_files.ChunkFiles((64, 64), np.dtype(np.float32), 0, direct=direct)
    path = os.path.join(fd_check, "t", "c", "0", "0")
    block = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    monkeypatch.setattr(os, "writev", first_run_only)
    monkeypatch.setattr(os, "write", writes_under(fd_check, os.write, failure))

    with pytest.raises((OSError, RuntimeError)) as raised:
        chunk.write(path, block)

    monkeypatch.undo()
    if failure is disk_full:
        assert isinstance(raised.value, OSError)
        assert raised.value.errno == errno.ENOSPC
    else:
        assert "injected failure" in str(raised.value)
    assert leftovers(fd_check) == []
    assert chunk.direct == direct  # a full disk does not refuse direct I/O


@pytest.mark.parametrize("direct", [True, False], ids=["o_direct", "buffered"])
def test_a_failed_chunk_file_read_leaves_no_descriptor(monkeypatch, fd_check, direct):
    direct_or_skip(fd_check, direct)
    chunk = chunk_files.ChunkFiles((64, 64), np.dtype(np.float32), 0, direct=direct)
    path = os.path.join(fd_check, "c", "0")
    chunk.write(path, np.ones((64, 64), np.float32))

    def failing_readv(fd: int, buffers: list[memoryview]) -> int:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "readv", failing_readv)
    with pytest.raises(OSError) as raised:
        chunk.read(path, np.zeros((64, 64), np.float32))
    monkeypatch.undo()

    assert raised.value.errno == errno.EIO
    assert leftovers(fd_check) == [os.path.join("c", "0")]


@pytest.fixture(params=[0o022, 0o002, 0o077], ids=lambda m: f"umask-{m:03o}")
def umask(request) -> Iterator[int]:
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def zarr_chunk_mode(directory: str) -> int:
    """The permissions of a chunk object zarr's LocalStore writes."""
    store = zarr.storage.LocalStore(os.path.join(directory, "by-zarr.zarr"))
    array = zarr.create_array(store, shape=(4,), chunks=(4,), dtype="f4")
    array[:] = 1.0
    return stat.S_IMODE(os.stat(os.path.join(store.root, "c", "0")).st_mode)


def mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_write_file_creates_files_as_zarr_does(tmp_path, umask):
    directory = str(tmp_path)
    expected = zarr_chunk_mode(directory)
    replaced = os.path.join(directory, "ours", "c", "0")
    linked = os.path.join(directory, "ours", "c", "1")

    files.write_file(replaced, [memoryview(b"bytes")])
    files.write_file(linked, [memoryview(b"bytes")], exclusive=True)

    assert expected == 0o666 & ~umask
    assert (oct(mode(replaced)), oct(mode(linked))) == (oct(expected),) * 2


@pytest.mark.parametrize("direct", [True, False], ids=["o_direct", "buffered"])
def test_chunk_files_are_created_as_zarr_does(tmp_path, umask, direct):
    directory = str(tmp_path)
    direct_or_skip(directory, direct)
    expected = zarr_chunk_mode(directory)
    chunk = chunk_files.ChunkFiles((64, 64), np.dtype(np.float32), 0, direct=direct)
    path = os.path.join(directory, "ours", "c", "0")

    chunk.write(path, np.ones((64, 64), np.float32))

    assert chunk.direct == direct
    assert oct(mode(path)) == oct(expected)
