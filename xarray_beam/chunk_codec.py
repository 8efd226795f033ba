"""Decode and encode whole stored chunks of common Zarr arrays with numcodecs.

zarr-python's general codec pipeline decodes a chunk into a fresh buffer and
then copies it into the destination on its event-loop thread (one thread for
the whole process), and encodes a chunk only after copying it into a fresh
chunk filled with the fill value. For arrays whose chunks are simply "the
C-order bytes, maybe compressed once", ``ChunkCodec`` does the same work with
numcodecs directly: a compressed chunk is decompressed straight into its
place in the destination, and a chunk is encoded from the caller's buffer.
The bytes are exactly those zarr reads and writes (the same numcodecs codecs
with the same settings), so either path reads what the other wrote.

Arrays outside this set (sharding, filters, transposes, checksums, big-endian
bytes, string or object dtypes, ...) return None from ``for_array`` and go
through zarr.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import numcodecs
import numcodecs.abc
import numpy as np
import zarr
from zarr.codecs import BloscCodec, BytesCodec, GzipCodec, ZstdCodec

_BLOSC_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}


@dataclasses.dataclass(frozen=True)
class ChunkCodec:
    """How one array's stored chunks turn into C-order arrays and back.

    Attributes:
      chunks: the stored chunk shape (edge chunks are stored padded to it).
      dtype: the in-memory (native byte order) dtype.
      fill_value: what a missing chunk holds.
      compressor: the numcodecs codec applied to the chunk bytes, or None for
        raw bytes.

    Example:
      >>> import tempfile
      >>> array = zarr.create_array(tempfile.mkdtemp(), shape=(4,), chunks=(2,),
      ...                           dtype='f4')
      >>> codec = for_array(array)
      >>> out = np.empty(2, 'f4')
      >>> codec.decode_into(codec.encode(np.array([1, 2], 'f4')), out)
      >>> out.tolist()
      [1.0, 2.0]
    """

    chunks: tuple[int, ...]
    dtype: np.dtype
    fill_value: Any
    compressor: numcodecs.abc.Codec | None

    def decode_into(self, data: Any, out: np.ndarray) -> None:
        """Decode one stored chunk into ``out`` (C-contiguous, chunk-shaped)."""
        if self.compressor is None:
            flat = np.frombuffer(data, np.uint8)
            if flat.nbytes != out.nbytes:
                raise ValueError(
                    f"stored chunk has {flat.nbytes} bytes, expected {out.nbytes}"
                )
            out.reshape(-1).view(np.uint8)[...] = flat
            return
        self.compressor.decode(data, out=out)

    def encode(self, chunk: np.ndarray) -> Any:
        """The stored bytes of one C-contiguous, chunk-shaped array."""
        if self.compressor is None:
            return chunk.tobytes()  # a copy: the caller may reuse its buffer
        return self.compressor.encode(chunk)


def _native(dtype: np.dtype) -> bool:
    return dtype.kind in "biufcmM" and (
        dtype.byteorder in ("=", "|") or dtype.byteorder == "<" == _LITTLE
    )


_LITTLE = "<" if sys.byteorder == "little" else ">"


def _v3_compressor(codec: Any) -> numcodecs.abc.Codec | None:
    """The numcodecs codec zarr itself uses for a v3 bytes-to-bytes codec."""
    if isinstance(codec, ZstdCodec):
        return numcodecs.Zstd(level=codec.level, checksum=codec.checksum)
    if isinstance(codec, GzipCodec):
        return numcodecs.GZip(level=codec.level)
    if isinstance(codec, BloscCodec) and codec.typesize is not None:
        return numcodecs.Blosc(
            cname=codec.cname.name,
            clevel=codec.clevel,
            shuffle=_BLOSC_SHUFFLE[codec.shuffle.name],
            blocksize=codec.blocksize,
            typesize=codec.typesize,
        )
    raise NotImplementedError(type(codec).__name__)


def for_array(array: zarr.Array) -> ChunkCodec | None:
    """The ``ChunkCodec`` of an array, or None if zarr must handle it.

    Example:
      ``codec = for_array(zarr.open_array('era5.zarr/2m_temperature'))``
    """
    metadata = array.metadata
    dtype = np.dtype(array.dtype)
    if not _native(dtype) or array.fill_value is None:
        return None
    if metadata.zarr_format == 2:
        if metadata.filters or metadata.order != "C":
            return None
        compressor = metadata.compressor
    else:
        codecs = list(metadata.codecs)
        first = codecs[0] if codecs else None
        if not isinstance(first, BytesCodec) or len(codecs) > 2:
            return None
        if first.endian is not None and first.endian.value != sys.byteorder:
            return None
        try:
            compressor = _v3_compressor(codecs[1]) if len(codecs) == 2 else None
        except NotImplementedError:
            return None
    return ChunkCodec(
        tuple(array.chunks), dtype.newbyteorder("="), array.fill_value, compressor
    )
