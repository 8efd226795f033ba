"""Reading and writing regions of Zarr arrays with bounded memory.

``RegionIO`` reads a region one stored chunk at a time, at most
``concurrency`` at once, so a task never holds more decoded chunks than its
plan says; it writes regions that consist of whole chunks.

Temporary arrays of rechunk passes are genuine Zarr v3 arrays (any Zarr
reader opens them) whose chunks are raw little-endian C-order bytes. On a
local disk their chunk files are read and written directly with NumPy: one
copy each way instead of the several a general codec pipeline makes.
Elsewhere (object stores) zarr's API is used.
"""

from __future__ import annotations

import itertools
import os
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BytesCodec
from zarr.core.buffer import cpu

from xarray_beam import stores, threadmap

Region = tuple[slice, ...]


def create(
    group: zarr.Group,
    name: str,
    shape: tuple[int, ...],
    chunks: tuple[int, ...],
    dtype: np.dtype,
    fill_value: Any,
) -> None:
    """Create an uncompressed temporary array in ``group``."""
    group.create_array(
        name,
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        fill_value=fill_value,
        compressors=None,
        filters=None,
        config={"write_empty_chunks": True},
    )


def _local_directory(array: zarr.Array) -> str | None:
    """The directory of an array whose chunk files NumPy can read and write."""
    store = array.store
    if not isinstance(store, zarr.storage.LocalStore):
        return None
    metadata = array.metadata
    if metadata.zarr_format != 3 or sys.byteorder != "little":
        return None
    codecs = metadata.codecs
    if len(codecs) != 1 or not isinstance(codecs[0], BytesCodec):
        return None
    if array.dtype.byteorder not in ("=", "<", "|") or array.order != "C":
        return None
    encoding = metadata.chunk_key_encoding
    if getattr(encoding, "name", None) != "default" or encoding.separator != "/":
        return None
    return os.path.join(str(store.root), array.path)


def _relative(region: Region, origin: list[int]) -> Region:
    """``region`` in the coordinates of a buffer starting at ``origin``."""
    return tuple(
        slice(s.start - o, s.stop - o) for s, o in zip(region, origin, strict=True)
    )


_IOV_MAX = 1024


def _runs(array: np.ndarray) -> list[memoryview] | None:
    """The array's bytes in C order, as views of its contiguous runs.

    Writing or reading these with vectored I/O moves data between a file and
    a (possibly strided) region of a larger buffer with no copy in between.
    None if even the last axis is strided.
    """
    if array.ndim and array.strides[-1] != array.itemsize:
        return None
    first = array.ndim  # first axis of the trailing contiguous block
    expected = array.itemsize
    for axis in range(array.ndim - 1, -1, -1):
        if array.strides[axis] != expected:
            break
        expected *= array.shape[axis]
        first = axis
    return [
        memoryview(array[index]).cast("B") for index in np.ndindex(*array.shape[:first])
    ]


def _write_all(fd: int, runs: list[memoryview]) -> None:
    for start in range(0, len(runs), _IOV_MAX):
        batch = runs[start : start + _IOV_MAX]
        written = os.writev(fd, batch)
        for run in batch:  # finish whatever a short write left
            if written >= run.nbytes:
                written -= run.nbytes
                continue
            rest, written = run[written:], 0
            while rest.nbytes:
                rest = rest[os.write(fd, rest) :]


def _read_all(fd: int, runs: list[memoryview], path: str) -> None:
    for start in range(0, len(runs), _IOV_MAX):
        batch = runs[start : start + _IOV_MAX]
        if os.readv(fd, batch) != sum(r.nbytes for r in batch):
            raise OSError(f"chunk file {path} is shorter than its chunk")


def _intersect(a: Region, b: Region) -> Region:
    return tuple(
        slice(max(x.start, y.start), min(x.stop, y.stop))
        for x, y in zip(a, b, strict=True)
    )


