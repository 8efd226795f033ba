"""How a template maps onto Zarr arrays, and which writes are safe (pure).

A ``ZarrTarget`` describes, for every variable a pipeline writes, its dims,
shape, dtype, Zarr chunks and shards. ``chunk_regions`` checks one
``(Key, Dataset)`` chunk against it and says where each variable goes. Both
setting up a store and writing to it use these, so the rules live here once.
"""

from __future__ import annotations

import dataclasses
import math
import unicodedata
from collections.abc import Hashable, Iterable, Mapping
from typing import Any, Literal, cast

import numpy as np
import xarray

from xarray_beam.model import chunks as chunks_lib
from xarray_beam.model.key import Key, require_offsets
from xarray_beam.model.templates import lazy_variables

ZarrFormat = Literal[2, 3]

# Encoding keys that describe values (kept from a template); codecs and chunk
# layout are not inherited, since they may not fit the new store.
CF_ENCODING_KEYS = frozenset(
    {
        "units",
        "calendar",
        "dtype",
        "_FillValue",
        "missing_value",
        "scale_factor",
        "add_offset",
    }
)
_LAYOUT_KEYS = ("chunks", "shards")
# Keys a store keeps its own metadata under (Zarr v3 and v2). A node of that
# name would collide with the metadata of the group holding it; compared
# case-insensitively since some file systems are.
_METADATA_KEYS = frozenset({"zarr.json", ".zgroup", ".zarray", ".zattrs", ".zmetadata"})


@dataclasses.dataclass(frozen=True)
class VariableLayout:
    """Where and how one variable is stored.

    Attributes:
      dims: dimension names of the Zarr array.
      shape: its shape.
      dtype: the in-memory (decoded) dtype of the variable.
      chunks: Zarr chunk shape.
      shards: Zarr shard shape, or None if not sharded.
      encoding: CF encoding used to turn values into stored values.
    """

    dims: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: np.dtype
    chunks: tuple[int, ...]
    shards: tuple[int, ...] | None = None
    encoding: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def write_unit(self) -> tuple[int, ...]:
        """The blocks a single writer must own: shards if sharded, else chunks."""
        return self.shards if self.shards is not None else self.chunks

    @property
    def passthrough(self) -> bool:
        """Whether values can be stored as they are, with no CF encoding."""
        enc = self.encoding
        if set(enc) & {
            "units",
            "calendar",
            "scale_factor",
            "add_offset",
            "missing_value",
        }:
            return False
        if np.dtype(enc.get("dtype", self.dtype)) != self.dtype:
            return False
        if self.dtype.kind not in "biufc":
            return False
        fill = enc.get("_FillValue")
        return fill is None or (self.dtype.kind in "fc" and bool(np.isnan(fill)))


@dataclasses.dataclass(frozen=True)
class ZarrTarget:
    """Everything a writer needs to check and place chunks.

    Attributes:
      variables: layout of each variable the pipeline writes.
      known: names of all template variables (to flag unknown ones).
      indexes: 1-D index coordinate values by dimension, to check chunk labels.
      zarr_format: 2 or 3.
      token: identifies one setup of a store (writers reopen on change).
    """

    variables: Mapping[str, VariableLayout]
    known: frozenset[str]
    indexes: Mapping[str, np.ndarray]
    zarr_format: int = 3
    token: str = ""


def _name_problem(name: Hashable) -> str | None:
    """Why ``name`` cannot name a Zarr node inside a store, or None."""
    if not isinstance(name, str):
        return f"is of type {type(name).__name__}, but Zarr names are strings"
    if not name:
        return "is empty, but every Zarr array needs a name"
    if "/" in name or "\\" in name:
        return (
            "would escape the store or create nested groups: names may not "
            "contain '/' or '\\', which Zarr reads as path separators"
        )
    if set(name) == {"."}:
        return (
            "is made only of '.', which Zarr forbids since '.' and '..' are "
            "relative paths that would escape the store"
        )
    for char in name:
        if unicodedata.category(char) == "Cc":
            return (
                f"contains the control character {char!r}; names may not "
                f"contain NUL or other control characters"
            )
        if unicodedata.category(char) == "Cs":
            return f"contains the lone surrogate {char!r}, which is not valid UTF-8"
    if name.lower() in _METADATA_KEYS:
        return (
            "is the name of a Zarr metadata file; an array of that name would "
            "collide with the store's own metadata"
        )
    return None


