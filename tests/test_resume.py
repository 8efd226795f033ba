"""Resuming interrupted writes: a failing pipeline, a killed process, retries."""

import gzip
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import apache_beam as beam
import numpy as np
import pytest
import xarray
import zarr
from apache_beam.options.pipeline_options import PipelineOptions
from helpers import read_tree
from zarr.buffer import default_buffer_prototype

import xarray_beam as xb
from xarray_beam.io import write_guard
from xarray_beam.io.compat import run

CHUNKS = {"time": 2}


@pytest.fixture
def source():
    rng = np.random.default_rng(3)
    return xarray.Dataset(
        {
            "t2m": (("time", "x"), rng.normal(size=(20, 5)).astype("f4")),
            "lsm": (("x",), rng.random(5)),
        },
        coords={"time": np.arange(20), "x": np.arange(5) * 10.0},
    )


def _without_partials(tree: dict) -> dict:
    """A store's files without zarr's in-flight temporary files."""
    return {k: v for k, v in tree.items() if not k.endswith(".partial")}


def _write(path, source, prepare=lambda element: element, resume=False, **options):
    template = xb.make_template(source)
    with beam.Pipeline("DirectRunner", options=PipelineOptions([], **options)) as p:
        _ = (
            p
            | xb.DatasetToChunks(source, CHUNKS)
            | beam.Map(prepare)
            | xb.ChunksToZarr(path, template, CHUNKS, resume=resume)
        )


class _FailAfter:
    """Lets ``limit`` chunks through, then raises (counted in a file, so the
    count survives pickling)."""

    def __init__(self, counter_path, limit):
        self.counter_path = counter_path
        self.limit = limit

    def __call__(self, element):
        with open(self.counter_path, "a+") as f:
            f.seek(0)
            seen = len(f.read())
            if seen >= self.limit:
                raise RuntimeError("simulated worker failure")
            f.write("x")
        return element


def _chunk_inodes(path) -> dict[str, int]:
    inodes = {}
    for root, _, names in os.walk(os.path.join(path, "t2m")):
        for name in names:
            full = os.path.join(root, name)
            inodes[os.path.relpath(full, path)] = os.stat(full).st_ino
    return inodes


def test_failed_run_then_resume_gives_the_uninterrupted_store(tmp_path, source):
    reference = tmp_path / "reference.zarr"
    _write(reference, source)

    store = tmp_path / "out.zarr"
    with pytest.raises(Exception, match="simulated worker failure"):
        _write(store, source, _FailAfter(tmp_path / "count", limit=4))
    report = xb.verify_zarr(store)
    assert not report.complete  # the failure really left chunks missing
    before = _chunk_inodes(store)
    assert 0 < len(before) < 10

    _write(store, source, resume=True)
    assert xb.verify_zarr(store).complete
    assert read_tree(store) == read_tree(reference)
    after = _chunk_inodes(store)
    # Chunks written by the failed run were skipped, not rewritten.
    assert {k: after[k] for k in before} == before
    xarray.testing.assert_identical(xarray.open_zarr(store).compute(), source)


def test_resume_of_a_complete_store_writes_nothing(tmp_path, source):
    store = tmp_path / "out.zarr"
    _write(store, source)
    before = _chunk_inodes(store)
    tree = read_tree(store)
    _write(store, source, resume=True)
    assert _chunk_inodes(store) == before
    assert read_tree(store) == tree


def test_resume_creates_a_missing_store(tmp_path, source):
    store = tmp_path / "out.zarr"
    _write(store, source, resume=True)
    xarray.testing.assert_identical(xarray.open_zarr(store).compute(), source)


def test_resume_refuses_a_store_that_does_not_match(tmp_path, source):
    store = tmp_path / "out.zarr"
    _write(store, source)
    tree = read_tree(store)
    other = source.isel(x=slice(0, 4))
    with pytest.raises(Exception, match="t2m"):
        _write(store, other, resume=True)
    assert read_tree(store) == tree
    with pytest.raises(ValueError, match="mode='w'"):
        xb.ChunksToZarr(store, xb.make_template(source), resume=True, mode="w")


def test_rewriting_a_chunk_gives_identical_bytes(tmp_path, source):
    """A retried bundle writes the same chunk again: same bytes."""
    first, second = tmp_path / "a.zarr", tmp_path / "b.zarr"
    _write(first, source)
    _write(second, source)
    template = xb.make_template(source)
    chunk = source.isel(time=slice(4, 6))
    before = read_tree(first)
    for _ in range(2):
        xb.write_chunk_to_zarr(xb.Key({"time": 4, "x": 0}), chunk, first, template)
    assert read_tree(first) == before == read_tree(second)


_KILLED_JOB = """
import sys
import apache_beam as beam
import numpy as np
import xarray
from apache_beam.options.pipeline_options import PipelineOptions
import xarray_beam as xb

def slow(element):
    import time  # workers of older Beams do not get this module's globals

    time.sleep(0.4)
    return element

source = xarray.open_zarr(sys.argv[1]).compute()
options = PipelineOptions(
    [], direct_running_mode="multi_processing", direct_num_workers=2
)
with beam.Pipeline("DirectRunner", options=options) as p:
    _ = (
        p
        | xb.DatasetToChunks(source, {"time": 1})
        | beam.Map(slow)
        | xb.ChunksToZarr(sys.argv[2], xb.make_template(source), {"time": 1},
                          resume=True)
    )
"""


