"""Temporary locations: claimed before a pipeline runs, removed after it.

Two kinds of temporary data live in them: the uncompressed Zarr stores that
rechunk passes write and read (``kind='zarr'``: a Zarr group marked as ours,
with one group per pass), and the files partial results spill to while they
are merged (``kind='spill'``: pickles with names only we make). Either way a
location is claimed only if it holds nothing or only our own leftovers, and
removing it deletes only what is ours: the location itself goes only if it
did not exist before (or xarray_beam chose it); a directory the user named
is emptied of our data.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import pickle
import re
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, cast

import fsspec
import numpy as np
import zarr
import zarr.abc.store

from xarray_beam.io import locations, region_io, stores

Kind = Literal["zarr", "spill"]
MARKER = "xarray_beam_rechunk_temp"
_SPILL_FILE = re.compile(r"[0-9a-f]{32}-\d+-\d+\.pkl")
_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TempArray:
    """One uncompressed temporary array of a rechunk pass.

    Attributes:
      group: the group holding the pass's arrays (e.g. ``'pass1'``).
      name: the variable.
      shape, chunks, dtype, fill_value: the array's.
    """

    group: str
    name: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype
    fill_value: Any


@dataclasses.dataclass(frozen=True)
class TempLocation:
    """A claimed temporary location.

    Attributes:
      location: path, URL or zarr Store (Stores only for ``kind='zarr'``).
      storage_options: fsspec options for URLs.
      kind: 'zarr' or 'spill'.
      remove_root: remove the location itself afterwards (it did not exist
        before, or xarray_beam chose it); otherwise only our data in it.
    """

    location: Any
    storage_options: Mapping[str, Any] | None
    kind: Kind
    remove_root: bool


def default_location(target: Any, suffix: str) -> str:
    """The default temporary location beside a target store: ``<target><suffix>``.

    Example:
      >>> default_location('gs://bucket/pencils.zarr/', '.rechunk-temp')
      'gs://bucket/pencils.zarr.rechunk-temp'
    """
    if not isinstance(target, str):
        raise ValueError(
            "writing into a zarr Store object needs an explicit temp_store"
        )
    return target.rstrip("/") + suffix


def check_apart(temp: Any, **others: Any) -> None:
    """Refuse a temporary location that is, holds, or lies inside another
    store (it is written and then deleted).

    Example:
      >>> check_apart('/data/out.zarr/tmp', target='/data/out.zarr')
      Traceback (most recent call last):
      ...
      ValueError: temp_store /data/out.zarr/tmp overlaps the target store ...
    """
    place = locations.location(temp)
    if place is None:
        return
    for what, store in others.items():
        other = locations.location(store)
        if other is not None and locations.overlap(place, other) is not None:
            raise ValueError(
                f"temp_store {temp} overlaps the {what} store {store}; it is "
                f"deleted afterwards, so choose a separate location"
            )


def check_ours(location: Any, storage_options: Mapping[str, Any] | None, kind: Kind):
    """Raise unless ``location`` holds nothing, or only our temporary data.

    Raises:
      FileExistsError: naming the location.
    """
    state = stores.store_state(location, storage_options)
    if state in ("missing", "empty"):
        return state
    if kind == "zarr" and state == "zarr":
        group = stores.open_group(location, "r", storage_options)
        if group.attrs.get(MARKER):
            return state
    if (
        kind == "spill"
        and state == "other"
        and _only_spill_files(location, storage_options)
    ):
        return "leftovers"
    raise FileExistsError(
        f"temp_store {stores.describe(location)} already holds data that is not "
        f"temporary data of xarray_beam; choose another temp_store"
    )


def claim(
    location: Any,
    storage_options: Mapping[str, Any] | None,
    kind: Kind,
    chosen_by_us: bool = False,
) -> TempLocation:
    """Check a temporary location before anything runs, and decide what to
    remove afterwards.

    Raises:
      FileExistsError: if it holds data that is not ours.

    Example:
      ``temp = claim('/scratch/clim-temp', None, 'spill')``
    """
    state = check_ours(location, storage_options, kind)
    temp = TempLocation(
        location,
        storage_options,
        kind,
        chosen_by_us or state in ("missing", "leftovers"),
    )
    if state == "leftovers":
        # Spill files of an interrupted run: partial results nobody will
        # merge (the outputs they fed are written again).
        _log.warning(
            "removing spill files left in temp_store %s by an interrupted run",
            stores.describe(location),
        )
        _remove_spills(dataclasses.replace(temp, remove_root=False))
    return temp


def _only_spill_files(location: Any, storage_options: Mapping[str, Any] | None) -> bool:
    if not isinstance(location, str):
        return False
    fs, root = fsspec.core.url_to_fs(location, **(storage_options or {}))
    names = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)]
    return bool(names) and all(_SPILL_FILE.fullmatch(name) for name in names)


def create_zarr(
    temp: TempLocation, arrays: Sequence[TempArray], resume: bool = False
) -> None:
    """Create a temporary Zarr store's arrays (uncompressed, one group per
    pass). When resuming, a store left with exactly these arrays is kept.

    Example:
      ``create_zarr(temp, [TempArray('pass1', 't2m', shape, chunks, dtype, nan)])``
    """
    check_ours(temp.location, temp.storage_options, "zarr")
    if resume and _has_arrays(temp, arrays):
        return
    options = temp.storage_options
    kwargs: dict[str, Any] = {"storage_options": dict(options)} if options else {}
    root = zarr.open_group(temp.location, mode="w", zarr_format=3, **kwargs)
    root.attrs[MARKER] = True
    for spec in arrays:
        group = root.require_group(spec.group)
        region_io.create(
            group, spec.name, spec.shape, spec.chunks, spec.dtype, spec.fill_value
        )


def _has_arrays(temp: TempLocation, arrays: Sequence[TempArray]) -> bool:
    """Whether a temporary store left by an earlier run has exactly these arrays."""
    if stores.store_state(temp.location, temp.storage_options) != "zarr":
        return False
    root = stores.open_group(temp.location, "r", temp.storage_options)
    try:
        for spec in arrays:
            array = cast(zarr.Array, root[f"{spec.group}/{spec.name}"])
            if (array.shape, array.chunks, array.dtype) != (
                spec.shape,
                spec.chunks,
                spec.dtype,
            ):
                return False
    except KeyError:
        return False
    return True


def spill(temp: TempLocation, value: Any, bundle: str, spill: int, item: int) -> str:
    """Write a partial result to a new spill file; returns its path.

    Example:
      ``path = spill(temp, partial, uuid.uuid4().hex, 1, 0)``
    """
    fs, root = fsspec.core.url_to_fs(temp.location, **(temp.storage_options or {}))
    fs.makedirs(root, exist_ok=True)
    path = f"{root.rstrip('/')}/{bundle}-{spill}-{item}.pkl"
    with fs.open(path, "wb") as f:
        pickle.dump(value, f, protocol=5)
    return path


def read_spilled(temp: TempLocation, paths: Sequence[str]) -> Iterator[Any]:
    """The partial results in spill files, in the order of their paths, one
    at a time (so a caller merging them holds two at most)."""
    fs, _ = fsspec.core.url_to_fs(temp.location, **(temp.storage_options or {}))
    for path in paths:
        with fs.open(path, "rb") as f:
            yield pickle.load(f)


def local_spill_location() -> str:
    """A new directory name under this machine's temporary directory, for
    partial results spilled by a runner whose workers all run here.

    Example:
      >>> local_spill_location().startswith(tempfile.gettempdir())
      True
    """
    name = f"xarray_beam-partials-{uuid.uuid4().hex}"
    return os.path.join(tempfile.gettempdir(), name)


def new_bundle_name() -> str:
    """A name no other bundle's spill files use."""
    return uuid.uuid4().hex


