"""Reductions over chunked datasets: Mean, Sum, Count, Min, Max, Var, Std.

Each transform reduces every chunk to a small partial result (see
``reductions``), drops the reduced dimensions from the key, combines the
partials of chunks with the same remaining key (Beam lifts the combine, so
partials merge before the shuffle), and finishes them into datasets.

Without ``dim`` (the default of ``Globally``, ``PerKey`` and the CombineFns,
as in xarray-beam), nothing is reduced inside a dataset: the datasets
combined together are reduced across, position by position, like an
ensemble mean of same-shaped members.

Example:
  ``chunks | xarray_beam.Mean('time')`` gives ``(key, mean)`` pairs with
  ``time`` gone from both the keys and the data; ``members |
  xarray_beam.Mean.Globally()`` gives the mean of the member datasets.
"""

from __future__ import annotations

import inspect
import math
import textwrap
from collections.abc import Sequence
from typing import Any, Literal, cast

import apache_beam as beam
import xarray
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from xarray_beam.beam import barriers, coders, metrics, runners
from xarray_beam.io import stores, temp_stores, threads
from xarray_beam.model import reductions, units
from xarray_beam.model.key import Key
from xarray_beam.model.reductions import Partial, Reducer

_KEYED = coders.KEYED_PARTIAL

# On runners whose workers all run on this machine (the DirectRunner), a
# shuffle holds everything it moves in memory. When the partial results of a
# reduction are estimated above AUTO_SPILL_BYTES, and no temp_store was
# given, they are merged through files in a local temporary directory
# instead, each worker holding at most AUTO_SPILL_MEM of them: faster and
# in bounded memory (benchmarks/climatology.py).
AUTO_SPILL_BYTES = 64 * 2**20
AUTO_SPILL_MEM = 32 * 2**20


class ReduceCombineFn(beam.CombineFn):
    """Combines datasets (or partial results) into one reduced dataset.

    Inputs may be ``xarray.Dataset`` chunks (reduced over ``dim`` as they are
    added) or ``Partial`` results; accumulators are ``Partial`` results.

    Args:
      reducer: the statistic and its options.
      dim: dimensions to reduce over inside each input, then across inputs
        (numeric variables lacking them are reduced across inputs only);
        None (the default) reduces across the inputs only, position by
        position, so they must share their sizes and index coordinates.
      weights: optional weights for datasets added as inputs; they must
        match the inputs' shapes along their dimensions (not with dim=None).

    Raises:
      ValueError: for weights without ``dim``.

    Example:
      >>> import numpy as np
      >>> from xarray_beam.model.reductions import Reducer
      >>> fn = ReduceCombineFn(Reducer('max'))
      >>> members = [xarray.Dataset({'a': ('x', [1.0, 5.0])}),
      ...            xarray.Dataset({'a': ('x', [3.0, 2.0])})]
      >>> acc = fn.create_accumulator()
      >>> for member in members:
      ...     acc = fn.add_input(acc, member)
      >>> fn.extract_output(acc).a.values.tolist()
      [3.0, 5.0]
    """

    def __init__(
        self,
        reducer: Reducer,
        dim: str | Sequence[str] | None = None,
        weights: xarray.DataArray | None = None,
    ):
        self.reducer = reducer
        self.dim = reductions.normalize_dims(dim)
        check_weights_need_dim(weights, self.dim)
        self.weights = weights

    def _partial(self, element: Any) -> Partial:
        if isinstance(element, Partial):
            return element
        if not isinstance(element, xarray.Dataset):
            raise TypeError(
                f"expected an xarray.Dataset to reduce, got {type(element).__name__}"
            )
        if self.dim is None:
            return self.reducer.reduce_element(element)
        dims = self.dim
        missing = [d for d in dims if d not in element.dims]
        if missing:
            raise ValueError(
                f"cannot reduce over dimension(s) {missing}: the dataset has "
                f"dimensions {list(element.dims)}"
            )
        # Datasets combined here are distinct (an ensemble, say), not chunks
        # holding copies: variables lacking ``dim`` are reduced across them.
        return self.reducer.reduce(element, dims, self.weights, across=True)

    def create_accumulator(self) -> Partial | None:
        return None

    def add_input(self, accumulator: Partial | None, element: Any) -> Partial:
        return self.reducer.merge([accumulator, self._partial(element)])

    def merge_accumulators(self, accumulators) -> Partial | None:
        return self.reducer.merge(accumulators)

    def extract_output(self, accumulator: Partial | None) -> xarray.Dataset:
        if accumulator is None:
            return xarray.Dataset()
        return self.reducer.finalize(accumulator)


