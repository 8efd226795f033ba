"""Never lose data, the way users and clusters behave.

Each section is a scenario seen in the field: the output is the input, a
resume of another job, a setup interrupted or retried by the runner, a
store that fools ``verify``, a lost source chunk. Every test checks that
the input stays byte-identical and that the output is complete and correct,
or refused with a message that says what is wrong.
"""

import os

import apache_beam as beam
import numpy as np
import pytest
import xarray
from helpers import read_tree

import xarray_beam as xb
from xarray_beam import synthetic
from xarray_beam.io import locations
from xarray_beam.programs import cli

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
