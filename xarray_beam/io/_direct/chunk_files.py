"""Uncompressed chunk files on a local disk, moved with as few copies as possible.

Temporary arrays of rechunk passes are written once, read once and deleted.
Going through the page cache would cost a copy into fresh kernel memory per
byte written, and a flood of dirty pages the kernel then writes back anyway
(measured here: about 0.3 GB/s for buffered writes of new files, against 2 GB/s
with direct I/O and almost no CPU). So where the file system supports it,
their chunk files are written and read with ``O_DIRECT``, through page-aligned
``buffers.Scratch`` buffers; elsewhere (tmpfs, macOS) with vectored I/O
straight from and into the caller's (possibly strided) arrays.

Files are written as ``<path>.<random>.partial`` and renamed into place, so a
reader never sees a torn chunk; a write that fails removes its partial file.
Files are created with the permissions zarr gives its own (``files.FILE_MODE``
masked by the umask), and every descriptor opened here is closed on every path.
"""

from __future__ import annotations

import errno
import fcntl
import os
from typing import TYPE_CHECKING, cast

import numpy as np

from xarray_beam.io import files
from xarray_beam.io._direct import buffers

if TYPE_CHECKING:
    from typing_extensions import Buffer

_IOV_MAX = 1024
_O_DIRECT = getattr(os, "O_DIRECT", 0)
# How file systems refuse direct I/O (or the alignment it needs).
_REFUSED = {
    errno.EINVAL,
    getattr(errno, "EOPNOTSUPP", -1),
    getattr(errno, "ENOTSUP", -1),
}


def _refused(error: OSError) -> bool:
    return error.errno in _REFUSED


