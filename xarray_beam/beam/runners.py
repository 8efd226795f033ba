"""The runner that means "run here, in this process": Beam's Python DirectRunner.

Beam's ``DirectRunner`` (since Beam 2.6x) first tries the Prism runner,
which it downloads from the internet and runs as a separate program, and
falls back to the Python in-process runner when it cannot. So the same
pipeline runs in another process on a machine with internet access and in
this one without: counters read for a progress bar, results collected
through module state and error messages all change with the network.

``InProcessRunner`` always takes the second path: the FnApiRunner Beam's
DirectRunner itself uses for batch pipelines, set up the same way. Its
``direct_running_mode`` and ``direct_num_workers`` options work as usual
(``multi_processing`` runs bundles in worker processes it starts). The
package's programs, ``rechunk_zarr`` and ``Dataset.collect_with_direct_runner``
use it unless told otherwise; pass ``--runner`` to choose another.
``collect`` runs a small pipeline on it and returns what it produced.

While it runs, Beam's state sampler wakes every 10 ms instead of 200 ms,
and glibc's malloc keeps one arena per core (see ``malloc_arenas``; set
``MALLOC_ARENA_MAX`` to choose otherwise), in this process and in the
worker processes it starts.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

import apache_beam as beam
import zarr.storage
from apache_beam.options.pipeline_options import (
    DirectOptions,
    PipelineOptions,
    StandardOptions,
)
from apache_beam.runners.runner import PipelineRunner

IN_PROCESS_RUNNER = "xarray_beam.beam.runners.InProcessRunner"
# Runners whose workers run on the launching machine.
_THIS_MACHINE = frozenset(
    {
        "InProcessRunner",
        "DirectRunner",
        "SwitchingDirectRunner",
        "BundleBasedDirectRunner",
        "FnApiRunner",
        "PrismRunner",
        "TestDirectRunner",
    }
)
# Runners that cannot run the package's pipelines correctly, and why.
_REFUSED = {
    "DaskRunner": (
        "Beam's DaskRunner re-executes the steps that feed side inputs, runs "
        "only the last branch of a pipeline and drops what a step emits when "
        "a bundle finishes; xarray_beam relies on all three (store setup, "
        "writes that wait for it, merging partial results), so its stores "
        "would be silently wrong. Use the DirectRunner, Dataflow, Flink or Spark"
    ),
}
_IN_PROCESS_NAMES = frozenset(
    {IN_PROCESS_RUNNER, "InProcessRunner", "FnApiRunner", "BundleBasedDirectRunner"}
)


class InProcessRunner(PipelineRunner):
    """Beam's Python DirectRunner, never swapped for the downloaded Prism runner.

    Example:
      >>> import apache_beam as beam
      >>> with beam.Pipeline(InProcessRunner()) as p:
      ...     _ = p | beam.Create([1, 2]) | beam.Map(print)
      1
      2
    """

    def run_pipeline(self, pipeline: Any, options: PipelineOptions) -> Any:
        from apache_beam.portability.api import beam_provision_api_pb2
        from apache_beam.runners.portability.fn_api_runner import fn_runner
        from apache_beam.runners.portability.portable_runner import (
            JobServiceHandle,
        )

        # As Beam's DirectRunner does: workers see the pipeline's options.
        encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
        provision_info = fn_runner.ExtendedProvisionInfo(
            beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)
        )
        runner = fn_runner.FnApiRunner(provision_info=provision_info)
        workers = options.view_as(DirectOptions).direct_running_mode
        with _short_state_sampling(), _few_malloc_arenas(workers == "multi_processing"):
            return runner.run_pipeline(pipeline, options)


# Beam's bundle processors note which step is running from a thread that
# sleeps up to 200 ms between samples, and each bundle ends by waiting for
# that thread to wake up and stop: about 0.12 s after every long bundle,
# measured at the end of the README climatology's reading stage. Runs in
# this process sample every 10 ms instead (the thread wakes 100 times a
# second; it only reads a clock and a counter).
SAMPLING_PERIOD_MS = 10


@contextlib.contextmanager
def _short_state_sampling() -> Iterator[None]:
    """Bundle processors made inside sample every ``SAMPLING_PERIOD_MS``.

    Leaves a Beam whose sampler it does not recognise as it is, and restores
    the default on the way out.
    """
    try:
        from apache_beam.runners.worker import statesampler

        init = statesampler.StateSampler.__init__
        default = (statesampler.DEFAULT_SAMPLING_PERIOD_MS,)
        known = init.__defaults__ == default
    except (ImportError, AttributeError):
        known = False
    if not known:
        yield
        return
    init.__defaults__ = (SAMPLING_PERIOD_MS,)
    try:
        yield
    finally:
        init.__defaults__ = default


# glibc's malloc gives threads that allocate at once arenas of their own, up
# to eight per core, and memory freed into one arena serves only the threads
# using it. The package's reading, reducing and writing threads all allocate
# chunk-sized arrays, so each arena keeps some: the README climatology (2 GB
# store) peaked at 498-541 MB on Python 3.13 and 458-490 MB on 3.11 with
# glibc's default, 391-415 MB on both with two arenas, and ran no slower.
# Runs here allow one arena per core (at least two), unless the user chose
# with MALLOC_ARENA_MAX; worker processes started by the run get the same.
ARENA_ENV = "MALLOC_ARENA_MAX"
_M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h
_arenas_limited = False


def malloc_arenas() -> int:
    """How many malloc arenas runs in this process allow: one per core
    this process may use, at least two.

    Example:
      >>> malloc_arenas() >= 2
      True
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(2, cores)