def remove(temp: TempLocation) -> None:
    """Delete our temporary data (and the location, if ``remove_root``)."""
    if temp.kind == "zarr":
        _remove_zarr(temp)
    else:
        _remove_spills(temp)


def _remove_zarr(temp: TempLocation) -> None:
    check_ours(temp.location, temp.storage_options, "zarr")
    if isinstance(temp.location, zarr.abc.store.Store):
        zarr.open_group(temp.location, mode="w")
        return
    fs, path = fsspec.core.url_to_fs(temp.location, **(temp.storage_options or {}))
    if not fs.exists(path):
        return
    if temp.remove_root:
        fs.rm(path, recursive=True)
    else:
        for child in fs.ls(path, detail=False):
            fs.rm(child, recursive=True)


def _remove_spills(temp: TempLocation) -> None:
    fs, root = fsspec.core.url_to_fs(temp.location, **(temp.storage_options or {}))
    if not fs.exists(root):
        return
    others = False
    for path in fs.ls(root, detail=False):
        if _SPILL_FILE.fullmatch(path.rstrip("/").rsplit("/", 1)[-1]):
            fs.rm(path)
        else:
            others = True
    if temp.remove_root and not others:
        # On object stores the "directory" is gone with its last file.
        with contextlib.suppress(FileNotFoundError):
            fs.rm(root, recursive=True)