class MeanCombineFn(ReduceCombineFn):
    """Combine datasets into their mean (xarray-beam compatible).

    Args:
      dim: dimension(s) to average over inside each dataset, then across
        datasets; None (the default) averages the datasets position by
        position (they must have the same sizes and index coordinates).
      skipna: ignore NaNs (default) or propagate them.
      dtype: dtype of the result; values accumulate in float64.

    Example:
      >>> import numpy as np
      >>> fn = MeanCombineFn('x')
      >>> ds = xarray.Dataset({'a': ('x', np.arange(4.0))})
      >>> acc = fn.add_input(fn.create_accumulator(), ds)
      >>> float(fn.extract_output(acc).a)
      1.5
      >>> across = MeanCombineFn()
      >>> acc = across.add_input(across.create_accumulator(), ds)
      >>> acc = across.add_input(acc, ds + 2)
      >>> across.extract_output(acc).a.values.tolist()
      [1.0, 2.0, 3.0, 4.0]
    """

    def __init__(
        self,
        dim: str | Sequence[str] | None = None,
        skipna: bool = True,
        dtype: Any = None,
    ):
        super().__init__(Reducer("mean", skipna=skipna, dtype=dtype), dim)


class _ReduceChunk:
    """Reduces one ``(key, chunk)`` to ``(key without dims, partial)``; with
    no dims, to ``(key, partial of the chunk as one element)``."""

    def __init__(
        self,
        reducer: Reducer,
        dims: tuple[str, ...] | None,
        weights: xarray.DataArray | None,
    ):
        self.reducer = reducer
        self.dims = dims
        self.weights = weights

    def __call__(self, element: tuple[Key, xarray.Dataset]) -> tuple[Key, Partial]:
        key, chunk = element
        if not isinstance(key, Key) or not isinstance(chunk, xarray.Dataset):
            raise TypeError(
                f"expected (Key, xarray.Dataset) pairs, got "
                f"({type(key).__name__}, {type(chunk).__name__})"
            )
        if self.dims is None:
            return key, self.reducer.reduce_element(chunk)
        dims = self.dims
        missing = [d for d in dims if d not in chunk.dims]
        if missing and key.vars is None:
            # One-variable chunks (split_vars) may lack reduced dimensions:
            # their variable is then constant along them, as in xarray.
            raise ValueError(
                f"cannot reduce chunk {key} over dimension(s) {missing}: it has "
                f"dimensions {list(chunk.dims)}"
            )
        if key.vars is None:
            chunk = _without_copies(key, chunk, dims)
        weights = None
        if self.weights is not None:
            weights = reductions.weights_for(self.weights, key.offsets, chunk, key)
        partial = self.reducer.reduce(chunk, dims, weights, map_fn=threads.map_compute)
        return key.with_offsets(**{d: None for d in dims}), partial


def _without_copies(
    key: Key, chunk: xarray.Dataset, dims: Sequence[str]
) -> xarray.Dataset:
    """``chunk`` without the copies it holds of variables lacking reduced dims.

    A chunk holds every variable, so one lacking dimension ``d`` is repeated
    in every chunk along ``d``. Reducing over ``d`` and another dimension it
    has, only the copy at offset 0 along ``d`` may count (or sums and counts
    would be multiplied by the number of chunks along ``d``).
    """
    copies = [
        name
        for name, var in chunk.data_vars.items()
        if any(key.offsets.get(d, 0) for d in dims if d not in var.dims)
        and any(d in var.dims for d in dims)
    ]
    return chunk.drop_vars(copies) if copies else chunk


