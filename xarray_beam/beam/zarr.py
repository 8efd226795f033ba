"""Reading and writing Zarr stores: templates, setup and chunk writes.

Writing happens in two steps inside the pipeline: a setup step creates the
store's metadata (and writes the template's in-memory variables, usually
coordinates), then every chunk write, which waits for setup through a side
input, puts its variables into place. Building the transforms writes nothing.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import apache_beam as beam
import dask.array
import numpy as np
import xarray

from xarray_beam.beam import metrics, reading, threadmap
from xarray_beam.io import append as append_lib
from xarray_beam.io import compat, stores, threads, write_guard
from xarray_beam.io import verify as verify_lib
from xarray_beam.io.stores import StoreLike
from xarray_beam.model import templates
from xarray_beam.model import zarr_layout as layout_lib
from xarray_beam.model.key import Key

__all__ = [
    "ChunksToZarr",
    "DatasetToZarr",
    "open_zarr",
    "setup_zarr",
    "validate_zarr_chunk",
    "write_chunk_to_zarr",
]


def open_zarr(store: StoreLike, **kwargs: Any) -> tuple[xarray.Dataset, dict[str, int]]:
    """Open a Zarr store lazily (no Dask) and return it with its chunks.

    Args:
      store: local path, URL (``gs://``, ``s3://``) or zarr Store.
      **kwargs: passed to ``xarray.open_zarr`` (e.g. ``storage_options``,
        ``consolidated``); ``chunks`` is not allowed.

    Returns:
      The lazily indexed dataset, and its chunk size per dimension (the Zarr
      shard size for sharded arrays, else the chunk size). Pass them to
      ``DatasetToChunks`` to read whole Zarr objects.

    Raises:
      ValueError: if data variables disagree about the chunks of a dimension.

    Example:
      ``ds, chunks = xarray_beam.open_zarr('gs://bucket/era5.zarr')``
    """
    if "chunks" in kwargs:
        raise ValueError(
            "open_zarr returns lazily indexed data and its chunks; it does not "
            "take chunks (rechunk with DatasetToChunks or Rechunk instead)"
        )
    dataset = xarray.open_zarr(stores.normalize_store(store), chunks=None, **kwargs)
    chunks: dict[str, int] = {}
    chunks_from: dict[str, str] = {}
    for name, var in dataset.data_vars.items():
        blocks = var.encoding.get("shards") or var.encoding.get("chunks")
        if blocks is None:
            continue
        for dim, block, size in zip(var.dims, blocks, var.shape, strict=True):
            block = min(int(block), size) if size else int(block)
            if dim in chunks and chunks[dim] != block:
                raise ValueError(
                    f"variables in {store} have different Zarr chunks along "
                    f"{dim!r}: {chunks_from[dim]!r} has {chunks[dim]}, {name!r} has "
                    f"{block}; pass chunks to DatasetToChunks explicitly"
                )
            chunks[dim] = block
            chunks_from[dim] = name
    for dim, size in dataset.sizes.items():
        chunks.setdefault(dim, size)
    return dataset, {dim: chunks[dim] for dim in dataset.dims}


@dataclasses.dataclass(frozen=True)
class _WriteOptions:
    """How a store is to be written, fixed when a transform is built."""

    store: str | Any
    zarr_chunks: Mapping[str, int] | None = None
    zarr_shards: Mapping[str, int] | None = None
    zarr_format: int | None = None
    encoding: Mapping[str, Mapping[str, Any]] | None = None
    mode: stores.Mode = "w-"
    storage_options: Mapping[str, Any] | None = None


def _setup_dataset(
    template: xarray.Dataset, target: layout_lib.ZarrTarget, encoding: Mapping
) -> tuple[xarray.Dataset, dict[str, dict[str, Any]]]:
    """The dataset and encoding to hand to ``to_zarr(compute=False)``."""
    variables = {}
    all_encoding = {}
    for name, var in template.variables.items():
        enc = {
            k: v for k, v in var.encoding.items() if k in layout_lib.CF_ENCODING_KEYS
        }
        enc.update(encoding.get(name, {}))
        if name in target.variables:
            layout = target.variables[name]
            data = dask.array.zeros(var.shape, dtype=var.dtype, chunks=-1)
            enc["chunks"] = layout.chunks
            if layout.shards is not None:
                enc["shards"] = layout.shards
        else:
            data = var.data
            enc.setdefault("chunks", tuple(max(n, 1) for n in var.shape))
        variables[name] = xarray.Variable(var.dims, data, var.attrs)
        all_encoding[name] = enc
    dataset = xarray.Dataset(
        {n: variables[n] for n in template.data_vars},
        coords={n: variables[n] for n in template.coords},
        attrs=template.attrs,
    )
    return dataset, all_encoding


def _target_from_store(
    template: xarray.Dataset, options: _WriteOptions, token: str
) -> layout_lib.ZarrTarget:
    """Read the layout of an existing store, checking it matches the template."""
    name_of_store = stores.describe(options.store)
    kwargs = (
        {"storage_options": dict(options.storage_options)}
        if options.storage_options
        else {}
    )
    existing = xarray.open_zarr(options.store, chunks=None, **kwargs)
    layouts = {}
    for name in templates.lazy_variables(template):
        want = template.variables[name]
        if name not in existing.variables:
            raise ValueError(
                f"the Zarr store at {name_of_store} has no variable {name!r}, which "
                f"the template writes"
            )
        have = existing.variables[name]
        if have.dims != want.dims or have.shape != want.shape:
            raise ValueError(
                f"variable {name!r} has dims {dict(have.sizes)} in "
                f"the Zarr store at {name_of_store} but "
                f"{dict(want.sizes)} in the template"
            )
        if not layout_lib.dtypes_storable(want.dtype, have.dtype):
            raise ValueError(
                f"variable {name!r} has dtype {have.dtype} in the Zarr store at "
                f"{name_of_store}, which cannot hold the template's {want.dtype}"
            )
        enc = have.encoding
        values_encoding = {
            k: v for k, v in enc.items() if k in layout_lib.CF_ENCODING_KEYS
        }
        shards = tuple(enc["shards"]) if enc.get("shards") else None
        layouts[name] = layout_lib.VariableLayout(
            want.dims,
            want.shape,
            want.dtype,
            tuple(enc["chunks"]),
            shards,
            values_encoding,
        )
    indexes = layout_lib.template_indexes(template)
    for dim, values in indexes.items():
        if dim in existing.indexes and not np.array_equal(
            np.asarray(existing.indexes[dim]), values
        ):
            raise ValueError(
                f"the {dim!r} coordinate of the Zarr store at {name_of_store} "
                f"differs from the template's"
            )
    zarr_format = stores.open_group(
        options.store, "r", options.storage_options
    ).metadata.zarr_format
    return layout_lib.ZarrTarget(
        layouts, frozenset(template.variables), indexes, zarr_format, token
    )


def _setup(template: xarray.Dataset, options: _WriteOptions) -> layout_lib.ZarrTarget:
    """Create (or check, for mode 'r+') a store; return where chunks go."""
    if not isinstance(template, xarray.Dataset):
        raise TypeError(f"the template must be an xarray.Dataset, got {type(template)}")
    token = uuid.uuid4().hex
    stores.check_mode(options.store, options.mode, options.storage_options)
    if options.mode != "r+":
        planned = layout_lib.plan_target(
            template,
            options.zarr_chunks,
            options.zarr_shards,
            options.zarr_format,
            options.encoding,
        )
        dataset, encoding = _setup_dataset(template, planned, options.encoding or {})
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Consolidated metadata")
            dataset.to_zarr(
                options.store,
                mode=options.mode,
                compute=False,
                consolidated=True,
                zarr_format=planned.zarr_format,
                encoding=encoding,
                storage_options=dict(options.storage_options or {}) or None,
            )
    target = _target_from_store(template, options, token)
    if options.mode == "r+" and options.zarr_chunks:
        _check_chunks_match(target, options)
    return target


def _check_chunks_match(target: layout_lib.ZarrTarget, options: _WriteOptions):
    for name, layout in target.variables.items():
        for dim, size, chunk in zip(
            layout.dims, layout.shape, layout.chunks, strict=True
        ):
            wanted = options.zarr_chunks.get(dim)
            if wanted is not None and layout_lib.clamp_chunk(wanted, size) != chunk:
                raise ValueError(
                    f"zarr_chunks asks for chunks of {wanted} along {dim!r}, but "
                    f"variable {name!r} in the existing store at "
                    f"{stores.describe(options.store)} has chunks of {chunk}"
                )


def setup_zarr(
    template: xarray.Dataset,
    store: StoreLike,
    zarr_chunks: Mapping[str, int] | None = None,
    zarr_shards: Mapping[str, int] | None = None,
    zarr_format: int | None = None,
    encoding: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    mode: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> None:
    """Create a Zarr store's metadata for a template, outside any pipeline.

    Writes the template's in-memory variables (usually coordinates) and
    creates empty arrays for its lazy variables, with consolidated metadata.

    Args:
      template: the dataset to write, e.g. from ``make_template``.
      store: local path, URL or zarr Store.
      zarr_chunks: Zarr chunk size per dimension (-1: whole); dimensions not
        given take the template's Dask chunks.
      zarr_shards: shard size per dimension (Zarr v3), multiples of chunks.
      zarr_format: 2 or 3 (default 3).
      encoding: per-variable encoding (e.g. compressors, dtype, units).
      mode: None/'w-' refuses an existing store, 'w' overwrites a Zarr
        store, 'r+' only checks an existing store against the template.
      storage_options: fsspec options for URLs.

    Raises:
      FileExistsError, FileNotFoundError, ValueError: see ``ChunksToZarr``.

    Example:
      ``setup_zarr(make_template(ds), 'out.zarr', zarr_chunks={'time': 24})``
    """
    options = _WriteOptions(
        stores.normalize_store(store),
        zarr_chunks,
        zarr_shards,
        zarr_format,
        encoding,
        stores.check_mode_name(mode),
        storage_options,
    )
    _setup(template, options)


def validate_zarr_chunk(
    key: Key,
    chunk: xarray.Dataset,
    template: xarray.Dataset,
    zarr_chunks: Mapping[str, int] | None = None,
    zarr_shards: Mapping[str, int] | None = None,
) -> None:
    """Check that a chunk can be written safely into a store for ``template``.

    Raises:
      ValueError: naming the key, variable and dimension at fault, if the
        chunk does not cover whole Zarr chunks (or shards), has variables,
        dims or dtypes that differ from the template, or labels that do not
        match the template's coordinates at the key's offsets.

    Example:
      >>> from xarray_beam.model.templates import make_template
      >>> ds = xarray.Dataset({'t': ('time', np.arange(10.0))})
      >>> template = make_template(ds)
      >>> validate_zarr_chunk(Key({'time': 5}), ds.isel(time=slice(5, 10)),
      ...                     template, zarr_chunks={'time': 5})
    """
    target = layout_lib.plan_target(template, zarr_chunks, zarr_shards, zarr_format=3)
    layout_lib.chunk_regions(target, key, chunk)


def _stored_values(
    name: str, var: xarray.Variable, layout: layout_lib.VariableLayout
) -> np.ndarray:
    """A chunk variable's values as they are stored (CF-encoded if needed)."""
    if var.dims != layout.dims:
        var = var.transpose(*layout.dims)
    if layout.passthrough:
        return np.asarray(var.values)
    values = var.values
    if values.dtype.kind in "mM":
        # xarray encodes coarser-than-ns times against ns units as NaT, so
        # always encode from ns.
        values = values.astype(f"{values.dtype.kind}8[ns]")
    plain = xarray.Variable(var.dims, values, encoding=dict(layout.encoding))
    return np.asarray(compat.encode_zarr_variable(plain, name).values)


class _ZarrWriter:
    """Writes chunks into a store, opening its arrays once per process.

    With ``resume``, the objects already in the store are listed once per
    array and process, and chunks whose objects all exist are skipped. With
    ``guard``, a chunk object is never replaced by other bytes (see
    ``write_guard``): a retried write is fine, a duplicate key is an error.
    """

    def __init__(
        self,
        store: Any,
        storage_options: Mapping[str, Any] | None,
        resume: bool = False,
        guard: bool = False,
        shift: Mapping[str, int] | None = None,
    ):
        self._store = store
        self._storage_options = storage_options
        self._resume = resume
        self._guard = guard
        self._shift = dict(shift or {})
        self._init_cache()

    def _init_cache(self) -> None:
        self._lock = threading.Lock()
        self._token: str | None = None
        self._arrays: dict[str, Any] = {}
        self._present: dict[str, tuple[tuple[int, ...], set]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {
            "store": self._store,
            "storage_options": self._storage_options,
            "resume": self._resume,
            "guard": self._guard,
            "shift": self._shift,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._store = state["store"]
        self._storage_options = state["storage_options"]
        self._resume = state["resume"]
        self._guard = state["guard"]
        self._shift = state["shift"]
        self._init_cache()

    def _arrays_for(self, target: layout_lib.ZarrTarget) -> dict[str, Any]:
        with self._lock:
            if self._token != target.token:
                if self._guard:
                    group = write_guard.open_guarded_group(
                        self._store, self._storage_options
                    )
                else:
                    group = stores.open_group(self._store, "r+", self._storage_options)
                self._arrays = {
                    name: compat.writing_every_chunk(group[name])
                    for name in target.variables
                }
                if self._resume:
                    self._present = {
                        name: (
                            verify_lib.block_shape(array),
                            verify_lib.present_blocks(
                                array, self._store, self._storage_options
                            ),
                        )
                        for name, array in self._arrays.items()
                    }
                self._token = target.token
            return self._arrays

    def _written(self, regions: list[tuple[str, tuple[slice, ...]]]) -> bool:
        """Whether every object these regions cover is already in the store."""
        for name, region in regions:
            blocks, present = self._present[name]
            if any(i not in present for i in verify_lib.region_blocks(region, blocks)):
                return False
        return True

    def write(
        self, key: Key, chunk: xarray.Dataset, target: layout_lib.ZarrTarget
    ) -> int | None:
        """Validate and write one chunk; returns the bytes written (None if
        resuming and the chunk is already in the store)."""
        if self._shift:  # appending: keys count from the start of the new data
            key = key.with_offsets(
                **{
                    d: key.offsets[d] + s
                    for d, s in self._shift.items()
                    if d in key.offsets
                }
            )
        regions = layout_lib.chunk_regions(target, key, chunk)
        arrays = self._arrays_for(target)
        if self._resume and self._written(regions):
            return None

        def write_variable(item: tuple[str, tuple[slice, ...]]) -> int:
            name, region = item
            values = _stored_values(name, chunk.variables[name], target.variables[name])
            try:
                arrays[name][region] = values
            except write_guard.ConflictingWriteError as error:
                raise ValueError(
                    f"chunk {key}, variable {name!r}: {error}. Each key must be "
                    f"written once; check the pipeline for duplicate keys"
                ) from error
            return values.nbytes

        return sum(threads.map_variables(write_variable, regions))

    def __call__(
        self, element: tuple[Key, xarray.Dataset], target: layout_lib.ZarrTarget
    ) -> Iterator[Key]:
        if not isinstance(element, tuple) or len(element) != 2:
            raise TypeError(
                f"ChunksToZarr expects (Key, xarray.Dataset) pairs, got "
                f"{type(element).__name__}"
            )
        key, chunk = element
        written = self.write(key, chunk, target)
        if written is None:
            metrics.count("chunks_skipped")
        else:
            metrics.count("chunks_written")
            metrics.count("bytes_written", written)
        yield key


def write_chunk_to_zarr(
    key: Key,
    chunk: xarray.Dataset,
    store: StoreLike,
    template: xarray.Dataset,
    storage_options: Mapping[str, Any] | None = None,
) -> None:
    """Write one chunk into an existing store set up for ``template``.

    The chunk is validated against the store's real chunk/shard layout first.
    Opens the store on every call; ``ChunksToZarr`` opens it once per worker.

    Example:
      ``write_chunk_to_zarr(Key({'time': 24}), chunk, 'out.zarr', template)``
    """
    options = _WriteOptions(
        stores.normalize_store(store), mode="r+", storage_options=storage_options
    )
    target = _target_from_store(template, options, token=uuid.uuid4().hex)
    _ZarrWriter(options.store, storage_options).write(key, chunk, target)


def _append_setup(_, template, options: _WriteOptions, plan: append_lib.AppendPlan):
    append_lib.extend_store(options.store, template, plan, options.storage_options)
    full = append_lib.full_template(template, plan)
    return _target_from_store(full, options, token=uuid.uuid4().hex)


def _setup_from_side_input(_, template, options: _WriteOptions):
    return _setup(template, options)


def _infer_then_setup(_, inferred, options: _WriteOptions):
    template, chunk_sizes = templates.template_from_skeleton(inferred)
    if options.zarr_chunks is None:
        options = dataclasses.replace(options, zarr_chunks=chunk_sizes)
    return _setup(template, options)


class _MergeSkeletons(beam.CombineFn):
    def create_accumulator(self):
        return templates.Skeleton()

    def add_input(self, accumulator, element):
        return templates.merge_skeletons([accumulator, templates.skeleton_of(*element)])

    def merge_accumulators(self, accumulators):
        return templates.merge_skeletons(accumulators)

    def extract_output(self, accumulator):
        return accumulator


class ChunksToZarr(beam.PTransform):
    """Write ``(Key, Dataset)`` chunks into a Zarr store.

    Args:
      store: local path, URL (``gs://``, ``s3://``) or zarr Store.
      template: the whole dataset to write (lazy variables are written from
        the chunks, in-memory ones at setup), a ``beam.pvalue.AsSingleton`` of
        one, or None to infer it from the chunks (an extra pass over them).
      zarr_chunks: Zarr chunk size per dimension (-1: whole); dimensions not
        given take the template's Dask chunks (or, with an inferred template,
        the size of the chunks at offset 0).
      zarr_shards: shard size per dimension (Zarr v3), multiples of chunks.
      zarr_format: 2 or 3 (default 3).
      num_threads: chunks written at once by a worker; the variables of a
        chunk are always written in parallel.
      needs_setup: False is xarray-beam's spelling of ``mode='r+'``.
      encoding: per-variable encoding for new stores.
      mode: None or 'w-' (default) refuses an existing store; 'w' replaces an
        existing Zarr store; 'r+' writes into an existing store whose metadata
        must match the template.
      storage_options: fsspec options for URLs, carried to the workers.
      resume: continue an interrupted run: if the store exists it is written
        with mode 'r+' (its metadata must match the template), and chunks
        whose Zarr objects all exist are skipped (found with one listing per
        array and worker, not one request per chunk). If it does not exist,
        it is created as with the default mode. Chunk objects are written
        whole and atomically, so an existing object is a complete one.
      append_dim: append the chunks (keyed from the start of the new data)
        to the existing store along this dimension: ``template`` describes
        the new data only, its labels must all come after the store's (or be
        its last ones: re-running an append is a no-op, and completes an
        interrupted one). Checked before anything is written.

    The output is the PCollection of keys written (or skipped on resume).

    Raises:
      FileExistsError: if the store exists and mode is not 'w' or 'r+'.
      FileNotFoundError: for mode 'r+' without an existing store.
      ValueError: for bad chunk specs or a store that does not match.

    With a Dataset template, these are raised when the pipeline is built.
    Chunks that do not cover whole Zarr chunks (or shards), or disagree with
    the template, raise ValueError before they are written.

    Example:
      >>> import tempfile, os
      >>> ds = xarray.Dataset({'t': ('time', np.arange(6.0))})
      >>> path = os.path.join(tempfile.mkdtemp(), 'out.zarr')
      >>> with beam.Pipeline('DirectRunner') as p:
      ...     _ = (p | reading.DatasetToChunks(ds, {'time': 3})
      ...            | ChunksToZarr(path, templates.make_template(ds), {'time': 3}))
      >>> xarray.open_zarr(path).t.values.tolist()
      [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    """

    def __init__(
        self,
        store: StoreLike,
        template: xarray.Dataset | beam.pvalue.AsSideInput | None = None,
        zarr_chunks: Mapping[str, int] | None = None,
        *,
        zarr_shards: Mapping[str, int] | None = None,
        zarr_format: int | None = None,
        num_threads: int | None = None,
        needs_setup: bool = True,
        encoding: Mapping[str, Mapping[str, Any]] | None = None,
        mode: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        resume: bool = False,
        append_dim: str | None = None,
    ):
        super().__init__()
        if append_dim is not None:
            if mode not in (None, "r+") or not needs_setup:
                raise ValueError(
                    f"append_dim writes into an existing store; it conflicts with "
                    f"mode={mode!r}"
                )
            if not isinstance(template, xarray.Dataset):
                raise TypeError(
                    "append_dim needs the template of the new data as an xarray.Dataset"
                )
            mode, resume = "r+", True
        if resume and mode == "w":
            raise ValueError(
                "resume=True continues writing an existing store; mode='w' would "
                "delete it first"
            )
        if template is not None and not isinstance(
            template, xarray.Dataset | beam.pvalue.AsSideInput
        ):
            raise TypeError(
                f"template must be an xarray.Dataset, a beam.pvalue.AsSingleton or "
                f"None, got {type(template).__name__}"
            )
        if num_threads is not None and num_threads < 1:
            raise ValueError(f"num_threads must be at least 1, got {num_threads}")
        self.options = _WriteOptions(
            stores.normalize_store(store),
            zarr_chunks,
            zarr_shards,
            layout_lib.check_zarr_format(zarr_format),
            encoding,
            stores.check_mode_name(mode, needs_setup),
            storage_options,
        )
        if resume and not isinstance(self.options.store, str):
            raise TypeError(
                "resume=True needs the store as a path or URL (its objects are "
                "listed with fsspec)"
            )
        self.resume = resume
        self.append_dim = append_dim
        self.template = template
        self.num_threads = num_threads
        if append_dim is not None:
            layout_lib.check_names(template)
        elif isinstance(template, xarray.Dataset) and self.options.mode != "r+":
            layout_lib.plan_target(
                template, zarr_chunks, zarr_shards, zarr_format, encoding
            )

    def _check_store_now(self) -> None:
        """Fail while the pipeline is built, not after it has run for hours."""
        options = self.options
        stores.check_mode(options.store, options.mode, options.storage_options)
        if options.mode == "r+" and isinstance(self.template, xarray.Dataset):
            _target_from_store(self.template, options, token="")

    def expand(self, pcoll):
        if self.resume and self.options.mode != "r+":
            state = stores.store_state(self.options.store, self.options.storage_options)
            if state == "zarr":
                self.options = dataclasses.replace(self.options, mode="r+")
        start = pcoll.pipeline | "StartSetup" >> beam.Create([None])
        shift = None
        if self.append_dim is not None:
            plan = append_lib.plan_append(
                self.options.store,
                self.template,
                self.append_dim,
                self.options.storage_options,
            )
            shift = {self.append_dim: plan.offset}
            target = start | "ExtendZarr" >> beam.Map(
                _append_setup, self.template, self.options, plan
            )
        elif isinstance(self.template, xarray.Dataset):
            self._check_store_now()
            target = start | "SetupZarr" >> beam.Map(
                _setup_from_side_input, self.template, self.options
            )
        elif self.template is not None:
            target = start | "SetupZarr" >> beam.Map(
                _setup_from_side_input, self.template, self.options
            )
        else:
            stores.check_mode(
                self.options.store, self.options.mode, self.options.storage_options
            )
            skeleton = pcoll | "InferTemplate" >> beam.CombineGlobally(
                _MergeSkeletons()
            )
            target = start | "SetupZarr" >> beam.Map(
                _infer_then_setup,
                beam.pvalue.AsSingleton(skeleton),
                self.options,
            )
        # Chunks of a store this pipeline creates (or resumes) are written
        # once each: replacing one with other bytes means duplicate keys.
        # With mode 'r+' a pipeline may deliberately rewrite existing data.
        guard = self.resume or self.options.mode != "r+"
        writer = _ZarrWriter(
            self.options.store, self.options.storage_options, self.resume, guard, shift
        )
        return pcoll | "WriteChunks" >> beam.ParDo(
            threadmap.ThreadMapWithSideInput(writer, self.num_threads),
            beam.pvalue.AsSingleton(target),
        ).with_output_types(Key)


class DatasetToZarr(beam.PTransform):
    """Write a whole xarray.Dataset to Zarr: ``DatasetToChunks | ChunksToZarr``.

    Args:
      dataset: the dataset to write (lazy or in memory).
      store: local path, URL or zarr Store.
      zarr_chunks: Zarr chunk size per dimension; by default the Dask chunks
        of ``dataset`` (whole dimensions if it has none). The dataset is read
        in chunks of one Zarr shard (or chunk) each.
      **kwargs: ``zarr_shards``, ``zarr_format``, ``encoding``, ``mode``,
        ``num_threads`` and ``storage_options``, as for ``ChunksToZarr``.

    Example:
      ``p | DatasetToZarr(ds, 'out.zarr', {'time': 24}, mode='w')``
    """

    def __init__(
        self,
        dataset: xarray.Dataset,
        store: StoreLike,
        zarr_chunks: Mapping[str, int] | None = None,
        **kwargs: Any,
    ):
        super().__init__()
        template = templates.make_template(dataset)
        target = layout_lib.plan_target(
            template,
            zarr_chunks,
            kwargs.get("zarr_shards"),
            kwargs.get("zarr_format"),
            kwargs.get("encoding"),
        )
        read_chunks = {}
        for layout in target.variables.values():
            for dim, unit in zip(layout.dims, layout.write_unit, strict=True):
                if read_chunks.setdefault(dim, unit) != unit:
                    raise ValueError(
                        f"variables of the dataset have different Zarr chunks along "
                        f"{dim!r}; pass zarr_chunks for every dimension"
                    )
        self._to_chunks = reading.DatasetToChunks(
            dataset, read_chunks, num_threads=kwargs.get("num_threads")
        )
        self._to_zarr = ChunksToZarr(store, template, zarr_chunks, **kwargs)

    def expand(self, pbegin):
        return (
            pbegin
            | "DatasetToChunks" >> self._to_chunks
            | ("ChunksToZarr" >> self._to_zarr)
        )
