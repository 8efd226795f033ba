"""Load Zarr-backed variables of a lazily opened dataset without zarr's pipeline.

``xarray.open_zarr(..., chunks=None)`` (and ``xarray_beam.open_zarr``) gives
variables whose values are read, when loaded, through zarr's general codec
pipeline. For the common case of a variable that is a plain window of one
stored array (no CF decoding left to apply, a selection of contiguous
slices) and whose layout ``chunk_codec`` understands, ``load`` reads the
window with ``region_io.RegionIO`` instead: each chunk is decompressed
straight into the result. The values are the same; anything else is left to
xarray (``load`` returns False).

This looks at how xarray represents lazily indexed backend data, which is
not public API; if a new xarray represents it differently, ``load`` simply
returns False and xarray loads the data as before.
"""

from __future__ import annotations

import numpy as np
import xarray
import zarr
from xarray.backends.zarr import ZarrArrayWrapper
from xarray.core import indexing

from xarray_beam import region_io

_WRAPPERS = (indexing.MemoryCachedArray, indexing.CopyOnWriteArray)


def _region(key: indexing.BasicIndexer, shape: tuple[int, ...]):
    """The region a basic indexer of contiguous slices selects, or None."""
    region = []
    for item, size in zip(key.tuple, shape, strict=True):
        if not isinstance(item, slice):
            return None
        start, stop, step = item.indices(size)
        if step != 1:
            return None
        region.append(slice(start, max(start, stop)))
    return tuple(region)


def zarr_window(variable: xarray.Variable) -> tuple[zarr.Array, tuple] | None:
    """The stored zarr array and region a lazily indexed variable shows, if
    it shows one exactly (same dtype, no decoding pending), else None.

    Example:
      ``zarr_window(xarray.open_zarr('era5.zarr', chunks=None).t2m.variable)``
    """
    data = variable._data
    while isinstance(data, _WRAPPERS):
        data = data.array
    if not isinstance(data, indexing.LazilyIndexedArray):
        return None
    backend = data.array
    if not isinstance(backend, ZarrArrayWrapper) or not isinstance(
        data.key, indexing.BasicIndexer
    ):
        return None
    array = backend.get_array()
    if not isinstance(array, zarr.Array) or np.dtype(array.dtype) != variable.dtype:
        return None
    region = _region(data.key, tuple(array.shape))
    if region is None or tuple(s.stop - s.start for s in region) != variable.shape:
        return None
    return array, region


def load(variable: xarray.Variable) -> bool:
    """Load a variable's values in place by direct chunk decoding, if it is a
    window of a Zarr array RegionIO can read; False (nothing done) otherwise.

    Example:
      ``if not load(var): var.load()``
    """
    window = zarr_window(variable)
    if window is None:
        return False
    array, region = window
    io = region_io.RegionIO(array)
    if not io.direct:
        return False
    out = np.empty(variable.shape, variable.dtype)
    io.read(region, out)
    variable.values = out
    return True