# The arguments of every reduction (Mean & co., and their Globally and
# PerKey), added to their docstrings by Reduction.__init_subclass__.
_REDUCTION_ARGS = f"""
    Args:
      dim: dimension(s) to reduce over. None (the default) reduces the
        chunks that share a key across each other, position by position,
        and keeps the keys: e.g. the chunks of several ensemble members cut
        alike. Such chunks must have the same sizes and index coordinates
        (``ValueError`` otherwise); non-index coordinates that differ are
        dropped.
      skipna: ignore NaNs (default) or propagate them.
      dtype: dtype of the result (default: as xarray gives it, e.g. the
        data's float dtype for a mean, float64 for integers); values always
        accumulate in float64.
      fanout: intermediate combining steps for hot keys (Beam's
        ``with_hot_key_fanout``).
      min_count: results from fewer valid values are NaN.
      ddof: delta degrees of freedom of ``Var`` and ``Std`` (the divisor is
        N - ddof); 0 by default, and not with weights.
      weights: a DataArray over some dimensions of the data (e.g.
        ``np.cos(np.deg2rad(ds.latitude))``), sliced to each chunk by its
        key's offsets; for the mean, sum, variance and standard deviation.
        NaN and negative weights are refused, except that values a float
        rounding below zero (the cosine of float32 latitude at the poles is
        -4.4e-8) count as 0: at most {reductions.WEIGHT_ROUNDING:g} below.
      temp_store: if given, partial results are merged through files there
        instead of Beam's combine, so memory stays bounded by ``max_mem`` on
        local runners too (see :class:`~xarray_beam.CombineThroughStorage`).
        By default (None) this is chosen for you: on a runner whose workers
        run on this machine, with a ``template`` whose partial results
        exceed {AUTO_SPILL_BYTES // 2**20} MiB, they go through a local
        temporary directory, at most {AUTO_SPILL_MEM // 2**20} MiB of them
        held per worker. ``False`` always uses Beam's combine.
      max_mem: partial results a worker holds before writing them out to
        ``temp_store``: bytes, or a size such as '256MB' or '1GiB'. Default
        256 MiB.
      storage_options: fsspec options for ``temp_store``.
      template: the dataset the chunks come from (or its template), to check
        the dimensions and weights while the pipeline is built.
"""


def _with_args(doc: str | None, args: str) -> str:
    """A class docstring with an Args section inserted before its example.

    Both are dedented first: Python 3.13 dedents docstrings when compiling,
    earlier versions keep their indentation.
    """
    doc = inspect.cleandoc(doc or "")
    args = textwrap.dedent(args).strip()
    marker = "\n\nExample:"
    if marker in doc:
        head, tail = doc.split(marker, 1)
        return f"{head}\n\n{args}{marker}{tail}\n"
    return f"{doc}\n\n{args}\n"


class Reduction(beam.PTransform):
    """Reduce ``(Key, Dataset)`` chunks over ``dim``; the base of Mean & co.

    Example:
      ``chunks | xarray_beam.Mean('time')``
    """

    stat: reductions.Stat = "mean"

    def __init__(
        self,
        dim: str | Sequence[str] | None = None,
        skipna: bool = True,
        dtype: Any = None,
        fanout: int | None = None,
        *,
        min_count: int | None = None,
        ddof: int = 0,
        weights: xarray.DataArray | None = None,
        temp_store: str | Literal[False] | None = None,
        max_mem: int | str = "256MiB",
        storage_options: dict | None = None,
        template: xarray.Dataset | None = None,
    ):
        super().__init__()
        max_mem = units.byte_size(max_mem, "max_mem")
        self.dim = reductions.normalize_dims(dim)
        check_weights_need_dim(weights, self.dim)
        self.weights = reductions.check_weights(weights, self.dim)
        _check_template(template, self.dim, self.weights)
        self.reducer = Reducer(
            self.stat,
            skipna=skipna,
            min_count=min_count,
            ddof=ddof,
            dtype=dtype,
            weighted=weights is not None,
        )
        self.fanout = check_fanout(fanout)
        self.temp_store = temp_store or None
        self._spill = temp_store
        self.max_mem = max_mem
        self.storage_options = storage_options
        self._estimate = (
            partial_bytes(template, self.dim)
            if template is not None and self.dim is not None
            else None
        )
        self.merge = merge_partials(
            self.reducer, self.fanout, self.temp_store, max_mem, storage_options
        )

    def expand(self, pcoll):
        merge = choose_merge(
            pcoll.pipeline,
            self.reducer,
            self.fanout,
            self._spill,
            self.max_mem,
            self.storage_options,
            self._estimate,
        )
        return (
            pcoll
            | "ReduceChunks"
            >> beam.Map(
                _ReduceChunk(self.reducer, self.dim, self.weights)
            ).with_output_types(_KEYED)
            | "Combine" >> merge
        )

    def __init_subclass__(cls, variant: bool = False, **kwargs):
        super().__init_subclass__(**kwargs)
        if variant:
            return
        cls.Globally = type("Globally", (_Globally,), {"stat": cls.stat}, variant=True)
        cls.PerKey = type("PerKey", (_PerKey,), {"stat": cls.stat}, variant=True)
        cls.__doc__ = _with_args(cls.__doc__, _REDUCTION_ARGS)
        name = cls.__name__
        cls.Globally.__doc__ = _with_args(
            f"{name} of a PCollection of datasets, into one dataset: across the "
            f"datasets, position by position (dim=None, the default), or over "
            f"``dim`` inside them and then across.\n\n"
            f"    Example:\n"
            f"      ``members | xarray_beam.{name}.Globally()``",
            _REDUCTION_ARGS,
        )
        cls.PerKey.__doc__ = _with_args(
            f"{name} of the datasets of each key of a PCollection of "
            f"``(key, dataset)`` pairs (any hashable keys): across the "
            f"datasets, position by position (dim=None, the default), or "
            f"over ``dim`` inside them and then across.\n\n"
            f"    Example:\n"
            f"      ``pairs | xarray_beam.{name}.PerKey()``",
            _REDUCTION_ARGS,
        )