class RegionIO:
    """Reads and writes regions of one Zarr array, a chunk at a time.

    Args:
      array: the opened Zarr array.
      concurrency: chunks read (or, for direct writes, written) at once.
      direct: read and write chunk files directly when the array allows it
        (uncompressed, local); only for arrays this package created.
    """

    def __init__(self, array: zarr.Array, concurrency: int = 1, direct: bool = False):
        self.array = array
        self.concurrency = max(1, concurrency)
        self._directory = _local_directory(array) if direct else None

    @property
    def direct(self) -> bool:
        """Whether chunk files are read and written directly."""
        return self._directory is not None

    def _chunks(self, region: Region) -> Iterator[tuple[tuple[int, ...], Region]]:
        """Index and array-coordinate slices of each chunk inside ``region``."""
        ranges = [
            range(s.start // c, -(-s.stop // c))
            for s, c in zip(region, self.array.chunks, strict=True)
        ]
        if not ranges:  # a 0-d array: one chunk
            yield (), ()
            return
        for index in itertools.product(*ranges):
            yield (
                index,
                tuple(
                    slice(i * c, min((i + 1) * c, n))
                    for i, c, n in zip(
                        index, self.array.chunks, self.array.shape, strict=True
                    )
                ),
            )

    def _path(self, index: tuple[int, ...]) -> str:
        return os.path.join(self._directory, "c", *map(str, index))

    def write(self, region: Region, data: np.ndarray) -> None:
        """Write ``data`` to ``region``, which must consist of whole chunks.

        Through zarr, the chunks inside the region are encoded concurrently
        (as zarr's ``async.concurrency`` allows); they fit in the region, so
        their copies are at most the region's size again.
        """
        if not self.direct:
            stores.writing_every_chunk(self.array).set_basic_selection(region, data)
            return
        origin = [s.start for s in region]

        def write_chunk(item: tuple[tuple[int, ...], Region]) -> None:
            index, chunk = item
            if _intersect(chunk, region) != chunk:
                raise ValueError(
                    f"region {region} does not cover whole chunks of "
                    f"{self.array.path!r}: chunk {chunk} is partly outside it"
                )
            part = data[_relative(chunk, origin)]
            if part.shape != self.array.chunks:  # an edge chunk, stored padded
                block = np.full(self.array.chunks, self.array.fill_value, part.dtype)
                block[tuple(slice(0, n) for n in part.shape)] = part
                part = block
            path = self._path(index)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            partial = f"{path}.{uuid.uuid4().hex}.partial"
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                _write_all(fd, _runs(part) or _runs(np.ascontiguousarray(part)))
            finally:
                os.close(fd)
            os.replace(partial, path)

        self._map(write_chunk, list(self._chunks(region)))

    def read(self, region: Region, out: np.ndarray) -> None:
        """Read ``region`` into ``out``, decoding one stored chunk per call."""
        origin = [s.start for s in region]
        if not self.direct:

            def read_part(item: tuple[tuple[int, ...], Region]) -> None:
                part = _intersect(item[1], region)
                target = out[_relative(part, origin)]
                self.array.get_basic_selection(
                    part, out=cpu.NDBuffer.from_numpy_array(target)
                )

            self._map(read_part, list(self._chunks(region)))
            return

        def read_chunk(item: tuple[tuple[int, ...], Region]) -> None:
            index, chunk = item
            part = _intersect(chunk, region)
            target = out[_relative(part, origin)]
            path = self._path(index)
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                target[...] = self.array.fill_value
                return
            try:
                runs = _runs(target)
                if target.shape == self.array.chunks and runs is not None:
                    _read_all(fd, runs, path)
                else:  # part of a chunk (an edge, or a partial read)
                    block = np.empty(self.array.chunks, self.array.dtype)
                    _read_all(fd, _runs(block), path)
                    target[...] = block[_relative(part, [c.start for c in chunk])]
            finally:
                os.close(fd)

        self._map(read_chunk, list(self._chunks(region)))

    def _map(self, fn, items: list) -> None:
        threadmap.map_bounded(fn, items, self.concurrency)
