"""Keys, chunk validation and reading datasets into ``(Key, Dataset)`` chunks."""

from __future__ import annotations

import numbers
import struct
from collections.abc import Iterator, Mapping, Sequence, Set
from types import MappingProxyType
from typing import Any

import apache_beam as beam
import xarray

from xarray_beam import chunks as chunks_lib
from xarray_beam import fast_load, progress, threadmap

_UNSET: Any = object()


class Key:
    """Identifies one chunk of a larger virtual dataset.

    Args:
      offsets: integer offsets of the chunk from the origin, in elements, along
        each dimension. A dimension that is absent has offset 0.
      vars: names of the data variables in the chunk, or None for "all
        variables".

    Keys are immutable, hashable and compare equal when their offsets and vars
    are equal. They encode deterministically for Beam (see ``KeyCoder``).

    Example:
      >>> key = Key({'time': 48, 'latitude': 0}, vars={'t2m'})
      >>> key
      Key(offsets={'latitude': 0, 'time': 48}, vars={'t2m'})
      >>> key.with_offsets(time=None, longitude=90)
      Key(offsets={'latitude': 0, 'longitude': 90}, vars={'t2m'})
    """

    __slots__ = ("_offsets", "_vars", "_hash")

    def __init__(
        self,
        offsets: Mapping[str, int] | None = None,
        vars: Set[str] | None = None,
    ):
        self._set(_checked_offsets(offsets), _checked_vars(vars))

    def _set(self, offsets: dict[str, int], vars: frozenset[str] | None) -> None:
        self._offsets = offsets
        self._vars = vars
        self._hash = hash((frozenset(offsets.items()), vars))

    @property
    def offsets(self) -> Mapping[str, int]:
        """Read-only mapping from dimension name to offset."""
        return MappingProxyType(self._offsets)

    @property
    def vars(self) -> frozenset[str] | None:
        """Names of the variables in the chunk, or None for all variables."""
        return self._vars

    def replace(self, offsets: Any = _UNSET, vars: Any = _UNSET) -> Key:
        """A copy of this key with new offsets and/or vars.

        Example:
          >>> Key({'x': 2}).replace(vars={'foo'})
          Key(offsets={'x': 2}, vars={'foo'})
        """
        return Key(
            self._offsets if offsets is _UNSET else offsets,
            self._vars if vars is _UNSET else vars,
        )

    def with_offsets(self, **offsets: int | None) -> Key:
        """A copy with some offsets replaced; ``None`` removes a dimension.

        Example:
          >>> Key({'x': 2, 'y': 4}).with_offsets(x=None, z=6)
          Key(offsets={'y': 4, 'z': 6}, vars=None)
        """
        new = dict(self._offsets)
        for dim, offset in offsets.items():
            if offset is None:
                new.pop(dim, None)
            else:
                new[dim] = offset
        return Key(new, self._vars)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Key):
            return NotImplemented
        return self._offsets == other._offsets and self._vars == other._vars

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        offsets = ", ".join(f"{d!r}: {o}" for d, o in sorted(self._offsets.items()))
        if self._vars is None:
            vars_repr = "None"
        elif self._vars:
            vars_repr = "{" + ", ".join(repr(v) for v in sorted(self._vars)) + "}"
        else:
            vars_repr = "set()"
        return f"Key(offsets={{{offsets}}}, vars={vars_repr})"

    def __getstate__(self) -> tuple:
        # Sorted, so that Beam's fallback deterministic coder is deterministic.
        vars = None if self._vars is None else tuple(sorted(self._vars))
        return tuple(sorted(self._offsets.items())), vars

    def __setstate__(self, state: tuple) -> None:
        offsets, vars = state
        self._set(dict(offsets), None if vars is None else frozenset(vars))


def _checked_offsets(offsets: Mapping[str, int] | None) -> dict[str, int]:
    if offsets is None:
        return {}
    if not isinstance(offsets, Mapping):
        raise TypeError(
            f"Key offsets must be a mapping from dimension name to int, got "
            f"{type(offsets).__name__}: {offsets!r}"
        )
    result = {}
    for dim, offset in offsets.items():
        if not isinstance(dim, str):
            raise TypeError(f"Key offset dimension names must be str, got {dim!r}")
        if not isinstance(offset, numbers.Integral) or isinstance(offset, bool):
            raise TypeError(
                f"Key offset for dimension {dim!r} must be an int, got "
                f"{type(offset).__name__}: {offset!r}"
            )
        result[dim] = int(offset)
    return result


