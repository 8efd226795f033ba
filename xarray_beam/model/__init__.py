"""The data model and pure logic: no Beam, no I/O.

Keys and chunk checks (``key``), chunk arithmetic (``chunks``), byte sizes
(``units``), templates (``templates``), how a template maps onto Zarr arrays
(``zarr_layout``), mergeable partial results of reductions (``reductions``),
assembling chunks (``assembly``), rechunk plans (``planning``) and the
choice of a rechunk route (``routes``).
"""
