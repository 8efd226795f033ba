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
import os
import tempfile
import uuid
import warnings
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Literal, cast

import dask.array
import numpy as np
import xarray
import zarr
import zarr.storage

from xarray_beam.io import chunk_writer, job_records, staging, stores
from xarray_beam.io.stores import StoreLike
from xarray_beam.model import fingerprints, planning, templates
from xarray_beam.model import zarr_layout as layout_lib
from xarray_beam.model.key import Key


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
    return shapes_of(*open_store(store, storage_options))


def open_store(
    store: StoreLike, storage_options: Mapping[str, Any] | None = None
) -> tuple[xarray.Dataset, zarr.Group]:
    """A store opened once for planning: lazily as an xarray Dataset (no
    Dask) and as a zarr group.

    Example:
      ``dataset, arrays = open_store('era5.zarr')``
    """
    store = stores.normalize_store(store)
    kwargs: dict[str, Any] = (
        {"storage_options": dict(storage_options)} if storage_options else {}
    )
    dataset = xarray.open_zarr(store, chunks=None, **kwargs)
    return dataset, stores.open_group(store, "r", storage_options)


def shapes_of(
    dataset: xarray.Dataset, arrays: zarr.Group
) -> dict[str, planning.VariableShape]:
    """``variable_shapes`` of a store already opened with ``open_store``.

    Example:
      ``shapes_of(*open_store('era5.zarr'))``
    """
    shapes = {}
    for key, var in dataset.data_vars.items():
        if not var.ndim:
            continue
        name = str(key)
        array = cast("zarr.Array", arrays[name])
        shapes[name] = planning.VariableShape(
            tuple(str(d) for d in var.dims),
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
      job: the id of the launch (fixed when the transform is built), so a
        retried or re-executed setup recognises the store it set up.
      kind: the kind of job, for its description.
      extra: what else defines the job's output (its source, plan, ...).
      resume: continue the same job in an existing store: its recorded
        description must match.
      stage_locally: write a new store's metadata to a local temporary
        directory and copy it into place (see ``staging``); None stages
        whenever the store is a path or URL.

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
    job: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)
    kind: str = "ChunksToZarr"
    extra: Mapping[str, Any] | None = None
    resume: bool = False
    stage_locally: bool | None = None


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
        if dim not in existing.indexes:
            continue
        stored = np.asarray(existing.indexes[dim])
        if not layout_lib.labels_equal(stored, values):
            raise ValueError(
                f"the {dim!r} coordinate of the Zarr store at {name_of_store} "
                f"differs from the template's: "
                f"{_difference(stored, values, 'in the store', 'in the template')}"
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


def _label(value: Any) -> str:
    """A label as it prints best: floats in full, others by their repr."""
    if isinstance(value, np.floating):
        return repr(float(value))
    if isinstance(value, np.datetime64 | np.timedelta64):
        return str(value)
    return repr(value)


def _difference(got: np.ndarray, want: np.ndarray, got_as: str, want_as: str) -> str:
    """Where two arrays of labels first differ, in words."""
    if got.shape != want.shape:
        return f"{got.shape[0]} labels {got_as} but {want.shape[0]} {want_as}"
    first = layout_lib.first_difference(got, want)
    return (
        f"element {first} is {_label(got[first])} {got_as} but "
        f"{_label(want[first])} {want_as}"
    )


def check_coordinates_storable(
    template: xarray.Dataset,
    target: layout_lib.ZarrTarget,
    encoding: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Check, before a store is created, that the template's in-memory
    coordinates can be stored and its index labels read back as they are.

    Each of them is written, with the encoding it would get, to a store in
    memory and read back with xarray. Chunks are placed by their labels, so
    an index that reads back differently (a float64 index stored as
    float32, times at a finer step than the encoding's units) would make
    every write fail against the new store.

    Raises:
      ValueError: naming the coordinate, if encoding it fails or an index
        reads back with other labels (NaN and NaT match themselves).

    Example:
      ``check_coordinates_storable(template, plan_target(template))``
    """
    dataset, all_encoding = _setup_dataset(template, target, encoding or {})
    indexes = layout_lib.template_indexes(template)
    shown = {
        name: {k: v for k, v in enc.items() if k != "chunks"}
        for name, enc in all_encoding.items()
    }
    # Lazy coordinates are written (and encoded) chunk by chunk.
    names = [name for name in dataset.coords if name not in target.variables]
    try:
        # All at once (one store, one read): the usual case, every one fine.
        read_back = _round_trip(dataset, names, all_encoding, target.zarr_format)
    except (OSError, MemoryError):
        raise
    except Exception:
        read_back = {}
        for name in names:  # one at a time, to name the one at fault
            try:
                read_back.update(
                    _round_trip(dataset, [name], all_encoding, target.zarr_format)
                )
            except (OSError, MemoryError):
                raise
            except Exception as error:
                raise ValueError(
                    f"the template's coordinate {name!r} "
                    f"({dataset[name].dtype}, encoding {shown[name]}) cannot be "
                    f"stored in Zarr: {error}"
                ) from error
    for name in names:
        if name in indexes and not layout_lib.labels_equal(
            read_back[name], indexes[name]
        ):
            difference = _difference(
                read_back[name], indexes[name], "when read back", "in the template"
            )
            raise ValueError(
                f"the template's index coordinate {name!r} would not read back "
                f"from Zarr as it is, with encoding {shown[name]}: "
                f"{difference}. Chunks are placed by their labels, so none could "
                f"be written; fix the coordinate's encoding (e.g. its dtype or "
                f"time units) or its values"
            )


def _round_trip(
    dataset: xarray.Dataset,
    names: Sequence[Hashable],
    encoding: Mapping[Hashable, Mapping[str, Any]],
    zarr_format: int,
) -> dict[Hashable, np.ndarray]:
    """The coordinates ``names`` written to a store in memory with their
    encoding, and read back with xarray."""
    if not names:
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Any: older xarray stubs (2025.10) type the store as a
        # MutableMapping, which zarr 3's stores are not.
        memory: Any = zarr.storage.MemoryStore()
        xarray.Dataset(coords={name: dataset[name].variable for name in names}).to_zarr(
            memory,
            zarr_format=zarr_format,
            encoding={name: encoding[name] for name in names},
            consolidated=False,
        )
        stored = xarray.open_zarr(memory, chunks=None, consolidated=False)
        return {name: np.asarray(stored[name].values) for name in names}


def setup(template: xarray.Dataset, options: WriteOptions) -> layout_lib.ZarrTarget:
    """Create (or check, for mode 'r+') a store; return where chunks go.

    For a new store, everything that can be checked from the template alone
    (names, layout, and that its coordinates can be stored and its labels
    read back, see ``check_coordinates_storable``) is checked before the
    store is created.

    Example:
      ``target = setup(make_template(ds), WriteOptions('out.zarr', mode='w'))``
    """
    if not isinstance(template, xarray.Dataset):
        raise TypeError(f"the template must be an xarray.Dataset, got {type(template)}")
    store, storage_options = options.store, options.storage_options
    planned = (
        layout_lib.plan_target(
            template,
            options.zarr_chunks,
            options.zarr_shards,
            options.zarr_format,
            options.encoding,
        )
        if options.mode != "r+" or options.resume
        else None
    )
    wanted = (
        None
        if planned is None
        else job_records.JobRecord(
            options.job,
            "",
            fingerprints.describe(options.kind, template, planned, options.extra),
        )
    )
    if wanted is not None:
        wanted = dataclasses.replace(
            wanted, fingerprint=fingerprints.fingerprint(wanted.description)
        )
    state = stores.store_state(store, storage_options)
    record = job_records.read(store, storage_options) if state == "zarr" else None
    ours = (
        record is not None
        and wanted is not None
        and record.fingerprint == wanted.fingerprint
        and (record.job == options.job or options.resume)
    )
    if options.resume and record is not None and wanted is not None and not ours:
        raise ValueError(
            f"cannot resume: the Zarr store at {stores.describe(store)} was written "
            f"by another job ("
            f"{fingerprints.difference(record.description, wanted.description)}); "
            f"run the same job again to resume it, or write a new store"
        )
    if ours and record is not None and record.setup_done:
        if record.job != options.job:  # a resume: retries of this run are ours
            job_records.write(
                store, dataclasses.replace(record, job=options.job), storage_options
            )
    elif options.mode != "r+" or ours:
        # A new store, or one this job began to set up: nothing was written
        # into it yet (writes wait for the setup to finish), so start afresh.
        if not ours:
            stores.check_mode(store, options.mode, storage_options, state=state)
        assert planned is not None and wanted is not None  # not mode 'r+'
        created = _create(template, planned, options, wanted, state == "missing")
        if created is not None:
            return created
    target = target_from_store(template, options, options.job)
    if options.mode == "r+" and options.zarr_chunks:
        _check_chunks_match(target, options)
    return target


def _create(
    template: xarray.Dataset,
    planned: layout_lib.ZarrTarget,
    options: WriteOptions,
    record: job_records.JobRecord,
    empty: bool = False,
) -> layout_lib.ZarrTarget | None:
    """Create a store's metadata, its record first, ``setup_done`` last.

    ``empty``: nothing is at the location yet, so there is nothing to clear
    (on object storage, clearing lists and deletes, twice, through zarr).

    Staged locally, the metadata is made the same way in a temporary
    directory and copied over (see ``staging``) once the store's root and
    record exist, so an interrupted copy is recognisable as well. A new
    location's root and record are staged too: on object storage, a handful
    of batches instead of about 30 requests one after another.

    Returns:
      When staged, the target read back from the local copy (the store holds
      the same objects, so reading them again remotely would only add round
      trips); else None.
    """
    check_coordinates_storable(template, planned, options.encoding)
    dataset, encoding = _setup_dataset(template, planned, options.encoding or {})
    store, storage_options = options.store, options.storage_options
    zarr_format = cast("Literal[2, 3]", planned.zarr_format)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata")
        if not staging.wanted(store, options.stage_locally):
            _start(store, zarr_format, record, storage_options, clear=not empty)
            _write_metadata(dataset, encoding, store, zarr_format, storage_options)
            _finish(store, record, storage_options)
            return None
        with tempfile.TemporaryDirectory(prefix="xarray_beam-setup-") as local:
            start, full = os.path.join(local, "start"), os.path.join(local, "store")
            _start(start, zarr_format, record, None, clear=False)
            _start(full, zarr_format, record, None, clear=False)
            _write_metadata(dataset, encoding, full, zarr_format, None)
            _finish(full, record, None)
            # Empty the location (and create the root group), then say whose
            # it is before any array exists, so an interrupted setup is
            # recognisable.
            if empty:
                staging.copy_into(
                    start, cast(str, store), f"{job_records.NAME}/", storage_options
                )
            else:
                _start(store, zarr_format, record, storage_options)
            staging.copy_into(
                full, cast(str, store), f"{job_records.NAME}/", storage_options
            )
            local_options = dataclasses.replace(
                options, store=full, storage_options=None
            )
            return target_from_store(template, local_options, options.job)


def _start(
    store: str | Any,
    zarr_format: Literal[2, 3],
    record: job_records.JobRecord,
    storage_options: Mapping[str, Any] | None,
    clear: bool = True,
) -> None:
    """Empty the location (unless ``clear`` is False: nothing is there),
    create its root group and write the record."""
    kwargs: dict[str, Any] = (
        {"storage_options": dict(storage_options)} if storage_options else {}
    )
    mode: Literal["w", "w-"] = "w" if clear else "w-"
    zarr.open_group(store, mode=mode, zarr_format=zarr_format, **kwargs)
    job_records.write(store, record, storage_options)


def _write_metadata(
    dataset: xarray.Dataset,
    encoding: dict[Hashable, dict[str, Any]],
    store: str | Any,
    zarr_format: Literal[2, 3],
    storage_options: Mapping[str, Any] | None,
) -> None:
    """The arrays' metadata, and the in-memory variables' data."""
    dataset.to_zarr(
        store,
        mode="a",
        compute=False,
        consolidated=True,
        zarr_format=zarr_format,
        encoding=encoding,
        write_empty_chunks=True,
        storage_options=dict(storage_options or {}) or None,
    )


def _finish(
    store: str | Any,
    record: job_records.JobRecord,
    storage_options: Mapping[str, Any] | None,
) -> None:
    """Mark the setup done, with the record in the consolidated metadata."""
    job_records.write(
        store,
        dataclasses.replace(record, setup_done=True),
        storage_options,
        consolidate=True,
    )


def record_append(
    template: xarray.Dataset, target: layout_lib.ZarrTarget, options: WriteOptions
) -> None:
    """After an append: the store's record describes its new extent (and
    belongs to the appending job, whose retries then find it theirs)."""
    record = job_records.read(options.store, options.storage_options)
    if record is None:
        return
    description = fingerprints.describe("append", template, target, options.extra)
    job_records.write(
        options.store,
        dataclasses.replace(
            record,
            job=options.job,
            description=description,
            fingerprint=fingerprints.fingerprint(description),
        ),
        options.storage_options,
        consolidate=True,
    )


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
    stage_locally: bool | None = None,
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
      stage_locally: write the metadata to a local temporary directory and
        copy it to ``store`` in a few concurrent batches, which is much faster
        on object stores. None (the default) stages whenever ``store`` is a
        path or URL; True with a zarr Store object is a ValueError.

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
        stage_locally=stage_locally,
    )
    staging.wanted(options.store, stage_locally)
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

    Args:
      key: the chunk's key (its offsets place it in the store).
      chunk: the chunk's data, covering whole Zarr chunks (or shards).
      store: the store (path, URL or zarr Store), set up with ``setup_zarr``.
      template: the whole dataset the store was set up for.
      storage_options: fsspec options for URLs.

    Raises:
      ValueError: naming the key and variable, if the chunk does not match
        the store (see ``validate_zarr_chunk``).

    Example:
      ``write_chunk_to_zarr(Key({'time': 24}), chunk, 'out.zarr', template)``
    """
    options = WriteOptions(
        stores.normalize_store(store), mode="r+", storage_options=storage_options
    )
    target = target_from_store(template, options, token=uuid.uuid4().hex)
    chunk_writer.ChunkWriter(options.store, storage_options).write(key, chunk, target)
