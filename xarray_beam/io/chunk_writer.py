"""The one place chunks are written into Zarr stores.

Every write of chunk data goes through an ``ArrayWriter``, one per array:
``ChunksToZarr`` (and with it ``Dataset.to_zarr``, appends and
``write_chunk_to_zarr``) through ``ChunkWriter``, which puts each variable
of a ``(Key, Dataset)`` chunk into its region; the passes of ``RechunkZarr``
region by region; an append's new index labels. An ``ArrayWriter``

- skips, when resuming, regions whose objects all exist already (found with
  one listing of the array);
- writes regions of whole chunks through the direct path when the array's
  layout allows it (see ``region_io``), everything else through
  zarr-python, which reads, modifies and writes the chunks a region covers
  only in part;
- stores every chunk, even one holding only the fill value, so a written
  store is complete object by object;
- never replaces a chunk object with other bytes when the array was opened
  through a guarded store (see ``write_guard``): a retried write is fine, a
  duplicate key is an error.

``encode`` turns values into what the store keeps (CF encoding: times as
numbers, packed integers), once, for every path.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, cast

import numpy as np
import xarray
import zarr

from xarray_beam.io import compat, region_io, stores, threads, verify, write_guard
from xarray_beam.model import zarr_layout as layout_lib
from xarray_beam.model.key import Key

Region = tuple[slice, ...]


def encode(
    name: str, variable: xarray.Variable, encoding: Mapping[str, Any]
) -> np.ndarray:
    """A variable's values as the store keeps them, CF-encoded by xarray's
    rules for ``encoding`` (``units``, ``dtype``, ``scale_factor``, ...).

    Example:
      >>> times = xarray.Variable('t', np.array(['2020-01-02'], 'M8[s]'))
      >>> encode('t', times, {'units': 'days since 2020-01-01'}).tolist()
      [1]
    """
    values = variable.values
    if not encoding:
        return np.asarray(values)
    if values.dtype.kind in "mM":
        # xarray encodes coarser-than-ns times against ns units as NaT, so
        # always encode from ns.
        values = values.astype(f"{values.dtype.kind}8[ns]")
    plain = xarray.Variable(variable.dims, values, encoding=dict(encoding))
    return np.asarray(compat.encode_zarr_variable(plain, name).values)


def stored_values(
    name: str, variable: xarray.Variable, layout: layout_lib.VariableLayout
) -> np.ndarray:
    """A chunk variable's values as its array stores them: in the array's
    dimension order, CF-encoded unless values are stored as they are.

    Example:
      ``stored_values('t2m', chunk['t2m'].variable, target.variables['t2m'])``
    """
    if variable.dims != layout.dims:
        variable = variable.transpose(*layout.dims)
    if layout.passthrough:
        return np.asarray(variable.values)
    return encode(name, variable, layout.encoding)


class ArrayWriter:
    """Writes regions of one Zarr array (see the module docstring).

    Args:
      array: the array, opened for writing (through a guarded store to
        refuse replacing objects with other bytes).
      location: the store's path or URL, for listing what exists when
        resuming.
      storage_options: fsspec options for ``location``.
      resume: skip regions whose objects all exist.
      concurrency: chunks encoded and written at once.
      unbuffered: bypass the page cache for uncompressed local chunk files
        (temporary arrays, written once and read once).

    Example:
      >>> import tempfile
      >>> array = zarr.create_array(tempfile.mkdtemp(), shape=(4,), chunks=(2,),
      ...                           dtype='i4')
      >>> writer = ArrayWriter(array)
      >>> writer.write((slice(0, 4),), np.arange(4))
      True
      >>> array[...].tolist()
      [0, 1, 2, 3]
    """

    def __init__(
        self,
        array: zarr.Array,
        location: Any = None,
        storage_options: Mapping[str, Any] | None = None,
        *,
        resume: bool = False,
        concurrency: int = 1,
        unbuffered: bool = False,
    ):
        if resume and not isinstance(location, str):
            raise TypeError("resuming needs the store's path or URL, to list it")
        self.array = array
        self._io = region_io.RegionIO(array, concurrency, unbuffered=unbuffered)
        self._location = location
        self._storage_options = storage_options
        self._resume = resume
        self._present: set[tuple[int, ...]] | None = None
        self._lock = threading.Lock()

    def written(self, region: Region) -> bool:
        """Whether a resumed write finds every object of ``region`` stored."""
        if not self._resume:
            return False
        with self._lock:
            if self._present is None:
                self._present = verify.present_blocks(
                    self.array, self._location, self._storage_options
                )
            present = self._present
        blocks = verify.block_shape(self.array)
        return all(i in present for i in verify.region_blocks(region, blocks))

    def write(self, region: Region, values: np.ndarray) -> bool:
        """Write stored values into ``region``; False if resuming skipped it.

        Raises:
          write_guard.ConflictingWriteError: if the array is guarded and a
            chunk object exists with other bytes.
        """
        if self.written(region):
            return False
        if self._io.direct and self._io.whole_chunks(region):
            self._io.write(region, values)
        else:
            compat.writing_every_chunk(self.array).set_basic_selection(region, values)
        return True

    def copy_from(
        self, source: region_io.RegionIO, region: Region
    ) -> tuple[int, int] | None:
        """Copy ``region`` of another array (stored values as they are) into
        this one, through a buffer the worker's tasks share; the bytes copied
        and the missing source chunks, or None if resuming skipped it."""
        if self.written(region):
            return None
        return region_io.copy_region(source, self._io, region)


class ChunkWriter:
    """Writes ``(Key, Dataset)`` chunks into a store, opening its arrays once
    per process and setup (``ZarrTarget.token``).

    Args:
      store: the store (absolute path, URL or zarr Store).
      storage_options: fsspec options for URLs.
      resume: skip chunks whose objects all exist (one listing per array).
      guard: never replace a chunk object with other bytes.
      shift: offsets added to every key (appending: keys count from the
        start of the new data).

    Example:
      ``ChunkWriter('out.zarr', None).write(key, chunk, target)``
    """

    def __init__(
        self,
        store: Any,
        storage_options: Mapping[str, Any] | None,
        resume: bool = False,
        guard: bool = False,
        shift: Mapping[str, int] | None = None,
    ):
        self._store = store
        self._storage_options = storage_options
        self._resume = resume
        self._guard = guard
        self._shift = dict(shift or {})
        self._init_cache()

    def _init_cache(self) -> None:
        self._lock = threading.Lock()
        self._token: str | None = None
        self._writers: dict[str, ArrayWriter] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {
            "store": self._store,
            "storage_options": self._storage_options,
            "resume": self._resume,
            "guard": self._guard,
            "shift": self._shift,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._store = state["store"]
        self._storage_options = state["storage_options"]
        self._resume = state["resume"]
        self._guard = state["guard"]
        self._shift = state["shift"]
        self._init_cache()

    def _writers_for(self, target: layout_lib.ZarrTarget) -> dict[str, ArrayWriter]:
        with self._lock:
            if self._token != target.token:
                if self._guard:
                    group = write_guard.open_guarded_group(
                        self._store, self._storage_options, target.zarr_format
                    )
                else:
                    group = stores.open_group(
                        self._store, "r+", self._storage_options, target.zarr_format
                    )
                self._writers = {
                    name: ArrayWriter(
                        cast(zarr.Array, group[name]),
                        self._store,
                        self._storage_options,
                        resume=self._resume,
                        concurrency=2,
                    )
                    for name in target.variables
                }
                self._token = target.token
            return self._writers

    def write(
        self, key: Key, chunk: xarray.Dataset, target: layout_lib.ZarrTarget
    ) -> int | None:
        """Check and write one chunk; the bytes written (None if resuming and
        the chunk is already in the store).

        Raises:
          ValueError: if the chunk does not fit the target (see
            ``zarr_layout.chunk_regions``), or, for a guarded store, if a
            chunk object exists with other contents (a duplicate key).
        """
        if self._shift:  # appending: keys count from the start of the new data
            key = key.with_offsets(
                **{
                    d: key.offsets[d] + s
                    for d, s in self._shift.items()
                    if d in key.offsets
                }
            )
        regions = layout_lib.chunk_regions(target, key, chunk)
        writers = self._writers_for(target)
        if self._resume and all(writers[n].written(r) for n, r in regions):
            return None

        def write_variable(item: tuple[str, Region]) -> int:
            name, region = item
            if writers[name].written(region):
                return 0
            values = stored_values(name, chunk.variables[name], target.variables[name])
            try:
                writers[name].write(region, values)
            except write_guard.ConflictingWriteError as error:
                raise ValueError(
                    f"chunk {key}, variable {name!r}: {error}. Each key must be "
                    f"written once; check the pipeline for duplicate keys"
                ) from error
            return values.nbytes

        return sum(threads.map_variables(write_variable, regions))
