"""The example pipelines build for Google Cloud Dataflow, offline.

``--dry_run`` makes Beam's DataflowRunner build the job (pipeline proto,
options, staged package from ``--setup_file``) without submitting it; a guard
on sockets proves that nothing reaches the network meanwhile. The package's
source distribution must hold what Dataflow workers install.
"""

import ipaddress
import pathlib
import re
import runpy
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile

import pytest
from apache_beam.portability.api import beam_runner_api_pb2
from helpers import FREE_PASSES, read_tree

from xarray_beam import synthetic
from xarray_beam.beam import rechunk_zarr

pytestmark = pytest.mark.slow  # package builds for Dataflow

REPO = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
PENCILS = "time=-1,latitude=5,longitude=9"
# With time chunks of 6 (48 hours on the 10 degree grid) and free passes, this
# budget gives a two-pass plan for PENCILS.
TWO_PASS_MEM = "200000"
_LOOPBACK_NAMES = {"localhost"}


def _dataflow_flags(setup_file: pathlib.Path) -> list[str]:
    return [
        "--runner=DataflowRunner",
        "--project=test-project",
        "--region=us-central1",
        "--temp_location=gs://test-bucket/tmp",
        "--dry_run=True",
        "--no_auth",
        f"--setup_file={setup_file}",
    ]


def _is_loopback(family: int, address) -> bool:
    if family == getattr(socket, "AF_UNIX", None) or isinstance(address, str | bytes):
        return True
    host = address[0]
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture
def blocked_connections(monkeypatch) -> list:
    """Make every socket connection to a non-loopback address fail.

    Yields the list of addresses that were refused, so a test can also catch
    attempts that the code under test swallowed.
    """
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    blocked = []

    def refuse(address):
        blocked.append(address)
        raise ConnectionRefusedError(f"test guard: no network, not even {address}")

    def guard(method):
        def guarded(sock, address, *args, **kwargs):
            if not _is_loopback(sock.family, address):
                refuse(address)
            return method(sock, address, *args, **kwargs)

        return guarded

    create_connection = socket.create_connection

    def guarded_create_connection(address, *args, **kwargs):
        if not _is_loopback(socket.AF_INET, address):
            refuse(address)
        return create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guard(socket.socket.connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guard(socket.socket.connect_ex))
    monkeypatch.setattr(socket, "create_connection", guarded_create_connection)
    return blocked


def test_network_guard_refuses_remote_addresses_and_allows_loopback(
    blocked_connections,
):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=5):
            pass
    with pytest.raises(ConnectionRefusedError, match="test guard"):
        socket.create_connection(("192.0.2.1", 443), timeout=5)
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("192.0.2.1", 443))
    assert blocked_connections == [("192.0.2.1", 443), ("192.0.2.1", 443)]


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory) -> pathlib.Path:
    """The repository's sources without build outputs, so that building a
    package (which writes ``*.egg-info`` beside ``setup.py``) leaves the
    working tree alone."""
    target = tmp_path_factory.mktemp("package") / "xarray_beam"
    shutil.copytree(
        REPO,
        target,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "*.egg-info",
            "build",
            "dist",
            "__pycache__",
            ".*_cache",
            ".hypothesis",
            "*.zarr",
        ),
    )
    return target


@pytest.fixture(scope="module")
def source_store(tmp_path_factory) -> str:
    """A read-only synthetic store: 48 hours in time chunks of 6."""
    path = str(tmp_path_factory.mktemp("source") / "era5.zarr")
    synthetic.write_era5_like(path, hours=48, resolution=10.0, chunks={"time": 6})
    return path