def check_names(template: xarray.Dataset) -> None:
    """Raise unless every variable and dimension name is a safe Zarr name.

    Each variable becomes a Zarr array at ``<store>/<name>``, and each
    dimension may get a coordinate array of the same name, so names must stay
    inside the store: non-empty strings with no path separator, not made only
    of periods, no control characters, and not a Zarr metadata key. Names
    starting with ``'__'`` (reserved by the Zarr v3 spec, but not enforced by
    zarr-python and used by xarray for unnamed DataArrays) are allowed.

    Args:
      template: the dataset whose variables and dimensions are to be written.

    Raises:
      ValueError: naming the first bad variable or dimension and what is
        wrong with it.

    Example:
      >>> check_names(xarray.Dataset({'../t': ('x', [1.0])}))
      Traceback (most recent call last):
      ...
      ValueError: variable name '../t' would escape the store or create nested ...
    """
    named = [("variable", n) for n in template.variables]
    named += [("dimension", d) for d in template.dims if d not in template.variables]
    for what, name in named:
        problem = _name_problem(name)
        if problem is not None:
            raise ValueError(
                f"{what} name {name!r} {problem}; rename it (Dataset.rename) "
                f"before writing"
            )


def _check_dim_spec(
    name: str, spec: Mapping[str, int] | None, template: xarray.Dataset
) -> dict[str, int]:
    if spec is None:
        return {}
    return chunks_lib.check_chunk_sizes(spec, name, list(template.dims))


def _default_chunk(name: str, var: xarray.Variable, axis: int) -> int:
    """Chunk size along one axis from a template's Dask chunks."""
    dim = var.dims[axis]
    if var.chunks is None or len(var.chunks[axis]) <= 1:
        return var.shape[axis]
    sizes = var.chunks[axis]
    if any(s != sizes[0] for s in sizes[:-1]) or sizes[-1] > sizes[0]:
        raise ValueError(
            f"template variable {name!r} has irregular Dask chunks {sizes} along "
            f"{dim!r}, which Zarr cannot store; pass zarr_chunks"
        )
    return sizes[0]


def check_zarr_format(zarr_format: int | None) -> int:
    """The Zarr format to write: 3 unless 2 is asked for."""
    if zarr_format is None:
        return 3
    if zarr_format not in (2, 3):
        raise ValueError(f"zarr_format must be 2 or 3, got {zarr_format!r}")
    return int(zarr_format)


def check_encoding(
    encoding: Mapping[str, Mapping[str, Any]] | None, template: xarray.Dataset
) -> dict[str, dict[str, Any]]:
    """Validate a per-variable encoding mapping against a template."""
    if encoding is None:
        return {}
    if not isinstance(encoding, Mapping) or not all(
        isinstance(v, Mapping) for v in encoding.values()
    ):
        raise TypeError(
            "encoding must map variable names to dicts, e.g. "
            "{'t2m': {'compressors': ...}}"
        )
    unknown = [name for name in encoding if name not in template.variables]
    if unknown:
        raise ValueError(
            f"encoding names variable(s) {unknown} not in the template "
            f"{list(template.variables)}"
        )
    return {name: dict(enc) for name, enc in encoding.items()}


