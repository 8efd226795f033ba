"""The one place that depends on zarr and xarray beyond their public API.

Everything else in the package uses public names only (ruff's banned-api
rule enforces it). What is here either has no public route, or has one only
in newer releases than the oldest this package supports. Each helper has a
test in ``tests/test_compat.py`` that fails loudly, on the installed
versions, if a release changes what it relies on; and callers treat a
``None`` answer as "do it the ordinary (slower) way".
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import xarray
import zarr

if TYPE_CHECKING:
    from zarr.core.array_spec import ArrayConfigParams

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine of a zarr store on zarr's own event loop, and wait.

    zarr's stores are asynchronous, and stores over fsspec file systems are
    bound to zarr's loop, so their coroutines must run there; zarr has no
    public function for that.

    Example:
      >>> store = zarr.storage.MemoryStore()
      >>> run(store.exists('zarr.json'))
      False
    """
    from zarr.core.sync import sync

    return sync(coroutine)


def writing_every_chunk(array: zarr.Array) -> zarr.Array:
    """The array, set to store every chunk written, even all-fill ones.

    Then every written chunk exists as an object (so a store can be checked
    for completeness by listing it), and writes skip a pass over the data
    comparing it to the fill value. ``Array.with_config`` arrived in zarr
    3.1.6; before it, the same array is built from its public parts.

    Example:
      >>> import os, tempfile
      >>> path = tempfile.mkdtemp()
      >>> array = zarr.create_array(path, shape=(2,), chunks=(1,), dtype='f4')
      >>> writing_every_chunk(array)[...] = 0  # the fill value
      >>> sorted(os.listdir(os.path.join(path, 'c')))
      ['0', '1']
    """
    config: ArrayConfigParams = {"write_empty_chunks": True}
    if hasattr(array, "with_config"):
        return array.with_config(config)
    return zarr.Array(zarr.AsyncArray(array.metadata, array.store_path, config))


def zarr_window(variable: xarray.Variable) -> tuple[zarr.Array, tuple] | None:
    """The stored zarr array and the region of it that a lazily opened
    variable shows, if it shows exactly that (same dtype, no decoding
    pending, a window of contiguous slices); None otherwise.

    xarray has no public way to ask what backs a lazy variable; this looks
    at its internal wrappers, and answers None for anything unfamiliar.

    Example:
      ``zarr_window(xarray.open_zarr('era5.zarr', chunks=None).t2m.variable)``
    """
    from xarray.backends.zarr import ZarrArrayWrapper
    from xarray.core import indexing

    data = variable._data
    while isinstance(data, indexing.MemoryCachedArray | indexing.CopyOnWriteArray):
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
    region = _region(data.key.tuple, tuple(array.shape))
    if region is None or tuple(s.stop - s.start for s in region) != variable.shape:
        return None
    return array, region


def _region(key: tuple, shape: tuple[int, ...]) -> tuple[slice, ...] | None:
    """The region a tuple of contiguous slices selects, or None."""
    region = []
    for item, size in zip(key, shape, strict=True):
        if not isinstance(item, slice):
            return None
        start, stop, step = item.indices(size)
        if step != 1:
            return None
        region.append(slice(start, max(start, stop)))
    return tuple(region)


def in_memory(variable: xarray.Variable) -> bool:
    """Whether a variable's values are in memory already (not lazily
    indexed backend data, not Dask), as xarray itself tracks it.

    Example:
      >>> in_memory(xarray.Variable('x', np.arange(3)))
      True
    """
    return bool(getattr(variable, "_in_memory", True))


def encode_zarr_variable(variable: xarray.Variable, name: str) -> xarray.Variable:
    """A variable CF-encoded as ``xarray.Dataset.to_zarr`` would store it
    (times as numbers in its units, packed integers, fill values).

    Example:
      >>> times = xarray.Variable('t', np.array(['2020-01-02'], 'M8[ns]'),
      ...                         encoding={'units': 'days since 2020-01-01'})
      >>> encode_zarr_variable(times, 't').values.tolist()
      [1]
    """
    from xarray.backends.zarr import encode_zarr_variable as encode

    return encode(variable, name=name)
