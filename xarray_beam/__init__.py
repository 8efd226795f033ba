"""xarray_beam: Apache Beam transforms over chunked xarray data.

A distributed dataset is a PCollection of ``(Key, xarray.Dataset)`` pairs;
the transforms here read, split, consolidate and write such chunks.
"""

import logging as _logging
import warnings as _warnings

# Importing Beam logs warnings about optional Google Cloud clients that
# xarray_beam does not use, and those clients warn about the versions of
# Python and grpcio they will support next year; keep all of that out of
# users' terminals.
_root = _logging.getLogger()
_level = _root.level
_root.setLevel(_logging.ERROR)
try:
    with _warnings.catch_warnings():
        _warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")
        import apache_beam as _beam  # noqa: F401
        import apache_beam.io.gcp.internal.clients.bigquery  # noqa: F401
except ImportError:
    pass
finally:
    _root.setLevel(_level)

from xarray_beam.beam.climatology import Anomaly, Climatology, climatology_template
from xarray_beam.beam.coders import KeyCoder
from xarray_beam.beam.combiners import (
    CombineThroughStorage,
    Count,
    Max,
    Mean,
    MeanCombineFn,
    Min,
    ReduceCombineFn,
    Std,
    Sum,
    Var,
)
from xarray_beam.beam.reading import DatasetToChunks, ValidateEachChunk
from xarray_beam.beam.rechunk import (
    ConsolidateChunks,
    ConsolidateVariables,
    Rechunk,
    SplitChunks,
    SplitVariables,
    consolidate_chunks,
    consolidate_fully,
    consolidate_variables,
    in_memory_rechunk,
    split_chunks,
    split_variables,
)
from xarray_beam.beam.rechunk_zarr import RechunkZarr, plan_store_rechunk, rechunk_zarr
from xarray_beam.beam.resample import Resample
from xarray_beam.beam.runners import InProcessRunner
from xarray_beam.beam.zarr import ChunksToZarr, DatasetToZarr
from xarray_beam.dataset import Dataset
from xarray_beam.io.verify import VerifyReport, verify_zarr
from xarray_beam.io.zarr_io import open_zarr, setup_zarr, write_chunk_to_zarr
from xarray_beam.model.chunks import normalize_chunks
from xarray_beam.model.key import Key, offsets_to_slices, validate_chunk
from xarray_beam.model.planning import (
    CostModel,
    DatasetRechunkPlan,
    MemoryModel,
    RechunkPlan,
    plan_rechunk,
)
from xarray_beam.model.templates import make_template, replace_template_dims
from xarray_beam.model.zarr_layout import validate_zarr_chunk

__version__ = "0.1.0.dev0"

__all__ = [
    "Anomaly",
    "Climatology",
    "CombineThroughStorage",
    "Count",
    "Max",
    "Mean",
    "MeanCombineFn",
    "Min",
    "ReduceCombineFn",
    "Resample",
    "Std",
    "Sum",
    "Var",
    "climatology_template",
    "ChunksToZarr",
    "ConsolidateChunks",
    "ConsolidateVariables",
    "CostModel",
    "Dataset",
    "DatasetRechunkPlan",
    "DatasetToChunks",
    "DatasetToZarr",
    "InProcessRunner",
    "Key",
    "KeyCoder",
    "MemoryModel",
    "Rechunk",
    "RechunkPlan",
    "RechunkZarr",
    "SplitChunks",
    "SplitVariables",
    "ValidateEachChunk",
    "VerifyReport",
    "consolidate_chunks",
    "consolidate_fully",
    "consolidate_variables",
    "in_memory_rechunk",
    "make_template",
    "normalize_chunks",
    "offsets_to_slices",
    "open_zarr",
    "plan_rechunk",
    "plan_store_rechunk",
    "rechunk_zarr",
    "replace_template_dims",
    "setup_zarr",
    "split_chunks",
    "split_variables",
    "validate_chunk",
    "validate_zarr_chunk",
    "verify_zarr",
    "write_chunk_to_zarr",
]