def _checked_vars(vars: Set[str] | None) -> frozenset[str] | None:
    if vars is None:
        return None
    if isinstance(vars, str):
        raise TypeError(
            f"Key vars must be a set of variable names, not a string: use "
            f"vars={{{vars!r}}}"
        )
    result = frozenset(vars)
    for name in result:
        if not isinstance(name, str):
            raise TypeError(f"Key vars must be strings, got {name!r}")
    return result


class KeyCoder(beam.coders.Coder):
    """Deterministic Beam coder for ``Key`` (offsets encoded in sorted order)."""

    def encode(self, key: Key) -> bytes:
        parts = [_encode_varint(len(key._offsets))]
        for dim, offset in sorted(key._offsets.items()):
            parts.append(_encode_str(dim))
            parts.append(struct.pack(">q", offset))
        if key._vars is None:
            parts.append(_encode_varint(0))
        else:
            parts.append(_encode_varint(len(key._vars) + 1))
            parts.extend(_encode_str(name) for name in sorted(key._vars))
        return b"".join(parts)

    def decode(self, encoded: bytes) -> Key:
        pos = 0
        count, pos = _decode_varint(encoded, pos)
        offsets = {}
        for _ in range(count):
            dim, pos = _decode_str(encoded, pos)
            (offsets[dim],) = struct.unpack_from(">q", encoded, pos)
            pos += 8
        count, pos = _decode_varint(encoded, pos)
        vars = None
        if count:
            names = []
            for _ in range(count - 1):
                name, pos = _decode_str(encoded, pos)
                names.append(name)
            vars = frozenset(names)
        key = Key.__new__(Key)
        key._set(offsets, vars)
        return key

    def is_deterministic(self) -> bool:
        return True

    def to_type_hint(self):
        return Key

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _decode_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _encode_str(text: str) -> bytes:
    raw = text.encode("utf-8")
    return _encode_varint(len(raw)) + raw


def _decode_str(data: bytes, pos: int) -> tuple[str, int]:
    size, pos = _decode_varint(data, pos)
    return data[pos : pos + size].decode("utf-8"), pos + size


beam.coders.registry.register_coder(Key, KeyCoder)


def offsets_to_slices(
    offsets: Mapping[str, int],
    sizes: Mapping[str, int],
    base: Mapping[str, int] | None = None,
) -> dict[str, slice]:
    """Slices selecting a chunk, given its offsets and sizes.

    Args:
      offsets: offsets of the chunk along each dimension.
      sizes: sizes of the chunk along each dimension (may include more
        dimensions than ``offsets``).
      base: optional offsets subtracted from ``offsets``, e.g. the origin of a
        larger chunk the slices index into. Missing dimensions count as 0.

    Returns:
      A slice for each dimension in ``offsets``.

    Raises:
      ValueError: if ``offsets`` has a dimension missing from ``sizes``.

    Example:
      >>> offsets_to_slices({'x': 100}, {'x': 10, 'y': 5}, base={'x': 90})
      {'x': slice(10, 20, None)}
    """
    missing = [dim for dim in offsets if dim not in sizes]
    if missing:
        raise ValueError(
            f"offsets name dimension(s) {missing} not found in sizes {dict(sizes)}"
        )
    base = base or {}
    return {
        dim: slice(offset - base.get(dim, 0), offset - base.get(dim, 0) + sizes[dim])
        for dim, offset in offsets.items()
    }


DatasetOrDatasets = xarray.Dataset | list[xarray.Dataset]


def describe_dataset(dataset: xarray.Dataset) -> str:
    """A one-line summary of a chunk for error messages."""
    sizes = ", ".join(f"{d}: {n}" for d, n in dataset.sizes.items())
    data_vars = ", ".join(
        f"{name} {var.dtype}{tuple(var.dims)}"
        for name, var in dataset.data_vars.items()
    )
    return f"<Dataset ({sizes}) data_vars: {data_vars or 'none'}>"


