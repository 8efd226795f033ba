"""Templates: lazy datasets that describe a whole output without its data.

A template's Dask-backed ("lazy") variables are written chunk by chunk by a
pipeline and refuse to compute; its NumPy-backed variables (usually
coordinates) are written once when a store is set up.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Iterable, Mapping, Set
from typing import Any, cast

import dask.array
import numpy as np
import pandas as pd
import xarray

from xarray_beam.model.key import Key


class TemplateComputeError(RuntimeError):
    """Raised when code tries to compute a template's placeholder data."""


def _refuse(block: np.ndarray) -> np.ndarray:
    raise TemplateComputeError(
        "this is a placeholder from an xarray_beam template: it describes the "
        "shape and dtype of data written by a pipeline and cannot be computed"
    )


def placeholder(
    shape: tuple[int, ...], dtype: np.dtype, chunks: Any = -1
) -> dask.array.Array:
    """A lazy array of the given shape and dtype that refuses to compute.

    Building it is O(1) whatever the number of chunks.

    Example:
      >>> placeholder((2, 3), np.float32).shape
      (2, 3)
    """
    dtype = np.dtype(dtype)
    zeros = dask.array.zeros(shape, dtype=dtype, chunks=chunks if shape else ())
    return zeros.map_blocks(
        _refuse, dtype=dtype, meta=np.empty((0,) * len(shape), dtype)
    )


def is_lazy(variable: xarray.Variable) -> bool:
    """Whether a template variable is Dask-backed, i.e. written by the pipeline."""
    return isinstance(variable.data, dask.array.Array)


def lazy_variables(template: xarray.Dataset) -> list[str]:
    """Names of the variables a pipeline writes chunk by chunk."""
    names = [name for name, var in template.variables.items() if is_lazy(var)]
    # Written to Zarr, whose names are str (see zarr_layout.check_names).
    return cast("list[str]", names)


def _rebuild(
    dataset: xarray.Dataset, variables: Mapping[Hashable, xarray.Variable]
) -> xarray.Dataset:
    result = xarray.Dataset(
        {name: variables[name] for name in dataset.data_vars if name in variables},
        coords={name: variables[name] for name in dataset.coords if name in variables},
        attrs=dataset.attrs,
    )
    result.encoding = dict(dataset.encoding)
    return result


def make_template(
    dataset: xarray.Dataset, lazy_vars: Set[str] | None = None
) -> xarray.Dataset:
    """A template for writing ``dataset``: lazy variables that refuse to compute.

    Lazy variables are written chunk by chunk by a pipeline; the others are
    written once, when the store is set up.

    Args:
      dataset: the dataset to describe (lazy or in memory).
      lazy_vars: variables to make lazy; by default, as in xarray-beam, every
        data variable and every coordinate that is not an index.

    Returns:
      A dataset with the same variables, dims, dtypes, attrs and encoding, in
      which each lazy variable keeps the Dask chunks of ``dataset`` (one chunk
      if it has none), and every other variable is in memory (Dask-backed
      ones are computed; index coordinates always are).

    Raises:
      ValueError: if ``lazy_vars`` names unknown variables or index coordinates.

    Example:
      >>> ds = xarray.Dataset({'t2m': (('time',), np.zeros(4, np.float32))},
      ...                     coords={'time': np.arange(4)})
      >>> template = make_template(ds)
      >>> template.t2m.chunks, template.time.values.tolist()
      (((4,),), [0, 1, 2, 3])
    """
    if not isinstance(dataset, xarray.Dataset):
        raise TypeError(f"make_template takes an xarray.Dataset, got {type(dataset)}")
    if lazy_vars is None:
        names: Iterable[Hashable] = [*dataset.data_vars, *dataset.coords]
        names = [name for name in names if name not in dataset.xindexes]
    else:
        names = lazy_vars
    lazy = set(cast("Iterable[str]", names))  # named by str, as in keys
    unknown = sorted(lazy - set(dataset.variables))
    if unknown:
        raise ValueError(f"lazy_vars names unknown variable(s) {unknown}")
    indexes = sorted(lazy & set(dataset.xindexes))
    if indexes:
        raise ValueError(f"index coordinate(s) {indexes} cannot be made lazy")
    variables = dict(dataset.variables)
    for name, var in variables.items():
        if name in lazy:
            chunks = var.chunks if var.chunks is not None else -1
            data = placeholder(var.shape, var.dtype, chunks)
            variables[name] = xarray.Variable(var.dims, data, var.attrs, var.encoding)
        elif is_lazy(var):
            variables[name] = var.compute()
    return _rebuild(dataset, variables)


