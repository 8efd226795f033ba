"""Writing ``(Key, Dataset)`` chunks into Zarr stores from a Beam pipeline.

Writing happens in two steps inside the pipeline: a setup step creates the
store's metadata (and writes the template's in-memory variables, usually
coordinates; see ``xarray_beam.io.zarr_io``), then every chunk write, which
waits for setup through a side input, puts its variables into place (see
``xarray_beam.io.chunk_writer``). Building the transforms writes nothing.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator, Mapping
from typing import Any, cast

import apache_beam as beam
import xarray

from xarray_beam.beam import barriers, metrics, reading, runners, threadmap
from xarray_beam.io import append as append_lib
from xarray_beam.io import chunk_writer, locations, staging, stores, zarr_io
from xarray_beam.io.stores import StoreLike
from xarray_beam.model import templates
from xarray_beam.model import zarr_layout as layout_lib
from xarray_beam.model.key import Key

__all__ = ["ChunksToZarr", "DatasetToZarr"]


class _WriteChunks:
    """Writes each ``(Key, Dataset)`` element (see ``chunk_writer``), counting
    chunks and bytes, and passes its key on."""

    def __init__(self, writer: chunk_writer.ChunkWriter):
        self._writer = writer

    def __call__(
        self, element: tuple[Key, xarray.Dataset], target: layout_lib.ZarrTarget
    ) -> Iterator[Key]:
        if not isinstance(element, tuple) or len(element) != 2:
            raise TypeError(
                f"ChunksToZarr expects (Key, xarray.Dataset) pairs, got "
                f"{type(element).__name__}"
            )
        key, chunk = element
        written = self._writer.write(key, chunk, target)
        if written is None:
            metrics.count("chunks_skipped")
        else:
            metrics.count("chunks_written")
            metrics.count("bytes_written", written)
        yield key


def _append_setup(
    _, template, options: zarr_io.WriteOptions, plan: append_lib.AppendPlan
):
    append_lib.extend_store(options.store, template, plan, options.storage_options)
    full = append_lib.full_template(template, plan)
    target = zarr_io.target_from_store(full, options, token=options.job)
    zarr_io.record_append(full, target, options)
    return target


def _setup_from_side_input(_, template, options: zarr_io.WriteOptions):
    return zarr_io.setup(template, options)


def _infer_then_setup(_, inferred, options: zarr_io.WriteOptions):
    template, chunk_sizes = templates.template_from_skeleton(inferred)
    if options.zarr_chunks is None:
        options = dataclasses.replace(options, zarr_chunks=chunk_sizes)
    return zarr_io.setup(template, options)


class _MergeSkeletons(beam.CombineFn):
    def create_accumulator(self):
        return templates.Skeleton()

    def add_input(self, accumulator, element):
        return templates.merge_skeletons([accumulator, templates.skeleton_of(*element)])

    def merge_accumulators(self, accumulators):
        return templates.merge_skeletons(accumulators)

    def extract_output(self, accumulator):
        return accumulator


class ChunksToZarr(beam.PTransform):
    """Write ``(Key, Dataset)`` chunks into a Zarr store.

    Args:
      store: local path, URL (``gs://``, ``s3://``) or zarr Store.
      template: the whole dataset to write (lazy variables are written from
        the chunks, in-memory ones at setup), a ``beam.pvalue.AsSingleton`` of
        one, or None to infer it from the chunks (an extra pass over them;
        kept for xarray-beam's pipelines, with a ``FutureWarning`` when the
        transform is built: pass a template).
      zarr_chunks: Zarr chunk size per dimension (-1: whole); dimensions not
        given take the template's Dask chunks (or, with an inferred template,
        the size of the chunks at offset 0).
      zarr_shards: shard size per dimension (Zarr v3), multiples of chunks.
      zarr_format: 2 or 3 (default 3).
      num_threads: chunks written at once by a worker; the variables of a
        chunk are always written in parallel.
      needs_setup: False means the store was set up beforehand (e.g. with
        ``setup_zarr``) and only chunks are written: xarray-beam's spelling
        of ``mode='r+'``, so the store must exist and match the template.
      encoding: per-variable encoding for new stores.
      mode: None or 'w-' (default) refuses an existing store; 'w' replaces an
        existing Zarr store; 'r+' writes into an existing store whose metadata
        must match the template.
      storage_options: fsspec options for URLs, carried to the workers.
      resume: continue an interrupted run: if the store exists it is written
        with mode 'r+' (its metadata must match the template), and chunks
        whose Zarr objects all exist are skipped (found with one listing per
        array and worker, not one request per chunk). If it does not exist,
        it is created as with the default mode. Chunk objects are written
        whole and atomically, so an existing object is a complete one.
      append_dim: append the chunks (keyed from the start of the new data)
        to the existing store along this dimension: ``template`` describes
        the new data only, its labels must all come after the store's (or be
        its last ones: re-running an append is a no-op, and completes an
        interrupted one). Checked before anything is written.
      stage_locally: write a new store's metadata to a local temporary
        directory and copy it to ``store`` in a few concurrent batches, much
        faster on object stores. None (the default) stages whenever ``store``
        is a path or URL; True with a zarr Store object is a ValueError.

    The output is the PCollection of keys written (or skipped on resume).

    Raises:
      FileExistsError: if the store exists and mode is not 'w' or 'r+'.
      FileNotFoundError: for mode 'r+' without an existing store.
      ValueError: for bad chunk specs or a store that does not match.

    With a Dataset template, these are raised when the pipeline is built.
    Chunks that do not cover whole Zarr chunks (or shards), or disagree with
    the template, raise ValueError before they are written.

    Example:
      >>> import tempfile, os
      >>> import numpy as np
      >>> ds = xarray.Dataset({'t': ('time', np.arange(6.0))})
      >>> path = os.path.join(tempfile.mkdtemp(), 'out.zarr')
      >>> with beam.Pipeline('DirectRunner') as p:
      ...     _ = (p | reading.DatasetToChunks(ds, {'time': 3})
      ...            | ChunksToZarr(path, templates.make_template(ds), {'time': 3}))
      >>> xarray.open_zarr(path).t.values.tolist()
      [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    """

    def __init__(
        self,
        store: StoreLike,
        template: xarray.Dataset | beam.pvalue.AsSideInput | None = None,
        zarr_chunks: Mapping[str, int] | None = None,
        *,
        zarr_shards: Mapping[str, int] | None = None,
        zarr_format: int | None = None,
        num_threads: int | None = None,
        needs_setup: bool = True,
        encoding: Mapping[str, Mapping[str, Any]] | None = None,
        mode: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        resume: bool = False,
        append_dim: str | None = None,
        stage_locally: bool | None = None,
    ):
        super().__init__()
        if append_dim is not None:
            if mode not in (None, "r+") or not needs_setup:
                raise ValueError(
                    f"append_dim writes into an existing store; it conflicts with "
                    f"mode={mode!r}"
                )
            if not isinstance(template, xarray.Dataset):
                raise TypeError(
                    "append_dim needs the template of the new data as an xarray.Dataset"
                )
            mode, resume = "r+", True
        if resume and mode == "w":
            raise ValueError(
                "resume=True continues writing an existing store; mode='w' would "
                "delete it first"
            )
        if template is not None and not isinstance(
            template, xarray.Dataset | beam.pvalue.AsSideInput
        ):
            raise TypeError(
                f"template must be an xarray.Dataset, a beam.pvalue.AsSingleton or "
                f"None, got {type(template).__name__}"
            )
        if num_threads is not None and num_threads < 1:
            raise ValueError(f"num_threads must be at least 1, got {num_threads}")
        if template is None:
            warnings.warn(
                "No template provided to ChunksToZarr: it is inferred from all "
                "the chunks in an extra pass over them, which is slow for large "
                "datasets; pass a template (e.g. xarray_beam.make_template(ds)). "
                "Writing without one may stop being supported",
                FutureWarning,
                stacklevel=2,
            )
        self.options = zarr_io.WriteOptions(
            stores.normalize_store(store),
            zarr_chunks,
            zarr_shards,
            layout_lib.check_zarr_format(zarr_format),
            encoding,
            stores.check_mode_name(mode, needs_setup),
            storage_options,
            resume=resume,
            stage_locally=stage_locally,
        )
        staging.wanted(self.options.store, stage_locally)
        if resume and not isinstance(self.options.store, str):
            raise TypeError(
                "resume=True needs the store as a path or URL (its objects are "
                "listed with fsspec)"
            )
        self.resume = resume
        self.append_dim = append_dim
        self.template = template
        self.num_threads = num_threads
        if append_dim is not None:
            # A Dataset: append_dim without one raised a TypeError above.
            layout_lib.check_names(cast(xarray.Dataset, template))
        elif isinstance(template, xarray.Dataset) and self.options.mode != "r+":
            layout_lib.plan_target(
                template, zarr_chunks, zarr_shards, zarr_format, encoding
            )

    def _check_store_now(self) -> None:
        """Fail while the pipeline is built, not after it has run for hours."""
        options = self.options
        stores.check_mode(options.store, options.mode, options.storage_options)
        if options.mode == "r+" and isinstance(self.template, xarray.Dataset):
            zarr_io.target_from_store(self.template, options, token="")

    def expand(self, pcoll):
        runners.check_runner(pcoll.pipeline, {"target store": self.options.store})
        sources = reading.sources_read(pcoll.pipeline)
        locations.check_apart(
            self.options.store,
            [("input store", source) for source in sources],
            "ChunksToZarr",
        )
        if self.resume and self.options.mode != "r+":
            state = stores.store_state(self.options.store, self.options.storage_options)
            if state == "zarr":
                self.options = dataclasses.replace(self.options, mode="r+")
        start = barriers.start(pcoll.pipeline, "StartSetup")
        shift = None
        if self.append_dim is not None:
            plan = append_lib.plan_append(
                self.options.store,
                self.template,
                self.append_dim,
                self.options.storage_options,
            )
            shift = {self.append_dim: plan.offset}
            target = start | "ExtendZarr" >> beam.Map(
                _append_setup, self.template, self.options, plan
            )
        elif isinstance(self.template, xarray.Dataset):
            self._check_store_now()
            target = start | "SetupZarr" >> beam.Map(
                _setup_from_side_input, self.template, self.options
            )
        elif self.template is not None:
            target = start | "SetupZarr" >> beam.Map(
                _setup_from_side_input, self.template, self.options
            )
        else:
            stores.check_mode(
                self.options.store, self.options.mode, self.options.storage_options
            )
            skeleton = pcoll | "InferTemplate" >> beam.CombineGlobally(
                _MergeSkeletons()
            )
            target = start | "SetupZarr" >> beam.Map(
                _infer_then_setup,
                beam.pvalue.AsSingleton(skeleton),
                self.options,
            )
        # Chunks of a store this pipeline creates (or resumes) are written
        # once each: replacing one with other bytes means duplicate keys.
        # With mode 'r+' a pipeline may deliberately rewrite existing data.
        guard = self.resume or self.options.mode != "r+"
        writer = chunk_writer.ChunkWriter(
            self.options.store, self.options.storage_options, self.resume, guard, shift
        )
        return pcoll | "WriteChunks" >> beam.ParDo(
            threadmap.ThreadMapWithSideInput(_WriteChunks(writer), self.num_threads),
            beam.pvalue.AsSingleton(target),
        ).with_output_types(Key)


class DatasetToZarr(beam.PTransform):
    """Write a whole xarray.Dataset to Zarr: ``DatasetToChunks | ChunksToZarr``.

    Args:
      dataset: the dataset to write (lazy or in memory).
      store: local path, URL or zarr Store.
      zarr_chunks: Zarr chunk size per dimension; by default the Dask chunks
        of ``dataset`` (whole dimensions if it has none). The dataset is read
        in chunks of one Zarr shard (or chunk) each.
      **kwargs: ``zarr_shards``, ``zarr_format``, ``encoding``, ``mode``,
        ``num_threads``, ``storage_options`` and ``stage_locally``, as for
        ``ChunksToZarr``.

    Example:
      ``p | DatasetToZarr(ds, 'out.zarr', {'time': 24}, mode='w')``
    """

    def __init__(
        self,
        dataset: xarray.Dataset,
        store: StoreLike,
        zarr_chunks: Mapping[str, int] | None = None,
        **kwargs: Any,
    ):
        super().__init__()
        template = templates.make_template(dataset)
        target = layout_lib.plan_target(
            template,
            zarr_chunks,
            kwargs.get("zarr_shards"),
            kwargs.get("zarr_format"),
            kwargs.get("encoding"),
        )
        read_chunks: dict[str, int] = {}
        for layout in target.variables.values():
            for dim, unit in zip(layout.dims, layout.write_unit, strict=True):
                if read_chunks.setdefault(dim, unit) != unit:
                    raise ValueError(
                        f"variables of the dataset have different Zarr chunks along "
                        f"{dim!r}; pass zarr_chunks for every dimension"
                    )
        self._to_chunks = reading.DatasetToChunks(
            dataset, read_chunks, num_threads=kwargs.get("num_threads")
        )
        self._to_zarr = ChunksToZarr(store, template, zarr_chunks, **kwargs)

    def expand(self, pbegin):
        return (
            pbegin
            | "DatasetToChunks" >> self._to_chunks
            | ("ChunksToZarr" >> self._to_zarr)
        )