def plan_target(
    template: xarray.Dataset,
    zarr_chunks: Mapping[str, int] | None = None,
    zarr_shards: Mapping[str, int] | None = None,
    zarr_format: int | None = None,
    encoding: Mapping[str, Mapping[str, Any]] | None = None,
) -> ZarrTarget:
    """Plan the Zarr layout of every lazy variable of a template.

    Args:
      template: the dataset to write; its lazy (Dask-backed) variables are
        written by the pipeline.
      zarr_chunks: Zarr chunk size per dimension (-1: whole dimension).
        Dimensions not given take the template's Dask chunks.
      zarr_shards: shard size per dimension (Zarr v3 only), a multiple of the
        chunk size; -1 spans the dimension. Dimensions not given hold one
        chunk per shard.
      zarr_format: 2 or 3 (default 3).
      encoding: per-variable encoding; ``chunks``/``shards`` here win.

    Raises:
      ValueError: for unsafe names (see ``check_names``), unknown dimensions
        or variables, invalid sizes, shards that are not multiples of chunks,
        or shards with Zarr format 2.

    Example:
      >>> from xarray_beam.model.templates import make_template
      >>> ds = xarray.Dataset({'t': (('time', 'x'), np.zeros((10, 4)))})
      >>> plan_target(make_template(ds), {'time': 5}).variables['t'].chunks
      (5, 4)
    """
    check_names(template)
    zarr_format = check_zarr_format(zarr_format)
    zarr_chunks = _check_dim_spec("zarr_chunks", zarr_chunks, template)
    zarr_shards = _check_dim_spec("zarr_shards", zarr_shards, template)
    if zarr_shards and zarr_format != 3:
        raise ValueError("zarr_shards needs zarr_format=3 (sharding is a v3 feature)")
    encoding = check_encoding(encoding, template)
    layouts = {}
    for name in lazy_variables(template):
        var = template.variables[name]
        dims = cast("tuple[str, ...]", var.dims)  # str: see check_names
        enc = encoding.get(name, {})
        if "shards" in enc and zarr_format != 3:
            raise ValueError(f"encoding of {name!r} sets shards, which need zarr v3")
        if "chunks" in enc:
            chunks = _tuple_of_ints(name, "chunks", enc["chunks"], var.ndim)
        else:
            chunks = tuple(
                clamp_chunk(zarr_chunks[d], n)
                if d in zarr_chunks
                else clamp_chunk(_default_chunk(name, var, i), n)
                for i, (d, n) in enumerate(zip(dims, var.shape, strict=True))
            )
        if "shards" in enc:
            shards = _tuple_of_ints(name, "shards", enc["shards"], var.ndim)
        elif zarr_shards and var.ndim:
            shards = tuple(
                _shard_size(name, d, zarr_shards.get(d), c, n)
                for d, c, n in zip(dims, chunks, var.shape, strict=True)
            )
        else:
            shards = None
        if shards is not None:
            for d, s, c in zip(dims, shards, chunks, strict=True):
                if s % c:
                    raise ValueError(
                        f"shard size {s} of {name!r} along {d!r} is not a multiple "
                        f"of its chunk size {c}"
                    )
        values_encoding = {
            k: v for k, v in {**var.encoding, **enc}.items() if k in CF_ENCODING_KEYS
        }
        layouts[name] = VariableLayout(
            tuple(dims), var.shape, var.dtype, chunks, shards, values_encoding
        )
    known = cast("Iterable[str]", template.variables)  # str: see check_names
    return ZarrTarget(
        layouts, frozenset(known), template_indexes(template), zarr_format
    )


def template_indexes(template: xarray.Dataset) -> dict[str, np.ndarray]:
    """1-D index coordinate values of a template, by dimension."""
    dims = cast("Iterable[str]", template.dims)  # named by str, as in keys
    return {
        dim: np.asarray(template.indexes[dim])
        for dim in dims
        if dim in template.indexes and template.indexes[dim].nlevels == 1
    }


def clamp_chunk(size: int, dim_size: int) -> int:
    return max(dim_size, 1) if size == -1 else min(size, max(dim_size, 1))


def _shard_size(name: str, dim: str, spec: int | None, chunk: int, size: int) -> int:
    if spec is None:
        return chunk
    if spec == -1:
        return max(chunk, math.ceil(size / chunk) * chunk)
    if spec % chunk:
        raise ValueError(
            f"zarr_shards[{dim!r}]={spec} is not a multiple of the Zarr chunk size "
            f"{chunk} of {name!r}"
        )
    return spec


def _tuple_of_ints(name: str, what: str, value: Any, ndim: int) -> tuple[int, ...]:
    result = tuple(int(v) for v in value)
    if len(result) != ndim or any(v <= 0 for v in result):
        raise ValueError(
            f"encoding[{name!r}][{what!r}] must be {ndim} positive ints, got {value!r}"
        )
    return result


