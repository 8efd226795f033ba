"""A store wrapper that never silently replaces a chunk object with other bytes.

Beam retries bundles, so the same chunk may be written twice: that must
work, and gives the same bytes. Two *different* chunks written to the same
place (duplicate keys, overlapping regions) are a bug in the pipeline that
would otherwise leave whichever came last. ``GuardedStore`` tells the two
apart: a chunk object is created only if none exists (atomically, for local
files); if one exists, it must hold the same bytes, or the write fails with
``ConflictingWriteError`` and the object already there is left as it was.

Metadata objects pass through untouched.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any

import zarr
import zarr.abc.store
import zarr.storage

from xarray_beam.io import files, stores

_METADATA = ("zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata")


class ConflictingWriteError(ValueError):
    """A chunk object exists with other bytes than those being written."""


class GuardedStore(zarr.storage.WrapperStore):
    """Writes chunk objects only where none exists or the same bytes exist.

    Example:
      >>> import tempfile
      >>> from xarray_beam.io.compat import run
      >>> from zarr.buffer import default_buffer_prototype
      >>> store = GuardedStore(zarr.storage.LocalStore(tempfile.mkdtemp()))
      >>> data = default_buffer_prototype().buffer.from_bytes(b'abc')
      >>> for value in (data, data):  # a retried write: fine
      ...     run(store.set('a/c/0', value))
      >>> other = default_buffer_prototype().buffer.from_bytes(b'xyz')
      >>> run(store.set('a/c/0', other))
      Traceback (most recent call last):
      ...
      xarray_beam.io.write_guard.ConflictingWriteError: chunk object 'a/c/0' ...
    """

    async def set(self, key: str, value: Any) -> None:
        if key.rsplit("/", 1)[-1] in _METADATA:
            await self._store.set(key, value)
            return
        if isinstance(self._store, zarr.storage.LocalStore):
            path = os.path.join(self._store.root, *key.split("/"))
            data = [memoryview(value.as_numpy_array()).cast("B")]
            try:
                # Exclusive creation: of two racing writers, one gets here.
                await asyncio.to_thread(files.write_file, path, data, exclusive=True)
                return
            except FileExistsError:
                pass
        # Elsewhere (object storage), one GET both asks whether the object
        # exists and fetches what to compare with: an existence check first
        # (s3fs: a HEAD, then a listing when the HEAD finds nothing) would be
        # two more round trips before every write.
        existing = await stores.fetch(self._store, key)
        if existing is None:
            await self._store.set(key, value)
            return
        if not same_contents(existing.to_bytes(), value.to_bytes()):
            raise ConflictingWriteError(
                f"chunk object {key!r} already exists with other contents: two "
                f"different chunks were written to the same place (duplicate "
                f"keys?); the object already there was left as it was"
            )

    def _with_store(self, store):
        return type(self)(store)


def same_contents(a: bytes, b: bytes) -> bool:
    """Whether two chunk objects hold the same encoded chunk.

    Byte for byte, except that a gzip stream's header records the second it
    was written (MTIME, bytes 4 to 8), so the same chunk gzipped twice may
    differ there.

    Example:
      >>> import gzip
      >>> same_contents(gzip.compress(b'x', mtime=1), gzip.compress(b'x', mtime=2))
      True
      >>> same_contents(b'abc', b'abd')
      False
    """
    if a == b:
        return True
    gzipped = a[:3] == b[:3] == b"\x1f\x8b\x08"
    return gzipped and len(a) == len(b) and a[:4] == b[:4] and a[8:] == b[8:]


def open_guarded_group(
    store: str | zarr.abc.store.Store,
    storage_options: Mapping[str, Any] | None,
    zarr_format: int | None = None,
) -> zarr.Group:
    """The root group of a store, opened for writing through a GuardedStore
    (``zarr_format``: as for ``stores.open_group``)."""
    if isinstance(store, zarr.abc.store.Store):
        inner = store
    elif "://" in store or store.startswith("memory:"):
        inner = zarr.storage.FsspecStore.from_url(
            store, storage_options=dict(storage_options or {}), read_only=False
        )
    else:
        inner = zarr.storage.LocalStore(store, read_only=False)
    return stores.open_group(GuardedStore(inner), "r+", zarr_format=zarr_format)
