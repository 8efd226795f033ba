"""Where a store really is, so that a write never lands on what it reads.

The same store can be spelled many ways: ``era5.zarr``, ``./x/../era5.zarr``,
a symbolic link, a bind mount, ``gcs://bucket/era5.zarr/`` for
``gs://bucket/era5.zarr``. ``location`` resolves a store to a ``Location``
(real paths and the device and inode of every existing directory on the way
for local stores; protocol, bucket and key prefix for object stores) and
``overlap`` says whether one location is another, lies inside it, or holds
it. ``check_apart`` refuses a write whose target overlaps a store it reads,
before anything is written.

Nothing here writes, and nothing connects to an object store: URLs are
compared as text once normalised.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import xarray
import zarr
import zarr.abc.store
import zarr.storage

from xarray_beam.io import compat

Overlap = Literal["same", "inside", "holds"]

# Spellings of one object store protocol.
_PROTOCOLS = {"gcs": "gs", "s3a": "s3", "s3n": "s3", "az": "abfs", "adl": "abfs"}


@dataclasses.dataclass(frozen=True)
class Location:
    """A store's place, resolved.

    Attributes:
      protocol: 'file' for local paths, else the object store's protocol
        ('gs', 's3', 'memory', ...).
      path: the real path (local) or 'bucket/key/prefix' (object stores),
        without a trailing slash.
      here: for an existing local path, its ``(device, inode)``, which
        identifies it whatever it is called.
      above: for local paths, ``(device, inode)`` of each existing directory
        above it, nearest first.
    """

    protocol: str
    path: str
    here: tuple[int, int] | None = None
    above: tuple[tuple[int, int], ...] = ()


def location(store: Any) -> Location | None:
    """The resolved location of a store (a path, URL or zarr Store), or None
    for a store whose place cannot be told (an in-memory Store object).

    Example:
      >>> location('gcs://bucket/era5.zarr/')
      Location(protocol='gs', path='bucket/era5.zarr', here=None, above=())
    """
    if isinstance(store, zarr.storage.LocalStore):
        return _local(str(store.root))
    if isinstance(store, zarr.storage.FsspecStore):
        protocol = store.fs.protocol
        name = protocol[0] if isinstance(protocol, tuple | list) else protocol
        if name in ("file", "local"):
            return _local(str(store.path))
        return _remote(str(name), str(store.path))
    if isinstance(store, zarr.abc.store.Store):
        return None
    if isinstance(store, os.PathLike):
        store = os.fspath(store)
    if not isinstance(store, str):
        return None
    if "://" in store:
        protocol, _, rest = store.partition("://")
        if protocol in ("file", "local"):
            return _local(rest)
        return _remote(protocol, rest)
    if store.startswith("memory:"):
        return _remote("memory", store[len("memory:") :])
    return _local(store)


def _local(path: str) -> Location:
    real = os.path.realpath(path)
    here = _identity(real)
    above = []
    probe = real
    while (parent := os.path.dirname(probe)) != probe:
        probe = parent
        found = _identity(probe)
        if found is not None:
            above.append(found)
    return Location("file", real.rstrip("/") or "/", here, tuple(above))


def _identity(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _remote(protocol: str, path: str) -> Location:
    protocol = _PROTOCOLS.get(protocol.lower(), protocol.lower())
    parts = [p for p in path.split("/") if p not in ("", ".")]
    return Location(protocol, "/".join(parts))


def overlap(a: Location, b: Location) -> Overlap | None:
    """How ``a`` relates to ``b``: the same place, inside it, or holding it.

    Example:
      >>> overlap(location('gs://b/era5.zarr/inner.zarr'), location('gs://b/era5.zarr'))
      'inside'
    """
    if a.protocol != b.protocol:
        return None
    if a.protocol == "file":
        if a.here is not None and a.here == b.here:
            return "same"
        if b.here is not None and b.here in a.above:
            return "inside"
        if a.here is not None and a.here in b.above:
            return "holds"
    if a.path == b.path:
        return "same"
    if a.path.startswith(b.path.rstrip("/") + "/"):
        return "inside"
    if b.path.startswith(a.path.rstrip("/") + "/"):
        return "holds"
    return None


def check_apart(
    target: Any, sources: Mapping[str, Any] | Iterable[tuple[str, Any]], what: str
) -> None:
    """Refuse to write ``target`` if it is, lies inside or holds a store the
    same job reads.

    Args:
      target: the store to be written (path, URL or zarr Store).
      sources: ``{description: store}`` of the stores read.
      what: what writes, for the message (e.g. 'rechunk_zarr').

    Raises:
      ValueError: naming both stores and how they overlap.

    Example:
      >>> check_apart('/data/era5.zarr/../era5.zarr', {'source': '/data/era5.zarr'},
      ...             'rechunk_zarr')
      Traceback (most recent call last):
      ...
      ValueError: rechunk_zarr would write /data/era5.zarr/../era5.zarr, which is ...
    """
    place = location(target)
    if place is None:
        return
    items = sources.items() if isinstance(sources, Mapping) else sources
    for name, source in items:
        other = location(source)
        relation = None if other is None else overlap(place, other)
        if relation is None:
            continue
        how = {
            "same": "the same store as",
            "inside": "inside",
            "holds": "a store that holds",
        }[relation]
        raise ValueError(
            f"{what} would write {_describe(target)}, which is {how} the {name} "
            f"{_describe(source)}; writing there would destroy data the job reads. "
            f"Write to a new location"
        )


def dataset_sources(dataset: xarray.Dataset) -> list[Any]:
    """The Zarr stores a dataset's data is read from (its ``source``
    encoding, as xarray's ``open_zarr`` records it, and the stores behind
    its lazily indexed variables).

    Example:
      ``dataset_sources(xarray.open_zarr('era5.zarr'))`` is ``['/…/era5.zarr']``
    """
    found: list[Any] = []
    source = dataset.encoding.get("source")
    if isinstance(source, str | os.PathLike):
        found.append(source)
    for variable in dataset.variables.values():
        window = compat.zarr_window(variable)
        if window is not None:
            array: zarr.Array = window[0]
            found.append(array.store)
    unique: list[Any] = []
    seen: set[Location] = set()
    for store in found:
        place = location(store)
        if place is not None and place not in seen:
            seen.add(place)
            unique.append(store)
    return unique


def _describe(store: Any) -> str:
    if isinstance(store, zarr.storage.LocalStore):
        return str(store.root)
    return store if isinstance(store, str) else repr(store)