class ChunkFiles:
    """Reads and writes whole uncompressed chunk files of one array.

    Args:
      chunks: the chunk shape (every file holds a whole, padded chunk).
      dtype: the array's dtype (native byte order).
      fill_value: what a missing file holds.
      direct: try ``O_DIRECT``; it is dropped for good at the first file
        system that refuses it.

    Example:
      >>> import tempfile, os
      >>> files = ChunkFiles((2, 2), np.dtype('i4'), fill_value=0)
      >>> path = os.path.join(tempfile.mkdtemp(), 'c', '0')
      >>> files.write(path, np.array([[1, 2], [3, 4]], 'i4'))
      >>> out = np.zeros((2, 2), 'i4')
      >>> files.read(path, out[:, ::-1])
      True
      >>> out.tolist()
      [[2, 1], [4, 3]]
    """

    def __init__(
        self,
        chunks: tuple[int, ...],
        dtype: np.dtype,
        fill_value: object,
        direct: bool = True,
    ):
        self.chunks = chunks
        self.dtype = np.dtype(dtype)
        self.fill_value = fill_value
        self.nbytes = int(np.prod(chunks, dtype=np.int64)) * self.dtype.itemsize
        self.direct = direct and bool(_O_DIRECT)

    def write(
        self, path: str, block: np.ndarray, scratch: buffers.Scratch | None = None
    ) -> None:
        """Write a chunk-shaped array (any strides) to ``path``, atomically.

        ``scratch`` lends the page-aligned buffer direct I/O copies it into.
        """
        if block.dtype != self.dtype:
            block = block.astype(self.dtype)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        partial = files.partial_path(path)
        try:
            if not (self.direct and self._write_direct(partial, block, scratch)):
                # A C-contiguous array always has runs.
                runs = _runs(block) or _runs(np.ascontiguousarray(block))
                files.write_runs(partial, cast("list[memoryview]", runs))
            os.replace(partial, path)
        except BaseException:
            files.remove_quietly(partial)
            raise

    def _write_direct(
        self, partial: str, block: np.ndarray, scratch: buffers.Scratch | None
    ) -> bool:
        """Write with O_DIRECT; False (direct I/O given up, nothing left
        behind) if the file system refuses it. Any other error removes the
        partial file and is re-raised."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_DIRECT
        try:
            # Some file systems create the file before refusing O_DIRECT.
            fd = os.open(partial, flags, files.FILE_MODE)
        except OSError as error:
            if not _refused(error):
                raise
            files.remove_quietly(partial)
            self.direct = False
            return False
        try:
            try:
                with (scratch or buffers.Scratch(self.nbytes)).buffer() as memory:
                    data = memory[: self.nbytes]
                    data.view(self.dtype).reshape(self.chunks)[...] = block
                    _write_direct(fd, _view(data))
            finally:
                os.close(fd)
        except OSError as error:
            files.remove_quietly(partial)
            if not _refused(error):
                raise
            self.direct = False
            return False
        except BaseException:
            files.remove_quietly(partial)
            raise
        return True

    def read(
        self,
        path: str,
        target: np.ndarray,
        inner: tuple[slice, ...] | None = None,
        scratch: buffers.Scratch | None = None,
    ) -> bool:
        """Read the chunk at ``path`` into ``target``: the part ``inner`` of
        the chunk, or all of it; a missing file reads as the fill value.

        ``scratch`` lends a buffer for direct reads that cannot go straight
        into ``target``.

        Returns:
          Whether the file exists (False: ``target`` holds the fill value).
        """
        if self.direct:
            try:
                fd = os.open(path, os.O_RDONLY | _O_DIRECT)
            except FileNotFoundError:
                target[...] = self.fill_value
                return False
            except OSError as error:
                if not _refused(error):
                    raise
                self.direct = False
            else:
                try:
                    self._check_size(fd, path)
                    self._read_direct(fd, path, target, inner, scratch)
                    return True
                except OSError as error:
                    if not _refused(error):
                        raise
                    self.direct = False  # and read it again, buffered
                finally:
                    os.close(fd)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            target[...] = self.fill_value
            return False
        try:
            self._check_size(fd, path)
            runs = _runs(target) if inner is None else None
            if runs is not None:
                _read_all(fd, runs, path)
            else:
                block = np.empty(self.chunks, self.dtype)
                # A fresh C-contiguous array always has runs.
                _read_all(fd, cast("list[memoryview]", _runs(block)), path)
                target[...] = block if inner is None else block[inner]
        finally:
            os.close(fd)
        return True

    def _check_size(self, fd: int, path: str) -> None:
        size = os.fstat(fd).st_size
        if size != self.nbytes:
            raise OSError(
                f"chunk file {path} holds {size} bytes, expected {self.nbytes}"
            )

    def _read_direct(
        self,
        fd: int,
        path: str,
        target: np.ndarray,
        inner: tuple[slice, ...] | None,
        scratch: buffers.Scratch | None,
    ) -> None:
        if inner is None and target.flags.c_contiguous:
            try:  # straight into the target, if it is aligned as needed
                _read_exact(fd, _view(target.reshape(-1).view(np.uint8)), path)
                return
            except OSError as error:
                if not _refused(error):
                    raise
                os.lseek(fd, 0, os.SEEK_SET)
        with (scratch or buffers.Scratch(self.nbytes)).buffer() as memory:
            _read_exact(fd, _view(memory), path, self.nbytes)
            block = memory[: self.nbytes].view(self.dtype).reshape(self.chunks)
            target[...] = block if inner is None else block[inner]


def _write_direct(fd: int, data: memoryview) -> None:
    """Write ``data`` (page-aligned) with O_DIRECT, the unaligned tail without."""
    aligned = len(data) - len(data) % buffers.ALIGNMENT
    done = 0
    while done < aligned:
        done += os.write(fd, data[done:aligned])
        if done % buffers.ALIGNMENT:
            break
    if done < len(data):
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~_O_DIRECT)
        rest = data[done:]
        while len(rest):
            rest = rest[os.write(fd, rest) :]


def _read_exact(fd: int, into: memoryview, path: str, size: int | None = None) -> None:
    """Fill ``into`` (``size`` bytes of it) from the file, which must hold
    exactly that many bytes."""
    size = len(into) if size is None else size
    done = 0
    while done < size:
        got = os.readv(fd, [into[done:]])
        if not got:
            break
        done += got
    if done != size:
        raise OSError(f"chunk file {path} holds {done} bytes, expected {size}")


def _runs(array: np.ndarray) -> list[memoryview] | None:
    """The array's bytes in C order, as views of its contiguous runs.

    Writing or reading these with vectored I/O moves data between a file and
    a (possibly strided) region of a larger buffer with no copy in between.
    None if even the last axis is strided.
    """
    if array.ndim and array.strides[-1] != array.itemsize:
        return None
    if array.dtype.kind in "mM":  # buffers do not take datetimes: same bytes
        array = array.view(f"u{array.itemsize}")
    first = array.ndim  # first axis of the trailing contiguous block
    expected = array.itemsize
    for axis in range(array.ndim - 1, -1, -1):
        if array.strides[axis] != expected:
            break
        expected *= array.shape[axis]
        first = axis
    if first == 0:  # contiguous (also a 0-d array, whose [()] is a copy)
        return [_view(array.reshape(-1)).cast("B")]
    return [_view(array[index]).cast("B") for index in np.ndindex(*array.shape[:first])]


def _view(array: np.ndarray) -> memoryview:
    """``memoryview(array)``: numpy's stubs make an array a ``Buffer`` only
    from Python 3.12 on."""
    return memoryview(cast("Buffer", array))


def _read_all(fd: int, runs: list[memoryview], path: str) -> None:
    for start in range(0, len(runs), _IOV_MAX):
        batch = runs[start : start + _IOV_MAX]
        if os.readv(fd, batch) != sum(r.nbytes for r in batch):
            raise OSError(f"chunk file {path} is shorter than its chunk")