def replace_template_dims(
    template: xarray.Dataset, **dim_replacements: int | Iterable[Any]
) -> xarray.Dataset:
    """Change the size or coordinate of dimensions of a template.

    Args:
      template: a template, e.g. from ``make_template``.
      **dim_replacements: for each dimension, a new size (its index coordinate
        is dropped) or new index values (a sequence, pandas.Index or
        DataArray).

    Returns:
      A template in which every non-index variable along a replaced dimension
      is lazy with the new shape (one chunk along that dimension).

    Raises:
      TypeError: if ``template`` is not an xarray.Dataset.
      ValueError: if it is not a template (no variable is lazy: make one
        with ``make_template``), or a dimension is not in it.

    Example:
      >>> ds = xarray.Dataset({'t2m': (('time', 'x'), np.zeros((4, 2)))},
      ...                     coords={'time': np.arange(4)})
      >>> out = replace_template_dims(make_template(ds), time=np.arange(12))
      >>> dict(out.sizes)
      {'time': 12, 'x': 2}
    """
    if not isinstance(template, xarray.Dataset):
        raise TypeError(
            f"replace_template_dims takes a template (an xarray.Dataset), got "
            f"{type(template).__name__}"
        )
    if not lazy_variables(template):
        raise ValueError(
            f"replace_template_dims takes a template, but no variable of this "
            f"dataset is lazy (Dask-backed), e.g. data variable(s) "
            f"{list(template.data_vars)[:5]}; make one with "
            f"xarray_beam.make_template(dataset) first"
        )
    unknown = [dim for dim in dim_replacements if dim not in template.dims]
    if unknown:
        raise ValueError(
            f"cannot replace dimension(s) {unknown}: not in the template's "
            f"dimensions {list(template.dims)}"
        )
    sizes = dict(template.sizes)
    new_indexes = {}
    for dim, replacement in dim_replacements.items():
        if isinstance(replacement, int | np.integer):
            sizes[dim] = int(replacement)
        else:
            values = replacement
            if isinstance(values, xarray.DataArray):
                values = values.values
            index_var = xarray.Variable((dim,), np.asarray(pd.Index(values)))
            if dim in template.variables:
                index_var.attrs = template.variables[dim].attrs
                index_var.encoding = template.variables[dim].encoding
            new_indexes[dim] = index_var
            sizes[dim] = index_var.size
    variables: dict[Hashable, xarray.Variable] = {}
    for name, var in template.variables.items():
        if name in dim_replacements:
            if name in new_indexes:
                variables[name] = new_indexes[name]
            continue
        if not set(var.dims) & set(dim_replacements):
            variables[name] = var
            continue
        shape = tuple(sizes[d] for d in var.dims)
        chunks = tuple(
            -1 if d in dim_replacements or var.chunks is None else var.chunks[i]
            for i, d in enumerate(var.dims)
        )
        variables[name] = xarray.Variable(
            var.dims, placeholder(shape, var.dtype, chunks), var.attrs, var.encoding
        )
    result = _rebuild(template, variables)
    if new_indexes:
        result = result.assign_coords(
            {d: v for d, v in new_indexes.items() if d not in result.coords}
        )
    return result


@dataclasses.dataclass
class Skeleton:
    """What a set of chunks says about the dataset they tile (no data).

    Attributes:
      pieces: for each dimension, ``offset -> (size, index values or None)``.
      variables: for each variable name, an empty (size-0) example variable
        carrying dims, dtype, attrs and encoding, and its role: 'data',
        'coord' or 'index'.
      attrs: dataset attributes of the first chunk seen.
      counts: number of chunks seen per (dimensions, variables) of a chunk,
        to catch duplicate keys (more chunks than places for them).
    """

    pieces: dict[Hashable, dict[int, tuple[int, np.ndarray | None]]] = (
        dataclasses.field(default_factory=dict)
    )
    variables: dict[Hashable, tuple[xarray.Variable, str]] = dataclasses.field(
        default_factory=dict
    )
    attrs: dict[str, Any] | None = None
    counts: dict[tuple, int] = dataclasses.field(default_factory=dict)