def _check_template(
    template: xarray.Dataset | None,
    dims: tuple[str, ...] | None,
    weights: xarray.DataArray | None,
) -> None:
    """Check reduced dims and weights against the data, when it is known."""
    if template is None:
        return
    unknown = [d for d in dims or () if d not in template.dims]
    if unknown:
        raise ValueError(
            f"cannot reduce over dimension(s) {unknown}: the data has dimensions "
            f"{list(template.dims)}"
        )
    check_weight_dims(template, weights)


def check_weights_need_dim(
    weights: xarray.DataArray | None, dims: tuple[str, ...] | None
) -> None:
    """Raise if weights are given for a reduction across datasets (no dim)."""
    if weights is not None and dims is None:
        raise ValueError(
            "weights need dim: without dim, datasets are reduced across, "
            "position by position, and weights over their dimensions would "
            "not change the result"
        )


def check_weight_dims(
    template: xarray.Dataset, weights: xarray.DataArray | None
) -> None:
    """Raise if the weights have dimensions the data lacks."""
    if weights is None:
        return
    foreign = [d for d in weights.dims if d not in template.dims]
    if foreign:
        raise ValueError(
            f"weights have dimension(s) {foreign} that the data lacks "
            f"(dimensions: {list(template.dims)})"
        )


def check_fanout(fanout: int | None) -> int | None:
    """The hot-key fanout, checked: None or a positive int."""
    if fanout is not None and (not isinstance(fanout, int) or fanout < 1):
        raise ValueError(f"fanout must be a positive int, got {fanout!r}")
    return fanout


def partial_bytes(
    template: xarray.Dataset, dims: Sequence[str], groups: int = 1
) -> int:
    """Estimated bytes of the partial results of reducing ``template`` over
    ``dims`` into ``groups`` groups (float64 sums, counts and squares).

    Example:
      >>> import numpy as np
      >>> ds = xarray.Dataset({'t': (('time', 'x'), np.zeros((10, 4), 'f4'))})
      >>> partial_bytes(ds, ['time'], groups=12)
      1152
    """
    total = 0
    for var in template.data_vars.values():
        if not reductions.reducible(var.dtype):
            continue
        kept = math.prod(n for d, n in var.sizes.items() if d not in dims)
        reduced = any(d in dims for d in var.dims)
        total += kept * (groups if reduced else 1) * 24
    return total


def choose_merge(
    pipeline: Any,
    reducer: Reducer,
    fanout: int | None,
    temp_store: str | Literal[False] | None,
    max_mem: int,
    storage_options: dict | None,
    estimate: int | None,
) -> beam.PTransform:
    """How partial results are merged: through files when ``temp_store`` is
    given, or chosen (see ``AUTO_SPILL_BYTES``): on a runner whose workers
    run on this machine, with no fanout, when partial results are estimated
    (from a template) above the threshold. ``temp_store=False`` never
    spills.

    Example:
      ``pcoll | choose_merge(pcoll.pipeline, reducer, None, None, 2**28, None,
      partial_bytes(template, ['time'], 288))``
    """
    if (
        temp_store is None
        and not fanout
        and estimate is not None
        and estimate > AUTO_SPILL_BYTES
        and runners.runs_on_this_machine(pipeline)
    ):
        temp_store = temp_stores.local_spill_location()
        max_mem = min(max_mem, AUTO_SPILL_MEM)
    return merge_partials(reducer, fanout, temp_store or None, max_mem, storage_options)