@pytest.mark.slow
def test_killed_multi_process_run_then_resume(tmp_path, source):
    """SIGKILL a multi-process DirectRunner job mid-write, resume, verify."""
    big = xarray.concat([source] * 3, "time", data_vars="minimal")
    big = big.assign_coords(time=np.arange(60))
    input_path, store = tmp_path / "input.zarr", tmp_path / "out.zarr"
    big.to_zarr(input_path)
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(_KILLED_JOB))
    job = subprocess.Popen(
        [sys.executable, str(script), str(input_path), str(store)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and job.poll() is None:
            if len(_chunk_inodes(store) if store.exists() else {}) >= 5:
                break
            time.sleep(0.05)
        assert job.poll() is None, "the job ended before it could be killed"
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    written = len(_chunk_inodes(store))
    assert 5 <= written < 60
    assert not xb.verify_zarr(store).complete

    template = xb.make_template(big)
    with beam.Pipeline("DirectRunner") as p:
        _ = (
            p
            | xb.DatasetToChunks(big, {"time": 1})
            | xb.ChunksToZarr(store, template, {"time": 1}, resume=True)
        )
    report = xb.verify_zarr(store, template, decode=True)
    assert report.complete, str(report)
    reference = tmp_path / "reference.zarr"
    with beam.Pipeline("DirectRunner") as p:
        _ = p | xb.DatasetToZarr(big, reference, {"time": 1})
    assert _without_partials(read_tree(store)) == read_tree(reference)


def test_duplicate_keys_with_other_data_fail_without_replacing_data(tmp_path, source):
    store = tmp_path / "out.zarr"
    first = source.isel(time=slice(4, 6))
    second = first + 1.0
    key = xb.Key({"time": 4, "x": 0})
    elements = [
        (xb.Key({"time": t, "x": 0}), source.isel(time=slice(t, t + 2)))
        for t in range(0, 20, 2)
        if t != 4
    ] + [(key, first), (key, second)]
    write = xb.ChunksToZarr(store, xb.make_template(source), CHUNKS)
    with (
        pytest.raises(Exception, match=re.escape(f"chunk {key}")) as info,
        beam.Pipeline("DirectRunner") as p,
    ):
        _ = p | beam.Create(elements) | write
    assert "duplicate keys" in str(info.value)
    # Whichever copy came first is in the store, whole; nothing was mixed.
    written = xarray.open_zarr(store).t2m.isel(time=slice(4, 6)).values
    assert any(np.array_equal(written, c.t2m.values) for c in (first, second))


def test_duplicate_keys_with_the_same_data_are_retries(tmp_path, source):
    store = tmp_path / "out.zarr"
    pieces = [
        (xb.Key({"time": t, "x": 0}), source.isel(time=slice(t, t + 2)))
        for t in range(0, 20, 2)
    ]
    with beam.Pipeline("DirectRunner") as p:
        _ = (
            p
            | beam.Create(pieces + pieces[:3])
            | xb.ChunksToZarr(store, xb.make_template(source), CHUNKS)
        )
    xarray.testing.assert_identical(xarray.open_zarr(store).compute(), source)


def test_a_gzip_chunk_written_again_a_second_later_is_a_retry(tmp_path):
    """gzip stamps the second into each object, so a retried write of the
    same chunk is not byte-identical; the guard still takes it for a retry."""
    store = write_guard.GuardedStore(zarr.storage.LocalStore(str(tmp_path)))
    buffer = default_buffer_prototype().buffer.from_bytes
    payload = np.arange(100, dtype=np.float32).tobytes()
    first, later = (gzip.compress(payload, mtime=t) for t in (1000, 1001))
    other = gzip.compress(payload[::-1], mtime=1000)
    assert first != later

    run(store.set("t2m/c/0", buffer(first)))
    run(store.set("t2m/c/0", buffer(later)))
    with pytest.raises(write_guard.ConflictingWriteError, match="t2m/c/0"):
        run(store.set("t2m/c/0", buffer(other)))

    assert (tmp_path / "t2m" / "c" / "0").read_bytes() == first


def test_mode_r_plus_may_rewrite_existing_chunks(tmp_path, source):
    store = tmp_path / "out.zarr"
    _write(store, source)
    changed = source.assign(t2m=source.t2m * 2)
    template = xb.make_template(changed)
    with beam.Pipeline("DirectRunner") as p:
        _ = (
            p
            | xb.DatasetToChunks(changed, CHUNKS)
            | xb.ChunksToZarr(store, template, CHUNKS, mode="r+")
        )
    xarray.testing.assert_identical(xarray.open_zarr(store).compute(), changed)


def test_a_half_written_object_is_not_taken_for_a_chunk(tmp_path, source):
    """zarr-python writes local objects to '<name>.<random>.partial' and renames
    them into place; what a killed write leaves behind is not a chunk."""
    reference, store = tmp_path / "reference.zarr", tmp_path / "out.zarr"
    _write(reference, source)
    _write(store, source)
    chunk = store / "t2m" / "c" / "3" / "0"
    leftover = chunk.with_name("0.0123456789abcdef0123456789abcdef.partial")
    leftover.write_bytes(chunk.read_bytes()[:10])  # a torn copy
    chunk.unlink()
    report = xb.verify_zarr(store, decode=True)
    assert not report.complete
    assert "t2m: 1 of 10 chunks missing: time[6:8] x x[0:5]" in str(report)
    _write(store, source, resume=True)
    assert xb.verify_zarr(store, decode=True).complete
    assert _without_partials(read_tree(store)) == read_tree(reference)
