"""Assembling a complete grid of chunks into one dataset (one copy per byte).

Used by ``consolidate_chunks``; the grid maps a position along each combined
dimension to its ``(Key, Dataset)`` chunk.
"""

from __future__ import annotations

import itertools

import numpy as np
import xarray

from xarray_beam.model.key import Key

_MAX_LISTED = 5


def listed(keys: list[Key]) -> str:
    """Keys for an error message, the first few of them."""
    shown = ", ".join(repr(k) for k in keys[:_MAX_LISTED])
    extra = len(keys) - _MAX_LISTED
    return shown + (f" and {extra} more" if extra > 0 else "")


def check_complete(grid, shape, dims, axis_offsets, example: Key) -> None:
    missing = [
        example.with_offsets(
            **{d: axis_offsets[d][i] for d, i in zip(dims, pos, strict=True)}
        )
        for pos in np.ndindex(*shape)
        if pos not in grid
    ]
    if missing:
        raise ValueError(
            f"cannot consolidate: the chunks along {dims} do not form a complete "
            f"grid; missing chunk(s) at {listed(missing)}"
        )


def axis_sizes(grid, dims, axis_offsets) -> dict[str, list[int]]:
    """Chunk sizes at each grid position, checked for consistency and contiguity."""
    sizes = {}
    for axis, dim in enumerate(dims):
        dim_sizes = []
        for i, start in enumerate(axis_offsets[dim]):
            seen: dict[int, Key] = {}
            for pos, (key, dataset) in grid.items():
                if pos[axis] == i:
                    seen.setdefault(dataset.sizes[dim], key)
            if len(seen) > 1:
                raise ValueError(
                    f"chunks at offset {start} along {dim!r} have different sizes "
                    f"{sorted(seen)}: {listed(list(seen.values()))}"
                )
            (size,) = seen
            dim_sizes.append(size)
            if i + 1 < len(axis_offsets[dim]):
                next_start = axis_offsets[dim][i + 1]
                if start + size != next_start:
                    problem = (
                        "leaves a gap before"
                        if start + size < next_start
                        else ("overlaps")
                    )
                    this_key = next(iter(seen.values()))
                    next_key = next(k for p, (k, _) in grid.items() if p[axis] == i + 1)
                    raise ValueError(
                        f"chunks are misaligned along {dim!r}: {this_key} covers "
                        f"[{start}, {start + size}), which {problem} {next_key} "
                        f"starting at {next_start}"
                    )
        sizes[dim] = dim_sizes
    return sizes


def assemble(grid, dims: list[str], sizes: dict[str, list[int]]) -> xarray.Dataset:
    """Copy each variable's blocks into one array (one copy per byte)."""
    origin = (0,) * len(dims)
    first_key, first = grid[origin]
    for key, dataset in grid.values():
        if set(dataset.data_vars) != set(first.data_vars):
            raise ValueError(
                f"chunks to consolidate have different data variables: {first_key} "
                f"has {sorted(first.data_vars)} but {key} has "
                f"{sorted(dataset.data_vars)}"
            )
    starts = {d: np.cumsum([0, *sizes[d][:-1]]).tolist() for d in dims}
    variables = {}
    for name, var in first.variables.items():
        var_dims = [d for d in dims if d in var.dims]
        if not var_dims:
            variables[name] = var
            continue
        blocks = []
        for index in itertools.product(*(range(len(sizes[d])) for d in var_dims)):
            at = dict(zip(var_dims, index, strict=True))
            key, dataset = grid[tuple(at.get(d, 0) for d in dims)]
            if name not in dataset.variables:
                raise ValueError(f"chunk {key} lacks variable {name!r} of {first_key}")
            block = dataset.variables[name]
            if set(block.dims) != set(var.dims):
                raise ValueError(
                    f"variable {name!r} has dimensions {block.dims} in chunk {key} "
                    f"but {var.dims} in chunk {first_key}"
                )
            region = tuple(
                slice(starts[d][at[d]], starts[d][at[d]] + sizes[d][at[d]])
                if d in at
                else slice(None)
                for d in var.dims
            )
            blocks.append((key, region, block.transpose(*var.dims)))
        dtype = _common_dtype(name, [(k, b.dtype) for k, _, b in blocks], first_key)
        shape = tuple(
            sum(sizes[d]) if d in var_dims else n
            for d, n in zip(var.dims, var.shape, strict=True)
        )
        out = np.empty(shape, dtype)
        for key, region, block in blocks:
            target = out[region]
            if target.shape != block.shape:
                raise ValueError(
                    f"variable {name!r} in chunk {key} has shape {block.shape}, "
                    f"expected {target.shape}"
                )
            target[...] = block.values
        variables[name] = xarray.Variable(var.dims, out, var.attrs, var.encoding)
    return xarray.Dataset(
        {name: variables[name] for name in first.data_vars},
        coords={name: variables[name] for name in first.coords},
        attrs=first.attrs,
    )


def _common_dtype(name: str, dtypes: list[tuple[Key, np.dtype]], first_key: Key):
    """One dtype for a variable's blocks; only text and time units may differ."""
    kinds = {dtype.kind for _, dtype in dtypes}
    unique = {dtype for _, dtype in dtypes}
    if len(unique) == 1:
        return unique.pop()
    if len(kinds) == 1 and kinds <= {"U", "S", "M", "m"}:
        return np.result_type(*unique)
    first_dtype = dtypes[0][1]
    other_key, other = next((k, d) for k, d in dtypes if d != first_dtype)
    raise ValueError(
        f"variable {name!r} has dtype {first_dtype} in chunk {first_key} but "
        f"{other} in chunk {other_key}"
    )


def combine_with_xarray(grid, shape, dims, combine_kwargs) -> xarray.Dataset:
    def nested(prefix: tuple[int, ...]):
        if len(prefix) == len(dims):
            return grid[prefix][1]
        return [nested((*prefix, i)) for i in range(shape[len(prefix)])]

    return xarray.combine_nested(nested(()), concat_dim=list(dims), **combine_kwargs)
