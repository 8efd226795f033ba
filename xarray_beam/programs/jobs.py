"""Whole jobs, store to store, for the CLI.

Each job opens its input, says what it will do (input, chunks, plan,
runner), runs the pipeline showing its progress when the runner works in
this process, and says what it did: the bytes its progress counted (the
same numbers as the progress's last line), how long it took, and, for a
resumed run, how much was already done. Interrupted (Ctrl-C), a job raises
``Interrupted``, which says how far the output got.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import apache_beam as beam
import fsspec
import xarray

from xarray_beam.beam import metrics
from xarray_beam.beam.climatology import Climatology
from xarray_beam.beam.reading import DatasetToChunks
from xarray_beam.beam.rechunk_zarr import RechunkZarr
from xarray_beam.beam.zarr import ChunksToZarr
from xarray_beam.io import region_io, stores
from xarray_beam.io.verify import verify_zarr
from xarray_beam.io.zarr_io import open_zarr
from xarray_beam.model import planning, units
from xarray_beam.model.units import format_bytes
from xarray_beam.programs import errors, launch, progress

Printer = Callable[[str], None]
_READ_TARGET = 64 * 10**6  # bytes of all variables per chunk read
_MISSING = "source_chunks_missing"


@dataclasses.dataclass
class JobResult:
    """What a job did.

    Attributes:
      output: where the output store is.
      seconds: wall time of the pipeline run.
      nbytes: bytes of the input's data variables.
      result: Beam's PipelineResult.
      plan: the rechunk plan, for rechunk jobs.
      counts: the job's counters at the end (None if the runner keeps them
        out of reach).
    """

    output: str
    seconds: float
    nbytes: int
    result: Any
    plan: Any = None
    counts: Mapping[str, int] | None = None


@dataclasses.dataclass(frozen=True)
class OutputState:
    """How far the output of an interrupted job got.

    Attributes:
      target: the output store.
      written: chunk objects of the job's variables in it (None: no store,
        or one whose setup had not finished).
      expected: chunk objects it will have when complete.
      temp: the temporary location, if one exists.
      temp_bytes: the bytes in it.
      exists: whether there is a store (or the beginning of one) at target.
    """

    target: str
    written: int | None = None
    expected: int | None = None
    temp: str | None = None
    temp_bytes: int | None = None
    exists: bool = False


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a job, with how far its output got (``state``)."""

    def __init__(self, state: OutputState | None):
        super().__init__()
        self.state = state


def output_state(
    target: str,
    variables: Sequence[str],
    temp: str | None,
    storage_options: Mapping[str, Any] | None = None,
) -> OutputState:
    """How far a job's output got: chunk objects of ``variables`` present in
    ``target`` (one listing per array) and the bytes in ``temp``. What cannot
    be read (a store whose setup was cut short) is left out.

    Example:
      ``output_state('pencils.zarr', ['t2m'], 'pencils.zarr.rechunk-temp')``
    """
    written = expected = None
    exists = False
    with contextlib.suppress(Exception):
        exists = stores.store_state(target, storage_options) != "missing"
    with contextlib.suppress(Exception):
        report = verify_zarr(target, storage_options=storage_options)
        arrays = [a for a in report.arrays if a.name in variables]
        if {a.name for a in arrays} == set(variables):
            expected = sum(a.expected for a in arrays)
            written = expected - sum(len(a.missing) + len(a.absent) for a in arrays)
    temp_bytes = None
    with contextlib.suppress(Exception):
        if temp is not None and stores.store_state(temp, storage_options) != "missing":
            fs, path = fsspec.core.url_to_fs(temp, **(storage_options or {}))
            temp_bytes = int(fs.du(path))
    return OutputState(
        target,
        written,
        expected,
        temp if temp_bytes is not None else None,
        temp_bytes,
        exists,
    )


def describe(dataset: xarray.Dataset, chunks: Mapping[str, int] | None = None) -> str:
    """A short description of a dataset: sizes, variables, bytes, chunks.

    Example:
      >>> import numpy as np
      >>> describe(xarray.Dataset({'t': ('x', np.zeros(4))}))
      '{x: 4}, 1 variables, 32 B'
    """
    sizes = ", ".join(f"{d}: {n}" for d, n in dataset.sizes.items())
    text = (
        f"{{{sizes}}}, {len(dataset.data_vars)} variables, "
        f"{format_bytes(dataset.nbytes)}"
    )
    if chunks:
        text += f", stored in chunks of {dict(chunks)}"
    return text


