"""Whole jobs, store to store, for the CLI and the examples.

Each job opens its input, says what it will do (input, chunks, plan,
runner), runs the pipeline with a progress bar when the runner works in this
process, and says where the output went and how long it took.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import apache_beam as beam
import xarray

from xarray_beam.beam import metrics
from xarray_beam.beam.climatology import Climatology
from xarray_beam.beam.reading import DatasetToChunks
from xarray_beam.beam.rechunk_zarr import RechunkZarr
from xarray_beam.beam.zarr import ChunksToZarr
from xarray_beam.io import region_io, stores
from xarray_beam.io.zarr_io import open_zarr
from xarray_beam.model import planning, units
from xarray_beam.model.units import format_bytes
from xarray_beam.programs import launch, progress

Printer = Callable[[str], None]
_READ_TARGET = 64 * 10**6  # bytes of all variables per chunk read


@dataclasses.dataclass
class JobResult:
    """What a job did.

    Attributes:
      output: where the output store is.
      seconds: wall time of the pipeline run.
      nbytes: bytes of the input's data variables.
      result: Beam's PipelineResult.
      plan: the rechunk plan, for rechunk jobs.
    """

    output: str
    seconds: float
    nbytes: int
    result: Any
    plan: Any = None


def describe(dataset: xarray.Dataset, chunks: Mapping[str, int] | None = None) -> str:
    """A short description of a dataset: sizes, variables, bytes, chunks."""
    sizes = ", ".join(f"{d}: {n}" for d, n in dataset.sizes.items())
    text = (
        f"{{{sizes}}}, {len(dataset.data_vars)} variables, "
        f"{format_bytes(dataset.nbytes)}"
    )
    if chunks:
        text += f", stored in chunks of {dict(chunks)}"
    return text


def _run(
    pipeline: beam.Pipeline,
    options: beam.options.pipeline_options.PipelineOptions,
    total: int,
    counter: str,
    bytes_counter: str,
    unit: str,
    out: Printer = print,
) -> tuple[Any, float]:
    start = time.perf_counter()
    # Elsewhere the counters live on the workers (Dataflow shows them).
    enabled = None if launch.runs_in_process(options) else False
    with (
        metrics.Tally(["source_chunks_missing"]) as tally,
        progress.Progress(total, counter, bytes_counter, unit, enabled=enabled),
    ):
        result = pipeline.run()
        result.wait_until_finish()
    missing = tally["source_chunks_missing"]
    if missing:
        out(
            f"warning: {missing} chunk(s) were missing from the input and read as "
            f"the fill value (--missing-chunks error refuses them, fill accepts "
            f"them quietly)"
        )
    return result, time.perf_counter() - start


def _say_runner(out: Printer, runner: str, beam_args: Sequence[str]) -> None:
    out(launch.describe_runner(runner, beam_args))


def rechunk_job(
    source: str,
    target: str,
    target_chunks: Mapping[str, int],
    max_mem: int | str = "1GiB",
    temp_store: str | None = None,
    *,
    beam_args: Sequence[str] = (),
    out: Printer = print,
    storage_options: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> JobResult:
    """Rechunk a Zarr store into a new one (see ``RechunkZarr``), verbosely.

    Args:
      source, target, target_chunks, temp_store: as for ``RechunkZarr``.
      max_mem: memory a task may use: bytes, or a size such as '256MB' or
        '1GiB' (checked first, before the source is opened).
      beam_args: Beam flags (``--runner``, ``--project``, ...).
      out: where to print what happens.
      storage_options: fsspec options for all stores.
      **kwargs: more ``RechunkZarr`` options (mode, num_threads, min_mem,
        target_shards, zarr_format, keep_temp).

    Example:
      ``rechunk_job('era5.zarr', 'pencils.zarr', {'time': -1})``
    """
    max_mem, min_mem = planning.memory_bounds(max_mem, kwargs.pop("min_mem", None))
    options, runner = launch.pipeline_options(beam_args)
    _say_runner(out, runner, beam_args)
    dataset, chunks = open_zarr(source, **_xarray_kwargs(storage_options))
    out(f"input: {source}: {describe(dataset, chunks)}")
    transform = RechunkZarr(
        source,
        target,
        target_chunks,
        max_mem,
        temp_store,
        min_mem=min_mem,
        storage_options=storage_options,
        **kwargs,
    )
    out(str(transform.plan))
    pipeline = beam.Pipeline(options=options)
    _ = pipeline | "RechunkZarr" >> transform
    total = sum(
        stage.tasks * len(plan.variables)
        for plan in transform.plan.plans
        for stage in plan.stages
    )
    result, seconds = _run(
        pipeline,
        options,
        total,
        "rechunk_regions_copied",
        "rechunk_bytes_copied",
        "regions",
        out,
    )
    out(
        f"rechunked {format_bytes(dataset.nbytes)} in {seconds:.1f} s "
        f"({format_bytes(dataset.nbytes / max(seconds, 1e-9))}/s) into "
        f"{stores.describe(transform.target)}"
    )
    return JobResult(
        stores.describe(transform.target),
        seconds,
        dataset.nbytes,
        result,
        transform.plan,
    )


def default_read_chunks(
    dataset: xarray.Dataset, chunks: Mapping[str, int], dim: str = "time"
) -> dict[str, int]:
    """Chunks to read for a reduction along ``dim``: whole stored chunks,
    several along ``dim`` (about 64 MB of all variables), whole elsewhere.

    Example:
      >>> import numpy as np
      >>> ds = xarray.Dataset({'t': (('time', 'x'), np.zeros((20000, 1000)))})
      >>> default_read_chunks(ds, {'time': 10, 'x': 1000})
      {'time': 8000, 'x': 1000}
    """
    per_step = sum(
        var.dtype.itemsize * var.size // max(var.sizes.get(dim, 1), 1)
        for var in dataset.data_vars.values()
    )
    step = chunks.get(dim, dataset.sizes[dim])
    steps = max(step, (_READ_TARGET // max(per_step, 1)) // step * step)
    read = cast("dict[str, int]", {d: dataset.sizes[d] for d in dataset.dims})
    read[dim] = min(steps, dataset.sizes[dim])
    return read


def climatology_job(
    source: str,
    target: str,
    by: str | Sequence[str] = ("month", "hour"),
    stat: str = "mean",
    *,
    read_chunks: Mapping[str, int] | None = None,
    temp_store: str | None = None,
    max_mem: int | str = "256MiB",
    mode: str | None = None,
    num_threads: int | None = 2,
    beam_args: Sequence[str] = (),
    out: Printer = print,
    storage_options: Mapping[str, Any] | None = None,
    resume: bool = False,
    missing_chunks: str = "warn",
    **kwargs: Any,
) -> JobResult:
    """A climatology of a Zarr store, written to a new store, verbosely.

    Args:
      source: the input store (with a datetime64 ``time`` dimension).
      target: the output store.
      by, stat: as for ``Climatology`` (``**kwargs`` takes its other
        options: skipna, min_count, ddof, dtype).
      read_chunks: chunks to read (default ``default_read_chunks``).
      temp_store: where partial results are merged; default, for runners in
        this process, ``<target>.climatology-temp`` (removed afterwards).
      max_mem: partial results held before spilling to ``temp_store``:
        bytes, or a size such as '256MB' (checked first).
      mode: output store mode ('w-', 'w', 'r+').
      num_threads: chunks read and reduced at once by a worker.
      beam_args, out, storage_options: as for ``rechunk_job``.
      resume: continue an interrupted run (see ``ChunksToZarr``): output
        chunks already in the store are not written again.

    Example:
      ``climatology_job('era5.zarr', 'clim.zarr', ('month', 'hour'))``
    """
    max_mem = units.byte_size(max_mem, "max_mem")
    options, runner = launch.pipeline_options(beam_args)
    _say_runner(out, runner, beam_args)
    dataset, chunks = open_zarr(source, **_xarray_kwargs(storage_options))
    out(f"input: {source}: {describe(dataset, chunks)}")
    read_chunks = dict(read_chunks or default_read_chunks(dataset, chunks))
    store = stores.normalize_store(target)
    if (
        temp_store is None
        and launch.runs_in_process(options)
        and isinstance(store, str)
    ):
        temp_store = store.rstrip("/") + ".climatology-temp"
    climatology = Climatology(
        by,
        stat,
        template=dataset,
        temp_store=temp_store,
        max_mem=max_mem,
        storage_options=dict(storage_options) if storage_options else None,
        num_threads=num_threads,
        **kwargs,
    )
    template = climatology.template(dataset)
    grouping = climatology.grouping
    zarr_chunks = climatology.zarr_chunks(read_chunks)
    # One variable per element: half the memory, and faster (measured).
    to_chunks = DatasetToChunks(
        dataset,
        read_chunks,
        split_vars=True,
        num_threads=num_threads,
        missing_chunks=cast(region_io.MissingChunks, missing_chunks),
    )
    out(
        f"climatology: {stat} by {'/'.join(grouping.names)}, reading "
        f"{to_chunks.chunk_count} chunks of {read_chunks}"
    )
    pipeline = beam.Pipeline(options=options)
    _ = (
        pipeline
        | "Read" >> to_chunks
        | "Climatology" >> climatology
        | "Write"
        >> ChunksToZarr(
            store,
            template,
            zarr_chunks,
            mode=mode,
            storage_options=storage_options,
            resume=resume,
        )
    )
    result, seconds = _run(
        pipeline,
        options,
        to_chunks.chunk_count,
        "chunks_read",
        "bytes_read",
        "chunks",
        out,
    )
    rate = format_bytes(dataset.nbytes / max(seconds, 1e-9))
    out(
        f"computed the climatology of {format_bytes(dataset.nbytes)} in "
        f"{seconds:.1f} s ({rate}/s) into {stores.describe(store)}"
    )
    return JobResult(stores.describe(store), seconds, dataset.nbytes, result)


def _xarray_kwargs(storage_options: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"storage_options": dict(storage_options)} if storage_options else {}
