"""Reductions over chunked datasets: Mean, Sum, Count, Min, Max, Var, Std.

Each transform reduces every chunk to a small partial result (see
``reductions``), drops the reduced dimensions from the key, combines the
partials of chunks with the same remaining key (Beam lifts the combine, so
partials merge before the shuffle), and finishes them into datasets.

Example:
  ``chunks | xarray_beam.Mean('time')`` gives ``(key, mean)`` pairs with
  ``time`` gone from both the keys and the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import apache_beam as beam
import xarray
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from xarray_beam.beam import metrics, runners
from xarray_beam.io import stores, temp_stores
from xarray_beam.model import reductions
from xarray_beam.model.key import Key
from xarray_beam.model.reductions import Partial, Reducer

_KEYED = beam.typehints.Tuple[Key, beam.typehints.Any]


class ReduceCombineFn(beam.CombineFn):
    """Combines datasets (or partial results) into one reduced dataset.

    Inputs may be ``xarray.Dataset`` chunks (reduced over ``dim`` as they are
    added) or ``Partial`` results; accumulators are ``Partial`` results.

    Args:
      reducer: the statistic and its options.
      dim: dimensions to reduce over (None: all dimensions of each input).
      weights: optional weights for datasets added as inputs; they must
        match the inputs' shapes along their dimensions.
    """

    def __init__(
        self,
        reducer: Reducer,
        dim: str | Sequence[str] | None = None,
        weights: xarray.DataArray | None = None,
    ):
        self.reducer = reducer
        self.dim = reductions.normalize_dims(dim)
        self.weights = weights

    def _partial(self, element: Any) -> Partial:
        if isinstance(element, Partial):
            return element
        if not isinstance(element, xarray.Dataset):
            raise TypeError(
                f"expected an xarray.Dataset to reduce, got {type(element).__name__}"
            )
        dims = _dims_of(element) if self.dim is None else self.dim
        missing = [d for d in dims if d not in element.dims]
        if missing:
            raise ValueError(
                f"cannot reduce over dimension(s) {missing}: the dataset has "
                f"dimensions {list(element.dims)}"
            )
        return self.reducer.reduce(element, dims, self.weights)

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
    """Combine datasets into their mean over ``dim`` (xarray-beam compatible).

    Example:
      >>> import numpy as np
      >>> fn = MeanCombineFn('x')
      >>> ds = xarray.Dataset({'a': ('x', np.arange(4.0))})
      >>> acc = fn.add_input(fn.create_accumulator(), ds)
      >>> float(fn.extract_output(acc).a)
      1.5
    """

    def __init__(
        self,
        dim: str | Sequence[str] | None = None,
        skipna: bool = True,
        dtype: Any = None,
    ):
        super().__init__(Reducer("mean", skipna=skipna, dtype=dtype), dim)


class _ReduceChunk:
    """Reduces one ``(key, chunk)`` to ``(key without dims, partial)``."""

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
        dims = _dims_of(chunk) if self.dims is None else self.dims
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
        partial = self.reducer.reduce(chunk, dims, weights)
        return key.with_offsets(**{d: None for d in dims}), partial


def _dims_of(dataset: xarray.Dataset) -> list[str]:
    """The dimensions of ``dataset``, named by str as in keys."""
    return cast("list[str]", list(dataset.dims))


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


class Reduction(beam.PTransform):
    """Reduce ``(Key, Dataset)`` chunks over ``dim``; the base of Mean & co."""

    stat: reductions.Stat = "mean"

    def __init__(
        self,
        dim: str | Sequence[str] | None,
        skipna: bool = True,
        dtype: Any = None,
        fanout: int | None = None,
        *,
        min_count: int | None = None,
        ddof: int = 0,
        weights: xarray.DataArray | None = None,
        temp_store: str | None = None,
        max_mem: int = 2**28,
        storage_options: dict | None = None,
        template: xarray.Dataset | None = None,
    ):
        super().__init__()
        self.dim = reductions.normalize_dims(dim)
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
        self.merge = merge_partials(
            self.reducer, self.fanout, temp_store, max_mem, storage_options
        )

    def expand(self, pcoll):
        return (
            pcoll
            | "ReduceChunks"
            >> beam.Map(
                _ReduceChunk(self.reducer, self.dim, self.weights)
            ).with_output_types(_KEYED)
            | "Combine" >> self.merge
        )

    def __init_subclass__(cls, variant: bool = False, **kwargs):
        super().__init_subclass__(**kwargs)
        if variant:
            return
        cls.Globally = type("Globally", (_Globally,), {"stat": cls.stat}, variant=True)
        cls.PerKey = type("PerKey", (_PerKey,), {"stat": cls.stat}, variant=True)
        cls.Globally.__doc__ = (
            f"{cls.__name__} over ``dim`` of a PCollection of datasets, into one "
            f"dataset."
        )
        cls.PerKey.__doc__ = (
            f"{cls.__name__} over ``dim`` of the datasets of each key of a "
            f"PCollection of ``(key, dataset)`` pairs."
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


class _Globally(Reduction, variant=True):
    def expand(self, pcoll):
        fn = ReduceCombineFn(self.reducer, self.dim, self.weights)
        combine = beam.CombineGlobally(fn)
        if self.fanout:
            combine = combine.with_fanout(self.fanout)
        return pcoll | "Combine" >> combine


class _PerKey(Reduction, variant=True):
    def expand(self, pcoll):
        fn = ReduceCombineFn(self.reducer, self.dim, self.weights)
        combine = beam.CombinePerKey(fn)
        if self.fanout:
            combine = combine.with_hot_key_fanout(self.fanout)
        return pcoll | "Combine" >> combine


class Mean(Reduction):
    """Mean of ``(Key, Dataset)`` chunks over ``dim``; reduced dims leave the key.

    Args:
      dim: dimension(s) to average over (None: all).
      skipna: ignore NaNs (default) or propagate them.
      dtype: dtype of the result (default: the data's float dtype, float64
        for integers); values always accumulate in float64.
      fanout: intermediate combining steps for hot keys (Beam's
        ``with_hot_key_fanout``).
      min_count: results from fewer valid values are NaN.
      weights: a DataArray over some dimensions of the data (e.g.
        ``cos(latitude)``), sliced to each chunk by its key's offsets.
      temp_store: if given, partial results are merged through files there
        instead of Beam's combine, so memory stays bounded by ``max_mem`` on
        local runners too (see ``CombineThroughStorage``).
      max_mem: partial results a worker holds before writing them out.
      storage_options: fsspec options for ``temp_store``.
      template: the dataset the chunks come from (or its template), to check
        the dimensions and weights while the pipeline is built.

    ``Mean.Globally(dim)`` reduces a PCollection of datasets to one dataset;
    ``Mean.PerKey(dim)`` reduces the datasets of each key.

    Example:
      ``chunks | xarray_beam.Mean('time')``
    """

    stat = "mean"


class Sum(Reduction):
    """Sum over ``dim`` (see ``Mean``); all-NaN sums are 0 unless min_count."""

    stat = "sum"


class Count(Reduction):
    """Number of valid (non-NaN) values over ``dim`` (see ``Mean``)."""

    stat = "count"


class Min(Reduction):
    """Minimum over ``dim`` (see ``Mean``)."""

    stat = "min"


class Max(Reduction):
    """Maximum over ``dim`` (see ``Mean``)."""

    stat = "max"


class Var(Reduction):
    """Variance over ``dim``, with ``ddof`` (see ``Mean``); partial results
    merge with a numerically stable parallel formula."""

    stat = "var"


class Std(Reduction):
    """Standard deviation over ``dim``, with ``ddof`` (see ``Var``)."""

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
        self._table: dict[Key, Partial] = {}
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

    def __call__(self, key: Key, paths) -> tuple[Key, xarray.Dataset]:
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
    """

    def __init__(
        self,
        reducer: Reducer,
        temp_store: str,
        max_mem: int = 2**28,
        storage_options: dict | None = None,
    ):
        super().__init__()
        self.reducer = reducer
        self.temp_store = stores.normalize_store(temp_store)
        if not isinstance(self.temp_store, str):
            raise TypeError("temp_store must be a path or URL")
        if max_mem <= 0:
            raise ValueError(f"max_mem must be positive, got {max_mem}")
        self.max_mem = max_mem
        self.storage_options = storage_options

    def expand(self, pcoll):
        runners.check_runner(pcoll.pipeline, {"temp_store": self.temp_store})
        temp = temp_stores.claim(self.temp_store, self.storage_options, "spill")
        merged = (
            pcoll
            | "Accumulate"
            >> beam.ParDo(
                _Accumulate(self.reducer, temp, self.max_mem)
            ).with_output_types(beam.typehints.Tuple[Key, str])
            | "GroupFiles" >> beam.GroupByKey()
            | "Merge"
            >> beam.MapTuple(_MergeFiles(self.reducer, temp)).with_output_types(_KEYED)
        )
        _ = (
            merged
            | "CountMerged" >> beam.combiners.Count.Globally()
            | "RemoveTemp" >> beam.Map(_remove, temp)
        )
        return merged
