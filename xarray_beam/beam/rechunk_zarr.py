"""Rechunk one Zarr store into another with memory bounded on any runner.

Each pass of the plan (see ``planning``) is a set of tasks; a task reads one
region of one variable from the previous store and writes it to the next.
Intermediate stores are uncompressed temporary Zarr stores, so no task ever
holds more than its region and the few chunks it decodes or encodes, and no
data goes through Beam's shuffle (which, on local runners, holds everything it
moves in memory). Stored values are copied as they are: no decoding and
re-encoding of CF conventions.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator, Mapping
from typing import Any, Literal, cast

import apache_beam as beam
import numpy as np
import xarray
import zarr
import zarr.abc.store
from apache_beam.options.pipeline_options import PipelineOptions

from xarray_beam.beam import barriers, metrics, reading, runners, threadmap
from xarray_beam.io import (
    chunk_writer,
    locations,
    region_io,
    stores,
    temp_stores,
    zarr_io,
)
from xarray_beam.io.stores import StoreLike
from xarray_beam.model import chunks as chunks_lib
from xarray_beam.model import planning, templates
from xarray_beam.model import zarr_layout as layout_lib
from xarray_beam.model.key import Key


def _pass_path(number: int) -> str:
    return f"pass{number}"


@dataclasses.dataclass(frozen=True)
class _Location:
    """A store, the group inside it holding one layout's arrays, and whether
    those are temporary arrays (uncompressed, whose chunk files may be read
    and written directly)."""

    store: Any
    group: str = ""
    storage_options: Mapping[str, Any] | None = None
    temporary: bool = False

    def _array(self, name: str, mode: Literal["r", "r+"]) -> zarr.Array:
        path = f"{self.group}/{name}" if self.group else name
        kwargs: dict[str, Any] = (
            {"storage_options": dict(self.storage_options)}
            if self.storage_options
            else {}
        )
        return zarr.open_array(self.store, path=path, mode=mode, **kwargs)

    def reader(
        self, name: str, concurrency: int, missing: region_io.MissingChunks
    ) -> region_io.RegionIO:
        array = self._array(name, "r")
        # A temporary chunk is always written: a missing one is an error.
        return region_io.RegionIO(
            array,
            concurrency,
            unbuffered=self.temporary,
            missing="error" if self.temporary else missing,
        )

    def writer(
        self, name: str, concurrency: int, resume: bool
    ) -> chunk_writer.ArrayWriter:
        return chunk_writer.ArrayWriter(
            self._array(name, "r+"),
            self.store,
            self.storage_options,
            resume=resume,
            concurrency=concurrency,
            unbuffered=self.temporary,
        )


class _RegionCopier:
    """Copies one region of one variable between stores, per task.

    Arrays are opened once per worker and setup (``token``).
    """

    def __init__(
        self,
        source: _Location,
        target: _Location,
        dims: tuple[str, ...],
        regions: tuple[int, ...],
        concurrency: int,
        resume: bool = False,
        missing: region_io.MissingChunks = "warn",
    ):
        self._source = source
        self._target = target
        self._dims = dims
        self._regions = regions
        self._concurrency = concurrency
        self._resume = resume
        self._missing = missing
        self._init_cache()

    def _init_cache(self) -> None:
        self._lock = threading.Lock()
        self._token: str | None = None
        self._arrays: dict[
            str, tuple[region_io.RegionIO, chunk_writer.ArrayWriter]
        ] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in ("_lock", "_token", "_arrays"):
            state.pop(name)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_cache()

    def _open(
        self, name: str, token: str
    ) -> tuple[region_io.RegionIO, chunk_writer.ArrayWriter]:
        with self._lock:
            if token != self._token:
                self._arrays = {}
                self._token = token
            if name not in self._arrays:
                self._arrays[name] = (
                    self._source.reader(name, self._concurrency, self._missing),
                    self._target.writer(name, self._concurrency, self._resume),
                )
            return self._arrays[name]

    def __call__(self, key: Key, token: str) -> Iterator[int]:
        (name,) = cast(frozenset[str], key.vars)  # keys of one variable
        source, target = self._open(name, token)
        shape = source.array.shape
        region = tuple(
            slice(key.offsets.get(d, 0), min(key.offsets.get(d, 0) + size, n))
            for d, size, n in zip(self._dims, self._regions, shape, strict=True)
        )
        done = target.copy_from(source, region)
        if done is None:
            metrics.count("rechunk_regions_skipped")
            yield 0
            return
        copied, missing = done
        metrics.count("rechunk_regions_copied")
        metrics.count("rechunk_bytes_copied", copied)
        if not self._target.temporary:  # the last pass: the output's bytes
            metrics.count("rechunk_bytes_written", copied)
        if missing:
            metrics.count("source_chunks_missing", missing)
        yield copied


@dataclasses.dataclass(frozen=True)
class _Setup:
    """Everything the setup step does, picklable for the workers."""

    template: xarray.Dataset
    options: zarr_io.WriteOptions
    source: Any
    source_options: Mapping[str, Any] | None
    temp: temp_stores.TempLocation | None
    temp_arrays: tuple[temp_stores.TempArray, ...]
    variables: tuple[str, ...]
    resume: bool = False

    def __call__(self, _) -> str:
        target = zarr_io.setup(self.template, self.options)
        source = stores.open_group(self.source, "r", self.source_options)
        written = stores.open_group(
            self.options.store, "r", self.options.storage_options
        )
        for name in self.variables:
            _check_same_stored_dtype(
                name, _array_of(source, name).dtype, _array_of(written, name).dtype
            )
        if self.temp is not None and self.temp_arrays:
            temp_stores.create_zarr(self.temp, self.temp_arrays, self.resume)
        return target.token


def _array_of(group: zarr.Group, name: str) -> zarr.Array:
    """The array ``name`` of ``group`` (a data variable: an array, not a group)."""
    return cast(zarr.Array, group[name])


def _check_same_stored_dtype(name: str, source: np.dtype, target: np.dtype) -> None:
    """Stored values are copied as they are: the dtypes must agree (byte order
    aside, which zarr converts)."""
    if source.newbyteorder("=") != target.newbyteorder("="):
        raise ValueError(
            f"variable {name!r} is stored as {source} in the source but would be "
            f"{target} in the target; rechunk_zarr copies stored values, so its "
            f"encoding may not change their dtype"
        )


def _planned_stored_dtype(
    name: str, var: xarray.Variable, encoding: Mapping
) -> np.dtype:
    """The dtype xarray will store a template variable with, asked of xarray
    itself (releases differ: older ones store booleans as int8)."""
    keys = layout_lib.CF_ENCODING_KEYS
    values_encoding = {
        k: v for k, v in {**var.encoding, **encoding}.items() if k in keys
    }
    sample = xarray.Variable(var.dims, np.zeros((1,) * var.ndim, var.dtype))
    return chunk_writer.encode(name, sample, values_encoding).dtype


def _pass_done(outputs, token, label: str):
    """A PCollection holding the setup token once every output has arrived."""
    return barriers.after(outputs, label, beam.pvalue.AsSingleton(token))


def plan_store_rechunk(
    source: StoreLike,
    target_chunks: Mapping[str, int],
    max_mem: int | str = "1GiB",
    min_mem: int | str | None = None,
    *,
    method: planning.Method = "storage",
    target_shards: Mapping[str, int] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    cost_model: planning.CostModel | None = None,
) -> planning.DatasetRechunkPlan:
    """The plan for rechunking every data variable of a Zarr store.

    Reads only metadata.

    Args:
      source: the Zarr store (path, URL or zarr Store).
      target_chunks: chunk size per dimension (-1: whole); dimensions not
        given keep their source chunks.
      max_mem: memory a task may use: bytes, or a size such as '256MB' or
        '1GiB' (see :class:`~xarray_beam.RechunkZarr`). Default 1 GiB.
      min_mem: smallest piece worth moving (bytes or a size), or None.
      method: 'storage' plans for :class:`~xarray_beam.RechunkZarr`;
        'shuffle' plans for :class:`~xarray_beam.Rechunk` over chunks of one
        variable each.
      target_shards: shard size per dimension of the target (Zarr v3).
      storage_options: fsspec options for URLs.
      cost_model: costs used to choose the plan.

    Returns:
      One plan per group of variables with the same dims, shape, itemsize
      and chunks; print it to see the passes and memory.

    Example:
      ``print(plan_store_rechunk('era5.zarr', {'time': -1}, '1GiB'))``
    """
    return _plan_for_shapes(
        zarr_io.variable_shapes(source, storage_options),
        target_chunks,
        max_mem,
        min_mem,
        method=method,
        target_shards=target_shards,
        cost_model=cost_model or cost_model_for(stores.normalize_store(source)),
    )


def cost_model_for(*stores_used: str | zarr.abc.store.Store) -> planning.CostModel:
    """The cost model for a rechunk between these stores: local-disk costs
    when all of them are on a local disk, else ``CostModel.object_store()``
    (each request waits for the network).

    Example:
      >>> cost_model_for('gs://bucket/era5.zarr', '/tmp/out.zarr').per_read > (
      ...     cost_model_for('/tmp/era5.zarr', '/tmp/out.zarr').per_read)
      True
    """
    for store in stores_used:
        where = locations.location(store)
        if where is not None and where.protocol not in ("file", "memory"):
            return planning.CostModel.object_store()
    return planning.CostModel()


def _plan_for_shapes(
    shapes: Mapping[str, planning.VariableShape],
    target_chunks: Mapping[str, int],
    max_mem: int | str,
    min_mem: int | str | None,
    *,
    method: planning.Method = "storage",
    target_shards: Mapping[str, int] | None = None,
    cost_model: planning.CostModel | None = None,
) -> planning.DatasetRechunkPlan:
    dims = list(dict.fromkeys(d for shape in shapes.values() for d in shape.dims))
    chunks_lib.check_chunk_sizes(target_chunks, "target_chunks", dims)
    return planning.plan_dataset_rechunk(
        shapes,
        target_chunks,
        max_mem,
        min_mem,
        method=method,
        target_shards=target_shards,
        cost_model=cost_model,
    )


class RechunkZarr(beam.PTransform):
    """Rechunk a Zarr store into a new one, with bounded memory on any runner.

    The plan (``.plan``, printable) moves each variable through uncompressed
    temporary Zarr stores when that is cheaper than re-reading source chunks;
    every task holds at most its planned region and a few chunks, whatever
    the size of the data. The target store gets the source's coordinates,
    attributes and value encodings, with the new chunks.

    Args:
      source: the Zarr store to read (path, URL or zarr Store).
      target: the Zarr store to write.
      target_chunks: chunk size per dimension (-1: whole); dimensions not given
        keep their source chunks.
      max_mem: memory a task may use, counting the copies it holds: bytes
        (an int), or a size as text, in decimal units ('256MB', '1G':
        powers of 1000, as dask and rechunker read them) or binary ones
        ('256MiB', '1GiB'). Default 1 GiB.
      temp_store: where intermediate stores go; default: next to the target,
        ``<target>.rechunk-temp``. Deleted after success.
      min_mem: smallest piece worth moving (more passes keep pieces larger):
        bytes or a size, as for ``max_mem``.
      target_shards: shard size per dimension (Zarr v3).
      zarr_format: 2 or 3 (default 3) for the target.
      encoding: per-variable encoding for the target (codecs); it may not
        change the stored dtype.
      mode: target store mode: None or 'w-' refuses an existing store, 'w'
        replaces it, 'r+' writes into an existing store whose metadata
        matches (as for :class:`~xarray_beam.ChunksToZarr`).
      storage_options: fsspec options for the source, target and temp stores.
      num_threads: tasks a worker runs at once (memory grows accordingly).
      keep_temp: keep the temporary store (for debugging).
      resume: continue an interrupted run: an existing target is written with
        mode 'r+', a temporary store left by the same plan is kept, and every
        region whose objects all exist in its destination is skipped.
      cost_model: costs used to choose the plan.
      missing_chunks: what a chunk missing from the source means: 'warn'
        (the default: read as the fill value, counted in the
        ``source_chunks_missing`` counter and logged once per array),
        'error' (the task fails, naming the chunk) or 'fill' (read as the
        fill value, quietly). A missing chunk of a temporary store is always
        an error.

    Raises:
      ValueError: when built, for target chunks naming unknown dimensions,
        invalid sizes, a ``max_mem`` or ``min_mem`` that is not a size,
        chunks larger than max_mem, ``min_mem > max_mem``,
        unsafe variable or dimension names (see ``check_names``), or a
        temp_store that overlaps the source or target.
      FileExistsError, FileNotFoundError: for target or temp store conflicts.

    Example:
      ``p | RechunkZarr('era5.zarr', 'pencils.zarr', {'time': -1,
      'latitude': 23, 'longitude': 45}, max_mem='256MB')``
    """

    def __init__(
        self,
        source: StoreLike,
        target: StoreLike,
        target_chunks: Mapping[str, int],
        max_mem: int | str = "1GiB",
        temp_store: StoreLike | None = None,
        *,
        min_mem: int | str | None = None,
        target_shards: Mapping[str, int] | None = None,
        zarr_format: int | None = None,
        encoding: Mapping[str, Mapping[str, Any]] | None = None,
        mode: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        num_threads: int | None = None,
        keep_temp: bool = False,
        cost_model: planning.CostModel | None = None,
        resume: bool = False,
        missing_chunks: region_io.MissingChunks = "warn",
    ):
        super().__init__()
        max_mem, min_mem = planning.memory_bounds(max_mem, min_mem)
        if missing_chunks not in ("error", "warn", "fill"):
            raise ValueError(
                f"missing_chunks must be 'error', 'warn' or 'fill', got "
                f"{missing_chunks!r}"
            )
        self.missing_chunks = missing_chunks
        if resume and mode == "w":
            raise ValueError(
                "resume=True continues writing an existing target; mode='w' would "
                "delete it first"
            )
        if resume and not all(isinstance(s, str) for s in (source, target)):
            raise TypeError("resume=True needs the stores as paths or URLs")
        self.resume = resume
        self.source = stores.normalize_store(source)
        self.target = stores.normalize_store(target)
        locations.check_apart(self.target, {"source": self.source}, "RechunkZarr")
        self.storage_options = storage_options
        # The source is opened once here: on object storage every open costs
        # a dozen requests.
        dataset, arrays = zarr_io.open_store(self.source, storage_options)
        self.plan = _plan_for_shapes(
            zarr_io.shapes_of(dataset, arrays),
            target_chunks,
            max_mem,
            min_mem,
            target_shards=target_shards,
            cost_model=cost_model or cost_model_for(self.source, self.target),
        )
        layout_lib.check_names(dataset)
        names = [str(n) for n, v in dataset.data_vars.items() if v.ndim]
        needs_temp = any(len(p.stages) > 1 for p in self.plan.plans)
        self._temp_is_default = temp_store is None
        self.temp_store = (
            stores.normalize_store(temp_store)
            if temp_store is not None
            else (
                temp_stores.default_location(self.target, ".rechunk-temp")
                if needs_temp
                else None
            )
        )
        temp_stores.check_apart(self.temp_store, source=self.source, target=self.target)
        user_encoding = layout_lib.check_encoding(encoding, dataset)
        layout_encoding = {}
        for name in names:
            plan = self.plan.plan_for(name)
            enc = dict(user_encoding.get(name, {}))
            if {"chunks", "shards"} & set(enc):
                raise ValueError(
                    f"encoding of {name!r} sets chunks or shards; pass "
                    f"target_chunks / target_shards instead"
                )
            enc["chunks"] = plan.target_chunks
            if plan.target_shards:
                enc["shards"] = plan.target_shards
            layout_encoding[name] = enc
        for name, enc in user_encoding.items():
            layout_encoding.setdefault(name, enc)
        self._options = zarr_io.WriteOptions(
            self.target,
            None,
            None,
            layout_lib.check_zarr_format(zarr_format),
            layout_encoding,
            stores.check_mode_name(mode),
            storage_options,
            kind="RechunkZarr",
            extra={
                "source": str(locations.location(self.source)),
                "plan": [
                    [list(stage.regions) for stage in plan.stages]
                    for plan in self.plan.plans
                ],
            },
            resume=resume,
        )
        for name in names:
            _check_same_stored_dtype(
                name,
                _array_of(arrays, name).dtype,
                _planned_stored_dtype(
                    name, dataset[name].variable, layout_encoding[name]
                ),
            )
        self._template = templates.make_template(dataset, lazy_vars=set(names))
        self._names = names
        self._arrays_meta = {
            n: (_array_of(arrays, n).dtype, _array_of(arrays, n).fill_value)
            for n in names
        }
        self.num_threads = num_threads
        self.keep_temp = keep_temp

    def _temp_arrays(self) -> tuple[temp_stores.TempArray, ...]:
        arrays = []
        for plan in self.plan.plans:
            for number, stage in enumerate(plan.stages[:-1], start=1):
                for name in plan.variables:
                    dtype, fill_value = self._arrays_meta[name]
                    arrays.append(
                        temp_stores.TempArray(
                            _pass_path(number),
                            name,
                            plan.shape,
                            stage.write_units,
                            dtype,
                            fill_value,
                        )
                    )
        return tuple(arrays)

    def _location(self, plan: planning.RechunkPlan, number: int) -> _Location:
        """Where pass ``number``'s output lives (0 is the source)."""
        if number == 0:
            return _Location(self.source, "", self.storage_options)
        if number == len(plan.stages):
            return _Location(self.target, "", self.storage_options)
        return _Location(
            self.temp_store, _pass_path(number), self.storage_options, temporary=True
        )

    def expand(self, pbegin):
        runners.check_runner(
            pbegin.pipeline,
            {
                "source store": self.source,
                "target store": self.target,
                "temp_store": self.temp_store,
            },
        )
        existing = self.resume and self._options.mode != "r+"
        if existing and stores.store_state(self.target, self.storage_options) == "zarr":
            self._options = dataclasses.replace(self._options, mode="r+")
        stores.check_mode(self.target, self._options.mode, self.storage_options)
        temp = None
        if self.temp_store is not None:
            temp = temp_stores.claim(
                self.temp_store, self.storage_options, "zarr", self._temp_is_default
            )
        setup = _Setup(
            self._template,
            self._options,
            self.source,
            self.storage_options,
            temp,
            self._temp_arrays(),
            tuple(self._names),
            self.resume,
        )
        token = barriers.start(pbegin.pipeline, "StartSetup") | "Setup" >> beam.Map(
            setup
        )
        finals = []
        for g, plan in enumerate(self.plan.plans):
            ready = token
            for number, stage in enumerate(plan.stages, start=1):
                label = f"Group{g}Pass{number}"
                grids = {
                    name: chunks_lib.ChunkGrid(
                        {
                            d: chunks_lib.normalize_dim_chunks(d, r, n)
                            for d, r, n in zip(
                                plan.dims, stage.regions, plan.shape, strict=True
                            )
                        }
                    )
                    for name in plan.variables
                }
                copier = _RegionCopier(
                    self._location(plan, number - 1),
                    self._location(plan, number),
                    plan.dims,
                    stage.regions,
                    stage.concurrency,
                    self.resume,
                    self.missing_chunks,
                )
                copied = (
                    pbegin
                    | f"{label}Regions" >> reading.CreateKeys(grids)
                    | f"{label}Copy"
                    >> beam.ParDo(
                        threadmap.ThreadMapWithSideInput(copier, self.num_threads),
                        beam.pvalue.AsSingleton(ready),
                    )
                )
                ready = _pass_done(copied, token, label)
            finals.append(ready)
        if not finals:
            return token
        done = barriers.after(finals, "AllGroups", len(finals))
        if temp is None or self.keep_temp:
            return done
        return done | "RemoveTemp" >> beam.Map(_remove_then_report, temp)