def dtypes_compatible(a: np.dtype, b: np.dtype) -> bool:
    """Equal dtypes, or both datetimes or both timedeltas (units may differ)."""
    return a == b or (a.kind == b.kind and a.kind in "mM")


def dtypes_storable(values: np.dtype, stored: np.dtype) -> bool:
    """Whether values of one dtype can go into an existing store's variable.

    Args:
      values: dtype of the values to write (the template's).
      stored: dtype of the store's variable as xarray decodes it.

    Numbers go into numbers, as with ``xarray.Dataset.to_zarr(region=...)``:
    the store's encoding (``dtype``, ``scale_factor``, ...) may narrow or pack
    them on purpose. Times, booleans and text only go into their own kind.

    Example:
      >>> dtypes_storable(np.dtype('int32'), np.dtype('int16'))
      True
      >>> dtypes_storable(np.dtype('bool'), np.dtype('float32'))
      False
    """
    if dtypes_compatible(values, stored):
        return True
    if values.kind in "iuf" and stored.kind in "iuf":
        return True
    return values.kind == stored.kind and values.kind in "US"


def _check_labels(target: ZarrTarget, key: Key, chunk: xarray.Dataset) -> None:
    for dim, expected_all in target.indexes.items():
        if dim not in chunk.indexes:
            continue
        start = key.offsets.get(dim, 0)
        stop = start + chunk.sizes[dim]
        if stop > len(expected_all) or start < 0:
            raise ValueError(
                f"chunk {key} spans [{start}, {stop}) along {dim!r}, outside the "
                f"template's {len(expected_all)} elements"
            )
        got = np.asarray(chunk.indexes[dim])
        expected = expected_all[start:stop]
        if not labels_equal(got, expected):
            first = first_difference(got, expected)
            raise ValueError(
                f"the {dim!r} coordinate of chunk {key} does not match the template "
                f"at offsets [{start}, {stop}): element {first} is {got[first]!r} "
                f"but the template has {expected[first]!r}. Is the key's offset "
                f"along {dim!r} right?"
            )


def _missing(values: np.ndarray) -> np.ndarray | None:
    """Where ``values`` are missing (NaN, NaT), or None for kinds without
    missing values."""
    if values.dtype.kind in "fcmM":
        return np.isnan(values)
    return None


