"""Load Zarr-backed variables of a lazily opened dataset without zarr's pipeline.

``xarray.open_zarr(..., chunks=None)`` (and ``xarray_beam.open_zarr``) gives
variables whose values are read, when loaded, through zarr's general codec
pipeline. For the common case of a variable that is a plain window of one
stored array (no CF decoding left to apply, a selection of contiguous
slices) and whose layout ``chunk_codec`` understands, ``load`` reads the
window with ``region_io.RegionIO`` instead: each chunk is decompressed
straight into the result. The values are the same; anything else is left to
xarray (``load`` returns False).

Which zarr array backs a lazy variable is not public in xarray: it is asked
through ``compat.zarr_window``, and if a new xarray represents lazy data
differently, ``load`` simply returns False and xarray loads the data as
before.
"""

from __future__ import annotations

import numpy as np
import xarray

from xarray_beam.io import compat, region_io


def load(
    variable: xarray.Variable, missing: region_io.MissingChunks = "fill"
) -> int | None:
    """Load a variable's values in place by direct chunk decoding, if it is a
    window of a Zarr array RegionIO can read; None (nothing done) otherwise.

    Args:
      variable: the lazily indexed variable.
      missing: what a missing chunk means (see ``RegionIO.read``).

    Returns:
      The number of missing chunks read as the fill value, or None if the
      variable is left to xarray.

    Example:
      ``if load(var) is None: var.load()``
    """
    window = compat.zarr_window(variable)
    if window is None:
        return None
    array, region = window
    io = region_io.RegionIO(array, missing=missing)
    if not io.direct:
        return None
    out = np.empty(variable.shape, variable.dtype)
    missing_chunks = io.read(region, out)
    variable.values = out
    return missing_chunks
