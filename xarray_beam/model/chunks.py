"""Chunk arithmetic: pure functions over dimension sizes and chunk sizes.

Nothing here imports Beam or touches storage, so every rule about how data is
cut into chunks can be tested on plain integers.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Hashable, Iterator, Mapping, Sequence
from typing import Any, cast

import dask
import dask.array.core
import numpy as np

from xarray_beam.model import units

ChunkSpec = int | tuple[int, ...]


def normalize_dim_chunks(dim: str, spec: object, size: int) -> tuple[int, ...]:
    """Explicit chunk sizes along one dimension.

    Args:
      dim: dimension name, for error messages.
      spec: a positive int (regular chunks, ragged last chunk), -1 (one chunk
        spanning the dimension) or a tuple of chunk sizes summing to ``size``.
      size: length of the dimension.

    Returns:
      A tuple of positive chunk sizes summing to ``size`` (empty if size is 0).

    Raises:
      ValueError: if the spec is not a valid chunking of the dimension.
      TypeError: if the spec is neither an int nor a sequence of ints.

    Example:
      >>> normalize_dim_chunks('time', 10, 25)
      (10, 10, 5)
    """
    if isinstance(spec, numbers.Integral) and not isinstance(spec, bool):
        step = int(spec)
        if step == -1:
            step = max(size, 1)
        if step <= 0:
            raise ValueError(
                f"chunk size for dimension {dim!r} must be a positive integer "
                f"or -1 (whole dimension), got {spec!r}"
            )
        full, rest = divmod(size, step)
        return (step,) * full + ((rest,) if rest else ())
    if isinstance(spec, tuple | list):
        sizes = tuple(spec)
        if not all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and int(s) > 0
            for s in sizes
        ):
            raise ValueError(
                f"chunk sizes for dimension {dim!r} must be positive integers, "
                f"got {spec!r}"
            )
        if sum(sizes) != size:
            raise ValueError(
                f"chunk sizes for dimension {dim!r} sum to {sum(sizes)}, but the "
                f"dimension has size {size}"
            )
        return tuple(int(s) for s in sizes)
    raise TypeError(
        f"chunks for dimension {dim!r} must be an int, -1 or a tuple of ints, "
        f"got {type(spec).__name__}: {spec!r}"
    )


def normalize_chunks_for_sizes(
    chunks: Mapping[str, object], sizes: Mapping[str, int], what: str = "dataset"
) -> dict[str, tuple[int, ...]]:
    """Explicit chunk sizes for every dimension in ``sizes``.

    Dimensions missing from ``chunks`` get a single chunk.

    Raises:
      ValueError: if ``chunks`` names a dimension not in ``sizes``.

    Example:
      >>> normalize_chunks_for_sizes({'x': 2}, {'x': 5, 'y': 3})
      {'x': (2, 2, 1), 'y': (3,)}
    """
    if not isinstance(chunks, Mapping):
        raise TypeError(
            f"chunks must be a mapping from dimension name to chunk size, got "
            f"{type(chunks).__name__}: {chunks!r}"
        )
    unknown = [dim for dim in chunks if dim not in sizes]
    if unknown:
        raise ValueError(
            f"chunks name dimension(s) {unknown} not found in the {what}'s "
            f"dimensions {list(sizes)}"
        )
    return {
        dim: normalize_dim_chunks(dim, chunks.get(dim, -1), size)
        for dim, size in sizes.items()
    }


def check_chunk_sizes(
    spec: Mapping[str, int],
    what: str = "target_chunks",
    dims: Sequence[Hashable] | None = None,
) -> dict[str, int]:
    """Validate regular chunk sizes: a positive int or -1 for each dimension.

    Args:
      spec: mapping from dimension name to chunk size.
      what: the argument's name, for error messages.
      dims: if given, the dimensions ``spec`` may name.

    Raises:
      TypeError: if ``spec`` is not a mapping.
      ValueError: for unknown dimensions or sizes that are not positive ints
        or -1.

    Example:
      >>> check_chunk_sizes({'time': 24, 'latitude': -1})
      {'time': 24, 'latitude': -1}
    """
    if not isinstance(spec, Mapping):
        raise TypeError(
            f"{what} must be a mapping from dimension name to chunk size, got "
            f"{type(spec).__name__}: {spec!r}"
        )
    if dims is not None:
        unknown = [dim for dim in spec if dim not in dims]
        if unknown:
            raise ValueError(
                f"{what} names dimension(s) {unknown} not in the dimensions "
                f"{list(dims)}"
            )
    result: dict[str, int] = {}
    for dim, size in spec.items():
        if isinstance(size, bool) or not isinstance(size, numbers.Integral):
            raise ValueError(
                f"{what} for dimension {dim!r} must be an int (regular chunks), "
                f"got {size!r}"
            )
        if size <= 0 and size != -1:
            raise ValueError(
                f"{what} for dimension {dim!r} must be positive or -1, got {size}"
            )
        result[dim] = int(size)
    return result


@dataclasses.dataclass(frozen=True)
class ChunkGrid:
    """The chunks of a set of dimensions, enumerated in C order.

    Attributes:
      chunks: explicit chunk sizes for each dimension, in order.

    Example:
      >>> grid = ChunkGrid({'x': (2, 2, 1), 'y': (3,)})
      >>> grid.count
      3
      >>> grid.offsets_at(2)
      {'x': 4, 'y': 0}
    """

    chunks: Mapping[str, tuple[int, ...]]

    @functools.cached_property
    def _starts(self) -> dict[str, np.ndarray]:
        return {
            dim: np.concatenate([[0], np.cumsum(sizes[:-1], dtype=np.int64)])
            if sizes
            else np.zeros(0, np.int64)
            for dim, sizes in self.chunks.items()
        }

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(self.chunks)

    @property
    def shape(self) -> tuple[int, ...]:
        """Number of chunks along each dimension."""
        return tuple(len(sizes) for sizes in self.chunks.values())

    @property
    def count(self) -> int:
        """Total number of chunks."""
        return math.prod(self.shape)

    def offsets_at(self, index: int) -> dict[str, int]:
        """Offsets of the chunk with the given C-order index."""
        return next(self.iter_offsets(index, index + 1))

    def iter_offsets(
        self, start: int = 0, stop: int | None = None, batch: int = 65536
    ) -> Iterator[dict[str, int]]:
        """Offsets of the chunks with C-order index in ``[start, stop)``."""
        stop = self.count if stop is None else min(stop, self.count)
        if not self.dims:
            if start < stop:
                yield {}
            return
        starts = self._starts
        for lo in range(start, stop, batch):
            indices = np.unravel_index(np.arange(lo, min(lo + batch, stop)), self.shape)
            columns = [
                starts[dim][idx].tolist()
                for dim, idx in zip(self.dims, indices, strict=True)
            ]
            for row in zip(*columns, strict=True):
                yield dict(zip(self.dims, row, strict=True))

    def chunk_size(self, dim: str, offset: int) -> int:
        """Size of the chunk starting at ``offset`` along ``dim``.

        Raises:
          ValueError: if no chunk starts at ``offset``.
        """
        starts = self._starts[dim]
        i = int(np.searchsorted(starts, offset))
        if i >= len(starts) or starts[i] != offset:
            raise ValueError(
                f"offset {offset} along dimension {dim!r} is not the start of a "
                f"chunk; chunks start at {_short_list(starts)}"
            )
        return self.chunks[dim][i]

    def slices(self, offsets: Mapping[str, int]) -> dict[str, slice]:
        """Slices selecting the chunk at ``offsets`` (missing dims: offset 0)."""
        result = {}
        for dim in self.dims:
            start = offsets.get(dim, 0)
            result[dim] = slice(start, start + self.chunk_size(dim, start))
        return result


def index_ranges(count: int, per_range: int) -> list[tuple[int, int]]:
    """Split ``range(count)`` into consecutive ``[start, stop)`` pieces.

    Example:
      >>> index_ranges(5, 2)
      [(0, 2), (2, 4), (4, 5)]
    """
    return [(lo, min(lo + per_range, count)) for lo in range(0, count, per_range)]


def aligned_pieces(start: int, size: int, target: int) -> list[tuple[int, int]]:
    """Cut ``[start, start + size)`` at absolute multiples of ``target``.

    Example:
      >>> aligned_pieces(5, 12, 4)
      [(5, 8), (8, 12), (12, 16), (16, 17)]
    """
    first_cut = (start // target + 1) * target
    edges = [start, *range(first_cut, start + size, target), start + size]
    return list(zip(edges[:-1], edges[1:], strict=True))


def covers_whole_units(start: int, stop: int, unit: int, dim_size: int) -> bool:
    """Whether ``[start, stop)`` consists of whole blocks of size ``unit``.

    The last block along a dimension may be ragged, so ``stop == dim_size``
    counts as aligned.

    Example:
      >>> covers_whole_units(10, 20, 10, 25), covers_whole_units(20, 25, 10, 25)
      (True, True)
      >>> covers_whole_units(5, 10, 10, 25)
      False
    """
    return start % unit == 0 and (stop % unit == 0 or stop == dim_size)


def _short_list(values: np.ndarray, limit: int = 6) -> str:
    items = [int(v) for v in values[:limit]]
    return str(items)[:-1] + (", ...]" if len(values) > limit else "]")


def normalize_chunks(
    chunks: Mapping[Any, int | str] | int | str,
    template: Any,
    split_vars: bool = False,
    previous_chunks: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Regular chunk sizes for every dimension of a template.

    Args:
      chunks: per dimension an int, -1 (whole dimension) or a byte size
        string such as '64MiB'; ``...`` as a key applies its value to every
        dimension not named, and a bare int or string applies to every
        dimension. Dimensions not given keep ``previous_chunks`` (or are
        whole). All byte sizes must be the same size: the dimensions given
        one are chosen together so that a chunk holds about that many bytes
        (Dask's rule, as xarray-beam 0.11 uses it: the shape of
        ``previous_chunks`` scaled by one factor when given, in whole
        previous chunks where at least one fits, else chunks as square as
        the sizes allow; never more than the target plus 25%).
      template: the dataset (or template) the chunks are for.
      split_vars: whether chunks hold one variable (byte sizes then count
        the largest variable's itemsize, else the sum of all).
      previous_chunks: current chunks: the default for dimensions not given,
        and the shape byte-sized chunks keep.

    Raises:
      ValueError: for unknown dimensions, 'auto' (even for a dataset without
        dimensions), different byte sizes, empty or invalid sizes.
      TypeError: for values that are neither ints nor strings.

    Example:
      >>> import numpy as np, xarray
      >>> ds = xarray.Dataset({'t': (('time', 'x'), np.zeros((1000, 100), 'f4'))})
      >>> normalize_chunks({'time': '40kB', ...: -1}, ds)
      {'time': 100, 'x': 100}
      >>> normalize_chunks('1600B', ds, previous_chunks={'time': 10, 'x': 5})
      {'time': 20, 'x': 10}
    """
    sizes = {str(dim): int(size) for dim, size in template.sizes.items()}
    itemsizes = [var.dtype.itemsize for var in template.data_vars.values()]
    itemsize = (max(itemsizes) if split_vars else sum(itemsizes)) if itemsizes else 1
    if isinstance(chunks, int | str) and not isinstance(chunks, bool):
        chunks = {...: chunks}
    if not isinstance(chunks, Mapping):
        raise TypeError(
            f"chunks must be a mapping from dimension to size, got {chunks!r}"
        )
    spec = dict(chunks)
    limit = _byte_limit(spec)
    rest = spec.pop(..., None)
    unknown = [dim for dim in spec if dim not in sizes]
    if unknown:
        raise ValueError(
            f"chunks name dimension(s) {unknown} not in the dataset's dimensions "
            f"{list(sizes)}"
        )
    previous = dict(previous_chunks or {})
    result: dict[str, int] = {}
    # Byte sizes count a chunk size larger than its dimension as given, as
    # xarray-beam 0.11 (through Dask) does.
    as_given: dict[str, int] = {}
    by_bytes: list[str] = []
    for dim, size in sizes.items():
        if dim in spec:
            value = spec[dim]
        elif rest is not None:
            value = rest
        else:
            value = previous.get(dim, -1)
        if isinstance(value, str):
            by_bytes.append(dim)
        elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
            if value == -1:
                result[dim] = max(size, 1)
            elif value > 0:
                result[dim] = min(int(value), max(size, 1))
                as_given[dim] = int(value)
            else:
                raise ValueError(
                    f"chunk size for dimension {dim!r} must be positive or -1, got "
                    f"{value}"
                )
        else:
            raise TypeError(
                f"chunk size for dimension {dim!r} must be an int or a byte size "
                f"string, got {value!r}"
            )
    if by_bytes:
        shape_hint = None
        if previous_chunks:
            shape_hint = {
                dim: min(max(int(previous.get(dim, size)), 1), max(size, 1))
                for dim, size in sizes.items()
            }
        result.update(
            _chunks_of_bytes(
                by_bytes,
                {**result, **as_given},
                sizes,
                cast(int, limit),
                itemsize,
                shape_hint,
            )
        )
    return {dim: result[dim] for dim in sizes}


