"""Beam transforms over ``(Key, xarray.Dataset)`` chunks.

Reading datasets into chunks (``reading``), splitting and consolidating
(``rechunk``), writing Zarr (``zarr``), store-to-store rechunks
(``rechunk_zarr``), reductions and climatologies (``combiners``,
``climatology``), the Key coder (``coders``), counters (``metrics``),
threads per element (``threadmap``), one-off steps and waiting for whole
PCollections (``barriers``) and the in-process runner (``runners``).
"""

from xarray_beam.beam import coders as _coders  # noqa: F401 - registers KeyCoder
