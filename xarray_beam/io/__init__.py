"""Storage: Zarr stores, and every read and write of their chunks.

Where stores live and what their state is (``stores``), the one writer of
chunks (``chunk_writer``), regions read and written a chunk at a time
(``region_io``, over the private direct path in ``_direct``), opening and
setting up stores (``zarr_io``, staged in a local directory by
``staging``), verifying (``verify``), appending
(``append``), the write guard (``write_guard``), temporary stores
(``temp_stores``), loading lazy variables (``fast_load``), atomic files
(``files``), threads for storage work (``threads``) and the one module that
relies on zarr and xarray beyond their public API (``compat``). No Beam.
"""
