"""Where Zarr stores live: local paths, fsspec URLs (gs://, s3://) or stores.

This module answers "what is at this location?" and enforces the store
modes before anything is written. It only reads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal, cast

import fsspec
import zarr
import zarr.abc.store
from zarr.abc.store import OffsetByteRequest
from zarr.buffer import default_buffer_prototype

from xarray_beam.io import compat

StoreLike = str | os.PathLike | zarr.abc.store.Store
Mode = Literal["w-", "w", "r+"]
State = Literal["missing", "empty", "zarr", "other"]

_ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray")


def normalize_store(store: StoreLike) -> str | zarr.abc.store.Store:
    """An absolute local path, a URL, or the store object itself.

    Local paths are made absolute so that workers in other processes (with
    other working directories) find the same store.

    Example:
      >>> normalize_store('gs://bucket/era5.zarr')
      'gs://bucket/era5.zarr'
    """
    if isinstance(store, zarr.abc.store.Store):
        return store
    if isinstance(store, os.PathLike):
        store = os.fspath(store)
    if not isinstance(store, str):
        raise TypeError(
            f"store must be a path, a URL such as gs://bucket/path.zarr, or a "
            f"zarr Store, got {type(store).__name__}: {store!r}"
        )
    if not store:
        raise ValueError("store path is empty")
    if "://" in store or store.startswith("memory:"):
        return store
    return os.path.abspath(store)


def describe(store: str | zarr.abc.store.Store) -> str:
    return store if isinstance(store, str) else repr(store)


def open_group(
    store: str | zarr.abc.store.Store,
    mode: Literal["r", "r+"],
    storage_options: Mapping[str, Any] | None = None,
    zarr_format: int | None = None,
) -> zarr.Group:
    """Open the root group of a store.

    ``zarr_format``: 2 or 3 if known; zarr then reads only that format's
    documents instead of probing for both (a round trip saved per open on
    object storage).

    Example:
      ``group = open_group('gs://bucket/era5.zarr', 'r', zarr_format=3)``
    """
    kwargs: dict[str, Any] = (
        {"storage_options": dict(storage_options)} if storage_options else {}
    )
    if zarr_format is not None:
        kwargs["zarr_format"] = zarr_format
    return zarr.open_group(store, mode=mode, **kwargs)


def store_state(
    store: str | zarr.abc.store.Store,
    storage_options: Mapping[str, Any] | None = None,
) -> State:
    """What is at a store location: nothing, an empty directory, Zarr, or else.

    A zarr Store object is never "missing": it is empty, Zarr, or else.
    """
    if isinstance(store, zarr.abc.store.Store):
        # A Store may wrap a directory or bucket the user also keeps other data
        # in; mode='w' clears the whole Store, so "not Zarr" must mean "other".
        if any(compat.run(store.exists(name)) for name in _ZARR_MARKERS):
            return "zarr"
        return "empty" if compat.run(store.is_empty("")) else "other"
    fs, path = fsspec.core.url_to_fs(store, **(storage_options or {}))
    if not fs.exists(path):
        return "missing"
    if fs.isfile(path):
        return "other"
    if any(fs.exists(f"{path.rstrip('/')}/{name}") for name in _ZARR_MARKERS):
        return "zarr"
    return "empty" if not fs.ls(path) else "other"


async def fetch(store: zarr.abc.store.Store, key: str) -> Any | None:
    """An object's bytes (a zarr Buffer), or None if it does not exist: one
    request on object storage.

    Asked for the whole object, s3fs (2025 and later, with its default
    ``max_concurrency``) first asks for its size, a HEAD and, when the
    object is missing, a listing: two or three round trips instead of one.
    Asked for the bytes from offset 0 on, it sends the GET alone. Should a
    store refuse that range (an empty object, on some servers), the object
    is asked for whole.

    Example:
      >>> store = zarr.storage.MemoryStore()
      >>> compat.run(fetch(store, 'a/c/0')) is None
      True
    """
    prototype = default_buffer_prototype()
    try:
        return await store.get(key, prototype, byte_range=OffsetByteRequest(0))
    except Exception:
        return await store.get(key, prototype)


def array_dims(array: zarr.Array) -> list[str]:
    """The dimension names of an array as xarray stores them (Zarr v3's
    ``dimension_names``, or v2's ``_ARRAY_DIMENSIONS`` attribute).

    Example:
      ``array_dims(zarr.open_group('era5.zarr')['2m_temperature'])``
    """
    if array.metadata.zarr_format == 3 and array.metadata.dimension_names:
        return list(cast("tuple[str, ...]", array.metadata.dimension_names))
    return list(cast("list[str]", array.attrs.get("_ARRAY_DIMENSIONS", [])))


def check_mode(
    store: str | zarr.abc.store.Store,
    mode: Mode,
    storage_options: Mapping[str, Any] | None = None,
    *,
    state: State | None = None,
) -> None:
    """Raise if writing with ``mode`` could damage what is at ``store``.

    Modes use xarray's words: ``'w-'`` creates a new store and refuses an
    existing one, ``'w'`` replaces an existing Zarr store (but never a
    directory that is not one), ``'r+'`` writes into an existing store.

    Raises:
      FileExistsError: for ``'w-'`` if something is already there, or for
        ``'w'`` if the location holds data that is not a Zarr store.
      FileNotFoundError: for ``'r+'`` if there is no Zarr store.

    ``state``: the store's ``store_state``, if the caller just looked.
    """
    if state is None:
        state = store_state(store, storage_options)
    name = describe(store)
    if mode == "w-" and state in ("zarr", "other"):
        raise FileExistsError(
            f"a {'Zarr store' if state == 'zarr' else 'file or directory'} already "
            f"exists at {name}; pass mode='w' to overwrite it or mode='r+' to "
            f"write into it"
        )
    if mode == "w" and state == "other":
        raise FileExistsError(
            f"refusing to overwrite {name}: it is not empty and is not a Zarr "
            f"store, so mode='w' would delete data that does not belong to it"
        )
    if mode == "r+" and state != "zarr":
        raise FileNotFoundError(
            f"mode='r+' writes into an existing Zarr store, but there is none at {name}"
        )


def check_mode_name(mode: str | None, needs_setup: bool = True) -> Mode:
    """Resolve ``mode`` (and xarray-beam's ``needs_setup``) to one mode."""
    if not needs_setup:
        if mode not in (None, "r+"):
            raise ValueError(
                f"needs_setup=False means mode='r+'; it conflicts with mode={mode!r}"
            )
        return "r+"
    if mode is None:
        return "w-"
    if mode not in ("w-", "w", "r+"):
        raise ValueError(
            f"mode must be 'w-' (the default: create, refuse an existing store), "
            f"'w' (overwrite) or 'r+' (write into an existing store), got {mode!r}"
        )
    return cast(Mode, mode)