def skeleton_of(key: Key, chunk: xarray.Dataset) -> Skeleton:
    """The skeleton of one chunk."""
    # Key offsets are by str; xarray's names are Hashable.
    offsets = cast("Mapping[Hashable, int]", key.offsets)
    pieces: dict[Hashable, dict[int, tuple[int, np.ndarray | None]]] = {}
    for dim, size in chunk.sizes.items():
        index = chunk.indexes[dim].values if dim in chunk.indexes else None
        pieces[dim] = {offsets.get(dim, 0): (size, index)}
    variables: dict[Hashable, tuple[xarray.Variable, str]] = {}
    for name, var in chunk.variables.items():
        role = "data" if name in chunk.data_vars else "coord"
        if name in chunk.xindexes:
            role = "index"
        empty = var.isel({d: slice(0, 0) for d in var.dims}).to_base_variable()
        variables[name] = (empty.copy(deep=True), role)
    # Sorted as keys name them: by str.
    dims = cast("Iterable[str]", chunk.sizes)
    names = cast("Iterable[str]", chunk.data_vars)
    kind = (tuple(sorted(dims)), tuple(sorted(names)))
    return Skeleton(pieces, variables, dict(chunk.attrs), {kind: 1})


def merge_skeletons(skeletons: Iterable[Skeleton]) -> Skeleton:
    """Combine skeletons, checking that they agree where they overlap."""
    merged = Skeleton()
    for skeleton in skeletons:
        if merged.attrs is None:
            merged.attrs = skeleton.attrs
        for kind, count in skeleton.counts.items():
            merged.counts[kind] = merged.counts.get(kind, 0) + count
        for dim, pieces in skeleton.pieces.items():
            known = merged.pieces.setdefault(dim, {})
            for offset, (size, index) in pieces.items():
                if offset in known and known[offset][0] != size:
                    raise ValueError(
                        f"chunks starting at offset {offset} along {dim!r} have "
                        f"different sizes: {known[offset][0]} and {size}"
                    )
                known.setdefault(offset, (size, index))
        for name, (example, role) in skeleton.variables.items():
            if name in merged.variables:
                seen = merged.variables[name][0]
                if seen.dims != example.dims or seen.dtype != example.dtype:
                    raise ValueError(
                        f"variable {name!r} appears with dims {seen.dims} and dtype "
                        f"{seen.dtype} in one chunk but {example.dims} and "
                        f"{example.dtype} in another"
                    )
            else:
                merged.variables[name] = (example, role)
    return merged


def template_from_skeleton(
    skeleton: Skeleton,
) -> tuple[xarray.Dataset, dict[str, int]]:
    """The template of the dataset tiled by some chunks, and their chunk sizes.

    Returns:
      The template (every non-index variable lazy) and, per dimension, the
      size of the chunk at offset 0.

    Raises:
      ValueError: if the chunks leave gaps or overlap along a dimension.
    """
    if not skeleton.pieces and not skeleton.variables:
        raise ValueError("cannot infer a template: there are no chunks")
    sizes: dict[Hashable, int] = {}
    chunk_sizes: dict[Hashable, int] = {}
    indexes: dict[Hashable, np.ndarray] = {}
    for dim, pieces in skeleton.pieces.items():
        position = 0
        index_parts: list[np.ndarray | None] = []
        for offset in sorted(pieces):
            size, index = pieces[offset]
            if offset != position:
                problem = "missing" if offset > position else "overlapping"
                raise ValueError(
                    f"cannot infer a template: chunks along {dim!r} are {problem} "
                    f"between offsets {min(offset, position)} and "
                    f"{max(offset, position)}"
                )
            position = offset + size
            index_parts.append(index)
        sizes[dim] = position
        chunk_sizes[dim] = pieces[min(pieces)][0]
        if all(part is not None for part in index_parts):
            indexes[dim] = np.concatenate(cast("list[np.ndarray]", index_parts))
    for (dims, names), count in skeleton.counts.items():
        places = math.prod(len(skeleton.pieces[d]) for d in dims)
        if count > places:
            raise ValueError(
                f"cannot infer a template: {count} chunks of variables "
                f"{list(names)} fill only {places} places along {list(dims)}; "
                f"some keys are duplicated"
            )
    data_vars: dict[Hashable, xarray.Variable] = {}
    coords: dict[Hashable, xarray.Variable] = {}
    for name, (example, role) in skeleton.variables.items():
        data: np.ndarray | dask.array.Array
        if role == "index":
            if name not in indexes:
                continue  # some chunks lack the index: leave the dim unlabeled
            data = indexes[name]
        else:
            data = placeholder(tuple(sizes[d] for d in example.dims), example.dtype)
        var = xarray.Variable(example.dims, data, example.attrs, example.encoding)
        (data_vars if role == "data" else coords)[name] = var
    template = xarray.Dataset(data_vars, coords=coords, attrs=skeleton.attrs or {})
    # Chunk sizes by str, as keys and Zarr name dimensions.
    return template, cast("dict[str, int]", chunk_sizes)
