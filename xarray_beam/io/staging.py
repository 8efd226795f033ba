"""Setting up a store's metadata in a local directory, then copying it over.

Creating a store's metadata takes many small sequential writes (a document
per array, a chunk per coordinate, the consolidated metadata), each paying
a round trip on an object store. Written to a local temporary directory
first, the same objects reach the store in a few concurrent batches.

The copy keeps the order that makes an interrupted setup recognisable: the
store's root and job record (``setup_done`` false) are written first by the
caller; here arrays go before the root documents that list them, and the
job record's documents (``setup_done`` true) go last.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import fsspec
import zarr.abc.store

# The metadata documents of a Zarr group or array, in formats 2 and 3.
_ROOT_DOCUMENTS = frozenset({"zarr.json", ".zgroup", ".zattrs", ".zmetadata"})


def wanted(store: str | zarr.abc.store.Store, stage_locally: bool | None) -> bool:
    """Whether a setup of ``store`` is staged locally.

    None (the default) stages whenever the store is a path or URL, as
    xarray-beam does; zarr Store objects are written directly.

    Raises:
      ValueError: for ``stage_locally=True`` with a zarr Store object, whose
        objects cannot be copied to by path.

    Example:
      >>> wanted('gs://bucket/era5.zarr', None), wanted('gs://bucket/a', False)
      (True, False)
    """
    if stage_locally is not None and not isinstance(stage_locally, bool):
        raise TypeError(
            f"stage_locally must be True, False or None, got {stage_locally!r}"
        )
    if isinstance(store, zarr.abc.store.Store):
        if stage_locally:
            raise ValueError(
                f"stage_locally=True copies the store's metadata by path, so it "
                f"needs the store as a path or URL, got {type(store).__name__}"
            )
        return False
    return stage_locally is None or stage_locally


def _local_objects(local_dir: str) -> dict[str, bytes]:
    """Every file below ``local_dir``, by its '/'-separated relative path."""
    objects = {}
    for folder, _, names in os.walk(local_dir):
        for name in names:
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, local_dir).replace(os.sep, "/")
            with open(path, "rb") as file:
                objects[relative] = file.read()
    return objects


def copy_into(
    local_dir: str,
    store: str,
    last_prefix: str,
    storage_options: Mapping[str, Any] | None = None,
) -> int:
    """Copy a store set up in ``local_dir`` to ``store``, in three batches.

    First every array document and coordinate chunk, then the root's
    documents (which list the arrays), then the objects below
    ``last_prefix`` (the job record). Each batch is written concurrently on
    object stores (fsspec's ``pipe``); objects already at ``store`` are
    replaced, others left alone.

    Returns:
      The number of objects copied.

    Example:
      ``copy_into('/tmp/setup', 'gs://bucket/era5.zarr', 'xarray_beam/')``
    """
    fs, root = fsspec.core.url_to_fs(store, **dict(storage_options or {}))
    root = root.rstrip("/")
    objects = _local_objects(local_dir)
    batches: list[dict[str, bytes]] = [{}, {}, {}]
    for name, data in objects.items():
        place = 2 if name.startswith(last_prefix) else int(name in _ROOT_DOCUMENTS)
        batches[place][f"{root}/{name}"] = data
    local = "file" in (
        fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    )
    for batch in batches:
        if local:
            for folder in {os.path.dirname(path) for path in batch}:
                os.makedirs(folder, exist_ok=True)
        if batch:
            fs.pipe(batch)
    return len(objects)
