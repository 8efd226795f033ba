"""Opening Zarr stores lazily, and setting up a store for a template.

``open_zarr`` opens a store without Dask and says its chunks. Writing has
two steps: ``setup`` creates a store's metadata for a template (writing its
in-memory variables, usually coordinates), or for mode 'r+' checks an
existing store against it, and returns the ``ZarrTarget`` that every chunk
write then follows; chunks are written by ``chunk_writer``.
``setup_zarr`` and ``write_chunk_to_zarr`` are the same steps as plain
functions, outside any pipeline.
"""

from __future__ import annotations

import dataclasses
import uuid
import warnings
from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, Any, cast

import dask.array
import numpy as np
import xarray

from xarray_beam.io import chunk_writer, stores
from xarray_beam.io.stores import StoreLike
from xarray_beam.model import planning, templates
from xarray_beam.model import zarr_layout as layout_lib
from xarray_beam.model.key import Key

if TYPE_CHECKING:
    import zarr


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


def variable_shapes(
    store: StoreLike, storage_options: Mapping[str, Any] | None = None
) -> dict[str, planning.VariableShape]:
    """What the rechunk planner needs about each data variable of a store
    (dims, shape, stored itemsize, stored chunks); reads only metadata.

    Example:
      ``plan_dataset_rechunk(variable_shapes('era5.zarr'), {'time': -1})``
    """
    store = stores.normalize_store(store)
    kwargs: dict[str, Any] = (
        {"storage_options": dict(storage_options)} if storage_options else {}
    )
    dataset = xarray.open_zarr(store, chunks=None, **kwargs)
    arrays = stores.open_group(store, "r", storage_options)
    shapes = {}
    for name, var in dataset.data_vars.items():
        if not var.ndim:
            continue
        array = cast("zarr.Array", arrays[name])
        shapes[name] = planning.VariableShape(
            tuple(var.dims),
            tuple(array.shape),
            array.dtype.itemsize,
            tuple(array.chunks),
        )
    return shapes


@dataclasses.dataclass(frozen=True)
class WriteOptions:
    """How a store is to be written, fixed when a transform is built.

    Attributes:
      store: the store (absolute local path, URL or zarr Store).
      zarr_chunks: Zarr chunk size per dimension, or None for the defaults.
      zarr_shards: Zarr v3 shard size per dimension, or None.
      zarr_format: 2 or 3 (None: 3).
      encoding: per-variable encoding for new stores.
      mode: 'w-' (create), 'w' (overwrite) or 'r+' (write into).
      storage_options: fsspec options for URLs.

    Example:
      ``WriteOptions('/data/out.zarr', {'time': 24}, mode='w')``
    """

    store: str | Any
    zarr_chunks: Mapping[str, int] | None = None
    zarr_shards: Mapping[str, int] | None = None
    zarr_format: int | None = None
    encoding: Mapping[str, Mapping[str, Any]] | None = None
    mode: stores.Mode = "w-"
    storage_options: Mapping[str, Any] | None = None


def _setup_dataset(
    template: xarray.Dataset, target: layout_lib.ZarrTarget, encoding: Mapping
) -> tuple[xarray.Dataset, dict[Hashable, dict[str, Any]]]:
    """The dataset and encoding to hand to ``to_zarr(compute=False)``."""
    variables = {}
    all_encoding: dict[Hashable, dict[str, Any]] = {}
    for name, var in template.variables.items():
        enc = {
            k: v for k, v in var.encoding.items() if k in layout_lib.CF_ENCODING_KEYS
        }
        enc.update(encoding.get(name, {}))
        if name in target.variables:
            layout = target.variables[cast(str, name)]  # a key there: a str
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


def target_from_store(
    template: xarray.Dataset, options: WriteOptions, token: str
) -> layout_lib.ZarrTarget:
    """The layout of an existing store, checked against the template.

    Raises:
      ValueError: naming the variable or coordinate that does not match.

    Example:
      ``target = target_from_store(template, WriteOptions('out.zarr'), token)``
    """
    name_of_store = stores.describe(options.store)
    kwargs: dict[str, Any] = (
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
            cast("tuple[str, ...]", want.dims),
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
        layouts,
        cast("frozenset[str]", frozenset(template.variables)),
        indexes,
        zarr_format,
        token,
    )


def setup(template: xarray.Dataset, options: WriteOptions) -> layout_lib.ZarrTarget:
    """Create (or check, for mode 'r+') a store; return where chunks go.

    Example:
      ``target = setup(make_template(ds), WriteOptions('out.zarr', mode='w'))``
    """
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
    target = target_from_store(template, options, token)
    if options.mode == "r+" and options.zarr_chunks:
        _check_chunks_match(target, options)
    return target


def _check_chunks_match(target: layout_lib.ZarrTarget, options: WriteOptions):
    # Called only when options.zarr_chunks is given.
    zarr_chunks = cast("Mapping[str, int]", options.zarr_chunks)
    for name, layout in target.variables.items():
        for dim, size, chunk in zip(
            layout.dims, layout.shape, layout.chunks, strict=True
        ):
            wanted = zarr_chunks.get(dim)
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
    options = WriteOptions(
        stores.normalize_store(store),
        zarr_chunks,
        zarr_shards,
        zarr_format,
        encoding,
        stores.check_mode_name(mode),
        storage_options,
    )
    setup(template, options)


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
    options = WriteOptions(
        stores.normalize_store(store), mode="r+", storage_options=storage_options
    )
    target = target_from_store(template, options, token=uuid.uuid4().hex)
    chunk_writer.ChunkWriter(options.store, storage_options).write(key, chunk, target)