def merge_partials(
    reducer: Reducer,
    fanout: int | None,
    temp_store: str | None,
    max_mem: int,
    storage_options: dict | None,
) -> beam.PTransform:
    """The transform merging ``(key, Partial)`` pairs into ``(key, Dataset)``."""
    if temp_store is not None:
        return CombineThroughStorage(reducer, temp_store, max_mem, storage_options)
    combine = beam.CombinePerKey(ReduceCombineFn(reducer))
    return combine.with_hot_key_fanout(fanout) if fanout else combine


class _PartialOf:
    """``(key, dataset)`` (or a dataset, keyed by ``Key()``) -> ``(key,
    partial)``, through a ReduceCombineFn."""

    def __init__(self, fn: ReduceCombineFn, keyed: bool):
        self.fn = fn
        self.keyed = keyed

    def __call__(self, element: Any) -> tuple[Any, Partial]:
        key, dataset = element if self.keyed else (Key(), element)
        return key, self.fn.add_input(None, dataset)


class _Globally(Reduction, variant=True):
    def expand(self, pcoll):
        fn = ReduceCombineFn(self.reducer, self.dim, self.weights)
        if self.temp_store is not None:
            # One fixed key carries every dataset through the storage merge.
            return (
                pcoll
                | "ToPartials"
                >> beam.Map(_PartialOf(fn, keyed=False)).with_output_types(_KEYED)
                | "Combine" >> self.merge
                | "Values" >> beam.Values()
            )
        combine = beam.CombineGlobally(fn)
        if self.fanout:
            combine = combine.with_fanout(self.fanout)
        return pcoll | "Combine" >> combine


class _PerKey(Reduction, variant=True):
    def expand(self, pcoll):
        fn = ReduceCombineFn(self.reducer, self.dim, self.weights)
        if self.temp_store is not None:
            merge = cast(CombineThroughStorage, self.merge)
            return (
                pcoll
                | "ToPartials" >> beam.Map(_PartialOf(fn, keyed=True))
                | "Combine" >> merge.for_any_keys()
            )
        combine = beam.CombinePerKey(fn)
        if self.fanout:
            combine = combine.with_hot_key_fanout(self.fanout)
        return pcoll | "Combine" >> combine


class Mean(Reduction):
    """Mean of ``(Key, Dataset)`` chunks over ``dim``; reduced dims leave the key.

    ``Mean.Globally(dim=None)`` reduces a PCollection of datasets to one
    dataset; ``Mean.PerKey(dim=None)`` reduces the datasets of each key (any
    hashable): without ``dim`` across the datasets, position by position
    (an ensemble mean of same-shaped members), with ``dim`` also over those
    dimensions inside each dataset (variables lacking them are averaged
    across the datasets, as xarray-beam does).

    Example:
      ``chunks | xarray_beam.Mean('time')``;
      ``members | xarray_beam.Mean.Globally()``
    """

    stat = "mean"


class Sum(Reduction):
    """Sum over ``dim`` (see :class:`~xarray_beam.Mean`); all-NaN sums are 0
    unless ``min_count``.

    Example:
      ``chunks | xarray_beam.Sum('time', min_count=1)``
    """

    stat = "sum"


class Count(Reduction):
    """Number of valid (non-NaN) values over ``dim`` (see
    :class:`~xarray_beam.Mean`).

    Example:
      ``chunks | xarray_beam.Count('time')``
    """

    stat = "count"


class Min(Reduction):
    """Minimum over ``dim`` (see :class:`~xarray_beam.Mean`).

    Example:
      ``chunks | xarray_beam.Min('time')``
    """

    stat = "min"


class Max(Reduction):
    """Maximum over ``dim`` (see :class:`~xarray_beam.Mean`).

    Example:
      ``chunks | xarray_beam.Max('time')``
    """

    stat = "max"


class Var(Reduction):
    """Variance over ``dim``, with ``ddof`` (see :class:`~xarray_beam.Mean`);
    partial results merge with a numerically stable parallel formula.

    Example:
      ``chunks | xarray_beam.Var('time', ddof=1)``
    """

    stat = "var"


class Std(Reduction):
    """Standard deviation over ``dim``, with ``ddof`` (see
    :class:`~xarray_beam.Var`).

    Example:
      ``chunks | xarray_beam.Std('time', ddof=1)``
    """

    stat = "std"