def _remove_then_report(groups_done: int, temp: temp_stores.TempLocation) -> int:
    temp_stores.remove(temp)
    return groups_done


def rechunk_zarr(
    source: StoreLike,
    target: StoreLike,
    target_chunks: Mapping[str, int],
    max_mem: int | str = "1GiB",
    temp_store: StoreLike | None = None,
    *,
    min_mem: int | str | None = None,
    target_shards: Mapping[str, int] | None = None,
    zarr_format: int | None = None,
    encoding: Mapping[str, Mapping[str, Any]] | None = None,
    mode: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    num_threads: int | None = None,
    keep_temp: bool = False,
    cost_model: planning.CostModel | None = None,
    resume: bool = False,
    missing_chunks: region_io.MissingChunks = "warn",
    pipeline_options: PipelineOptions | list[str] | None = None,
) -> planning.DatasetRechunkPlan:
    """Rechunk a Zarr store into a new one, running a Beam pipeline.

    Builds :class:`~xarray_beam.RechunkZarr` (which checks everything before
    anything runs) and runs it; the arguments are the same, plus the
    pipeline's options.

    Args:
      source: the Zarr store to read (path, URL or zarr Store).
      target: the Zarr store to write.
      target_chunks: chunk size per dimension (-1: whole); dimensions not
        given keep their source chunks.
      max_mem: memory a task may use, counting the copies it holds: bytes
        (an int), or a size such as '256MB' (decimal) or '1GiB' (binary).
        Default 1 GiB.
      temp_store: where intermediate stores go; default: next to the target,
        ``<target>.rechunk-temp``. Deleted after success.
      min_mem: smallest piece worth moving (bytes or a size).
      target_shards: shard size per dimension (Zarr v3).
      zarr_format: 2 or 3 (default 3) for the target.
      encoding: per-variable encoding for the target (codecs); it may not
        change the stored dtype.
      mode: target store mode: None or 'w-' refuses an existing store, 'w'
        replaces it, 'r+' writes into an existing matching store.
      storage_options: fsspec options for the source, target and temp stores.
      num_threads: tasks a worker runs at once (memory grows accordingly).
      keep_temp: keep the temporary store (for debugging).
      cost_model: costs used to choose the plan.
      resume: continue an interrupted run (see
        :class:`~xarray_beam.RechunkZarr`).
      missing_chunks: what a chunk missing from the source means: 'warn'
        (the default), 'error' or 'fill' (see
        :class:`~xarray_beam.RechunkZarr`).
      pipeline_options: Beam options or flags (default: Beam's Python
        DirectRunner in this process, :class:`~xarray_beam.InProcessRunner`,
        also when flags name no runner).

    Returns:
      The plan that was run (print it to see the passes and memory).

    Raises:
      ValueError, FileExistsError, FileNotFoundError: before anything runs,
        as :class:`~xarray_beam.RechunkZarr` raises them.

    Example:
      ``rechunk_zarr('era5.zarr', 'pencils.zarr', {'time': -1, 'latitude': 23,
      'longitude': 45}, max_mem='256MB')``
    """
    transform = RechunkZarr(
        source,
        target,
        target_chunks,
        max_mem,
        temp_store,
        min_mem=min_mem,
        target_shards=target_shards,
        zarr_format=zarr_format,
        encoding=encoding,
        mode=mode,
        storage_options=storage_options,
        num_threads=num_threads,
        keep_temp=keep_temp,
        cost_model=cost_model,
        resume=resume,
        missing_chunks=missing_chunks,
    )
    if not isinstance(pipeline_options, PipelineOptions):
        pipeline_options = runners.in_process_options(pipeline_options or [])
    with beam.Pipeline(options=pipeline_options) as pipeline:
        _ = pipeline | "RechunkZarr" >> transform
    return transform.plan
