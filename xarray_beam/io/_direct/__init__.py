"""The direct chunk path: Zarr chunks decoded and encoded with numcodecs.

Private to ``xarray_beam.io``, and used through these names only:
``for_array`` decides (from the array's metadata document; it never raises)
whether an array's chunks may bypass zarr-python's codec pipeline and gives
its ``ChunkCodec``; ``note_fallback`` records, once, that zarr-python
handles an array instead; ``ChunkFiles`` moves uncompressed local chunk
files with as few copies as possible, through ``Scratch`` buffers; ``POOL``
lends region buffers to the tasks of a worker.
"""

from xarray_beam.io._direct.buffers import POOL, Scratch
from xarray_beam.io._direct.chunk_files import ChunkFiles
from xarray_beam.io._direct.codec import (
    ChunkCodec,
    chunk_key_encoding,
    for_array,
    metadata_document,
    note_fallback,
)

__all__ = [
    "POOL",
    "ChunkCodec",
    "ChunkFiles",
    "Scratch",
    "chunk_key_encoding",
    "for_array",
    "metadata_document",
    "note_fallback",
]
