"""``xarray_beam.Dataset``: xarray-like pipelines without hand-written keys.

A ``Dataset`` is a description, not data: a template (the lazy dataset the
pipeline produces), regular chunk sizes, whether chunks hold one variable
each (``split_vars``) and the Beam transform that makes the chunks. Methods
return new ``Dataset`` objects with one more step; nothing runs (and nothing
is written) until a pipeline with ``ds.ptransform`` or ``ds.to_zarr(...)``
runs. Step labels come from the call chain (``FromZarr(era5.zarr)|Rechunk|
Mean(time)``, or ``label=``), so they are the same in every run and Dataflow
updates work.

A Dataset made with ``pipeline=p`` (as in xarray-beam 0.11) is bound to
``p``: ``ds.to_zarr(path)`` then applies the write to ``p`` itself, and steps
shared by several outputs are applied once.

Example:
  >>> import numpy as np, pandas as pd, xarray
  >>> source = xarray.Dataset(
  ...     {'t2m': (('time', 'x'), np.arange(48.0).reshape(24, 2))},
  ...     coords={'time': pd.date_range('2000-01-01', periods=24, freq='h')})
  >>> ds = Dataset.from_xarray(source, {'time': 6})
  >>> ds.chunk_count
  4
  >>> ds.mean('time').collect_with_direct_runner().t2m.values.tolist()
  [23.0, 24.0]
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import numbers
import os
import textwrap
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, cast

import apache_beam as beam
import dask.array
import xarray

from xarray_beam import dataset_steps as steps_lib
from xarray_beam.beam import combiners, reading, runners
from xarray_beam.beam import rechunk as rechunk_lib
from xarray_beam.beam import zarr as zarr_lib
from xarray_beam.beam.climatology import STANDARD_GROUPS, Climatology
from xarray_beam.beam.rechunk_zarr import RechunkZarr
from xarray_beam.beam.resample import Resample
from xarray_beam.io import compat, stores, zarr_io
from xarray_beam.model import chunks as chunks_lib
from xarray_beam.model import periods as periods_lib
from xarray_beam.model import planning, reductions, routes
from xarray_beam.model.units import format_bytes

ChunksSpec = Mapping[Any, int | str] | int | str

_REDUCTIONS: dict[str, type[combiners.Reduction]] = {
    "mean": combiners.Mean,
    "sum": combiners.Sum,
    "count": combiners.Count,
    "min": combiners.Min,
    "max": combiners.Max,
    "var": combiners.Var,
    "std": combiners.Std,
}


class _Chain(beam.PTransform):
    """Labelled steps applied one after the other."""

    def __init__(self, steps: tuple[tuple[str, beam.PTransform], ...], label=None):
        super().__init__(label or "|".join(name for name, _ in steps))
        self.steps = steps

    def expand(self, pvalue):
        for name, transform in self.steps:
            pvalue = pvalue | name >> transform
        return pvalue


class _Binding:
    """The pipeline (or PCollection) a bound Dataset's steps are applied to.

    Shared by a bound Dataset and everything derived from it. Each prefix of
    steps is applied once, so datasets sharing steps share their collections
    (Beam then reuses them instead of recomputing, and labels stay unique).
    """

    def __init__(self, root: beam.Pipeline | beam.pvalue.PCollection):
        self.root = root
        self.pipeline = root if isinstance(root, beam.Pipeline) else root.pipeline
        self._applied: dict[tuple[int, ...], tuple[Any, Any]] = {}

    def apply(self, steps: tuple[tuple[str, beam.PTransform], ...]) -> Any:
        """The collection made by ``steps`` from the root, applying what is new."""
        value: Any = self.root
        for i, (name, transform) in enumerate(steps):
            prefix = steps[: i + 1]
            ident = tuple(id(t) for _, t in prefix)
            if ident in self._applied:
                value = self._applied[ident][1]
                continue
            value = value | self.unique_label(name) >> transform
            self._applied[ident] = (prefix, value)  # keeps the ids alive
        return value

    def unique_label(self, label: str) -> str:
        """``label``, numbered if the pipeline already has a step of that name."""
        taken: set[str] = getattr(self.pipeline, "applied_labels", set())
        unique, number = label, 1
        while unique in taken:
            number += 1
            unique = f"{label}_{number}"
        return unique


@dataclasses.dataclass(frozen=True)
class _Source:
    """Where an untransformed Dataset reads from, so it can be re-read."""

    dataset: xarray.Dataset
    label: str
    store: Any = None  # the whole Zarr store, while no selection was made
    storage_options: Mapping[str, Any] | None = None
    num_threads: int | None = None
    units: Mapping[str, int] = dataclasses.field(default_factory=dict)
    # What store-to-store rechunking needs, while no selection was made.
    variables: Mapping[str, planning.VariableShape] | None = None

    def layout(self) -> routes.SourceLayout:
        return routes.SourceLayout(
            self.units, self.variables if self.store is not None else None
        )


@dataclasses.dataclass(frozen=True)
class _RechunkStep:
    """The rechunk that made a Dataset: from which Dataset, asked how."""

    origin: Dataset
    request: routes.RechunkRequest
    temp_store: Any


class Dataset:
    """A chunked dataset in a Beam pipeline, with xarray-like methods.

    Args:
      template: the lazy dataset the pipeline produces (data variables lazy,
        coordinates in memory); see ``make_template``.
      chunks: regular chunk size per dimension (the last chunk may be
        shorter); see ``normalize_chunks``.
      split_vars: whether each chunk holds one data variable (keys then have
        ``vars={name}`` and offsets only along that variable's dimensions).
      ptransform: the transform producing the ``(Key, xarray.Dataset)``
        chunks from a pipeline's start. ``from_ptransform`` checks what it
        produces; this constructor trusts it.

    Datasets compare by identity (unlike xarray, ``==`` is not elementwise).

    Example:
      >>> import numpy as np, xarray
      >>> source = xarray.Dataset({'t': (('time', 'x'), np.zeros((10, 4)))})
      >>> ds = Dataset.from_xarray(source, {'time': 5})
      >>> ds.chunks, ds.chunk_count, ds.ptransform.label
      ({'time': 5, 'x': 4}, 2, 'FromXarray')
    """

    def __init__(
        self,
        template: xarray.Dataset,
        chunks: ChunksSpec,
        split_vars: bool = False,
        ptransform: beam.PTransform | beam.pvalue.PCollection | None = None,
    ):
        if not isinstance(template, xarray.Dataset):
            raise TypeError(
                f"template must be an xarray.Dataset, got {type(template).__name__}"
            )
        if isinstance(ptransform, beam.pvalue.PCollection):
            steps: tuple[tuple[str, beam.PTransform], ...] = ()
            binding: _Binding | None = _Binding(ptransform)
        elif isinstance(ptransform, beam.PTransform):
            steps, binding = ((ptransform.label, ptransform),), None
        else:
            raise TypeError(
                f"ptransform must be a beam.PTransform or PCollection of "
                f"(Key, Dataset) chunks, got {type(ptransform).__name__}"
            )
        self._init(
            template,
            chunks_lib.normalize_chunks(chunks, template, bool(split_vars)),
            bool(split_vars),
            steps,
            binding=binding,
        )

    def _init(
        self,
        template: xarray.Dataset,
        chunks: Mapping[str, int],
        split_vars: bool,
        steps: tuple[tuple[str, beam.PTransform], ...],
        source: _Source | None = None,
        rechunked: _RechunkStep | None = None,
        binding: _Binding | None = None,
    ) -> None:
        self._template = template
        self._chunks = dict(chunks)
        self._split_vars = split_vars
        self._steps = steps
        self._source = source
        self._rechunked = rechunked
        self._binding = binding

    @classmethod
    def _make(
        cls,
        template: xarray.Dataset,
        chunks: Mapping[str, int],
        split_vars: bool,
        steps: tuple[tuple[str, beam.PTransform], ...],
        source: _Source | None = None,
        rechunked: _RechunkStep | None = None,
        binding: _Binding | None = None,
    ) -> Dataset:
        dataset = cls.__new__(cls)
        dataset._init(template, chunks, split_vars, steps, source, rechunked, binding)
        return dataset

    # --- constructors ------------------------------------------------------------

    @classmethod
    def from_xarray(
        cls,
        source: xarray.Dataset,
        chunks: ChunksSpec | None = None,
        split_vars: bool = False,
        num_threads: int | None = None,
        *,
        previous_chunks: Mapping[str, int] | None = None,
        pipeline: beam.Pipeline | None = None,
        label: str | None = None,
    ) -> Dataset:
        """A Dataset that reads an xarray.Dataset (in memory, lazy or Dask).

        Args:
          source: the data to read.
          chunks: chunk sizes (see :func:`~xarray_beam.normalize_chunks`);
            default: the Dask chunks of ``source`` (whole dimensions if it
            has none).
          split_vars: one variable per chunk.
          num_threads: chunks a worker loads at once.
          previous_chunks: what dimensions not in ``chunks`` get, and the
            shape byte sizes in ``chunks`` keep (default: whole dimensions).
          pipeline: bind the dataset to this pipeline: its steps are applied
            to it, and ``to_zarr`` then writes without ``p |`` (see
            ``to_zarr``).
          label: the name of the reading step (default 'FromXarray').

        Example:
          >>> import numpy as np, xarray
          >>> source = xarray.Dataset({'t': ('x', np.arange(10.0))})
          >>> Dataset.from_xarray(source, {'x': '32B'}).chunks
          {'x': 4}
        """
        if not isinstance(source, xarray.Dataset):
            raise TypeError(
                f"from_xarray takes an xarray.Dataset, got {type(source).__name__}"
            )
        units = _stored_units(source)
        origin = _Source(
            source, label or "FromXarray", num_threads=num_threads, units=units
        )
        if previous_chunks is None:
            previous_chunks = steps_lib.sizes_of(source)
        chunks = chunks_lib.normalize_chunks(
            _dask_chunks(source) if chunks is None else chunks,
            source,
            split_vars,
            previous_chunks,
        )
        return cls._from_source(origin, chunks, bool(split_vars), _bind(pipeline))

    @classmethod
    def from_zarr(
        cls,
        store: stores.StoreLike,
        chunks: ChunksSpec | None = None,
        split_vars: bool = False,
        storage_options: Mapping[str, Any] | None = None,
        num_threads: int | None = None,
        *,
        pipeline: beam.Pipeline | None = None,
        label: str | None = None,
    ) -> Dataset:
        """A Dataset that reads a Zarr store.

        Args:
          store: local path, URL (``gs://``, ``s3://``) or zarr Store.
          chunks: chunk sizes (see :func:`~xarray_beam.normalize_chunks`;
            dimensions not given keep the store's chunks, byte sizes keep
            their shape); default: the store's chunks (shards if any).
          split_vars: one variable per chunk.
          storage_options: fsspec options for URLs, carried to the workers.
          num_threads: chunks a worker loads at once.
          pipeline: bind the dataset to this pipeline (see :meth:`from_xarray`).
          label: the name of the reading step (default 'FromZarr(<name>)').

        Example:
          ``Dataset.from_zarr('gs://bucket/era5.zarr', {'time': 24})``
        """
        store = stores.normalize_store(store)
        kwargs = {"storage_options": dict(storage_options)} if storage_options else {}
        source, stored = zarr_io.open_zarr(store, **kwargs)
        origin = _Source(
            source,
            label or f"FromZarr({_store_name(store)})",
            store=store,
            storage_options=storage_options,
            num_threads=num_threads,
            units=stored,
            variables=zarr_io.variable_shapes(store, storage_options),
        )
        chunks = chunks_lib.normalize_chunks(
            stored if chunks is None else chunks, source, split_vars, stored
        )
        return cls._from_source(origin, chunks, bool(split_vars), _bind(pipeline))

    @classmethod
    def from_ptransform(
        cls,
        ptransform: beam.PTransform | beam.pvalue.PCollection,
        template: xarray.Dataset,
        chunks: Mapping[Any, int],
        split_vars: bool = False,
        *,
        label: str | None = None,
    ) -> Dataset:
        """A Dataset from a transform (or collection) of ``(Key, Dataset)`` chunks.

        Every chunk is checked against the template and chunks: keys with the
        right offsets (multiples of the chunk sizes, for exactly the template's
        dimensions, or the variable's with ``split_vars``), chunk sizes, the
        variables, their dimensions and dtypes. A chunk that does not match
        raises ValueError naming its key and what was expected. Keys may
        leave out offsets of 0 and, with ``split_vars``, the vars of a
        one-variable chunk: they are filled in (as in xarray-beam 0.11).

        Args:
          ptransform: a PTransform making the chunks from a pipeline's start,
            or a PCollection of them (the Dataset is then bound to its
            pipeline, see ``from_xarray``).
          template: the whole dataset the chunks make up (lazy or not).
          chunks: a mapping of dimension to int chunk size (or -1; ``...``
            for every other dimension; dimensions not given are whole).
          split_vars: whether each chunk holds one variable.
          label: the name of the checking step (default 'Validate').

        Raises:
          TypeError: if ``ptransform`` is neither a PTransform nor a
            PCollection, or ``chunks`` is not a mapping of ints.

        Example:
          >>> import apache_beam as beam, numpy as np, xarray
          >>> full = xarray.Dataset({'t': ('x', np.arange(4.0))})
          >>> from xarray_beam import Key
          >>> chunks = [(Key({'x': i}), full.isel(x=slice(i, i + 2)))
          ...           for i in (0, 2)]
          >>> ds = Dataset.from_ptransform(beam.Create(chunks), full, {'x': 2})
          >>> ds.sum().collect_with_direct_runner().t.item()
          6.0
        """
        if not isinstance(ptransform, beam.PTransform | beam.pvalue.PCollection):
            raise TypeError(
                f"ptransform must be a beam.PTransform or PCollection, got "
                f"{type(ptransform).__name__}"
            )
        if not isinstance(template, xarray.Dataset):
            raise TypeError(
                f"template must be an xarray.Dataset, got {type(template).__name__}"
            )
        if not isinstance(chunks, Mapping):
            raise TypeError(
                f"from_ptransform needs chunks as a mapping of dimension to int "
                f"chunk size, got {type(chunks).__name__}: {chunks!r}"
            )
        not_ints = {
            ("..." if dim is ... else dim): size
            for dim, size in chunks.items()
            if isinstance(size, bool) or not isinstance(size, numbers.Integral)
        }
        if not_ints:
            raise TypeError(
                f"from_ptransform needs int chunk sizes (the chunks the transform "
                f"makes), got {not_ints}"
            )
        split_vars = bool(split_vars)
        template = steps_lib.lazy_template(template)
        chunks = chunks_lib.normalize_chunks(chunks, template, split_vars)
        check = (
            label or "Validate",
            beam.Map(steps_lib.ChunkChecker(template, chunks, split_vars)),
        )
        if isinstance(ptransform, beam.pvalue.PCollection):
            return cls._make(
                template, chunks, split_vars, (check,), binding=_Binding(ptransform)
            )
        steps = ((ptransform.label, ptransform), check)
        return cls._make(template, chunks, split_vars, steps)

    @classmethod
    def _from_source(
        cls,
        origin: _Source,
        chunks: Mapping[str, int],
        split_vars: bool,
        binding: _Binding | None,
    ) -> Dataset:
        read = reading.DatasetToChunks(
            origin.dataset, chunks, split_vars, num_threads=origin.num_threads
        )
        template = steps_lib.lazy_template(origin.dataset)
        return cls._make(
            template,
            chunks,
            split_vars,
            ((origin.label, read),),
            source=origin,
            binding=binding,
        )

    # --- properties --------------------------------------------------------------

    @property
    def template(self) -> xarray.Dataset:
        """The lazy dataset this pipeline produces."""
        return self._template

    @property
    def chunks(self) -> dict[str, int]:
        """Chunk size per dimension (the last chunk along a dim may be shorter)."""
        return dict(self._chunks)

    @property
    def split_vars(self) -> bool:
        """Whether each chunk holds a single data variable."""
        return self._split_vars

    @property
    def ptransform(self) -> Any:
        """The transform making this dataset's chunks (``p | ds.ptransform``).

        For a Dataset bound to a pipeline (``pipeline=`` or a PCollection in
        ``from_ptransform``), the PCollection of its chunks in that pipeline
        instead (applied once, however often this is read).
        """
        if self._binding is not None:
            return self._binding.apply(self._steps)
        return self._chain()

    @property
    def pipeline(self) -> beam.Pipeline | None:
        """The pipeline this Dataset is bound to (None if unbound)."""
        return None if self._binding is None else self._binding.pipeline

    def _chain(self) -> _Chain:
        return _Chain(self._steps)

    @property
    def sizes(self) -> dict[Hashable, int]:
        """Size of each dimension."""
        return dict(self._template.sizes)

    @property
    def itemsize(self) -> int:
        """Bytes per element of a chunk (summed over variables, or the largest
        variable's with ``split_vars``)."""
        items = [v.dtype.itemsize for v in self._template.data_vars.values()]
        if not items:
            return 0
        return max(items) if self._split_vars else sum(items)

    @property
    def bytes_per_chunk(self) -> int:
        """Bytes of the largest chunk."""
        return steps_lib.bytes_per_chunk(self._template, self._chunks, self._split_vars)

    @property
    def chunk_count(self) -> int:
        """Number of chunks (elements) in the PCollection."""
        return steps_lib.chunk_count(self._template, self._chunks, self._split_vars)

    def __repr__(self) -> str:
        total = sum(v.nbytes for v in self._template.data_vars.values())
        template = textwrap.indent(repr(self._template), "  ")
        return (
            f"<xarray_beam.Dataset>\n"
            f"PTransform: {self._chain().label}\n"
            f"Chunks:     {self._chunks}"
            f"{' (one variable per chunk)' if self._split_vars else ''}\n"
            f"Chunk count: {self.chunk_count} chunks of up to "
            f"{format_bytes(self.bytes_per_chunk)}\n"
            f"Total size: {format_bytes(total)}\n"
            f"Template:\n{template}"
        )

    # --- building blocks ---------------------------------------------------------

    def _then(
        self,
        label: str,
        transform: beam.PTransform,
        template: xarray.Dataset | None = None,
        chunks: Mapping[str, int] | None = None,
        split_vars: bool | None = None,
    ) -> Dataset:
        taken = {name for name, _ in self._steps}
        unique, number = label, 1
        while unique in taken:
            number += 1
            unique = f"{label}_{number}"
        return Dataset._make(
            self._template if template is None else template,
            self._chunks if chunks is None else chunks,
            self._split_vars if split_vars is None else split_vars,
            self._steps + ((unique, transform),),
            binding=self._binding,
        )

    def _require_source(self, method: str) -> _Source:
        if self._source is None:
            raise ValueError(
                f"{method}() works only on a Dataset straight from from_xarray or "
                f"from_zarr, before other steps (this one is "
                f"{self._chain().label!r}); select the data first"
            )
        return self._source

    def _edit_source(
        self, method: str, args: str, edit: Callable, label: str | None = None
    ) -> Dataset:
        origin = self._require_source(method)
        selected = edit(origin.dataset)
        units = {}
        for dim, size in selected.sizes.items():
            before = origin.dataset.sizes.get(dim)
            if size == before or (method == "head" and before is not None):
                units[dim] = origin.units.get(dim, 1)
            else:
                units[dim] = max(size, 1)  # stored chunks no longer line up
        edited = dataclasses.replace(
            origin,
            dataset=selected,
            label=label or f"{origin.label}.{method}({args})",
            store=None,
            units=units,
        )
        chunks = {
            dim: min(self._chunks.get(dim, size), max(size, 1))
            for dim, size in selected.sizes.items()
        }
        return Dataset._from_source(edited, chunks, self._split_vars, self._binding)

    # --- methods -----------------------------------------------------------------

    def map_blocks(
        self,
        func: Callable[[xarray.Dataset], xarray.Dataset],
        *,
        template: xarray.Dataset | None = None,
        chunks: ChunksSpec | None = None,
        label: str | None = None,
    ) -> Dataset:
        """Apply ``func`` to every chunk.

        Each chunk becomes one chunk of the result. Dimensions keep their
        chunks when ``func`` keeps their size. A dimension ``func`` resizes
        keeps its number of chunks: its chunks must divide it evenly before
        and after (e.g. 12 in chunks of 4 coarsened to 6 gives chunks of 2).

        Args:
          func: maps a chunk (an xarray.Dataset) to a new one. It may change
            variables (not with ``split_vars``), resize dimensions as above,
            drop dimensions held whole in each chunk, and add new dimensions
            (whole in each chunk).
          template: the template of the result; by default found by calling
            ``func`` on this dataset's lazy template (which must not compute).
          chunks: chunks of the result, for dimensions whose chunks cannot be
            inferred.
          label: the name of the step (default 'MapBlocks(<func name>)').

        Raises:
          ValueError: if the template cannot be inferred; if ``func`` drops a
            dimension split into several chunks, or gives one a different
            number of chunks (a size that the chunk count does not divide,
            or ``chunks`` that do not match); if it changes the variables of
            a dataset with ``split_vars``.

        Example:
          >>> import numpy as np, xarray
          >>> source = xarray.Dataset({'t': ('x', np.arange(6.0))})
          >>> ds = Dataset.from_xarray(source, {'x': 3}).map_blocks(lambda c: c * 2)
          >>> ds.collect_with_direct_runner().t.values.tolist()
          [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
          >>> coarse = Dataset.from_xarray(source, {'x': 2}).map_blocks(
          ...     lambda c: c.coarsen(x=2).mean())
          >>> coarse.chunks, coarse.collect_with_direct_runner().t.values.tolist()
          ({'x': 1}, [0.5, 2.5, 4.5])
        """
        name = getattr(func, "__name__", type(func).__name__)
        if template is None:
            try:
                template = func(self._template)
            except Exception as error:
                raise ValueError(
                    f"could not infer the template of map_blocks({name}) by calling "
                    f"it on the lazy template ({type(error).__name__}: {error}); "
                    f"pass template= explicitly"
                ) from error
        if not isinstance(template, xarray.Dataset):
            raise TypeError(
                f"the template of map_blocks({name}) must be an xarray.Dataset, got "
                f"{type(template).__name__}"
            )
        template = steps_lib.lazy_template(template)
        if self._split_vars and set(template.data_vars) != set(
            self._template.data_vars
        ):
            raise ValueError(
                f"map_blocks({name}) changes the data variables from "
                f"{sorted(map(str, self._template.data_vars))} to "
                f"{sorted(map(str, template.data_vars))}, but this dataset has one "
                f"variable per chunk (split_vars=True): consolidate_variables() "
                f"first, or keep the variables"
            )
        given = {}
        if chunks is not None:
            full = chunks_lib.normalize_chunks(chunks, template, self._split_vars)
            named = set(chunks) if isinstance(chunks, Mapping) else {...}
            given = {d: c for d, c in full.items() if d in named or ... in named}
        old_sizes = steps_lib.sizes_of(self._template)
        new_chunks = {}
        for dim, size in steps_lib.sizes_of(template).items():
            if dim in given:
                new_chunks[dim] = given[dim]
            elif dim not in old_sizes or self._chunks[dim] >= old_sizes[dim]:
                new_chunks[dim] = max(size, 1)
            elif size == old_sizes[dim]:
                new_chunks[dim] = self._chunks[dim]
            else:
                new_chunks[dim] = _resized_chunk(
                    name, dim, old_sizes[dim], self._chunks[dim], size
                )
        for dim, size in old_sizes.items():
            old_count = math.ceil(size / self._chunks[dim])
            if dim not in template.dims:
                if old_count > 1:
                    raise ValueError(
                        f"map_blocks({name}) drops dimension {dim!r}, which is split "
                        f"into chunks of {self._chunks[dim]}: the chunks would "
                        f"collide; rechunk to {{{dim!r}: -1}} first, or use a "
                        f"reduction such as .mean({dim!r})"
                    )
                continue
            new_size = template.sizes[dim]
            new_count = max(math.ceil(new_size / new_chunks[dim]), 1)
            if max(old_count, 1) != new_count:
                raise ValueError(
                    f"map_blocks({name}) gives {dim!r} {new_count} chunk(s) of "
                    f"{new_chunks[dim]} (size {new_size}), but each of the "
                    f"{old_count} input chunk(s) of {self._chunks[dim]} (size "
                    f"{size}) makes one output chunk: pass chunks= that give "
                    f"{old_count} chunk(s), or rechunk first"
                )
        apply = steps_lib.MapBlocks(
            func, template, new_chunks, self._split_vars, self._chunks
        )
        return self._then(
            label or f"MapBlocks({name})",
            beam.Map(apply),
            template=template,
            chunks=new_chunks,
        )

    def rechunk(
        self,
        chunks: ChunksSpec,
        split_vars: bool | None = None,
        min_mem: int | str | None = None,
        max_mem: int | str = "1GiB",
        *,
        temp_store: stores.StoreLike | None = None,
        label: str | None = None,
    ) -> Dataset:
        """The same data in new chunks.

        The cheapest way is chosen when the pipeline is built, by
        ``xarray_beam.model.routes.choose_route`` (see ``rechunk_route``):

        * straight from ``from_xarray``/``from_zarr``, when every new chunk
          is made of whole stored chunks (or whole dimensions), the source is
          simply read again in the new chunks: no shuffle at all;
        * straight from ``from_zarr`` and written with ``to_zarr``, the
          rechunk is done store to store with ``RechunkZarr``: bounded memory
          on any runner, intermediates in ``temp_store`` (default: next to
          the target, deleted after success);
        * otherwise, ``Rechunk``'s multi-stage plan through Beam shuffles.

        Args:
          chunks: new chunks (see :func:`~xarray_beam.normalize_chunks`);
            dimensions not given keep their chunks, byte sizes keep the shape
            of the current ones.
          split_vars: one variable per chunk in the result (default: as
            now). Variables are split before the rechunk (smaller chunks to
            shuffle) and consolidated after it.
          min_mem: smallest piece worth moving (bytes, or a size such as
            '16MB'); see :class:`~xarray_beam.Rechunk`.
          max_mem: memory a task may use (bytes, or a size such as '256MB'
            or '1GiB'); see :class:`~xarray_beam.Rechunk` and
            :class:`~xarray_beam.RechunkZarr`. Default 1 GiB.
          temp_store: intermediate store for the store-to-store path.
          label: the name of the rechunk step (default 'Rechunk').

        Example:
          >>> import numpy as np, xarray
          >>> source = xarray.Dataset({'t': (('time', 'x'), np.zeros((8, 6)))})
          >>> ds = Dataset.from_xarray(source, {'time': 2})
          >>> ds.rechunk({'time': -1, 'x': 3}).chunks
          {'time': 8, 'x': 3}
          >>> ds.rechunk({'time': 4}, split_vars=True).split_vars
          True
        """
        max_mem, min_mem = planning.memory_bounds(max_mem, min_mem)
        target_split = self._split_vars if split_vars is None else bool(split_vars)
        new = chunks_lib.normalize_chunks(
            chunks, self._template, target_split, self._chunks
        )
        options: dict[str, Any] = dict(
            min_mem=min_mem, max_mem=max_mem, temp_store=temp_store, label=label
        )
        if target_split != self._split_vars:
            if self._source is not None:
                base = Dataset._from_source(
                    self._source, self._chunks, target_split, self._binding
                )
                return base.rechunk(new, **options)
            if target_split:
                return self.split_variables().rechunk(new, **options)
            return self.rechunk(new, **options).consolidate_variables()
        if self._rechunked is not None:  # one rechunk from where it started
            return self._rechunked.origin.rechunk(new, **options)
        origin = self._source
        request = routes.RechunkRequest(
            steps_lib.sizes_of(self._template),
            self.itemsize,
            self._chunks,
            new,
            None if origin is None else origin.layout(),
            min_mem,
            max_mem,
        )
        route = routes.choose_route(request)
        if route.route == "same":
            return self
        if route.route == "reread":  # chosen only for a source
            source = cast(_Source, origin)
            if label is not None:
                source = dataclasses.replace(source, label=label)
            result = Dataset._from_source(source, new, self._split_vars, self._binding)
        else:
            transform = rechunk_lib.Rechunk(
                steps_lib.sizes_of(self._template),
                self._chunks,
                new,
                max(self.itemsize, 1),
                min_mem,
                max_mem,
            )
            result = self._then(label or "Rechunk", transform, chunks=new)
        result._rechunked = _RechunkStep(self, request, temp_store)
        return result

    def rechunk_route(self, to_zarr: bool = False) -> routes.RechunkRoute | None:
        """How the rechunk that made this Dataset runs, with its plan (None
        if it was not made by ``rechunk``).

        Args:
          to_zarr: the route when this Dataset is written with ``to_zarr``
            (with no ``zarr_chunks`` of its own), which for a whole Zarr
            store goes store to store.

        Example:
          >>> import numpy as np, xarray
          >>> source = xarray.Dataset({'t': (('time', 'x'), np.zeros((8, 6)))})
          >>> ds = Dataset.from_xarray(source, {'time': 2})
          >>> ds.rechunk({'time': -1, 'x': 3}).rechunk_route().route
          'reread'
          >>> ds.mean('x').rechunk({'time': 4}).rechunk_route().route
          'shuffle'
        """
        if self._rechunked is None:
            return None
        return routes.choose_route(self._rechunked.request, writes_zarr=to_zarr)

    def split_variables(self, *, label: str | None = None) -> Dataset:
        """One chunk per data variable (``split_vars=True``).

        Variables lacking some dimensions keep a single copy of each chunk.

        Args:
          label: the name of the step (default 'SplitVariables').

        Example:
          >>> import numpy as np, xarray
          >>> source = xarray.Dataset({'a': ('x', np.zeros(4)), 'b': ((), 1.0)})
          >>> Dataset.from_xarray(source, {'x': 2}).split_variables().chunk_count
          3
        """
        if self._split_vars:
            return self
        if self._source is not None:
            return Dataset._from_source(self._source, self._chunks, True, self._binding)
        return self._then(
            label or "SplitVariables",
            beam.FlatMap(steps_lib.split_unique),
            split_vars=True,
        )

    def consolidate_variables(self, *, label: str | None = None) -> Dataset:
        """Chunks holding every data variable again (``split_vars=False``).

        Args:
          label: the name of the step (default 'ConsolidateVariables').

        Example:
          >>> import numpy as np, xarray
          >>> source = xarray.Dataset({'a': ('x', np.zeros(4)), 'b': ((), 1.0)})
          >>> ds = Dataset.from_xarray(source, {'x': 2}, split_vars=True)
          >>> ds.consolidate_variables().chunk_count
          2
        """
        if not self._split_vars:
            return self
        if self._source is not None:
            return Dataset._from_source(
                self._source, self._chunks, False, self._binding
            )
        names = list(steps_lib.data_vars_of(self._template))
        consolidate = _Chain(
            (
                (
                    "FanOut",
                    beam.FlatMap(steps_lib.FanOut(self._template, self._chunks)),
                ),
                ("Merge", rechunk_lib.ConsolidateVariables()),
                ("Check", beam.Map(steps_lib.CheckVariables(names))),
            ),
            label="ConsolidateVariables",
        )
        return self._then(
            label or "ConsolidateVariables", consolidate, split_vars=False
        )

    def _reduce(
        self,
        stat: str,
        dim: str | Sequence[str] | None,
        *,
        skipna: bool = True,
        dtype: Any = None,
        min_count: int | None = None,
        ddof: int = 0,
        weights: xarray.DataArray | None = None,
        fanout: int | None = None,
        temp_store: str | None = None,
        max_mem: int | str = "256MiB",
        storage_options: dict | None = None,
        label: str | None = None,
    ) -> Dataset:
        dims = reductions.normalize_dims(dim)
        dims = steps_lib.dims_of(self._template) if dims is None else dims
        transform = _REDUCTIONS[stat](
            dims,
            skipna,
            dtype,
            fanout,
            min_count=min_count,
            ddof=ddof,
            weights=weights,
            temp_store=temp_store,
            max_mem=max_mem,
            storage_options=storage_options,
            template=self._template,
        )
        template = steps_lib.reduced_template(self._template, dims, transform.reducer)
        chunks = {d: self._chunks[d] for d in steps_lib.dims_of(template)}
        label = label or f"{stat.capitalize()}({','.join(map(str, dims))})"
        transform = self._keeping_only(template, transform, "Reduce", label)
        return self._then(label, transform, template=template, chunks=chunks)

    def _keeping_only(
        self, template: xarray.Dataset, transform: beam.PTransform, name: str, label
    ) -> beam.PTransform:
        """``transform``, after dropping the one-variable chunks of variables
        the result lacks (non-numeric ones), which it could not reduce."""
        if not self._split_vars or set(template.data_vars) == set(
            self._template.data_vars
        ):
            return transform
        keep = beam.Filter(
            steps_lib.KeepVariables(list(steps_lib.data_vars_of(template)))
        )
        return _Chain((("KeepNumeric", keep), (name, transform)), label)

    def mean(self, dim: str | Sequence[str] | None = None, **kwargs: Any) -> Dataset:
        """Mean over ``dim`` (all dims if None), as ``xarray.Dataset.mean``.

        Args:
          dim: dimension(s) to reduce over; None: all of them.
          **kwargs: the options of :class:`~xarray_beam.Mean` (documented
            there): ``skipna``, ``dtype``, ``min_count``, ``weights`` (a
            DataArray, e.g. ``np.cos(np.deg2rad(ds.latitude))``), ``fanout``,
            ``temp_store``, ``max_mem`` (bytes or a size such as '256MB'),
            ``storage_options``; and ``label``, the name of the step (default
            'Mean(<dims>)'). ``ddof`` too, for ``var`` and ``std``.

        Example:
          >>> import numpy as np, xarray
          >>> source = xarray.Dataset({'t': (('time', 'x'), [[1.0, 2], [3, 4]])})
          >>> ds = Dataset.from_xarray(source, {'time': 1})
          >>> ds.mean('time').collect_with_direct_runner().t.values.tolist()
          [2.0, 3.0]
        """
        return self._reduce("mean", dim, **kwargs)

    def sum(self, dim: str | Sequence[str] | None = None, **kwargs: Any) -> Dataset:
        """Sum over ``dim``, as ``xarray.Dataset.sum``.

        Args:
          dim: dimension(s) to reduce over; None: all of them.
          **kwargs: options, as for :meth:`mean`.
        """
        return self._reduce("sum", dim, **kwargs)

    def count(self, dim: str | Sequence[str] | None = None, **kwargs: Any) -> Dataset:
        """Number of valid (non-NaN) values over ``dim``.

        Args:
          dim: dimension(s) to reduce over; None: all of them.
          **kwargs: options, as for :meth:`mean` (but not ``weights``).
        """
        return self._reduce("count", dim, **kwargs)

    def min(self, dim: str | Sequence[str] | None = None, **kwargs: Any) -> Dataset:
        """Minimum over ``dim``.

        Args:
          dim: dimension(s) to reduce over; None: all of them.
          **kwargs: options, as for :meth:`mean` (but not ``weights``).
        """
        return self._reduce("min", dim, **kwargs)

    def max(self, dim: str | Sequence[str] | None = None, **kwargs: Any) -> Dataset:
        """Maximum over ``dim``.

        Args:
          dim: dimension(s) to reduce over; None: all of them.
          **kwargs: options, as for :meth:`mean` (but not ``weights``).
        """
        return self._reduce("max", dim, **kwargs)

    def var(self, dim: str | Sequence[str] | None = None, **kwargs: Any) -> Dataset:
        """Variance over ``dim``.

        Args:
          dim: dimension(s) to reduce over; None: all of them.
          **kwargs: ``ddof`` (delta degrees of freedom, default 0) and the
            options of :meth:`mean`.
        """
        return self._reduce("var", dim, **kwargs)

    def std(self, dim: str | Sequence[str] | None = None, **kwargs: Any) -> Dataset:
        """Standard deviation over ``dim``.

        Args:
          dim: dimension(s) to reduce over; None: all of them.
          **kwargs: ``ddof`` (delta degrees of freedom, default 0) and the
            options of :meth:`mean`.
        """
        return self._reduce("std", dim, **kwargs)

    def climatology(
        self, by: str | Sequence[str] | Callable = "month", stat: str = "mean", **kwargs
    ) -> Dataset:
        """A statistic per group of time steps, as ``Climatology``.

        Args:
          by: 'hour', 'month', 'dayofyear', 'season', a tuple such as
            ``('month', 'hour')``, or a function of a DatetimeIndex (with
            ``labels=``).
          stat: 'mean', 'sum', 'count', 'min', 'max', 'var' or 'std'.
          **kwargs: ``dim`` (default 'time') and the options of
            :class:`~xarray_beam.Climatology` (documented there): ``skipna``,
            ``min_count``, ``ddof``, ``dtype``, ``weights``, ``labels``,
            ``fanout``, ``temp_store``, ``max_mem`` (bytes or a size such as
            '256MB'), ``storage_options``, ``num_threads``.

        The result has the group dimensions in place of ``dim``: one chunk
        per label along each, except that a last group dimension of at most
        24 labels (hour, month, season) is whole in each chunk. Groups merge
        years: 'dayofyear' gives 366 values, each over that day of every
        year; ``resample(time='1D')`` gives one value per day instead. Its
        attributes say what it is: ``climatology_statistic``,
        ``climatology_grouping`` (e.g. 'month,hour'), ``climatology_dim`` and,
        for data read from a store, ``climatology_source`` (see
        :func:`~xarray_beam.climatology_template`).

        Example:
          >>> import numpy as np, pandas as pd, xarray
          >>> source = xarray.Dataset(
          ...     {'t': ('time', np.arange(48.0))},
          ...     coords={'time': pd.date_range('2000-01-01', periods=48, freq='h')})
          >>> ds = Dataset.from_xarray(source, {'time': 12}).climatology('hour')
          >>> ds.collect_with_direct_runner().t.values[:3].tolist()
          [12.0, 13.0, 14.0]
        """
        dim = kwargs.get("dim", "time")
        if self._split_vars:
            lacking = [
                name
                for name, var in self._template.data_vars.items()
                if dim not in var.dims
            ]
            if lacking:
                raise ValueError(
                    f"climatology of split variables needs {dim!r} in every "
                    f"variable; {lacking} lack it: select the others, or "
                    f"consolidate_variables() first"
                )
        transform = Climatology(by, stat, template=self._template, **kwargs)
        template = transform.template(self._template)
        grouping = transform.grouping
        chunks: dict[str, int] = {}
        for d, size in steps_lib.sizes_of(template).items():
            if d in grouping.names:
                chunks[d] = 1 if d in grouping.keyed else max(size, 1)
            else:
                chunks[d] = self._chunks[d]
        label = f"Climatology({','.join(grouping.names)})"
        if stat != "mean":
            label = f"{label}.{stat}"
        transform = self._keeping_only(template, transform, "Group", label)
        return self._then(label, transform, template=template, chunks=chunks)

    def groupby(self, group: str | Sequence[str]) -> GroupBy:
        """Group along time by components, as ``ds.groupby('time.month')``.

        Groups gather time steps across years: ``'time.dayofyear'`` is a
        climatology whose January 1 holds every January 1 of the data, not a
        series of days. For a statistic per day, month or year, use
        ``resample`` (``ds.resample(time='1D').max()``).

        Args:
          group: ``'<dim>.<component>'`` (component: hour, month, dayofyear,
            season) or a list of them along the same dim.

        Raises:
          ValueError: for other components (such as ``'time.date'`` or
            ``'time.year'``, pointing to ``resample``).

        Example:
          >>> import numpy as np, pandas as pd, xarray
          >>> source = xarray.Dataset(
          ...     {'t': ('time', np.arange(48.0))},
          ...     coords={'time': pd.date_range('2000-01-01', periods=48, freq='h')})
          >>> ds = Dataset.from_xarray(source, {'time': 24})
          >>> ds.groupby('time.hour').max().collect_with_direct_runner().t.values[:2]
          array([24., 25.])
        """
        return GroupBy(self, group)

    def resample(
        self,
        indexer: Mapping[Any, Any] | None = None,
        *,
        closed: str | None = None,
        label: str | None = None,
        origin: Any = "start_day",
        offset: Any = None,
        **indexer_kwargs: Any,
    ) -> DatasetResample:
        """Periods of time, as ``xarray.Dataset.resample(time='1D')``: call a
        reduction on the result for a statistic per period (see ``Resample``).

        Args:
          indexer: ``{dim: freq}`` for one datetime dimension, e.g.
            ``{'time': '1D'}``; or give it as a keyword, ``time='1D'``. The
            frequency is a pandas one: '1D', '1MS' (months), '6h', 'YS', ...
          closed, label, origin, offset: as in xarray (by default periods
            are closed and labelled on the left, except for end-anchored
            frequencies such as 'ME', and start at midnight of the first day).
          **indexer_kwargs: the indexer as a keyword, e.g. ``time='1D'``.

        The result has one element per period along the dimension, labelled
        as xarray labels it, with whole periods in each chunk (about as many
        as an input chunk spans; ``periods_per_chunk=`` in the reduction
        sets it). Chunks that cut a period are merged. Periods without data
        are NaN for every statistic, count included, as in xarray.

        Raises:
          ValueError: for no or several dimensions, an unknown frequency or
            option, or times that are not datetime64, not increasing or NaT.

        Example:
          >>> import numpy as np, pandas as pd, xarray
          >>> source = xarray.Dataset(
          ...     {'t': ('time', np.arange(36.0))},
          ...     coords={'time': pd.date_range('2000-01-01', periods=36, freq='h')})
          >>> ds = Dataset.from_xarray(source, {'time': 10})
          >>> ds.resample(time='1D').max().collect_with_direct_runner().t.values
          array([23., 35.])
        """
        return DatasetResample(
            self,
            _one_dimension("resample", indexer, indexer_kwargs),
            dict(closed=closed, label=label, origin=origin, offset=offset),
        )

    def coarsen(
        self,
        dim: Mapping[Any, int] | None = None,
        boundary: steps_lib.CoarsenBoundary = "exact",
        side: Any = "left",
        coord_func: Any = "mean",
        **window_kwargs: int,
    ) -> DatasetCoarsen:
        """Windows of whole blocks, as ``xarray.Dataset.coarsen(lat=4)``: call
        a reduction on the result (mean, min, max, sum, std, var, count).

        Each chunk is coarsened by xarray itself, so results are xarray's.
        For that, every window must lie in one chunk: a dimension split into
        chunks that are not multiples of its window is first rechunked to
        the nearest smaller multiple (``rechunk`` re-reads a source when it
        can, so usually without a shuffle).

        Args:
          dim: ``{dim: window}``; or give windows as keywords, ``lat=4``.
          boundary: 'exact' (the default) refuses a size the window does not
            divide; 'trim' drops the last elements; 'pad' fills the last
            window with NaN.
          side: 'left' only (windows start at the first element).
          coord_func: how coordinates along coarsened dimensions are reduced
            (default 'mean'), as in xarray.
          **window_kwargs: windows as keywords, e.g. ``lat=4``.

        Raises:
          ValueError: for unknown dimensions, bad windows or options, or a
            size the window does not divide with boundary='exact'.

        Example:
          >>> import numpy as np, xarray
          >>> source = xarray.Dataset({'t': ('x', np.arange(6.0))},
          ...                         coords={'x': np.arange(6.0)})
          >>> out = Dataset.from_xarray(source, {'x': 3}).coarsen(x=2).mean()
          >>> out.chunks, out.collect_with_direct_runner().t.values.tolist()
          ({'x': 1}, [0.5, 2.5, 4.5])
        """
        windows = {**(dim or {}), **window_kwargs}
        return DatasetCoarsen(
            self,
            steps_lib.check_coarsen(self._template, windows, boundary, side),
            boundary,
            coord_func,
        )

    def head(
        self, indexers: Any = None, *, label: str | None = None, **indexers_kwargs: int
    ) -> Dataset:
        """The first elements along dimensions, as ``xarray.Dataset.head``
        (only straight from a source).

        Args:
          indexers: elements to keep per dimension (a mapping, or an int for
            every dimension), as in xarray; or give them as keywords.
          label: the name of the new reading step.
          **indexers_kwargs: elements to keep per dimension, as keywords.

        Example:
          >>> import numpy as np, xarray
          >>> source = xarray.Dataset({'t': (('time', 'x'), np.zeros((8, 6)))})
          >>> Dataset.from_xarray(source, {'time': 4}).head(time=3).sizes
          {'time': 3, 'x': 6}
        """
        args = _describe_args(indexers, indexers_kwargs)
        return self._edit_source(
            "head", args, lambda ds: ds.head(indexers, **indexers_kwargs), label
        )

    def tail(
        self, indexers: Any = None, *, label: str | None = None, **indexers_kwargs: int
    ) -> Dataset:
        """The last elements along dimensions, as ``xarray.Dataset.tail``
        (only straight from a source).

        Args:
          indexers: elements to keep per dimension (a mapping, or an int for
            every dimension), as in xarray; or give them as keywords.
          label: the name of the new reading step.
          **indexers_kwargs: elements to keep per dimension, as keywords.

        Example:
          >>> import numpy as np, xarray
          >>> source = xarray.Dataset({'t': (('time', 'x'), np.zeros((8, 6)))})
          >>> Dataset.from_xarray(source, {'time': 4}).tail(x=2).sizes
          {'time': 8, 'x': 2}
        """
        args = _describe_args(indexers, indexers_kwargs)
        return self._edit_source(
            "tail", args, lambda ds: ds.tail(indexers, **indexers_kwargs), label
        )

    def isel(self, indexers: Any = None, **indexers_kwargs: Any) -> Dataset:
        """Select by position, as ``xarray.Dataset.isel`` (only straight from
        a source).

        Args:
          indexers: positions (ints, slices, arrays) per dimension, as in
            xarray; or give them as keywords.
          **indexers_kwargs: positions per dimension, as keywords.

        Example:
          >>> import numpy as np, xarray
          >>> source = xarray.Dataset({'t': (('time', 'x'), np.zeros((8, 6)))})
          >>> Dataset.from_xarray(source, {'time': 4}).isel(x=slice(0, 2)).sizes
          {'time': 8, 'x': 2}
        """
        args = _describe_args(indexers, indexers_kwargs)
        return self._edit_source(
            "isel", args, lambda ds: ds.isel(indexers, **indexers_kwargs)
        )

    def sel(self, indexers: Any = None, **indexers_kwargs: Any) -> Dataset:
        """Select by label, as ``xarray.Dataset.sel`` (only straight from a
        source).

        Args:
          indexers: labels (values, slices, arrays) per dimension, as in
            xarray; or give them as keywords.
          **indexers_kwargs: labels per dimension, as keywords.

        Example:
          >>> import numpy as np, xarray
          >>> source = xarray.Dataset({'t': ('x', np.zeros(6))},
          ...                         coords={'x': np.arange(6) * 10})
          >>> Dataset.from_xarray(source).sel(x=slice(10, 30)).sizes
          {'x': 3}
        """
        args = _describe_args(indexers, indexers_kwargs)
        return self._edit_source(
            "sel", args, lambda ds: ds.sel(indexers, **indexers_kwargs)
        )

    def __getitem__(self, names: str | Sequence[str]) -> Dataset:
        """Some data variables (a Dataset, even for a single name).

        Dimensions only the dropped variables had leave the chunks.

        Example:
          >>> import numpy as np, xarray
          >>> source = xarray.Dataset({'a': ('x', np.zeros(4)), 'b': ('y', [1.0])})
          >>> Dataset.from_xarray(source, {'x': 2})[['b']].sizes
          {'y': 1}
        """
        selected = [names] if isinstance(names, str) else list(names)
        missing = [n for n in selected if n not in self._template.data_vars]
        if missing:
            raise KeyError(
                f"no data variable(s) {missing} in this dataset; it has "
                f"{list(self._template.data_vars)}"
            )
        if self._source is not None:
            return self._edit_source_vars(selected)
        template = self._template[selected]
        dims = steps_lib.dims_of(template)
        chunks = {d: self._chunks[d] for d in dims}
        select = steps_lib.SelectVariables(selected, dims, self._split_vars)
        label = f"Select({','.join(selected)})"
        return self._then(label, beam.FlatMap(select), template=template, chunks=chunks)

    def _edit_source_vars(self, selected: list[str]) -> Dataset:
        origin = cast(_Source, self._source)  # only called with a source
        edited = dataclasses.replace(
            origin,
            dataset=origin.dataset[selected],
            label=f"{origin.label}[{','.join(selected)}]",
            store=None,
        )
        chunks = {d: self._chunks[d] for d in steps_lib.dims_of(edited.dataset)}
        return Dataset._from_source(edited, chunks, self._split_vars, self._binding)

    def transpose(self, *dims: Hashable, label: str | None = None) -> Dataset:
        """Transpose every variable, as ``xarray.Dataset.transpose``.

        Args:
          *dims: the new order of dimensions (``...`` for the others, as in
            xarray); none: reversed.
          label: the name of the step (default 'Transpose').

        Example:
          >>> import numpy as np, xarray
          >>> source = xarray.Dataset({'t': (('time', 'x'), np.zeros((2, 3)))})
          >>> ds = Dataset.from_xarray(source).transpose('x', 'time')
          >>> ds.collect_with_direct_runner().t.dims
          ('x', 'time')
        """
        template = self._template.transpose(*dims)
        chunks = {d: self._chunks[d] for d in steps_lib.dims_of(template)}
        return self._then(
            label or "Transpose",
            beam.Map(steps_lib.Transpose(dims)),
            template=template,
            chunks=chunks,
        )

    def pipe(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``func(self, *args, **kwargs)``, for chains of custom steps.

        Args:
          func: a function taking this Dataset first.
          *args: more positional arguments for ``func``.
          **kwargs: keyword arguments for ``func``.

        Example:
          >>> import numpy as np, xarray
          >>> source = xarray.Dataset({'t': ('x', np.arange(4.0))})
          >>> Dataset.from_xarray(source).pipe(lambda ds, n: ds.head(x=n), 2).sizes
          {'x': 2}
        """
        return func(self, *args, **kwargs)

    # --- output ------------------------------------------------------------------

    def to_zarr(
        self,
        store: stores.StoreLike,
        *,
        zarr_chunks_per_shard: Mapping[Any, int] | None = None,
        zarr_chunks: ChunksSpec | None = None,
        zarr_shards: ChunksSpec | None = None,
        zarr_format: int | None = None,
        encoding: Mapping[str, Mapping[str, Any]] | None = None,
        mode: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        num_threads: int | None = None,
        resume: bool = False,
        stage_locally: bool | None = None,
        label: str | None = None,
    ) -> Any:
        """Write this dataset to Zarr: ``p | ds.to_zarr(path)``.

        For a Dataset bound to a pipeline (``pipeline=`` in ``from_xarray`` or
        ``from_zarr``), the write is applied to that pipeline at once and its
        PCollection returned: ``ds.to_zarr(path)`` inside ``with
        beam.Pipeline() as p:`` is enough. Otherwise this returns a transform
        to apply to a pipeline. Either way, nothing is written until the
        pipeline runs (the store mode is checked when the write is applied).

        Zarr chunks and shards default to this dataset's chunks; each may be
        given per dimension as for ``normalize_chunks`` (ints, -1, a byte size
        such as '64MB' for chunks of about that size in the shape of this
        dataset's chunks, ``...`` for every other dimension), and dimensions
        not given keep this dataset's chunks. A shard spanning a whole
        dimension is rounded up to a multiple of the Zarr chunks.

        Args:
          store: local path, URL or zarr Store.
          zarr_chunks_per_shard: write shards (Zarr v3) of ``zarr_shards``
            (default: this dataset's chunks), each split into this many Zarr
            chunks per dimension: 1 for dimensions not given, or the value
            of a ``...`` key.
          zarr_chunks: Zarr chunks (not with ``zarr_chunks_per_shard``).
          zarr_shards: Zarr v3 shards.
          zarr_format: 2 or 3 (default 3).
          encoding: per-variable encoding (codecs, fill values).
          mode: None/'w-' refuses an existing store, 'w' overwrites, 'r+'
            writes into a matching existing store.
          storage_options: fsspec options for URLs.
          num_threads: chunks a worker writes at once.
          resume: continue an interrupted write: chunks already in the store
            are skipped (see :class:`~xarray_beam.ChunksToZarr` and
            :class:`~xarray_beam.RechunkZarr`).
          stage_locally: write a new store's metadata in a local temporary
            directory and copy it into place (see
            :class:`~xarray_beam.ChunksToZarr`; default: for paths and URLs).
            A store-to-store rechunk writes its metadata in place.
          label: the name of the writing step (default 'ToZarr(<name>)').

        Raises:
          ValueError: if this dataset's chunks do not cover whole Zarr chunks
            (or shards), with the rechunk that would fix it; for Zarr chunks
            per shard that do not divide the shards.

        Example:
          >>> import os, tempfile, numpy as np, xarray
          >>> source = xarray.Dataset({'t': ('x', np.arange(4.0))})
          >>> path = os.path.join(tempfile.mkdtemp(), 'out.zarr')
          >>> with beam.Pipeline('DirectRunner') as p:
          ...     _ = p | Dataset.from_xarray(source, {'x': 2}).to_zarr(path)
          >>> xarray.open_zarr(path).t.values.tolist()
          [0.0, 1.0, 2.0, 3.0]
          >>> other = os.path.join(tempfile.mkdtemp(), 'bound.zarr')
          >>> with beam.Pipeline('DirectRunner') as p:
          ...     _ = Dataset.from_xarray(source, {'x': 2}, pipeline=p).to_zarr(other)
          >>> xarray.open_zarr(other).t.values.tolist()
          [0.0, 1.0, 2.0, 3.0]
        """
        store = stores.normalize_store(store)
        label = label or f"ToZarr({_store_name(store)})"
        if zarr_shards is not None:
            zarr_shards = self._normalize_units(zarr_shards)
        step = self._rechunked
        route = (
            self.rechunk_route(to_zarr=True)
            if zarr_chunks is None and zarr_chunks_per_shard is None
            else None
        )
        if step is not None and route is not None and route.route == "storage":
            source = cast(_Source, step.origin._source)  # a store, for this route
            write = RechunkZarr(
                source.store,
                store,
                step.request.new_chunks,
                step.request.max_mem,
                step.temp_store,
                min_mem=step.request.min_mem,
                target_shards=zarr_shards,
                zarr_format=zarr_format,
                encoding=encoding,
                mode=mode,
                storage_options=storage_options or source.storage_options,
                num_threads=num_threads,
                resume=resume,
            )
            if self._binding is not None:
                return self._binding.apply(((label, write),))
            return _Chain((("RechunkZarr", write),), f"{self._chain().label}|{label}")
        zarr_chunks, zarr_shards = self._write_units(
            zarr_chunks, zarr_shards, zarr_chunks_per_shard, zarr_format
        )
        write = zarr_lib.ChunksToZarr(
            store,
            self._template,
            zarr_chunks,
            zarr_shards=zarr_shards,
            zarr_format=zarr_format,
            num_threads=num_threads,
            encoding=encoding,
            mode=mode,
            storage_options=storage_options,
            resume=resume,
            stage_locally=stage_locally,
        )
        steps = self._steps + ((label, write),)
        if self._binding is not None:
            return self._binding.apply(steps)
        return _Chain(steps)

    def _normalize_units(self, spec: ChunksSpec) -> dict[str, int]:
        """Zarr chunks or shards: this dataset's chunks, with ``spec`` applied."""
        return chunks_lib.normalize_chunks(
            spec, self._template, self._split_vars, self._chunks
        )

    def _write_units(
        self,
        zarr_chunks: ChunksSpec | None,
        zarr_shards: dict[str, int] | None,
        per_shard: Mapping[Any, int] | None,
        zarr_format: int | None,
    ) -> tuple[dict[str, int], dict[str, int] | None]:
        sizes = steps_lib.sizes_of(self._template)
        if per_shard is not None:
            if zarr_chunks is not None:
                raise ValueError(
                    "give zarr_chunks_per_shard or zarr_chunks, not both "
                    "(zarr_chunks_per_shard chooses the Zarr chunks)"
                )
            if zarr_format == 2:
                raise ValueError("shards need zarr_format=3")
            if zarr_shards is None:
                zarr_shards = dict(self._chunks)
            zarr_chunks = _chunks_in_shards(per_shard, zarr_shards)
        chunks = self._normalize_units({} if zarr_chunks is None else zarr_chunks)
        if zarr_shards is not None:
            for dim, shard in zarr_shards.items():
                if shard == sizes[dim]:  # shards must hold whole Zarr chunks
                    zarr_shards[dim] = math.ceil(shard / chunks[dim]) * chunks[dim]
        units = zarr_shards if zarr_shards is not None else chunks
        what = "shards" if zarr_shards is not None else "chunks"
        for dim, size in sizes.items():
            unit, chunk = units[dim], self._chunks[dim]
            if chunk < size and chunk % unit:
                better = max(chunk // unit, 1) * unit
                raise ValueError(
                    f"chunks of {chunk} along {dim!r} do not cover whole Zarr {what} "
                    f"of {unit}: rechunk first, e.g. .rechunk({{{dim!r}: {better}}}), "
                    f"or choose Zarr {what} that divide {chunk}"
                )
        return chunks, zarr_shards

    def collect_with_direct_runner(self) -> xarray.Dataset:
        """Run the pipeline on Beam's Python DirectRunner, in this process
        (``runners.InProcessRunner``), and return the data (for tests and
        notebooks: everything must fit in memory).

        A Dataset bound to a pipeline runs its steps in a pipeline of its
        own (the bound pipeline is left as it is).

        Raises:
          ValueError: for a Dataset made from a PCollection, whose steps
            exist only in its pipeline.

        Example:
          >>> import numpy as np, xarray
          >>> source = xarray.Dataset({'t': ('x', np.arange(4.0))})
          >>> ds = Dataset.from_xarray(source, {'x': 1})
          >>> ds.collect_with_direct_runner().identical(source)
          True
        """
        if self._binding is not None and not isinstance(
            self._binding.root, beam.Pipeline
        ):
            raise ValueError(
                "collect_with_direct_runner() cannot run a Dataset made from a "
                "PCollection: run its pipeline, e.g. writing with to_zarr()"
            )
        chain = self._chain()
        elements = runners.collect(lambda p: p | chain)
        if not elements:
            raise ValueError(f"pipeline {chain.label!r} produced no chunks")
        key, result = rechunk_lib.consolidate_fully(elements)
        if any(key.offsets.values()):
            raise ValueError(f"chunks start at {key}, not at offset 0")
        names = [n for n in self._template.data_vars if n in result.data_vars]
        result = result[names]
        missing = {
            name: coord.variable
            for name, coord in self._template.coords.items()
            if name not in result.coords
        }
        result = result.assign_coords(missing)
        result.attrs = dict(self._template.attrs)
        return result


class _Reductions:
    """The reductions of a groupby, resample or coarsen, each a
    ``_reduce(stat)``; the options they take are the class's."""

    def _reduce(self, stat: str, **kwargs: Any) -> Dataset:
        raise NotImplementedError

    def mean(self, **kwargs: Any) -> Dataset:
        """Mean of each group, period or window."""
        return self._reduce("mean", **kwargs)

    def sum(self, **kwargs: Any) -> Dataset:
        """Sum of each group, period or window (``min_count`` applies)."""
        return self._reduce("sum", **kwargs)

    def count(self, **kwargs: Any) -> Dataset:
        """Valid (non-NaN) values in each group, period or window."""
        return self._reduce("count", **kwargs)

    def min(self, **kwargs: Any) -> Dataset:
        """Minimum of each group, period or window."""
        return self._reduce("min", **kwargs)

    def max(self, **kwargs: Any) -> Dataset:
        """Maximum of each group, period or window."""
        return self._reduce("max", **kwargs)

    def var(self, **kwargs: Any) -> Dataset:
        """Variance of each group, period or window (``ddof``)."""
        return self._reduce("var", **kwargs)

    def std(self, **kwargs: Any) -> Dataset:
        """Standard deviation of each group, period or window (``ddof``)."""
        return self._reduce("std", **kwargs)


class GroupBy(_Reductions):
    """The result of ``Dataset.groupby``: call a reduction on it."""

    def __init__(self, dataset: Dataset, group: str | Sequence[str]):
        groups = [group] if isinstance(group, str) else list(group)
        if not groups:
            raise ValueError("groupby needs at least one group such as 'time.month'")
        dims, components = set(), []
        for item in groups:
            if not isinstance(item, str) or item.count(".") != 1:
                raise ValueError(
                    f"groupby takes '<dim>.<component>' such as 'time.month', got "
                    f"{item!r} (for a statistic per day or month, use resample, "
                    f"e.g. ds.resample(time='1D').max())"
                )
            dim, component = item.split(".")
            if component not in STANDARD_GROUPS:
                freq = _PER_PERIOD.get(component, "1D")
                raise ValueError(
                    f"cannot group by {item!r}: groupby gathers time steps across "
                    f"years by {list(STANDARD_GROUPS)} (a climatology). For a "
                    f"statistic per period, a time series, use resample, e.g. "
                    f"ds.resample({dim}={freq!r}).max()"
                )
            dims.add(dim)
            components.append(component)
        if len(dims) != 1:
            raise ValueError(f"all groups must be along one dimension, got {groups}")
        self.dataset = dataset
        self.dim = dims.pop()
        self.by = components[0] if len(components) == 1 else tuple(components)

    def _reduce(self, stat: str, **kwargs) -> Dataset:
        return self.dataset.climatology(self.by, stat, dim=self.dim, **kwargs)


# Suggested resample frequencies for time components groupby refuses.
_PER_PERIOD = {"date": "1D", "day": "1D", "year": "YS"}


class DatasetResample(_Reductions):
    """The result of ``Dataset.resample``: call a reduction on it.

    Every reduction takes the options of :class:`~xarray_beam.Resample`
    (documented there): ``skipna``, ``min_count``, ``ddof`` (var, std),
    ``dtype``, ``periods_per_chunk``, ``fanout``, ``temp_store``,
    ``max_mem`` (bytes or a size such as '256MB'), ``storage_options``,
    ``num_threads``; and ``label``, the name of the step (default
    'Resample(<dim>=<freq>).<stat>').
    """

    def __init__(
        self, dataset: Dataset, dim_freq: tuple[str, Any], options: dict[str, Any]
    ):
        self.dataset = dataset
        self.dim, self.freq = dim_freq
        template = dataset.template
        if self.dim not in template.dims:
            raise ValueError(
                f"cannot resample {self.dim!r}: the data has dimensions "
                f"{list(template.dims)}"
            )
        if self.dim not in template.coords:
            raise ValueError(
                f"cannot resample {self.dim!r}: it has no coordinate (resampling "
                f"needs datetime64 times)"
            )
        self.options = options
        # Checked now (frequency, options, times), so mistakes show here.
        self.periods = periods_lib.resample_periods(
            template[self.dim].values, self.freq, dim=self.dim, **options
        )

    def _reduce(self, stat: str, label: str | None = None, **kwargs: Any) -> Dataset:
        dataset, dim = self.dataset, self.dim
        chunks = dataset.chunks
        if "periods_per_chunk" not in kwargs:
            # About as many periods as an input chunk spans.
            spanned = chunks[dim] * self.periods.size // dataset.sizes[dim]
            kwargs["periods_per_chunk"] = max(1, spanned)
        transform = Resample(
            self.freq,
            stat,
            template=dataset.template,
            dim=dim,
            **self.options,
            **kwargs,
        )
        template = transform.output_template()
        new_chunks = {
            d: kwargs["periods_per_chunk"] if d == dim else chunks[d]
            for d in steps_lib.dims_of(template)
        }
        label = label or f"Resample({dim}={self.freq}).{stat}"
        transform = dataset._keeping_only(template, transform, "Resample", label)
        return dataset._then(label, transform, template=template, chunks=new_chunks)


class DatasetCoarsen(_Reductions):
    """The result of ``Dataset.coarsen``: call a reduction on it.

    Reductions take xarray's options for coarsen (e.g. ``skipna``), and
    ``label``, the name of the step (default 'Coarsen(<dim>=<window>).<stat>').
    """

    def __init__(
        self,
        dataset: Dataset,
        windows: dict[str, int],
        boundary: steps_lib.CoarsenBoundary,
        coord_func: Any,
    ):
        self.dataset = dataset
        self.windows = windows
        self.boundary = boundary
        self.coord_func = coord_func

    def _reduce(self, stat: str, label: str | None = None, **kwargs: Any) -> Dataset:
        dataset = self.dataset
        sizes = steps_lib.sizes_of(dataset.template)
        aligned = steps_lib.window_aligned_chunks(dataset.chunks, sizes, self.windows)
        if aligned != dataset.chunks:
            dataset = dataset.rechunk(aligned)
        described = ",".join(f"{d}={w}" for d, w in self.windows.items())
        try:
            coarse = dataset.template.coarsen(
                self.windows, boundary=self.boundary, coord_func=self.coord_func
            )
            template = getattr(coarse, stat)(**kwargs)
        except (TypeError, ValueError) as error:
            raise type(error)(
                f"cannot coarsen({described}).{stat}(): {error}"
            ) from error
        template = steps_lib.lazy_template(template)
        chunks = {}
        for d, size in steps_lib.sizes_of(template).items():
            chunk = dataset.chunks[d]
            if d in self.windows and chunk < sizes[d]:
                chunk //= self.windows[d]
            chunks[d] = min(chunk, max(size, 1))
        step = steps_lib.Coarsen(
            self.windows, self.boundary, self.coord_func, stat, kwargs, template
        )
        label = label or f"Coarsen({described}).{stat}"
        transform = dataset._keeping_only(
            template, beam.FlatMap(step), "Coarsen", label
        )
        return dataset._then(label, transform, template=template, chunks=chunks)


def _one_dimension(
    method: str, indexer: Mapping[Any, Any] | None, kwargs: Mapping[str, Any]
) -> tuple[str, Any]:
    """The one ``(dim, value)`` of ``method(indexer, **kwargs)``."""
    given = {**(indexer or {}), **kwargs}
    if len(given) != 1:
        raise ValueError(
            f"{method} takes one dimension at a time, as xarray's does, e.g. "
            f"{method}(time='1D'); got {given or 'none'}"
        )
    ((dim, value),) = given.items()
    return str(dim), value


def _store_name(store: Any) -> str:
    if isinstance(store, str):
        return os.path.basename(store.rstrip("/")) or store
    return type(store).__name__


def _bind(pipeline: beam.Pipeline | None) -> _Binding | None:
    """The binding of a new Dataset to ``pipeline`` (None: unbound)."""
    if pipeline is None:
        return None
    if not isinstance(pipeline, beam.Pipeline):
        raise TypeError(
            f"pipeline must be a beam.Pipeline, got {type(pipeline).__name__}"
        )
    return _Binding(pipeline)


def _resized_chunk(func: str, dim: str, old_size: int, chunk: int, size: int) -> int:
    """The chunk size along ``dim`` after ``func`` resized it from
    ``old_size`` to ``size``: the same number of chunks, evenly."""
    count, rest = divmod(old_size, chunk)
    if rest:
        raise ValueError(
            f"map_blocks({func}) changes the size of {dim!r} from {old_size} to "
            f"{size}, but its chunks of {chunk} do not divide {old_size} evenly, "
            f"so the new chunks cannot be inferred: pass chunks=, or rechunk first"
        )
    new, rest = divmod(size, count)
    if rest or not new:
        raise ValueError(
            f"map_blocks({func}) changes the size of {dim!r} from {old_size} to "
            f"{size}, which its {count} chunks do not divide evenly: pass chunks=, "
            f"or rechunk first"
        )
    return new


def _chunks_in_shards(
    per_shard: Mapping[Any, int], shards: Mapping[str, int]
) -> dict[str, int]:
    """Zarr chunks splitting each shard into ``per_shard`` chunks per dimension
    (1 for dimensions not given, or the value of a ``...`` key)."""
    if not isinstance(per_shard, Mapping):
        raise TypeError(
            f"zarr_chunks_per_shard must be a mapping of dimension to count, got "
            f"{type(per_shard).__name__}: {per_shard!r}"
        )
    counts = dict(per_shard)
    default = counts.pop(..., 1)
    unknown = [dim for dim in counts if dim not in shards]
    if unknown:
        raise ValueError(
            f"zarr_chunks_per_shard names dimension(s) {unknown} not in the "
            f"dataset's dimensions {list(shards)}"
        )
    chunks: dict[str, int] = {}
    for dim, shard in shards.items():
        count = counts.get(dim, default)
        if isinstance(count, bool) or not isinstance(count, numbers.Integral):
            raise TypeError(
                f"zarr_chunks_per_shard for {dim!r} must be an int, got {count!r}"
            )
        if count < 1 or shard % count:
            raise ValueError(
                f"zarr_chunks_per_shard {dim!r}={count} does not divide the "
                f"shards of {shard} along {dim!r}"
            )
        chunks[dim] = shard // count
    return chunks


def _describe_args(indexers: Any, kwargs: Mapping[str, Any]) -> str:
    """A short, deterministic description of selection arguments for labels."""
    parts = [] if indexers is None else [repr(indexers)]
    parts += [
        f"{k}={v!r}" for k, v in sorted(kwargs.items(), key=lambda kv: str(kv[0]))
    ]
    text = ",".join(parts)
    if len(text) > 60:
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        text = f"{text[:40]}...{digest}"
    return text


def _dask_chunks(dataset: xarray.Dataset) -> dict[str, int]:
    """The first Dask chunk of each dimension (whole dimensions without Dask)."""
    chunks: dict[str, int] = {}
    for var in dataset.variables.values():
        if isinstance(var.data, dask.array.Array):
            dims = steps_lib.dims_of(var)
            for dim, blocks in zip(dims, var.data.chunks, strict=True):
                if blocks:
                    chunks[dim] = max(chunks.get(dim, 0), blocks[0])
    return {dim: chunks.get(dim, -1) for dim in steps_lib.dims_of(dataset)}


def _stored_units(dataset: xarray.Dataset) -> dict[str, int]:
    """Chunk sizes along which reading a lazy source reads whole blocks.

    Dask chunks, or for lazily opened Zarr data its chunks (shards); 1 for
    data in memory, which can be sliced anywhere for free.
    """
    units: dict[str, int] = {}
    for var in dataset.data_vars.values():
        blocks = None
        if isinstance(var.data, dask.array.Array):
            blocks = [b[0] if b else 1 for b in var.data.chunks]
        elif not compat.in_memory(var.variable):
            blocks = var.encoding.get("shards") or var.encoding.get("chunks")
        for dim, block in zip(steps_lib.dims_of(var), blocks or (), strict=False):
            units[dim] = max(units.get(dim, 1), int(block))
    return {dim: units.get(dim, 1) for dim in steps_lib.dims_of(dataset)}
