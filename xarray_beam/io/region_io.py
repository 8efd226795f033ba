"""Reading and writing regions of Zarr arrays with bounded memory.

``RegionIO`` reads a region one stored chunk at a time, at most
``concurrency`` at once, so a task never holds more decoded chunks than its
plan says; it writes regions that consist of whole chunks.

For the common array layouts (see ``chunk_codec``) chunks are decoded and
encoded with numcodecs directly, each compressed chunk straight into its
place in the caller's buffer, and stored objects are read and written with
plain file I/O on a local disk (through the zarr store elsewhere). Chunks
stored uncompressed on a local disk (the temporary arrays of rechunk passes)
move between the file and a (possibly strided) buffer with vectored I/O and
no copy in between. Other arrays go through zarr's API, and so does any chunk
the direct path fails to decode or encode: zarr then reads or writes it. A
chunk zarr cannot decode either raises a ValueError naming the chunk's key,
the array and the store (from zarr's or the codec's own error).
"""

from __future__ import annotations

import itertools
import logging
import mmap
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, Literal, cast

import numpy as np
import zarr
import zarr.storage
from zarr.buffer import cpu

from xarray_beam.io import _direct, compat, files, stores, threads, verify

Region = tuple[slice, ...]

# Uncompressed local chunks move between a file and the caller's buffer with
# at most one chunk-sized page-aligned buffer, and mostly wait on the disk, so
# more of them may be in flight than a task's plan allows for chunks it
# decodes or encodes.
_VECTORED_CONCURRENCY = 2
# Objects of one read fetched at once from a store that is not a local disk
# (object storage), where each request waits on the network: enough to keep
# requests in flight, few enough to stay within fsspec's connection pools.
REMOTE_READ_CONCURRENCY = 8

_MAP_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)


MissingChunks = Literal["error", "warn", "fill"]
_warned: set[str] = set()
_warned_lock = threading.Lock()
_log = logging.getLogger(__name__)


class MissingChunkError(ValueError):
    """A chunk of a store is missing (and would read as the fill value)."""


def _warn_once(array: zarr.Array, count: int) -> None:
    where = f"{_array_name(array)} in {_store_name(array)}"
    with _warned_lock:
        if where in _warned:
            return
        _warned.add(where)
    _log.warning(
        "%d chunk(s) of %s are missing and read as the fill value (counter "
        "'source_chunks_missing' counts them all); pass missing_chunks='error' "
        "to refuse them, or 'fill' to accept them quietly",
        count,
        where,
    )


def _array_name(array: zarr.Array) -> str:
    return f"array {array.path!r}" if array.path else "the root array"


async def _list(store: Any, prefix: str) -> list[str]:
    return [key async for key in store.list_prefix(prefix)]


def _present_blocks(array: zarr.Array) -> set[tuple[int, ...]]:
    """Indices of the stored objects (chunks, or shards) of an array."""
    prefix = f"{array.path}/" if array.path else ""
    parse = verify.chunk_key_parser(array)
    found = set()
    for key in compat.run(_list(array.store, prefix)):
        index = parse(key[len(prefix) :])
        if index is not None:
            found.add(index)
    return found


class _CodecError(Exception):
    """A chunk the direct path could not decode or encode (see ``__cause__``);
    zarr then handles it."""


def _decode(codec: _direct.ChunkCodec, data: Any, out: np.ndarray) -> None:
    try:
        codec.decode_into(data, out)
    except (OSError, MemoryError):  # the machine's trouble, not the codec's
        raise
    except Exception as error:
        raise _CodecError() from error


def _encode(codec: _direct.ChunkCodec, block: np.ndarray) -> Any:
    try:
        return codec.encode(np.ascontiguousarray(block, dtype=codec.dtype))
    except (OSError, MemoryError):
        raise
    except Exception as error:
        raise _CodecError() from error


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


def _relative(region: Region, origin: list[int]) -> Region:
    """``region`` in the coordinates of a buffer starting at ``origin``."""
    return tuple(
        slice(s.start - o, s.stop - o) for s, o in zip(region, origin, strict=True)
    )


def _view(array: np.ndarray, region: Region) -> np.ndarray:
    """``array[region]``, a view even for a 0-d array (where ``a[()]`` is a
    scalar copy)."""
    return array[region] if region else array[...]


def _intersect(a: Region, b: Region) -> Region:
    return tuple(
        slice(max(x.start, y.start), min(x.stop, y.stop))
        for x, y in zip(a, b, strict=True)
    )


