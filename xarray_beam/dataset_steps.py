"""Per-chunk steps behind ``xarray_beam.Dataset`` (pure, no pipelines).

Each class here is a picklable callable applied to one ``(Key, Dataset)``
element, so it can be tested on plain chunks without running Beam.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any, Literal, NoReturn, cast

import xarray

from xarray_beam.model import chunks as chunks_lib
from xarray_beam.model import reductions, templates
from xarray_beam.model.chunks import ChunkGrid
from xarray_beam.model.key import Key

Chunk = tuple[Key, xarray.Dataset]


def dims_of(
    obj: xarray.Dataset | xarray.DataArray | xarray.Variable,
) -> tuple[str, ...]:
    """``obj.dims`` as a tuple, typed as this package names dimensions (str).

    xarray types dimension names as ``Hashable``; keys only allow strings.
    """
    return cast("tuple[str, ...]", tuple(obj.dims))


def sizes_of(dataset: xarray.Dataset) -> dict[str, int]:
    """``dataset.sizes`` as a dict keyed by (str) dimension name."""
    return cast("dict[str, int]", dict(dataset.sizes))


def data_vars_of(dataset: xarray.Dataset) -> Mapping[str, xarray.DataArray]:
    """``dataset.data_vars``, typed with (str) variable names."""
    return cast("Mapping[str, xarray.DataArray]", dataset.data_vars)


def expected_size(dim: str, offset: int, chunks: Mapping[str, int], size: int) -> int:
    """Length along ``dim`` of the chunk that starts at ``offset``."""
    return min(chunks[dim], size - offset)


def grid(chunks: Mapping[str, int], sizes: Mapping[str, int], dims: Sequence[str]):
    """The ChunkGrid of regular chunks over ``dims``."""
    return ChunkGrid(
        {d: chunks_lib.normalize_dim_chunks(d, chunks[d], sizes[d]) for d in dims}
    )


def chunk_count(
    template: xarray.Dataset, chunks: Mapping[str, int], split_vars: bool
) -> int:
    """How many ``(Key, Dataset)`` elements a dataset is made of."""
    sizes = cast("Mapping[str, int]", template.sizes)
    if not split_vars:
        return grid(chunks, sizes, list(dims_of(template))).count
    return sum(
        grid(chunks, sizes, dims_of(var)).count for var in template.data_vars.values()
    )


def bytes_per_chunk(
    template: xarray.Dataset, chunks: Mapping[str, int], split_vars: bool
) -> int:
    """Bytes of the largest chunk: summed over variables, or the largest one."""
    per_var = [
        var.dtype.itemsize * math.prod(chunks[d] for d in dims_of(var))
        for var in template.data_vars.values()
    ]
    if not per_var:
        return 0
    return max(per_var) if split_vars else sum(per_var)


class ChunkChecker:
    """Checks that elements match a template and its chunks; passes them on.

    Keys may leave out offsets of 0 and, with ``split_vars``, the vars of a
    one-variable chunk: they are filled in, as xarray-beam 0.11 does.
    Raises ValueError (TypeError for things that are not keys and datasets)
    naming the key and what is wrong, with the chunks that were expected.
    """

    def __init__(
        self, template: xarray.Dataset, chunks: Mapping[str, int], split_vars: bool
    ):
        self.sizes = sizes_of(template)
        self.chunks = dict(chunks)
        self.split_vars = split_vars
        self.variables = {
            name: (dims_of(var), var.dtype)
            for name, var in data_vars_of(template).items()
        }
        self.all_dims = dims_of(template)

    def __call__(self, element: Any) -> Chunk:
        if not isinstance(element, tuple) or len(element) != 2:
            raise TypeError(
                f"expected (Key, xarray.Dataset) pairs, got a "
                f"{type(element).__name__}: {element!r:.200}"
            )
        key, chunk = element
        if not isinstance(key, Key) or not isinstance(chunk, xarray.Dataset):
            raise TypeError(
                f"expected (Key, xarray.Dataset) pairs, got "
                f"({type(key).__name__}, {type(chunk).__name__}) for key {key!r:.200}"
            )
        names = set(data_vars_of(chunk))
        if self.split_vars:
            if key.vars is None and len(names) == 1:
                key = key.replace(vars=names)
            if key.vars is None or len(key.vars) != 1:
                self._fail(
                    key,
                    f"has vars={key.vars}, but with split_vars=True each "
                    f"key must name exactly one variable",
                )
            (name,) = key.vars
            if name not in self.variables:
                self._fail(
                    key,
                    f"names variable {name!r}, which is not in the "
                    f"template ({sorted(self.variables)})",
                )
            if names != {name}:
                self._fail(key, f"holds variables {sorted(names)}, expected [{name!r}]")
            dims = self.variables[name][0]
        else:
            if key.vars is not None:
                self._fail(
                    key,
                    "has vars set, but split_vars=False (use "
                    "split_vars=True for one variable per chunk)",
                )
            if names != set(self.variables):
                missing = sorted(set(self.variables) - names)
                extra = sorted(names - set(self.variables))
                self._fail(
                    key,
                    f"has the wrong variables: missing {missing}, unexpected {extra}",
                )
            dims = self.all_dims
        missing = [dim for dim in dims if dim not in key.offsets]
        if missing:
            key = key.replace(offsets={**key.offsets, **dict.fromkeys(missing, 0)})
        if set(key.offsets) != set(dims):
            self._fail(
                key,
                f"has offsets for {sorted(key.offsets)}, expected offsets "
                f"for exactly {sorted(dims)}",
            )
        for dim in dims:
            offset = key.offsets[dim]
            if offset < 0 or offset >= self.sizes[dim]:
                self._fail(
                    key,
                    f"offset {offset} along {dim!r} is outside the dimension "
                    f"(size {self.sizes[dim]})",
                )
            if offset % self.chunks[dim]:
                self._fail(
                    key,
                    f"offset {offset} along {dim!r} is not a multiple of the "
                    f"chunk size {self.chunks[dim]}",
                )
            want = expected_size(dim, offset, self.chunks, self.sizes[dim])
            got = chunk.sizes.get(dim)
            if got != want:
                self._fail(key, f"has {got} elements along {dim!r}, expected {want}")
        for name, var in data_vars_of(chunk).items():
            want_dims, want_dtype = self.variables[name]
            if var.dims != want_dims:
                self._fail(
                    key,
                    f"variable {name!r} has dims {var.dims}, the "
                    f"template has {want_dims}",
                )
            if var.dtype != want_dtype:
                self._fail(
                    key,
                    f"variable {name!r} has dtype {var.dtype}, the "
                    f"template has {want_dtype}",
                )
        return key, chunk

    def _fail(self, key: Key, problem: str) -> NoReturn:
        raise ValueError(
            f"chunk {key} {problem} (expected chunks {self.chunks} of a dataset "
            f"with sizes {self.sizes}, split_vars={self.split_vars})"
        )


class MapBlocks:
    """Applies a function to each chunk and re-keys the result.

    The chunk at the n-th offset of the input chunks ``old_chunks`` (default:
    ``chunks``) along a dimension becomes the n-th chunk of ``chunks``, so a
    function may resize dimensions split into several chunks.
    """

    def __init__(
        self,
        func: Callable[[xarray.Dataset], xarray.Dataset],
        template: xarray.Dataset,
        chunks: Mapping[str, int],
        split_vars: bool,
        old_chunks: Mapping[str, int] | None = None,
    ):
        self.func = func
        self.name = getattr(func, "__name__", type(func).__name__)
        self.sizes = sizes_of(template)
        self.dims = dims_of(template)
        self.chunks = dict(chunks)
        self.old_chunks = dict(chunks if old_chunks is None else old_chunks)
        self.split_vars = split_vars

    def __call__(self, element: Chunk) -> Chunk:
        key, chunk = element
        result = self.func(chunk)
        if not isinstance(result, xarray.Dataset):
            raise TypeError(
                f"map_blocks function {self.name!r} returned a "
                f"{type(result).__name__} for chunk {key}; it must return an "
                f"xarray.Dataset"
            )
        dims = dims_of(result) if self.split_vars else self.dims
        offsets = {
            dim: key.offsets.get(dim, 0)
            // self.old_chunks.get(dim, 1)
            * self.chunks.get(dim, 1)
            for dim in dims
        }
        for dim in dims_of(result):
            if dim not in self.sizes:
                raise ValueError(
                    f"map_blocks function {self.name!r} returned dimension {dim!r} "
                    f"for chunk {key}, which its template lacks"
                )
            want = expected_size(dim, offsets[dim], self.chunks, self.sizes[dim])
            if result.sizes[dim] != want:
                raise ValueError(
                    f"map_blocks function {self.name!r} returned {result.sizes[dim]} "
                    f"elements along {dim!r} for chunk {key}, but the template "
                    f"and chunks {self.chunks} call for {want}"
                )
        vars_ = set(data_vars_of(result)) if self.split_vars else None
        return Key(offsets, vars_), result


def split_unique(element: Chunk) -> Iterator[Chunk]:
    """One chunk per variable, without the copies a chunk makes of variables
    lacking some of its dimensions (only the copy at offset 0 along them).

    Example:
      >>> ds = xarray.Dataset({'a': ('x', [1, 2]), 'b': ((), 3)})
      >>> [k for k, _ in split_unique((Key({'x': 2}), ds))]
      [Key(offsets={'x': 2}, vars={'a'})]
    """
    key, chunk = element
    for name, var in data_vars_of(chunk).items():
        if any(offset for dim, offset in key.offsets.items() if dim not in var.dims):
            continue
        offsets = {d: o for d, o in key.offsets.items() if d in var.dims}
        yield Key(offsets, {name}), chunk[[name]]


class FanOut:
    """Copies a one-variable chunk to every full-dataset key it belongs to.

    A variable lacking some dimensions of the dataset belongs to every chunk
    along them, as in ``DatasetToChunks`` without ``split_vars``.
    """

    def __init__(self, template: xarray.Dataset, chunks: Mapping[str, int]):
        self.sizes = sizes_of(template)
        self.dims = dims_of(template)
        self.chunks = dict(chunks)

    def __call__(self, element: Chunk) -> Iterator[Chunk]:
        key, chunk = element
        missing = [d for d in self.dims if d not in key.offsets]
        for extra in grid(self.chunks, self.sizes, missing).iter_offsets():
            offsets = {**key.offsets, **extra}
            yield Key({d: offsets[d] for d in self.dims}), chunk


class CheckVariables:
    """Raises unless a consolidated chunk holds every variable."""

    def __init__(self, names: Sequence[str]):
        self.names = list(names)

    def __call__(self, element: Chunk) -> Chunk:
        key, chunk = element
        missing = [name for name in self.names if name not in chunk.data_vars]
        if missing:
            raise ValueError(
                f"chunk {key} lacks variable(s) {missing} after consolidating "
                f"variables: the input has no chunk of them at these offsets"
            )
        return key, chunk[self.names]


class SelectVariables:
    """Keeps some variables; dimensions they lack leave the keys."""

    def __init__(self, names: Sequence[str], dims: Sequence[str], split_vars: bool):
        self.names = list(names)
        self.dims = set(dims)
        self.split_vars = split_vars

    def __call__(self, element: Chunk) -> Iterator[Chunk]:
        key, chunk = element
        if self.split_vars:
            if key.vars is not None and key.vars <= set(self.names):
                yield element
            return
        gone = [d for d in key.offsets if d not in self.dims]
        if any(key.offsets[d] for d in gone):
            return  # a copy of the selected variables from another chunk
        yield key.with_offsets(**dict.fromkeys(gone)), chunk[self.names]


class KeepVariables:
    """Keeps the one-variable chunks of some variables (split datasets)."""

    def __init__(self, names: Sequence[str]):
        self.names = frozenset(names)

    def __call__(self, element: Chunk) -> bool:
        vars_ = element[0].vars
        return vars_ is None or vars_ <= self.names


class Transpose:
    """Transposes each chunk (dimensions a chunk lacks are skipped)."""

    def __init__(self, dims: Sequence[Hashable]):
        self.dims = list(dims)

    def __call__(self, element: Chunk) -> Chunk:
        key, chunk = element
        dims = [d for d in self.dims if d is ... or d in chunk.dims]
        return key, chunk.transpose(*dims)


def reduced_template(
    template: xarray.Dataset, dims: Sequence[str], reducer: reductions.Reducer
) -> xarray.Dataset:
    """The template of reducing ``template`` over ``dims`` with ``reducer``.

    Follows what ``Reducer.finalize`` produces, as xarray does: numeric
    variables lose ``dims`` and take the statistic's dtype (those lacking
    ``dims`` are reduced over nothing), non-numeric ones along ``dims`` are
    dropped and the other non-numeric ones kept as they are.

    Example:
      >>> import numpy as np
      >>> ds = xarray.Dataset({'t': (('time', 'x'), np.zeros((4, 3), 'f4'))})
      >>> out = reduced_template(ds, ['time'], reductions.Reducer('count'))
      >>> out.t.dims, out.t.dtype
      (('x',), dtype('int64'))
    """
    reduced = set(dims)
    data_vars = {}
    for name, var in template.data_vars.items():
        along = reduced & set(var.dims)
        numeric = reductions.reducible(var.dtype)
        if along and not numeric:
            continue
        if along:
            kept = tuple(d for d in var.dims if d not in reduced)
            shape = tuple(var.sizes[d] for d in kept)
            dtype = reducer.result_dtype(var.dtype)
        elif numeric:
            kept, shape = var.dims, var.shape
            dtype = reducer.constant_dtype(var.variable)
        else:
            kept, shape, dtype = var.dims, var.shape, var.dtype
        data_vars[name] = xarray.Variable(
            kept, templates.placeholder(shape, dtype), var.attrs
        )
    coords = {
        name: coord.variable
        for name, coord in template.coords.items()
        if not reduced & set(coord.dims)
    }
    return xarray.Dataset(data_vars, coords=coords, attrs=template.attrs)


def lazy_template(dataset: xarray.Dataset) -> xarray.Dataset:
    """``dataset`` with every data variable lazy, coordinates loaded."""
    return templates.make_template(dataset).assign_coords(
        {name: coord.variable.load() for name, coord in dataset.coords.items()}
    )


CoarsenBoundary = Literal["exact", "trim", "pad"]
COARSEN_BOUNDARIES = ("exact", "trim", "pad")


def check_coarsen(
    template: xarray.Dataset,
    windows: Mapping[Any, Any],
    boundary: CoarsenBoundary,
    side: Any,
) -> dict[str, int]:
    """The windows of a coarsen, checked against the data.

    Raises:
      ValueError: for no windows, unknown dimensions, windows that are not
        positive ints, an unknown boundary, ``side`` other than 'left', or
        ``boundary='exact'`` with a size the window does not divide.

    Example:
      >>> ds = xarray.Dataset({'t': (('lat', 'lon'), [[1.0, 2.0]])})
      >>> check_coarsen(ds, {'lon': 2}, 'exact', 'left')
      {'lon': 2}
    """
    if not windows:
        raise ValueError("coarsen needs a window for at least one dimension")
    if boundary not in COARSEN_BOUNDARIES:
        raise ValueError(
            f"boundary must be one of {COARSEN_BOUNDARIES}, got {boundary!r}"
        )
    sides = set(side.values()) if isinstance(side, Mapping) else {side}
    if sides != {"left"}:
        raise ValueError(
            f"coarsen supports side='left' only (windows start at the first "
            f"element, as in xarray's default), got side={side!r}"
        )
    sizes = sizes_of(template)
    checked = {}
    for dim, window in windows.items():
        if dim not in sizes:
            raise ValueError(
                f"cannot coarsen {dim!r}: the data has dimensions {list(sizes)}"
            )
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(
                f"the window along {dim!r} must be a positive int, got {window!r}"
            )
        if boundary == "exact" and sizes[dim] % window:
            raise ValueError(
                f"cannot coarsen {dim!r} of size {sizes[dim]} by windows of "
                f"{window} with boundary='exact' (the default): {window} does not "
                f"divide {sizes[dim]}; pass boundary='trim' to drop the last "
                f"{sizes[dim] % window} element(s) or boundary='pad' to fill the "
                f"last window with NaN"
            )
        checked[str(dim)] = window
    return checked


def window_aligned_chunks(
    chunks: Mapping[str, int], sizes: Mapping[str, int], windows: Mapping[str, int]
) -> dict[str, int]:
    """Chunks whose boundaries fall between windows: each chunk along a
    coarsened dimension split into several is rounded down to a multiple of
    its window (at least one window).

    Example:
      >>> window_aligned_chunks({'lat': 10, 'lon': 360}, {'lat': 181, 'lon': 360},
      ...                       {'lat': 4, 'lon': 4})
      {'lat': 8, 'lon': 360}
    """
    aligned = dict(chunks)
    for dim, window in windows.items():
        chunk = chunks[dim]
        if chunk < sizes[dim] and chunk % window:
            aligned[dim] = max(window, chunk // window * window)
    return aligned


class Coarsen:
    """Coarsens one chunk with xarray, as the whole dataset would be.

    The chunks along coarsened dimensions are whole windows (see
    ``window_aligned_chunks``), so each window lies in one chunk and only a
    last, shorter chunk meets the boundary: it is trimmed (and dropped if
    shorter than a window) or padded as xarray would. Chunks lacking every
    coarsened dimension pass through, as xarray keeps such variables.
    Results take the template's dtypes (a padded integer window makes the
    whole result float, in xarray too).
    """

    def __init__(
        self,
        windows: Mapping[str, int],
        boundary: CoarsenBoundary,
        coord_func: Any,
        stat: str,
        options: Mapping[str, Any],
        template: xarray.Dataset,
    ):
        self.windows = dict(windows)
        self.boundary = boundary
        self.coord_func = coord_func
        self.stat = stat
        self.options = dict(options)
        self.dtypes = {name: var.dtype for name, var in template.data_vars.items()}

    def __call__(self, element: Chunk) -> Iterator[Chunk]:
        key, chunk = element
        windows = {d: w for d, w in self.windows.items() if d in chunk.dims}
        if self.boundary == "trim" and any(
            chunk.sizes[d] < w for d, w in windows.items()
        ):
            return  # the rest that trimming drops
        result = chunk
        if windows:
            coarse = chunk.coarsen(
                windows, boundary=self.boundary, coord_func=self.coord_func
            )
            result = getattr(coarse, self.stat)(**self.options)
        result = result.assign(
            {
                name: var.astype(self.dtypes[name], copy=False)
                for name, var in result.data_vars.items()
                if name in self.dtypes
            }
        )
        offsets = {
            d: o // windows[d] if d in windows else o for d, o in key.offsets.items()
        }
        yield key.replace(offsets=offsets), result