def describe_plan(plan: planning.DatasetRechunkPlan, max_mem: int) -> str:
    """A store rechunk plan as jobs print it: a table per group of variables,
    what the worker baseline is, and a note when a worker needs more memory
    than ``max_mem``.

    Example:
      ``print(describe_plan(plan_store_rechunk('era5.zarr', {'time': -1}), 2**30))``
    """
    parts = [str(p) for p in plan.plans]  # each says its projected peak once
    if not plan.plans:
        return "nothing to rechunk: the store has no data variables with dimensions"
    baseline = plan.plans[0].memory_model.baseline
    text = "\n\n".join(parts) + (
        f"\nThe worker baseline, {format_bytes(baseline)}, is the memory of a worker "
        f"process besides the data of its tasks (Python, NumPy, xarray, zarr and "
        f"Beam, and what the allocator keeps of finished tasks); max_mem bounds "
        f"what one task holds on top of it."
    )
    peak = plan.worker_peak()
    if peak > max_mem:
        text += (
            f"\nnote: with that baseline a worker needs {format_bytes(peak)}, more "
            f"than max_mem ({format_bytes(max_mem)}), which bounds each task, not "
            f"the worker: give workers at least {format_bytes(peak)}, more if they "
            f"run several tasks at once"
        )
    return text


def _counts_of(result: Any) -> dict[str, int] | None:
    """The package's counters from a finished run's metrics (None if the
    runner does not report them)."""
    try:
        from apache_beam.metrics.metric import MetricsFilter

        found = result.metrics().query(
            MetricsFilter().with_namespace(metrics.NAMESPACE)
        )
    except Exception:  # runners without metrics
        return None
    counts: dict[str, int] = {}
    for counter in found["counters"]:
        value = counter.committed
        if value is None:
            value = counter.attempted
        name = counter.key.metric.name
        counts[name] = counts.get(name, 0) + int(value or 0)
    return counts


@dataclasses.dataclass(frozen=True)
class _Run:
    result: Any
    seconds: float
    counts: dict[str, int] | None
    shown: progress.Snapshot | None


def _run(
    pipeline: beam.Pipeline,
    options: Any,
    shown: progress.Progress,
    names: Sequence[str],
    on_interrupt: Callable[[], OutputState],
    requested_style: str,
    out: Printer,
) -> _Run:
    """Run a pipeline, showing ``shown`` if the runner works in this process;
    the counters ``names`` at the end."""
    in_process = launch.runs_in_process(options)
    if not in_process:
        if requested_style not in ("auto", "none"):
            out(
                "progress: not shown for this runner: its counters stay with its "
                "workers (Dataflow's console shows them)"
            )
        shown.style = "none"
    start = time.perf_counter()
    try:
        with metrics.Tally([_MISSING, *names]) as tally, shown:
            result = pipeline.run()
            result.wait_until_finish()
    except BaseException as error:
        if errors.is_interrupt(error):
            raise Interrupted(on_interrupt()) from error
        raise
    seconds = time.perf_counter() - start
    if in_process:
        counts: dict[str, int] | None = {n: tally[n] for n in [_MISSING, *names]}
        snapshot = shown.final
    else:
        counts = _counts_of(result)
        snapshot = None
    missing = (counts or {}).get(_MISSING, 0)
    if missing:
        out(
            f"warning: {missing} chunk(s) were missing from the input and read as "
            f"the fill value (--missing-chunks error refuses them, fill accepts "
            f"them quietly)"
        )
    return _Run(result, seconds, counts, snapshot)


def _took(run: _Run, what: str) -> str:
    """``<bytes> <what> in <time> (<rate>)``, from the progress's last counts."""
    if run.shown is not None:
        shown = run.shown
        return (
            f"{format_bytes(shown.nbytes)} {what} in "
            f"{progress.format_duration(shown.seconds)} "
            f"({format_bytes(shown.rate)}/s)"
        )
    return f"in {progress.format_duration(run.seconds)}"