class _Accumulate(beam.DoFn):
    """Merges partial results per key within a bundle, spilling them to files.

    Like Beam's combiner lifting, but the merged partials go to files in
    ``temp`` (when the bundle ends, or when they exceed ``max_mem``) and only
    ``(key, path)`` records go through the shuffle.
    """

    def __init__(self, reducer: Reducer, temp: temp_stores.TempLocation, max_mem: int):
        self.reducer = reducer
        self.temp = temp
        self.max_mem = max_mem

    def start_bundle(self) -> None:
        self._table: dict[Any, Partial] = {}
        self._bytes = 0
        self._bundle = temp_stores.new_bundle_name()
        self._spills = 0

    def process(self, element: tuple[Key, Partial]):
        key, partial = element
        previous = self._table.get(key)
        merged = self.reducer.merge([previous, partial])
        self._bytes += merged.nbytes - (previous.nbytes if previous else 0)
        self._table[key] = merged
        if self._bytes > self.max_mem:
            yield from self._spill()

    def finish_bundle(self):
        for record in self._spill():
            yield WindowedValue(record, MIN_TIMESTAMP, [GlobalWindow()])

    def _spill(self):
        self._spills += 1
        for number, (key, partial) in enumerate(self._table.items()):
            path = temp_stores.spill(
                self.temp, partial, self._bundle, self._spills, number
            )
            metrics.count("partials_spilled")
            yield key, path
        self._table = {}
        self._bytes = 0


class _MergeFiles:
    """Reads the partial results spilled for a key, merges and finishes them."""

    def __init__(self, reducer: Reducer, temp: temp_stores.TempLocation):
        self.reducer = reducer
        self.temp = temp

    def __call__(self, key: Any, paths) -> tuple[Any, xarray.Dataset]:
        # One file at a time: read_spilled yields them as merge takes them.
        partials = temp_stores.read_spilled(self.temp, sorted(paths))
        return key, self.reducer.finalize(self.reducer.merge(partials))


def _remove(_, temp: temp_stores.TempLocation) -> None:
    temp_stores.remove(temp)


class CombineThroughStorage(beam.PTransform):
    """Merge ``(key, Partial)`` pairs per key, keeping the shuffle tiny.

    Each bundle merges what it sees per key (holding at most ``max_mem`` of
    partial results before writing them to files under ``temp_store``); only
    file references cross the shuffle; then the files of each key are merged
    and finished into ``(key, Dataset)`` pairs. Memory stays bounded on local
    runners, whose shuffles hold everything they move. ``temp_store`` must be
    a new location (or an empty directory); the files are deleted after the
    pipeline has read them (see ``xarray_beam.io.temp_stores``).

    Args:
      reducer: the statistic and its options (``model.reductions.Reducer``).
      temp_store: where the files go: a new path or URL.
      max_mem: partial results a worker holds before writing them out: bytes,
        or a size such as '256MB' or '1GiB'. Default 256 MiB.
      storage_options: fsspec options for ``temp_store``.

    Raises:
      TypeError: if ``temp_store`` is not a path or URL.
      ValueError: naming ``max_mem``, if it is not a positive size.

    Example:
      ``partials | CombineThroughStorage(Reducer('mean'), '/tmp/spill', '64MB')``
    """

    def __init__(
        self,
        reducer: Reducer,
        temp_store: str,
        max_mem: int | str = "256MiB",
        storage_options: dict | None = None,
    ):
        super().__init__()
        self.max_mem = units.byte_size(max_mem, "max_mem")
        self.key_type: Any = Key
        self.reducer = reducer
        store = stores.normalize_store(temp_store)
        if not isinstance(store, str):
            raise TypeError("temp_store must be a path or URL")
        self.temp_store: str = store
        self.storage_options = storage_options

    def for_any_keys(self) -> CombineThroughStorage:
        """This transform for keys of any hashable type, not only ``Key``."""
        copy = CombineThroughStorage(
            self.reducer, self.temp_store, self.max_mem, self.storage_options
        )
        copy.key_type = beam.typehints.Any
        return copy

    def expand(self, pcoll):
        runners.check_runner(pcoll.pipeline, {"temp_store": self.temp_store})
        temp = temp_stores.claim(self.temp_store, self.storage_options, "spill")
        key_type = self.key_type
        merged = (
            pcoll
            | "Accumulate"
            >> beam.ParDo(
                _Accumulate(self.reducer, temp, self.max_mem)
            ).with_output_types(beam.typehints.Tuple[key_type, str])
            | "GroupFiles" >> beam.GroupByKey()
            | "Merge"
            >> beam.MapTuple(_MergeFiles(self.reducer, temp)).with_output_types(
                beam.typehints.Tuple[key_type, xarray.Dataset]
            )
        )
        _ = barriers.after(merged, "Merged") | "RemoveTemp" >> beam.Map(_remove, temp)
        return merged