@pytest.fixture
def run_example(monkeypatch, tmp_path):
    """Run an example's ``main`` as its command line would, keeping the
    example's ``sys.path`` change and Beam's temporary files in the test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    staging = tmp_path / "staging"
    staging.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(staging))

    def run(name: str, argv: list[str]) -> dict:
        module = runpy.run_path(str(EXAMPLES / name), run_name=f"example_{name}")
        return module["main"](argv)

    return run


def _transform_names(job) -> set[str]:
    return {t.unique_name for t in job.proto_pipeline.components.transforms.values()}


def _staged_files(job) -> dict[str, pathlib.Path]:
    """Staged name -> local file, for every artifact the job would upload."""
    staged = {}
    for environment in job.proto_pipeline.components.environments.values():
        for dependency in environment.dependencies:
            role = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(
                dependency.role_payload
            )
            path = beam_runner_api_pb2.ArtifactFilePayload.FromString(
                dependency.type_payload
            ).path
            staged[role.staged_name] = pathlib.Path(path)
    return staged


def _check_stages_the_package(job) -> None:
    staged = _staged_files(job)
    assert "workflow.tar.gz" in staged, sorted(staged)
    assert staged["workflow.tar.gz"].name.startswith("xarray_beam-")


def test_climatology_example_builds_a_dataflow_job_without_network(
    blocked_connections, run_example, source_store, package_copy, tmp_path
):
    output_dir = tmp_path / "out"
    output = output_dir / "climatology.zarr"
    source_before = read_tree(source_store)

    result = run_example(
        "era5_climatology.py",
        [
            "--input",
            f"file://{source_store}",  # a shared file system, for the workers
            "--output",
            f"file://{output}",
            "--output-dir",
            str(output_dir),
            "--",
            *_dataflow_flags(package_copy / "setup.py"),
        ],
    )

    job = result["result"].job
    names = _transform_names(job)
    for step in (
        "Read/LoadChunks",
        "Climatology/ReduceGroups",
        "Write/WriteChunks",
        "Write/SetupZarr",
    ):
        assert any(step in name for name in names), (step, sorted(names))
    _check_stages_the_package(job)
    assert not output_dir.exists()
    assert result["png"] is None
    assert read_tree(source_store) == source_before
    assert blocked_connections == []


def test_rechunk_example_builds_a_dataflow_job_with_a_step_per_planned_pass(
    blocked_connections,
    run_example,
    source_store,
    package_copy,
    tmp_path,
    capsys,
    monkeypatch,
):
    # The default costs rechunk this tiny store in one pass; free passes give
    # the two-pass plan whose steps this test follows.
    monkeypatch.setattr(rechunk_zarr, "cost_model_for", lambda *_: FREE_PASSES)
    output_dir = tmp_path / "out"
    output = output_dir / "pencils.zarr"
    source_before = read_tree(source_store)

    result = run_example(
        "era5_rechunk.py",
        [
            "--input",
            f"file://{source_store}",  # a shared file system, for the workers
            "--output",
            f"file://{output}",
            "--output-dir",
            str(output_dir),
            "--target-chunks",
            PENCILS,
            "--max-mem",
            TWO_PASS_MEM,
            "--",
            *_dataflow_flags(package_copy / "setup.py"),
        ],
    )

    plan = result["plan"]
    assert str(plan) in capsys.readouterr().out
    assert [len(p.stages) for p in plan.plans] == [2]
    job = result["result"].job
    names = _transform_names(job)
    assert any("RechunkZarr/Setup" in name for name in names), sorted(names)
    copies = {
        (int(m[1]), int(m[2]))
        for name in names
        if (m := re.search(r"RechunkZarr/Group(\d+)Pass(\d+)Copy$", name))
    }
    assert copies == {
        (group, number)
        for group, p in enumerate(plan.plans)
        for number in range(1, len(p.stages) + 1)
    }
    _check_stages_the_package(job)
    assert not output_dir.exists()
    assert read_tree(source_store) == source_before
    assert blocked_connections == []


def test_source_distribution_holds_what_dataflow_workers_install(
    package_copy, tmp_path
):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(dist)],
        cwd=package_copy,
        check=True,
        capture_output=True,
    )

    (tarball,) = dist.glob("xarray_beam-*.tar.gz")
    with tarfile.open(tarball) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for required in (
        "xarray_beam/__init__.py",
        "xarray_beam/beam/rechunk_zarr.py",
        "xarray_beam/io/_direct/codec.py",
        "xarray_beam/model/key.py",
        "xarray_beam/programs/cli.py",
        "setup.py",
        "README.md",
    ):
        assert required in members, sorted(members)