def _same(got: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Elementwise label identity, as xarray sees it: a missing value (NaN,
    NaT) is the same label as another missing value, and nothing else."""
    try:
        same = np.asarray(got == expected, dtype=bool)
    except (TypeError, ValueError):  # e.g. datetimes and numbers: not the same
        return np.zeros(got.shape, bool)
    if same.shape != got.shape:  # numpy could not compare them elementwise
        return np.zeros(got.shape, bool)
    got_missing, expected_missing = _missing(got), _missing(expected)
    if got_missing is not None and expected_missing is not None:
        same |= got_missing & expected_missing
    return same


def labels_equal(got: np.ndarray, expected: np.ndarray) -> bool:
    """Whether two arrays of labels are the same labels.

    As for xarray's indexes, NaN equals NaN and NaT equals NaT (of any
    unit); datetimes of different units compare by the time they denote.

    Example:
      >>> nat = np.datetime64('NaT')
      >>> labels_equal(np.array(['2000-01-01', nat], 'M8[ns]'),
      ...              np.array(['2000-01-01', nat], 'M8[s]'))
      True
    """
    got, expected = np.asarray(got), np.asarray(expected)
    if got.shape != expected.shape:
        return False
    return bool(_same(got, expected).all())


def first_difference(got: np.ndarray, expected: np.ndarray) -> int:
    """The position of the first label that differs (0 if the shapes differ).

    Example:
      >>> first_difference(np.array([1.0, np.nan, 3.0]), np.array([1.0, np.nan, 4]))
      2
    """
    got, expected = np.asarray(got), np.asarray(expected)
    if got.shape != expected.shape:
        return 0
    different = np.flatnonzero(~_same(got, expected))
    return int(different[0]) if len(different) else 0


def chunk_regions(
    target: ZarrTarget, key: Key, chunk: xarray.Dataset
) -> list[tuple[str, tuple[slice, ...]]]:
    """Check a chunk against a target and return where each variable goes.

    A variable that does not span a dimension along which the key has a
    non-zero offset is a copy of the one in the chunk at offset 0, and is
    skipped so it is written once.

    Returns:
      ``(variable name, region)`` pairs, the region ordered as the Zarr dims.

    Raises:
      TypeError: if the element is not a Key and an xarray.Dataset.
      ValueError: naming the key, variable and dimension at fault, if the
        key has chunk indices instead of offsets, the chunk has unknown
        variables, wrong dims or dtype, labels that differ from the template,
        or does not cover whole Zarr chunks/shards.
    """
    if not isinstance(key, Key) or not isinstance(chunk, xarray.Dataset):
        raise TypeError(
            f"expected (Key, xarray.Dataset) pairs, got ({type(key).__name__}, "
            f"{type(chunk).__name__})"
        )
    require_offsets(key, "writing to Zarr")
    _check_labels(target, key, chunk)
    regions = []
    # The target's names are str; any other name is not found in it.
    variables = cast("Mapping[str, xarray.Variable]", chunk.variables)
    for name, var in variables.items():
        layout = target.variables.get(name)
        if layout is None:
            if name in chunk.data_vars and name not in target.known:
                raise ValueError(
                    f"chunk {key} has data variable {name!r}, which is not in the "
                    f"template (template variables: {sorted(target.known)})"
                )
            continue
        if set(var.dims) != set(layout.dims):
            raise ValueError(
                f"variable {name!r} in chunk {key} has dimensions {var.dims}, but "
                f"the template has {layout.dims}"
            )
        if not dtypes_compatible(var.dtype, layout.dtype):
            raise ValueError(
                f"variable {name!r} in chunk {key} has dtype {var.dtype}, but the "
                f"template has {layout.dtype}; cast the chunk (e.g. .astype) or "
                f"fix the template"
            )
        if any(o != 0 for d, o in key.offsets.items() if d not in var.dims):
            continue
        region = []
        for dim, dim_size, unit in zip(
            layout.dims, layout.shape, layout.write_unit, strict=True
        ):
            start = key.offsets.get(dim, 0)
            stop = start + var.sizes[dim]
            if start < 0 or stop > dim_size:
                raise ValueError(
                    f"chunk {key} puts variable {name!r} at [{start}, {stop}) along "
                    f"{dim!r}, outside the template's size {dim_size}"
                )
            if not chunks_lib.covers_whole_units(start, stop, unit, dim_size):
                what = "shards" if layout.shards is not None else "chunks"
                raise ValueError(
                    f"chunk {key} cannot be written safely: variable {name!r} spans "
                    f"[{start}, {stop}) along {dim!r}, which does not cover whole "
                    f"Zarr {what} of size {unit} (dimension size {dim_size}). Two "
                    f"writers sharing one Zarr {what[:-1]} would lose data. Make "
                    f"the chunks multiples of the Zarr {what} with "
                    f"xarray_beam.ConsolidateChunks or xarray_beam.Rechunk, or "
                    f"choose Zarr {what} that divide the chunks."
                )
            region.append(slice(start, stop))
        regions.append((name, tuple(region)))
    return regions


def validate_zarr_chunk(
    key: Key,
    chunk: xarray.Dataset,
    template: xarray.Dataset,
    zarr_chunks: Mapping[str, int] | None = None,
    zarr_shards: Mapping[str, int] | None = None,
) -> None:
    """Check that a chunk can be written safely into a store for ``template``.

    Args:
      key: the chunk's key (its offsets place it in the store).
      chunk: the chunk's data.
      template: the whole dataset the store holds.
      zarr_chunks: the store's Zarr chunks per dimension (default: the
        template's Dask chunks, else whole dimensions).
      zarr_shards: the store's shards per dimension (Zarr v3), if any: the
        chunk must then cover whole shards.

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
    target = plan_target(template, zarr_chunks, zarr_shards, zarr_format=3)
    chunk_regions(target, key, chunk)