def _limit_arenas_here(arenas: int) -> bool:
    """Ask glibc's malloc for at most ``arenas`` arenas from now on; False
    where malloc is not glibc's. glibc fixes its limit the first time a
    process has more than eight arenas, so the call is made once; after
    that it could not be taken back."""
    global _arenas_limited
    if _arenas_limited:
        return True
    try:
        libc = ctypes.CDLL(None)
        if not hasattr(libc, "gnu_get_libc_version"):
            return False
        _arenas_limited = bool(libc.mallopt(_M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False
    return _arenas_limited


@contextlib.contextmanager
def _few_malloc_arenas(worker_processes: bool) -> Iterator[None]:
    """This process, and worker processes started inside, use at most
    ``malloc_arenas()`` malloc arenas, unless ``MALLOC_ARENA_MAX`` is set."""
    if ARENA_ENV in os.environ:  # the user's choice, which glibc applied
        yield
        return
    arenas = malloc_arenas()
    _limit_arenas_here(arenas)
    if not worker_processes:
        yield
        return
    os.environ[ARENA_ENV] = str(arenas)  # workers copy the environment
    try:
        yield
    finally:
        os.environ.pop(ARENA_ENV, None)


def in_process_options(flags: list[str] | tuple[str, ...] = ()) -> PipelineOptions:
    """Beam options from flags, on ``InProcessRunner`` unless they name a runner.

    Example:
      >>> in_process_options([]).view_as(StandardOptions).runner
      'xarray_beam.beam.runners.InProcessRunner'
    """
    flags = list(flags)
    if not any(f == "--runner" or f.startswith("--runner=") for f in flags):
        flags.append(f"--runner={IN_PROCESS_RUNNER}")
    return PipelineOptions(flags)


def runs_in_process(options: PipelineOptions) -> bool:
    """Whether the runner surely executes transforms in this process.

    True for ``InProcessRunner`` (and Beam's FnApiRunner and
    BundleBasedDirectRunner) in the in-memory or multi-threading modes; False
    for any other runner, Beam's ``DirectRunner`` included, which may hand
    the pipeline to the Prism runner.

    Example:
      >>> runs_in_process(in_process_options([]))
      True
      >>> runs_in_process(in_process_options(['--runner=DirectRunner']))
      False
    """
    runner = options.view_as(StandardOptions).runner or ""
    mode = options.view_as(DirectOptions).direct_running_mode
    return runner in _IN_PROCESS_NAMES and mode in (
        None,
        "in_memory",
        "multi_threading",
    )


_RESULTS: dict[str, list[Any]] = {}


def _store(elements: list[Any], token: str) -> None:
    _RESULTS[token] = elements


def collect(
    build: Callable[[beam.Pipeline], beam.PCollection],
    runner: str = IN_PROCESS_RUNNER,
    **options: Any,
) -> list[Any]:
    """Run ``build(pipeline)`` in this process and return the PCollection it
    makes, as a list (for tests and notebooks: it must fit in memory).

    Only for runners that execute in this process (``InProcessRunner``):
    results travel back through a module global.

    Example:
      >>> sorted(collect(lambda p: p | beam.Create([3, 1, 2])))
      [1, 2, 3]
    """
    token = uuid.uuid4().hex
    with beam.Pipeline(runner=runner, options=PipelineOptions([], **options)) as p:
        (
            build(p)
            | "ToList" >> beam.combiners.ToList()
            | "Store" >> beam.Map(_store, token)
        )
    return _RESULTS.pop(token)


def _runner_name(pipeline: Any) -> str:
    runner = getattr(pipeline, "runner", None)
    name = type(runner).__name__ if runner is not None else ""
    options = getattr(pipeline, "_options", None)
    if options is not None and name in ("", "PipelineRunner"):
        name = (options.view_as(StandardOptions).runner or "").rsplit(".", 1)[-1]
    return name


def runs_on_this_machine(pipeline: Any) -> bool:
    """Whether every worker of a pipeline's runner runs on this machine
    (the DirectRunner in any mode, Prism, or the PortableRunner with its
    embedded job service and loopback workers), so local paths mean the
    same to the workers as here.

    Example:
      >>> runs_on_this_machine(beam.Pipeline(InProcessRunner()))
      True
    """
    name = _runner_name(pipeline)
    if name in _THIS_MACHINE:
        return True
    if name == "PortableRunner":
        options = pipeline.options.get_all_options()
        return options.get("job_endpoint") == "embed" and options.get(
            "environment_type"
        ) in ("LOOPBACK", "loopback")
    return False


def check_runner(
    pipeline: Any, paths: Mapping[str, Any] = MappingProxyType({})
) -> None:
    """Refuse, while a pipeline is built, a runner that cannot run the
    package's transforms correctly, and local paths on runners whose workers
    run elsewhere (where the paths mean other disks, or none).

    Args:
      pipeline: the pipeline being built.
      paths: ``{what: store}`` of the stores and temporary locations the
        transform reads or writes. A shared file system mounted at the same
        path on every worker is spelled ``file:///path``.

    Raises:
      ValueError: naming the runner, or the location and what it is for.

    Example:
      ``check_runner(pcoll.pipeline, {'target store': self.store})``
    """
    name = _runner_name(pipeline)
    if name in _REFUSED:
        raise ValueError(f"xarray_beam cannot run on the {name}: {_REFUSED[name]}")
    if runs_on_this_machine(pipeline):
        return
    for what, store in paths.items():
        if _is_local_path(store):
            raise ValueError(
                f"the {what} {store} is a local path, but the {name or 'runner'}'s "
                f"workers run on other machines, where it means another disk (or "
                f"none): use object storage (gs://, s3://) or a shared file system "
                f"mounted at the same path everywhere, spelled file://{store}"
            )


def _is_local_path(store: Any) -> bool:
    if store is None:
        return False
    if isinstance(store, zarr.storage.LocalStore):
        return True
    if isinstance(store, os.PathLike):
        store = os.fspath(store)
    return (
        isinstance(store, str)
        and "://" not in store
        and not store.startswith("memory:")
    )