def _byte_limit(spec: Mapping[Any, object]) -> int | None:
    """The one byte size a chunk spec gives (None if none), checked."""
    limits: dict[Any, int] = {}
    for dim, value in spec.items():
        if not isinstance(value, str):
            continue
        where = "every dimension" if dim is ... else f"dimension {dim!r}"
        if not value.strip():
            raise ValueError(f"empty chunk size for {where}")
        if value.strip().lower() == "auto":
            name = "chunks" if dim is ... else repr(dim)
            raise ValueError(
                f"{name}='auto' is not supported (unlike Dask): give a size, -1, "
                f"or a byte size such as '64MiB'"
            )
        limits[dim] = units.parse_size(value)
    if len(set(limits.values())) > 1:
        given = {("..." if d is ... else d): spec[d] for d in limits}
        raise ValueError(
            f"chunks give different byte sizes {given}: give one byte size, "
            f"e.g. with ... as the key for all other dimensions"
        )
    return next(iter(limits.values()), None)


def _chunks_of_bytes(
    dims: Sequence[str],
    fixed: Mapping[str, int],
    sizes: Mapping[str, int],
    limit: int,
    itemsize: int,
    previous: Mapping[str, int] | None,
) -> dict[str, int]:
    """Chunk sizes along ``dims`` for chunks of about ``limit`` bytes.

    Dask's auto-chunking does the arithmetic, with its tolerance pinned so
    that the result does not depend on the user's Dask configuration.
    """
    order = [d for d in sizes if sizes[d] > 0]
    result = {d: 1 for d in dims if sizes[d] == 0}
    if not any(d in dims for d in order):
        return result
    spec = tuple("auto" if d in dims else fixed[d] for d in order)
    shape = tuple(sizes[d] for d in order)
    hint = None if previous is None else tuple(previous[d] for d in order)
    with dask.config.set({"array.chunk-size-tolerance": 1.25}):
        normalized = dask.array.core.normalize_chunks(
            spec,
            shape,
            limit=limit,
            dtype=np.dtype((np.void, max(itemsize, 1))),
            previous_chunks=hint,
        )
    for dim, blocks in zip(order, normalized, strict=True):
        if dim in dims:
            result[dim] = max(int(blocks[0]), 1)
    return result