def _data_bytes(dataset: xarray.Dataset, names: Sequence[str]) -> int:
    return sum(dataset[name].nbytes for name in names)


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
    progress_style: str = "auto",
    progress_interval: float | None = None,
    **kwargs: Any,
) -> JobResult:
    """Rechunk a Zarr store into a new one (see ``RechunkZarr``), verbosely.

    Progress counts tasks (regions copied, of every pass) and the bytes
    written to the output (uncompressed), which the last line repeats.

    Args:
      source, target, target_chunks, temp_store: as for ``RechunkZarr``.
      max_mem: memory a task may use: bytes, or a size such as '256MB' or
        '1GiB' (checked first, before the source is opened).
      beam_args: Beam flags (``--runner``, ``--project``, ...).
      out: where to print what happens.
      storage_options: fsspec options for all stores.
      progress_style: 'auto', 'bar', 'lines' or 'none' (see ``progress``).
      progress_interval: seconds between progress lines (default 30).
      **kwargs: more ``RechunkZarr`` options (mode, num_threads, min_mem,
        target_shards, zarr_format, keep_temp, resume, missing_chunks).

    Raises:
      Interrupted: on Ctrl-C while the pipeline runs.

    Example:
      ``rechunk_job('era5.zarr', 'pencils.zarr', {'time': -1})``
    """
    max_mem, min_mem = planning.memory_bounds(max_mem, kwargs.pop("min_mem", None))
    options, runner = launch.pipeline_options(beam_args)
    dataset, chunks = open_zarr(source, **_xarray_kwargs(storage_options))
    transform = RechunkZarr(  # checks everything it can: errors come first
        source,
        target,
        target_chunks,
        max_mem,
        temp_store,
        min_mem=min_mem,
        storage_options=storage_options,
        **kwargs,
    )
    out(launch.describe_runner(runner, beam_args))
    out(f"input: {source}: {describe(dataset, chunks)}")
    out(describe_plan(transform.plan, max_mem))
    pipeline = beam.Pipeline(options=options)
    _ = pipeline | "RechunkZarr" >> transform
    names = [n for p in transform.plan.plans for n in p.variables]
    total = sum(
        stage.tasks * len(plan.variables)
        for plan in transform.plan.plans
        for stage in plan.stages
    )
    shown = progress.Progress(
        total,
        "rechunk_regions_copied",
        "rechunk_bytes_written",
        "tasks",
        what="written to the output",
        total_bytes=_data_bytes(dataset, names),
        skipped_counter="rechunk_regions_skipped",
        style=progress_style,
        interval=progress_interval,
    )
    output = stores.describe(transform.target)
    temp = transform.temp_store
    run = _run(
        pipeline,
        options,
        shown,
        ["rechunk_regions_copied", "rechunk_regions_skipped", "rechunk_bytes_written"],
        lambda: output_state(
            output,
            names,
            temp if isinstance(temp, str) else None,
            storage_options,
        ),
        progress_style,
        out,
    )
    out(f"rechunked {source} into {output}: {_took(run, 'written')}")
    skipped = (run.counts or {}).get("rechunk_regions_skipped", 0)
    if skipped:
        out(f"resumed: {skipped} of {total} tasks were already done (skipped)")
    return JobResult(
        output, run.seconds, dataset.nbytes, run.result, transform.plan, run.counts
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
    variables: Sequence[str] | None = None,
    temp_store: str | None = None,
    max_mem: int | str = "256MiB",
    mode: str | None = None,
    num_threads: int | None = 2,
    beam_args: Sequence[str] = (),
    out: Printer = print,
    storage_options: Mapping[str, Any] | None = None,
    resume: bool = False,
    missing_chunks: str = "warn",
    progress_style: str = "auto",
    progress_interval: float | None = None,
    **kwargs: Any,
) -> JobResult:
    """A climatology of a Zarr store, written to a new store, verbosely.

    Progress counts the chunks read and the bytes read from the input
    (uncompressed), which the last line repeats.

    Args:
      source: the input store (with a datetime64 ``time`` dimension).
      target: the output store.
      by, stat: as for ``Climatology`` (``**kwargs`` takes its other
        options: skipna, min_count, ddof, dtype).
      read_chunks: chunks to read (default ``default_read_chunks``).
      variables: the data variables to compute it of (default all).
      temp_store: where partial results are merged; default, for runners in
        this process, ``<target>.climatology-temp`` (removed afterwards).
      max_mem: partial results held before spilling to ``temp_store``:
        bytes, or a size such as '256MB' (checked first).
      mode: output store mode ('w-', 'w', 'r+').
      num_threads: chunks read and reduced at once by a worker.
      beam_args, out, storage_options, progress_style, progress_interval: as
        for ``rechunk_job``.
      resume: continue an interrupted run (see ``ChunksToZarr``): output
        chunks already in the store are not written again.
      missing_chunks: as for ``DatasetToChunks``.

    Raises:
      Interrupted: on Ctrl-C while the pipeline runs.

    Example:
      ``climatology_job('era5.zarr', 'clim.zarr', ('month', 'hour'))``
    """
    max_mem = units.byte_size(max_mem, "max_mem")
    options, runner = launch.pipeline_options(beam_args)
    dataset, chunks = open_zarr(source, **_xarray_kwargs(storage_options))
    if variables is not None:
        dataset = dataset[list(variables)]
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
    out(launch.describe_runner(runner, beam_args))
    out(f"input: {source}: {describe(dataset, chunks)}")
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
    names = [str(n) for n in template.data_vars]
    shown = progress.Progress(
        to_chunks.chunk_count,
        "chunks_read",
        "bytes_read",
        "chunks",
        what="read from the input",
        style=progress_style,
        interval=progress_interval,
    )
    output = stores.describe(store)
    run = _run(
        pipeline,
        options,
        shown,
        ["chunks_read", "bytes_read", "chunks_written", "chunks_skipped"],
        lambda: output_state(output, names, temp_store, storage_options),
        progress_style,
        out,
    )
    out(
        f"computed the {stat} by {'/'.join(grouping.names)} of {source} into "
        f"{output}: {_took(run, 'read')}"
    )
    counts = run.counts or {}
    skipped = counts.get("chunks_skipped", 0)
    if skipped:
        total = skipped + counts.get("chunks_written", 0)
        out(
            f"resumed: {skipped} of {total} output chunks were already written "
            f"(not written again)"
        )
    return JobResult(output, run.seconds, dataset.nbytes, run.result, counts=run.counts)


def _xarray_kwargs(storage_options: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"storage_options": dict(storage_options)} if storage_options else {}