def _chunk_key(array: zarr.Array, index: tuple[int, ...]) -> str:
    """The key of the stored object of a chunk, relative to its array (the
    shard holding it, for a sharded array), or its index if zarr cannot say."""
    shards = getattr(array, "shards", None)
    if shards is not None:
        index = tuple(
            i * c // s for i, c, s in zip(index, array.chunks, shards, strict=True)
        )
    try:
        prefix, separator = _direct.chunk_key_encoding(array)
    except Exception:  # an unforeseen key encoding: the index says enough
        return "/".join(str(i) for i in index) or "0"
    if not index:
        return prefix.rstrip(separator) or "0"
    return prefix + separator.join(str(i) for i in index)


def _store_name(array: zarr.Array) -> str:
    """Where an array's store is: a local path, or the store's URL."""
    store = array.store
    if type(store) is zarr.storage.LocalStore:
        return str(store.root)
    return str(store)


class _Objects:
    """The stored chunk objects of one array: files on a local disk, or
    objects of its zarr store."""

    def __init__(self, array: zarr.Array, codec: _direct.ChunkCodec):
        self._store = array.store
        self._prefix = f"{array.path}/" if array.path else ""
        self._key = codec.key
        store = self._store
        self.root = str(store.root) if type(store) is zarr.storage.LocalStore else None

    def key(self, index: tuple[int, ...]) -> str:
        return self._prefix + self._key(index)

    def path(self, index: tuple[int, ...]) -> str:
        # Only called for a local store, which has a root.
        return os.path.join(cast(str, self.root), *self.key(index).split("/"))

    def read(self, index: tuple[int, ...], use: Callable[[Any], None]) -> bool:
        """Call ``use`` on the object's bytes (valid only during the call);
        False if the object does not exist.

        A local file is memory-mapped (prefaulted in one go where the system
        allows), which costs less than reading it into fresh memory.
        """
        if self.root is None:
            key = self.key(index)
            found = compat.run(stores.fetch(self._store, key))
            if found is None:
                return False
            use(found.as_numpy_array())
            return True
        try:
            fd = os.open(self.path(index), os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            size = os.fstat(fd).st_size
            if not size:
                use(b"")
                return True
            mapped = mmap.mmap(fd, size, flags=_MAP_FLAGS, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        try:
            use(mapped)
        finally:
            mapped.close()
        return True

    def put(self, index: tuple[int, ...], data: Any) -> None:
        """Write an object (atomically on a local disk: a partial file renamed
        into place, as zarr's LocalStore does)."""
        if self.root is None:
            array = np.frombuffer(data, np.uint8)
            buffer = cpu.Buffer.from_array_like(array)
            compat.run(self._store.set(self.key(index), buffer))
            return
        files.write_file(self.path(index), [memoryview(data).cast("B")])


class RegionIO:
    """Reads and writes regions of one Zarr array, a chunk at a time.

    Args:
      array: the opened Zarr array.
      concurrency: chunks read or written at once.
      direct: decode and encode chunks with numcodecs and move stored objects
        directly when the array's layout allows it (see ``chunk_codec``);
        False always uses zarr's API.
      unbuffered: bypass the page cache (``O_DIRECT``) for uncompressed local
        chunk files, as suits data written once and read once (temporary
        arrays; see ``chunk_files``).

    Example:
      >>> import tempfile
      >>> array = zarr.create_array(tempfile.mkdtemp(), shape=(4, 6),
      ...                           chunks=(2, 3), dtype='i4')
      >>> io = RegionIO(array, concurrency=2)
      >>> io.write((slice(0, 2), slice(0, 6)), np.arange(12).reshape(2, 6))
      >>> out = np.empty((1, 4), 'i4')
      >>> io.read((slice(1, 2), slice(1, 5)), out)  # no chunk is missing
      0
      >>> out.tolist()
      [[7, 8, 9, 10]]
    """

    def __init__(
        self,
        array: zarr.Array,
        concurrency: int = 1,
        direct: bool = True,
        unbuffered: bool = False,
        missing: MissingChunks = "fill",
    ):
        if missing not in ("error", "warn", "fill"):
            raise ValueError(
                f"missing_chunks must be 'error', 'warn' or 'fill', got {missing!r}"
            )
        self.array = array
        self.concurrency = max(1, concurrency)
        self.missing = missing
        self._present: set[tuple[int, ...]] | None = None
        self._lock = threading.Lock()
        codec = _direct.for_array(array) if direct else None
        self._codec = codec
        objects = _Objects(array, codec) if codec is not None else None
        self._objects = objects
        self._files: _direct.ChunkFiles | None = None
        if (
            codec is not None
            and objects is not None  # always, given a codec
            and codec.compressor is None
            and objects.root is not None
        ):
            self.concurrency = max(self.concurrency, _VECTORED_CONCURRENCY)
            self._files = _direct.ChunkFiles(
                codec.chunks, codec.dtype, codec.fill_value, direct=unbuffered
            )

    @property
    def direct(self) -> bool:
        """Whether chunks bypass zarr's codec pipeline."""
        return self._codec is not None

    def whole_chunks(self, region: Region) -> bool:
        """Whether ``region`` consists of whole chunks (edge chunks ending at
        the array's edge count as whole)."""
        return all(
            s.start % c == 0 and (s.stop % c == 0 or s.stop == n)
            for s, c, n in zip(region, self.array.chunks, self.array.shape, strict=True)
        )

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

    def write(self, region: Region, data: np.ndarray) -> None:
        """Write ``data`` to ``region``, which must consist of whole chunks.

        Every chunk is stored, even one that holds only the fill value.
        Through zarr, the chunks inside the region are encoded concurrently
        (as zarr's ``async.concurrency`` allows); they fit in the region, so
        their copies are at most the region's size again.
        """
        if not self.direct:
            self._write_through_zarr(region, data)
            return
        origin = [s.start for s in region]
        # Both set, as the array goes the direct path.
        codec = cast(_direct.ChunkCodec, self._codec)
        objects = cast(_Objects, self._objects)
        scratch = self._scratch()
        # Chunks cut from the region (pencils from a block of pancakes) are
        # strided: each is gathered into a buffer its thread reuses, which
        # costs a quarter of copying it into fresh memory (0.17 against
        # 0.7 CPU seconds per GB, measured here).
        gather = _direct.Scratch(int(np.prod(codec.chunks)) * codec.dtype.itemsize)

        def encode(part: np.ndarray) -> Any:
            if part.flags.c_contiguous:
                return _encode(codec, part)
            with gather.buffer() as raw:
                block = raw[: part.nbytes].view(part.dtype).reshape(part.shape)
                np.copyto(block, part)
                return _encode(codec, block)

        def write_chunk(item: tuple[tuple[int, ...], Region]) -> None:
            index, chunk = item
            if _intersect(chunk, region) != chunk:
                raise ValueError(
                    f"region {region} does not cover whole chunks of "
                    f"{self.array.path!r}: chunk {chunk} is partly outside it"
                )
            given = _view(data, _relative(chunk, origin))
            part = given if given.dtype == codec.dtype else given.astype(codec.dtype)
            if part.shape != codec.chunks:  # an edge chunk, stored padded
                block = np.full(codec.chunks, codec.fill_value, codec.dtype)
                block[tuple(slice(0, n) for n in part.shape)] = part
                part = block
            if self._files is not None:
                self._files.write(objects.path(index), part, scratch)
                return
            try:
                encoded = encode(part)
            except _CodecError as error:
                _direct.note_fallback(self.array, error.__cause__)
                self._write_through_zarr(chunk, given)
                return
            objects.put(index, encoded)

        self._map(write_chunk, list(self._chunks(region)))

    def read(self, region: Region, out: np.ndarray) -> int:
        """Read ``region`` into ``out``, decoding one stored chunk per call.

        From object storage, up to ``REMOTE_READ_CONCURRENCY`` objects are
        fetched at once (at least ``concurrency``).

        A chunk whose object is missing reads as the fill value; what else
        happens follows ``missing``: 'fill' nothing, 'warn' a warning (once
        per array and process), 'error' a ``MissingChunkError``.

        Returns:
          The number of missing chunks read (always 0 with ``missing='fill'``
          through zarr-python, which does not tell).
        """
        origin = [s.start for s in region]
        missing: list[tuple[int, ...]] = []

        def note(index: tuple[int, ...]) -> None:
            if self.missing == "error":
                raise MissingChunkError(
                    f"chunk {_chunk_key(self.array, index)!r} of "
                    f"{_array_name(self.array)} in {_store_name(self.array)} is "
                    f"missing: it would read as the fill value "
                    f"(missing_chunks='error'; pass 'warn' or 'fill' to accept that)"
                )
            with self._lock:
                missing.append(index)

        if not self.direct:

            def read_part(item: tuple[tuple[int, ...], Region]) -> None:
                part = _intersect(item[1], region)
                target = _view(out, _relative(part, origin))
                if self.missing != "fill" and not self._stored(item[0]):
                    note(item[0])
                self._read_chunk_through_zarr(item[0], part, target)

            self._map(read_part, list(self._chunks(region)))
            return self._report(missing)
        # Both set, as the array goes the direct path.
        codec = cast(_direct.ChunkCodec, self._codec)
        objects = cast(_Objects, self._objects)
        scratch = self._scratch()

        def read_chunk(item: tuple[tuple[int, ...], Region]) -> None:
            index, chunk = item
            part = _intersect(chunk, region)
            target = _view(out, _relative(part, origin))
            whole = target.shape == codec.chunks and target.dtype == codec.dtype
            inner = _relative(part, [c.start for c in chunk])
            if self._files is not None:
                path = objects.path(index)
                inside = None if whole else inner
                if not self._files.read(path, target, inside, scratch):
                    note(index)
                return
            direct = whole and target.flags.c_contiguous
            # otherwise part of a chunk (an edge, a partial read) or strided
            block = target if direct else np.empty(codec.chunks, codec.dtype)
            try:
                found = objects.read(index, lambda data: _decode(codec, data, block))
            except _CodecError as error:
                _direct.note_fallback(self.array, error.__cause__)
                self._read_chunk_through_zarr(index, part, target)
                return
            if found and not direct:
                target[...] = block[inner]
            if not found:
                note(index)
                target[...] = codec.fill_value

        items = list(self._chunks(region))
        if objects.root is None:  # each fetch waits on the network
            limit = max(self.concurrency, REMOTE_READ_CONCURRENCY)
            threads.map_bounded(read_chunk, items, limit)
        else:
            self._map(read_chunk, items)
        return self._report(missing)

    def _stored(self, index: tuple[int, ...]) -> bool:
        """Whether the object holding chunk ``index`` exists (one listing of
        the array per RegionIO)."""
        with self._lock:
            if self._present is None:
                self._present = _present_blocks(self.array)
            present = self._present
        blocks = verify.block_shape(self.array)
        chunks = tuple(self.array.chunks)
        return (
            tuple(i * c // b for i, c, b in zip(index, chunks, blocks, strict=True))
            in present
        )

    def _report(self, missing: list[tuple[int, ...]]) -> int:
        if missing and self.missing == "warn":
            _warn_once(self.array, len(missing))
        return len(missing)

    def _write_through_zarr(self, region: Region, data: np.ndarray) -> None:
        compat.writing_every_chunk(self.array).set_basic_selection(region, data)

    def _read_through_zarr(self, region: Region, target: np.ndarray) -> None:
        self.array.get_basic_selection(
            region, out=cpu.NDBuffer.from_numpy_array(target)
        )

    def _read_chunk_through_zarr(
        self, index: tuple[int, ...], region: Region, target: np.ndarray
    ) -> None:
        """Read ``region``, inside the chunk at ``index``, through zarr.

        Raises:
          ValueError: naming the chunk, array and store, if zarr cannot
            decode the chunk (from zarr's or the codec's own error).
        """
        try:
            self._read_through_zarr(region, target)
        except (OSError, MemoryError):  # the machine's trouble, not the chunk's
            raise
        except Exception as error:
            path = self.array.path
            array = f"array {path!r}" if path else "the root array"
            raise ValueError(
                f"cannot decode chunk {_chunk_key(self.array, index)!r} of {array} "
                f"in {_store_name(self.array)}: {error}"
            ) from error

    def _scratch(self) -> _direct.Scratch | None:
        """Buffers for direct I/O of this call's chunk files (made if needed)."""
        if self._files is None:
            return None
        return _direct.Scratch(self._files.nbytes)

    def _map(self, fn, items: list) -> None:
        threads.map_bounded(fn, items, self.concurrency)


def copy_region(source: RegionIO, target: RegionIO, region: Region) -> tuple[int, int]:
    """Copy ``region`` of one array into the same region of another, through
    a buffer the worker's tasks share; returns the bytes copied and the
    number of missing source chunks (see ``RegionIO.read``).

    Example:
      ``copy_region(RegionIO(pancakes), RegionIO(pencils), (slice(0, 24),))``
    """
    shape = tuple(s.stop - s.start for s in region)
    dtype = np.dtype(source.array.dtype)
    memory = _direct.POOL.take(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
    try:
        buffer = memory.view(dtype).reshape(shape)
        missing = source.read(region, buffer)
        target.write(region, buffer)
    finally:
        _direct.POOL.give(memory)
    return memory.nbytes, missing
