"""Reading xarray datasets into ``(Key, Dataset)`` chunks, and checking chunks.

``DatasetToChunks`` is the usual root of a pipeline: it makes the keys of a
chunk grid (spread over workers when there are many) and loads each chunk,
its variables in parallel threads, windows of Zarr arrays by direct chunk
decoding (see ``xarray_beam.io.fast_load``).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Hashable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, cast

import apache_beam as beam
import xarray

from xarray_beam.beam import coders, metrics, runners, threadmap
from xarray_beam.io import fast_load, locations, region_io, threads
from xarray_beam.model import chunks as chunks_lib
from xarray_beam.model.key import DatasetOrDatasets, Key, validate_chunk

_V = TypeVar("_V")


class ValidateEachChunk(beam.PTransform):
    """Check every ``(Key, Dataset)`` element with ``validate_chunk``."""

    def _validate(self, element: tuple[Key, DatasetOrDatasets]):
        if not isinstance(element, tuple) or len(element) != 2:
            raise TypeError(
                f"expected (Key, xarray.Dataset) pairs, got {type(element).__name__}"
            )
        validate_chunk(*element)
        return element

    def expand(self, pcoll):
        return pcoll | "Validate" >> beam.Map(self._validate)


class _SourceRegistry:
    """The Zarr stores each pipeline reads, so that writes can refuse them.

    Held weakly per pipeline. It pickles as an empty registry: dill pickles a
    namespace holding it by value (doctests, notebooks), and weak references
    cannot travel.
    """

    def __init__(self) -> None:
        self._by_pipeline: weakref.WeakKeyDictionary[Any, list[Any]] = (
            weakref.WeakKeyDictionary()
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_SourceRegistry, ())

    def add(self, pipeline: Any, sources: Sequence[Any]) -> None:
        self._by_pipeline.setdefault(pipeline, []).extend(sources)

    def get(self, pipeline: Any) -> list[Any]:
        return list(self._by_pipeline.get(pipeline, []))


_SOURCES = _SourceRegistry()


def sources_read(pipeline: Any) -> list[Any]:
    """The Zarr stores that ``DatasetToChunks`` steps of ``pipeline`` read
    (so far), for writes to refuse.

    Example:
      ``locations.check_apart(target, {'input': s for s in sources_read(p)}, ...)``
    """
    return _SOURCES.get(pipeline)


def _by_name(mapping: Mapping[Hashable, _V]) -> Mapping[str, _V]:
    """``mapping``, keyed by xarray names (``Hashable``), typed with the str
    names the package gives dimensions and variables (as in keys)."""
    return cast("Mapping[str, _V]", mapping)


# Chunks up to this size are read one ahead by default (see DatasetToChunks).
READ_AHEAD_BYTES = 256 * 2**20


def _largest_chunk_nbytes(
    dataset: xarray.Dataset, chunks: Mapping[str, tuple[int, ...]], split_vars: bool
) -> int:
    """Bytes of the largest chunk DatasetToChunks emits for ``chunks``."""
    sizes = [
        var.dtype.itemsize * math.prod(max(chunks[str(d)]) for d in var.dims)
        for var in dataset.data_vars.values()
    ]
    if not sizes:
        return 0
    return max(sizes) if split_vars else sum(sizes)


def _dataset_chunks(dataset: xarray.Dataset) -> dict[str, tuple[int, ...]]:
    """The Dask chunks of a dataset, refusing datasets that have none."""
    if dataset.chunks:
        return dict(_by_name(dataset.chunks))
    if not any(var.ndim for var in dataset.data_vars.values()):
        return {dim: (size,) for dim, size in _by_name(dataset.sizes).items()}
    raise ValueError(
        "chunks=None means 'use the Dask chunks of the dataset', but the dataset "
        "is not Dask-backed. Pass chunks explicitly, e.g. chunks={'time': 24} or "
        "the chunks returned by xarray_beam.open_zarr."
    )


class DatasetToChunks(beam.PTransform):
    """Split one xarray.Dataset (or aligned datasets) into keyed chunks.

    Args:
      dataset: the dataset to split, usually lazy (from ``open_zarr``), or a
        list of datasets sharing the dimensions of the first; then each element
        is ``(key, [chunk_0, chunk_1, ...])`` cut from the same region.
      chunks: chunk size per dimension: an int (ragged last chunk), -1 (whole
        dimension) or a tuple of sizes. Missing dimensions are whole. None
        uses the Dask chunks of ``dataset``.
      split_vars: emit one chunk per data variable, keyed with ``vars={name}``
        and offsets only along that variable's dimensions.
      num_threads: how many chunks a worker loads at once. The variables of a
        chunk always load in parallel threads. By default 2 (the next chunk
        loads while the one before is processed downstream) when a chunk
        holds at most 256 MiB, else 1.
      shard_keys_threshold: with more chunks than this, keys are generated on
        the workers in ranges, so the launcher never holds them all.
      missing_chunks: what a chunk missing from a Zarr source means: 'warn'
        (the default: read as the fill value, counted in the
        ``source_chunks_missing`` counter and logged once per array), 'error'
        (the step fails, naming the chunk) or 'fill' (quietly). Applies to
        variables read by direct chunk decoding (``io.fast_load``); others
        are read by xarray, as fill values.

    Example:
      >>> import numpy as np
      >>> ds = xarray.Dataset({'t2m': (('time', 'x'), np.zeros((5, 3)))})
      >>> to_chunks = DatasetToChunks(ds, {'time': 2})
      >>> to_chunks.chunk_count
      3
      >>> with beam.Pipeline('DirectRunner') as p:
      ...     sizes = (p | to_chunks
      ...                | beam.MapTuple(lambda key, chunk: chunk.sizes['time']))
    """

    def __init__(
        self,
        dataset: DatasetOrDatasets,
        chunks: Mapping[str, chunks_lib.ChunkSpec] | None = None,
        split_vars: bool = False,
        num_threads: int | None = None,
        shard_keys_threshold: int = 200_000,
        missing_chunks: region_io.MissingChunks = "warn",
    ):
        super().__init__()
        if missing_chunks not in ("error", "warn", "fill"):
            raise ValueError(
                f"missing_chunks must be 'error', 'warn' or 'fill', got "
                f"{missing_chunks!r}"
            )
        datasets = list(dataset) if isinstance(dataset, Sequence) else [dataset]
        if not datasets:
            raise ValueError("DatasetToChunks needs at least one dataset")
        for i, ds in enumerate(datasets):
            if not isinstance(ds, xarray.Dataset):
                raise TypeError(
                    f"DatasetToChunks takes an xarray.Dataset or a list of them; "
                    f"item {i} is a {type(ds).__name__}"
                )
        first = datasets[0]
        for i, ds in enumerate(datasets[1:], start=1):
            for dim, size in ds.sizes.items():
                if first.sizes.get(dim) != size:
                    raise ValueError(
                        f"dataset {i} has dimension {dim!r} of size {size}, but the "
                        f"first dataset has {dict(first.sizes)}; datasets passed "
                        f"together must be aligned, with the first the largest"
                    )
        if split_vars and len(datasets) > 1:
            for i, ds in enumerate(datasets[1:], start=1):
                missing = [name for name in first.data_vars if name not in ds]
                if missing:
                    raise ValueError(
                        f"with split_vars=True every dataset must hold the data "
                        f"variables of the first; dataset {i} lacks {missing}"
                    )
        if num_threads is not None and num_threads < 1:
            raise ValueError(f"num_threads must be at least 1, got {num_threads}")
        self.dataset = dataset
        self.split_vars = split_vars
        self.shard_keys_threshold = shard_keys_threshold
        self.chunks = chunks_lib.normalize_chunks_for_sizes(
            _dataset_chunks(first) if chunks is None else chunks,
            _by_name(first.sizes),
        )
        if num_threads is None:
            largest = _largest_chunk_nbytes(first, self.chunks, split_vars)
            num_threads = 2 if largest <= READ_AHEAD_BYTES else 1
        self.num_threads = num_threads
        grids: dict[str | None, chunks_lib.ChunkGrid]
        if split_vars:
            grids = {
                name: chunks_lib.ChunkGrid(
                    {d: self.chunks[d] for d in cast("tuple[str, ...]", var.dims)}
                )
                for name, var in _by_name(first.data_vars).items()
            }
        else:
            grids = {None: chunks_lib.ChunkGrid(self.chunks)}
        self._grids = grids
        self._loader = _ChunkLoader(
            datasets,
            grids,
            as_list=not isinstance(dataset, xarray.Dataset),
            missing=missing_chunks,
        )

    @property
    def chunk_count(self) -> int:
        """Number of chunks this transform emits."""
        return sum(grid.count for grid in self._grids.values())

    def expand(self, pbegin):
        datasets = self.dataset if isinstance(self.dataset, list) else [self.dataset]
        sources = [s for d in datasets for s in locations.dataset_sources(d)]
        runners.check_runner(
            pbegin.pipeline, {f"source store #{i}": s for i, s in enumerate(sources)}
        )
        _SOURCES.add(pbegin.pipeline, sources)
        keys = pbegin | "CreateKeys" >> CreateKeys(
            self._grids, self.shard_keys_threshold
        )
        return keys | "LoadChunks" >> beam.ParDo(
            threadmap.ThreadMap(self._loader, self.num_threads)
        ).with_output_types(coders.KEYED_DATASET)


Grids = Mapping[str | None, chunks_lib.ChunkGrid]


class CreateKeys(beam.PTransform):
    """Create the keys of chunk grids, spread over workers.

    Args:
      grids: a grid per variable name (keys get ``vars={name}``), or a single
        grid under ``None`` (keys get ``vars=None``).
      shard_keys_threshold: with more keys than this, the launcher only
        creates ranges of key numbers and workers expand them.
    """

    def __init__(self, grids: Grids, shard_keys_threshold: int = 200_000):
        super().__init__()
        self._keys = _KeyMaker(grids)
        self.shard_keys_threshold = shard_keys_threshold

    @property
    def count(self) -> int:
        return self._keys.count

    def expand(self, pbegin):
        # Create's own reshuffle would be a second one: a shuffle stage more
        # per read (or rechunk pass) for nothing.
        if self._keys.count <= self.shard_keys_threshold:
            keys = pbegin | "Create" >> beam.Create(
                list(self._keys.all()), reshuffle=False
            )
        else:
            per_range = max(1, self.shard_keys_threshold // 10)
            keys = (
                pbegin
                | "CreateRanges"
                >> beam.Create(self._keys.ranges(per_range), reshuffle=False)
                | "ShuffleRanges" >> beam.Reshuffle()
                | "ExpandRanges" >> beam.FlatMap(self._keys.in_range)
            )
        return keys | "Shuffle" >> beam.Reshuffle()


class _KeyMaker:
    """Enumerates the keys of one grid per variable (or one for the dataset)."""

    def __init__(self, grids: Grids):
        self._grids = list(grids.items())

    @property
    def count(self) -> int:
        return sum(grid.count for _, grid in self._grids)

    def _key(self, name: str | None, offsets: dict[str, int]) -> Key:
        return Key(offsets, None if name is None else {name})

    def all(self) -> Iterator[Key]:
        for name, grid in self._grids:
            for offsets in grid.iter_offsets():
                yield self._key(name, offsets)

    def ranges(self, per_range: int) -> list[tuple[int, int, int]]:
        """``(grid number, start, stop)`` tasks covering every key once."""
        return [
            (i, start, stop)
            for i, (_, grid) in enumerate(self._grids)
            for start, stop in chunks_lib.index_ranges(grid.count, per_range)
        ]

    def in_range(self, task: tuple[int, int, int]) -> Iterator[Key]:
        i, start, stop = task
        name, grid = self._grids[i]
        for offsets in grid.iter_offsets(start, stop):
            yield self._key(name, offsets)


class _ChunkLoader:
    """Loads the chunk(s) a key names into memory."""

    def __init__(
        self,
        datasets: list[xarray.Dataset],
        grids: Grids,
        as_list: bool,
        missing: region_io.MissingChunks = "warn",
    ):
        self._datasets = datasets
        self._grids = dict(grids)
        self._as_list = as_list
        self._missing = missing

    def __call__(self, key: Key) -> Iterator[tuple[Key, Any]]:
        name = next(iter(key.vars)) if key.vars else None
        slices = self._grids[name].slices(key.offsets)
        loaded = []
        for ds in self._datasets:
            if name is not None:
                ds = ds[[name]]
            chunk = ds.isel({d: s for d, s in slices.items() if d in ds.dims})
            loaded.append(_load_in_parallel(chunk, self._missing))
            metrics.count("chunks_read")
            metrics.count("bytes_read", loaded[-1].nbytes)
        yield key, (loaded if self._as_list else loaded[0])


def _load_in_parallel(
    chunk: xarray.Dataset, missing: region_io.MissingChunks = "warn"
) -> xarray.Dataset:
    """Load a lazily indexed chunk into memory, one thread per variable
    (windows of Zarr arrays by direct chunk decoding, see ``fast_load``)."""
    if chunk.chunks:
        return chunk.load()

    def load(var: xarray.Variable) -> None:
        missing_chunks = fast_load.load(var, missing)
        if missing_chunks is None:
            var.load()
        elif missing_chunks:
            metrics.count("source_chunks_missing", missing_chunks)

    threads.map_variables(load, list(chunk.variables.values()))
    return chunk