def validate_chunk(key: Key, datasets: DatasetOrDatasets) -> None:
    """Check that a key is consistent with the chunk(s) it labels.

    Raises:
      TypeError: if ``key`` is not a Key or a chunk is not an xarray.Dataset.
      ValueError: if the key has offsets for dimensions the chunk lacks, or
        its vars differ from the chunk's data variables.

    Example:
      >>> ds = xarray.Dataset({'foo': ('x', [1, 2])})
      >>> validate_chunk(Key({'x': 0}, {'foo'}), ds)
      >>> validate_chunk(Key({'y': 0}), ds)
      Traceback (most recent call last):
      ...
      ValueError: Key(offsets={'y': 0}, vars=None) has offsets for dimension(s) ...
    """
    if not isinstance(key, Key):
        raise TypeError(
            f"expected a Key as the first element of a chunk, got "
            f"{type(key).__name__}: {key!r}"
        )
    for dataset in datasets if isinstance(datasets, list) else [datasets]:
        if not isinstance(dataset, xarray.Dataset):
            raise TypeError(
                f"the chunk for {key} must be an xarray.Dataset, got "
                f"{type(dataset).__name__}"
            )
        unexpected = [dim for dim in key.offsets if dim not in dataset.dims]
        if unexpected:
            raise ValueError(
                f"{key} has offsets for dimension(s) {unexpected} not found in its "
                f"chunk {describe_dataset(dataset)}"
            )
        if key.vars is not None and key.vars != set(dataset.data_vars):
            raise ValueError(
                f"{key} names variables {sorted(key.vars)} but its chunk has data "
                f"variables {sorted(dataset.data_vars)}: "
                f"{describe_dataset(dataset)}"
            )


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


def _dataset_chunks(dataset: xarray.Dataset) -> dict[str, tuple[int, ...]]:
    """The Dask chunks of a dataset, refusing datasets that have none."""
    if dataset.chunks:
        return dict(dataset.chunks)
    if not any(var.ndim for var in dataset.data_vars.values()):
        return {dim: (size,) for dim, size in dataset.sizes.items()}
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
        chunk always load in parallel threads.
      shard_keys_threshold: with more chunks than this, keys are generated on
        the workers in ranges, so the launcher never holds them all.

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
    ):
        super().__init__()
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
        self.num_threads = num_threads
        self.shard_keys_threshold = shard_keys_threshold
        self.chunks = chunks_lib.normalize_chunks_for_sizes(
            _dataset_chunks(first) if chunks is None else chunks, first.sizes
        )
        if split_vars:
            grids = {
                name: chunks_lib.ChunkGrid({d: self.chunks[d] for d in var.dims})
                for name, var in first.data_vars.items()
            }
        else:
            grids = {None: chunks_lib.ChunkGrid(self.chunks)}
        self._grids = grids
        self._loader = _ChunkLoader(
            datasets, grids, as_list=not isinstance(dataset, xarray.Dataset)
        )

    @property
    def chunk_count(self) -> int:
        """Number of chunks this transform emits."""
        return sum(grid.count for grid in self._grids.values())

    def expand(self, pbegin):
        keys = pbegin | "CreateKeys" >> CreateKeys(
            self._grids, self.shard_keys_threshold
        )
        return keys | "LoadChunks" >> beam.ParDo(
            threadmap.ThreadMap(self._loader, self.num_threads)
        )


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
        if self._keys.count <= self.shard_keys_threshold:
            keys = pbegin | "Create" >> beam.Create(list(self._keys.all()))
        else:
            per_range = max(1, self.shard_keys_threshold // 10)
            keys = (
                pbegin
                | "CreateRanges" >> beam.Create(self._keys.ranges(per_range))
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

    def __init__(self, datasets: list[xarray.Dataset], grids: Grids, as_list: bool):
        self._datasets = datasets
        self._grids = dict(grids)
        self._as_list = as_list

    def __call__(self, key: Key) -> Iterator[tuple[Key, Any]]:
        name = next(iter(key.vars)) if key.vars else None
        slices = self._grids[name].slices(key.offsets)
        loaded = []
        for ds in self._datasets:
            if name is not None:
                ds = ds[[name]]
            chunk = ds.isel({d: s for d, s in slices.items() if d in ds.dims})
            loaded.append(_load_in_parallel(chunk))
            _count("chunks_read")
            _count("bytes_read", loaded[-1].nbytes)
        yield key, (loaded if self._as_list else loaded[0])


def _load_in_parallel(chunk: xarray.Dataset) -> xarray.Dataset:
    """Load a lazily indexed chunk into memory, one thread per variable
    (windows of Zarr arrays by direct chunk decoding, see ``fast_load``)."""
    if chunk.chunks:
        return chunk.load()

    def load(var: xarray.Variable) -> None:
        if not fast_load.load(var):
            var.load()

    threadmap.map_variables(load, list(chunk.variables.values()))
    return chunk


def _count(name: str, value: int = 1) -> None:
    """Count work with a Beam counter (shown by runners) and for local progress."""
    beam.metrics.Metrics.counter("xarray_beam", name).inc(value)
    progress.record(name, value)
