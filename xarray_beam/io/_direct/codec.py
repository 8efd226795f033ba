"""The direct chunk path's one seam: decide, decode and encode with numcodecs.

zarr-python's general codec pipeline decodes a chunk into a fresh buffer and
then copies it into the destination on its event-loop thread (one thread for
the whole process), and encodes a chunk only after copying it into a fresh
chunk filled with the fill value. For arrays whose chunks are simply "the
C-order bytes, maybe compressed once", ``ChunkCodec`` does the same work with
numcodecs directly: a compressed chunk is decompressed straight into its
place in the destination, and a chunk is encoded from the caller's buffer.
The bytes are exactly those zarr reads and writes (the same numcodecs codecs
with the same settings), so either path reads what the other wrote.

``for_array`` is the only way in. It decides from the array's metadata
document as the Zarr specification defines it (see ``zarr_spec``), never
from zarr-python's codec objects, and it never raises: any surprise while
deciding means None, "let zarr-python do it", logged once at debug level.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Sequence
from typing import Any

import numcodecs
import numcodecs.abc
import numpy as np
import zarr
from zarr.buffer import default_buffer_prototype

from xarray_beam.io._direct import spec as zarr_spec

_log = logging.getLogger(__name__)
_logged: set[str] = set()
_logged_lock = threading.Lock()


@dataclasses.dataclass(frozen=True)
class ChunkCodec:
    """How one array's stored chunks turn into C-order arrays and back.

    Attributes:
      layout: what the array's metadata document says about its chunks.
      compressor: the numcodecs codec applied to the chunk bytes, or None for
        raw bytes.

    Example:
      >>> import tempfile
      >>> array = zarr.create_array(tempfile.mkdtemp(), shape=(4,), chunks=(2,),
      ...                           dtype='f4')
      >>> codec = for_array(array)
      >>> out = np.empty(2, 'f4')
      >>> codec.decode_into(codec.encode(np.array([1, 2], 'f4')), out)
      >>> out.tolist(), codec.key((1,))
      ([1.0, 2.0], 'c/1')
    """

    layout: zarr_spec.StoredLayout
    compressor: numcodecs.abc.Codec | None

    @property
    def chunks(self) -> tuple[int, ...]:
        """The stored chunk shape (edge chunks are stored padded to it)."""
        return self.layout.chunks

    @property
    def dtype(self) -> np.dtype:
        """The in-memory (native byte order) dtype."""
        return self.layout.dtype

    @property
    def fill_value(self) -> Any:
        """What a missing chunk holds."""
        return self.layout.fill_value

    def key(self, index: Sequence[int]) -> str:
        """The chunk's key relative to the array, e.g. ``'c/0/3'``."""
        return self.layout.chunk_key(index)

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


def for_array(array: zarr.Array) -> ChunkCodec | None:
    """The ``ChunkCodec`` of an array, or None if zarr-python must handle it.

    Never raises: whatever goes wrong while deciding (an unfamiliar layout,
    a zarr release whose objects look different) means None.

    Example:
      ``codec = for_array(zarr.open_array('era5.zarr/2m_temperature'))``
    """
    try:
        layout = zarr_spec.read_layout(metadata_document(array))
        if layout.shape != tuple(array.shape) or layout.dtype != np.dtype(
            array.dtype
        ).newbyteorder("="):
            raise zarr_spec.UnsupportedLayout(
                f"zarr-python sees shape {array.shape} and dtype {array.dtype}, "
                f"the metadata document {layout.shape} and {layout.dtype}"
            )
        return ChunkCodec(layout, _numcodecs_codec(layout.compressor))
    except Exception as error:  # any surprise means "use zarr-python"
        note_fallback(array, error)
        return None


def metadata_document(array: zarr.Array) -> dict[str, Any]:
    """The array's metadata document as zarr stores it: the parsed JSON of
    its ``zarr.json`` (v3) or ``.zarray`` (v2).

    Example:
      >>> import tempfile
      >>> array = zarr.create_array(tempfile.mkdtemp(), shape=(4,), chunks=(2,),
      ...                           dtype='i2', zarr_format=2)
      >>> metadata_document(array)['dtype']
      '<i2'
    """
    documents = array.metadata.to_buffer_dict(default_buffer_prototype())
    name = "zarr.json" if "zarr.json" in documents else ".zarray"
    return json.loads(documents[name].to_bytes())


def chunk_key_encoding(array: zarr.Array) -> tuple[str, str]:
    """The prefix and separator of an array's chunk keys, from its metadata
    document (``('c/', '/')`` for Zarr v3's default).

    Raises:
      zarr_spec.UnsupportedLayout: for a key encoding the spec reader does
        not know.

    Example:
      >>> import tempfile
      >>> array = zarr.create_array(tempfile.mkdtemp(), shape=(4,), chunks=(2,),
      ...                           dtype='i2')
      >>> chunk_key_encoding(array)
      ('c/', '/')
    """
    return zarr_spec.key_encoding(metadata_document(array))


def note_fallback(array: Any, error: BaseException | None) -> None:
    """Log, once per array and reason, that zarr-python handles an array's
    chunks instead of the direct path.

    Example:
      ``note_fallback(array, error)``
    """
    where = str(getattr(array, "store_path", getattr(array, "path", "?")))
    reason = f"{type(error).__name__}: {error}"
    key = f"{where}\0{reason}"
    with _logged_lock:
        if key in _logged:
            return
        _logged.add(key)
    _log.debug("array %s: chunks go through zarr-python (%s)", where, reason)


def _numcodecs_codec(config: Any) -> numcodecs.abc.Codec | None:
    """The numcodecs codec zarr itself uses for a compressor configuration."""
    if config is None:
        return None
    # numcodecs before 0.16 has no Blosc typesize and refuses it here, so v3
    # Blosc arrays then go through zarr (which encodes them as plain bytes).
    return numcodecs.get_codec(dict(config))
