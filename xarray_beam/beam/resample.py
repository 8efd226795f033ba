"""Resampling: a statistic per period of time (daily max, monthly mean, ...).

``Resample`` is ``xarray.Dataset.resample(time=freq).<stat>()`` over
``(Key, Dataset)`` chunks. The periods come from the whole time axis of a
template (``model.periods``), so a chunk at a known offset knows the periods
of its time steps. Every chunk is reduced to one partial result per *output
chunk* it touches, with the periods of that output chunk as an array axis
(the machinery of ``Climatology``): a chunk holding many periods reduces
them locally, and the partial results of a period cut by a chunk boundary
merge in the combine. Output chunks hold ``periods_per_chunk`` whole periods.

Results follow xarray: the result's time coordinate is xarray's (left-
labelled periods by default), variables without the time dimension are
repeated along it, and periods without any time step (gaps in the data) are
NaN for every statistic, count included, which makes integer results float.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, Literal, cast

import apache_beam as beam
import numpy as np
import xarray

from xarray_beam.beam import coders, combiners, threadmap
from xarray_beam.io import threads
from xarray_beam.model import periods as periods_lib
from xarray_beam.model import reductions, templates, units
from xarray_beam.model.key import Key
from xarray_beam.model.reductions import Reducer


def _offsets_coord(periods: periods_lib.Periods) -> xarray.Variable:
    """Positions within an output chunk: the period axis of partial results
    (the labels are set when the chunk is finished)."""
    return xarray.Variable((periods.dim,), np.arange(periods.per_chunk))


class _ReducePeriods:
    """Reduces one chunk to a partial result per output chunk it touches."""

    def __init__(
        self, reducer: Reducer, periods: periods_lib.Periods, times: np.ndarray
    ):
        self.reducer = reducer
        self.periods = periods
        self.times = times
        self.empty_chunks, self.owners = periods.empty_chunks()

    def __call__(self, element: tuple[Key, xarray.Dataset]):
        key, chunk = element
        if not isinstance(key, Key) or not isinstance(chunk, xarray.Dataset):
            raise TypeError(
                f"expected (Key, xarray.Dataset) pairs, got "
                f"({type(key).__name__}, {type(chunk).__name__})"
            )
        dim = self.periods.dim
        if key.vars is not None and not any(
            dim not in var.dims or reductions.reducible(var.dtype)
            for var in chunk.data_vars.values()
        ):
            return  # one non-numeric variable along time: dropped, as by xarray
        base = key.with_offsets(**{dim: None})
        if dim not in chunk.dims:
            # Variables without time, in chunks of their own: repeated along
            # every period, as xarray's resample does.
            numbers = np.arange(self.periods.chunk_count)
            yield from self._partials(base, chunk, numbers, np.zeros_like(numbers))
            return
        start = key.offsets.get(dim, 0)
        stop = start + chunk.sizes[dim]
        self._check_times(key, chunk, start, stop)
        periods = self.periods.of_positions(start, stop)
        per_chunk = self.periods.per_chunk
        yield from self._partials(
            base, chunk, periods // per_chunk, periods % per_chunk
        )
        owned = (self.owners >= start) & (self.owners < stop)
        if owned.any():
            # Output chunks made only of gaps get their shape from a time step
            # of this chunk; every value of theirs is masked when finished.
            rows = chunk.isel({dim: self.owners[owned] - start})
            numbers = self.empty_chunks[owned]
            yield from self._partials(base, rows, numbers, np.zeros_like(numbers))

    def _partials(self, base: Key, chunk: xarray.Dataset, numbers, bins):
        dim = self.periods.dim
        for number, partial in self.reducer.reduce_groups(
            chunk,
            dim,
            numbers,
            bins,
            _offsets_coord(self.periods),
            map_fn=threads.map_compute,
        ):
            yield base.with_offsets(**{dim: number * self.periods.per_chunk}), partial

    def _check_times(self, key: Key, chunk: xarray.Dataset, start: int, stop: int):
        dim = self.periods.dim
        if dim not in chunk.coords:
            raise ValueError(
                f"chunk {key} has no coordinate {dim!r}: resampling needs its times"
            )
        expected = self.times[start:stop]
        if len(expected) != stop - start or not np.array_equal(
            chunk[dim].values, expected
        ):
            raise ValueError(
                f"chunk {key} has times {_brief(chunk[dim].values)} along {dim!r}, "
                f"but the template has {_brief(expected)} at offsets {start} to "
                f"{stop}: give Resample the template of the dataset the chunks "
                f"come from"
            )


def _brief(values: np.ndarray) -> str:
    """The first and last of some times, for messages."""
    if not len(values):
        return "none"
    return f"[{values[0]} ... {values[-1]}] ({len(values)})"


class _Finish:
    """Labels the periods of a merged output chunk, masks its gaps, and gives
    its variables the template's dtypes and dimension order."""

    def __init__(self, periods: periods_lib.Periods, template: xarray.Dataset):
        self.periods = periods
        self.variables = {
            name: (var.dims, var.dtype) for name, var in template.data_vars.items()
        }

    def __call__(self, element: tuple[Key, xarray.Dataset]):
        key, chunk = element
        dim = self.periods.dim
        number = key.offsets[dim] // self.periods.per_chunk
        size = self.periods.chunk_size(number)
        chunk = chunk.isel({dim: slice(0, size)}).assign_coords(
            {dim: self.periods.labels[self.periods.chunk_periods(number)]}
        )
        gaps = self.periods.empty(number)
        kept = xarray.DataArray(~gaps, dims=dim)
        result = {}
        for name, var in chunk.data_vars.items():
            dims, dtype = self.variables[name]
            if gaps.any() and dtype.kind in "fc":
                var = var.where(kept)
            result[name] = var.astype(dtype, copy=False).transpose(*dims)
        return key, chunk.assign(result)


def resample_template(
    source: xarray.Dataset, periods: periods_lib.Periods, reducer: Reducer
) -> xarray.Dataset:
    """The template of resampling ``source`` into ``periods`` with ``reducer``.

    Numeric variables along the time dimension get one value per period, with
    time first as xarray gives it; other variables are repeated along time
    (non-numeric ones along it are dropped). Results that may hold NaN where
    xarray gives it (gaps in the data, ``min_count`` of sums) are float.

    Example:
      >>> import pandas as pd
      >>> from xarray_beam.model.periods import resample_periods
      >>> days = pd.date_range('2000-01-01', periods=72, freq='h')
      >>> times = days.delete(slice(24, 48))  # January 2 is missing
      >>> source = xarray.Dataset({'n': ('time', np.ones(48, int))},
      ...                         coords={'time': times})
      >>> out = resample_template(source, resample_periods(times, '1D'),
      ...                         Reducer('sum'))
      >>> out.sizes['time'], out.n.dtype  # NaN on January 2, as in xarray
      (3, dtype('float64'))
    """
    dim = periods.dim
    data_vars: dict[Hashable, xarray.Variable] = {}
    for name, var in source.data_vars.items():
        timed = dim in var.dims
        numeric = reductions.reducible(var.dtype)
        if timed and not numeric:
            continue
        rest = [d for d in var.dims if d != dim]
        sizes = {dim: periods.size, **{d: var.sizes[d] for d in rest}}
        if timed:
            dtype = reducer.result_dtype(var.dtype)
        else:
            dtype = reducer.constant_dtype(var.variable)
        may_be_nan = periods.has_gaps or (
            reducer.stat == "sum"
            and reducer.min_count is not None
            and (timed or var.ndim == 0)
        )
        if numeric and may_be_nan and dtype.kind not in "fc":
            dtype = np.dtype(np.float64)
        method = f"{dim}: {reducer.stat} (comment: resampled to {periods.freq})"
        previous = var.attrs.get("cell_methods")
        attrs = {
            **var.attrs,
            "cell_methods": f"{previous} {method}" if previous else method,
        }
        data_vars[name] = xarray.Variable(
            tuple(sizes), templates.placeholder(tuple(sizes.values()), dtype), attrs
        )
    coords: dict[Hashable, Any] = {
        name: coord.variable
        for name, coord in source.coords.items()
        if dim not in coord.dims
    }
    coords[dim] = xarray.Variable((dim,), periods.labels)
    return xarray.Dataset(data_vars, coords=coords, attrs=source.attrs)


class Resample(beam.PTransform):
    """A statistic per period of time (daily, monthly, 6-hourly, ...) of chunks.

    The equivalent of ``source.resample(time=freq).<stat>()`` in xarray, on
    ``(Key, Dataset)`` chunks of ``template``: e.g. daily maxima of hourly
    data with ``Resample('1D', 'max', template=source)``.

    Args:
      freq: a pandas frequency: '1D' (days), '1MS' (months, labelled by their
        first day), '6h', 'YS', ... as xarray's ``resample`` takes it.
      stat: 'mean', 'sum', 'count', 'min', 'max', 'var' or 'std'.
      template: the dataset the chunks come from (or its template): its whole
        time axis places every period, so it is required.
      dim: the time dimension.
      closed, label, origin, offset: as for ``xarray.Dataset.resample``
        (defaults: periods closed and labelled on the left, except for
        end-anchored frequencies such as 'ME'; starting at midnight of the
        first day).
      skipna: ignore NaNs (default) or propagate them.
      min_count: results from fewer valid values are NaN.
      ddof: delta degrees of freedom of 'var' and 'std' (the divisor is
        N - ddof); 0 by default.
      dtype: dtype of the results (default: as xarray gives it); values
        always accumulate in float64.
      periods_per_chunk: whole periods per output chunk (default 1), e.g. 4
        for '6h' of chunks of 24 hours gives one output chunk per input one.
      fanout: intermediate combining steps for hot keys.
      temp_store: merge partial results through files there instead of
        Beam's combine, bounding memory on local runners (chosen for you by
        default, as for :class:`~xarray_beam.Climatology`; ``False`` always
        uses Beam's combine).
      max_mem: partial results a worker holds before writing them out to
        ``temp_store``: bytes, or a size such as '256MB' or '1GiB'. Default
        256 MiB.
      storage_options: fsspec options for ``temp_store``.
      num_threads: chunks a worker reduces at once.

    Output: ``(key, dataset)`` pairs with the time offset of the output
    chunk (a number of periods), ``periods_per_chunk`` periods each (the
    last may hold fewer), matching ``output_template()``. Chunks that cut
    a period are merged; periods without data (gaps) are NaN for every
    statistic (count included), as xarray gives them; variables without
    ``dim`` are repeated along it, as xarray does; non-numeric variables
    along ``dim`` are dropped.

    Raises:
      ValueError: when the transform is built, for an unknown statistic,
        frequency or option, or a ``dim`` that is missing, not datetime64,
        not increasing or holding NaT; when it runs, for a chunk whose times
        are not the template's at its offset.

    Example:
      >>> import pandas as pd
      >>> source = xarray.Dataset(
      ...     {'t': ('time', np.arange(30.0))},
      ...     coords={'time': pd.date_range('2000-01-01', periods=30, freq='h')})
      >>> daily = Resample('1D', 'max', template=source)
      >>> daily.output_template().sizes['time']
      2
    """

    def __init__(
        self,
        freq: Any,
        stat: str = "mean",
        *,
        template: xarray.Dataset,
        dim: str = "time",
        closed: str | None = None,
        label: str | None = None,
        origin: Any = "start_day",
        offset: Any = None,
        skipna: bool = True,
        min_count: int | None = None,
        ddof: int = 0,
        dtype: Any = None,
        periods_per_chunk: int = 1,
        fanout: int | None = None,
        temp_store: str | Literal[False] | None = None,
        max_mem: int | str = "256MiB",
        storage_options: dict | None = None,
        num_threads: int | None = None,
    ):
        super().__init__()
        max_mem = units.byte_size(max_mem, "max_mem")
        if not isinstance(template, xarray.Dataset):
            raise TypeError(
                f"template must be an xarray.Dataset (the data the chunks come "
                f"from, or its template), got {type(template).__name__}"
            )
        if dim not in template.dims:
            raise ValueError(
                f"cannot resample along {dim!r}: the data has dimensions "
                f"{list(template.dims)}"
            )
        if dim not in template.coords:
            raise ValueError(
                f"cannot resample along {dim!r}: it has no coordinate (resampling "
                f"needs datetime64 times)"
            )
        self.reducer = Reducer(
            cast(reductions.Stat, stat),  # checked by Reducer
            skipna=skipna,
            min_count=min_count,
            ddof=ddof,
            dtype=dtype,
        )
        self.periods = periods_lib.resample_periods(
            template[dim].values,
            freq,
            dim=dim,
            closed=closed,
            label=label,
            origin=origin,
            offset=offset,
            per_chunk=periods_per_chunk,
        )
        self.times = np.asarray(template[dim].values)
        self._template = resample_template(template, self.periods, self.reducer)
        self.fanout = combiners.check_fanout(fanout)
        self.temp_store = temp_store
        self.max_mem = max_mem
        self.storage_options = storage_options
        self.num_threads = num_threads
        self._estimate = combiners.partial_bytes(template, [dim], self.periods.size)

    def output_template(self) -> xarray.Dataset:
        """The template of the output, for ``ChunksToZarr``: the time
        dimension holds the periods, labelled as xarray labels them."""
        return self._template

    def zarr_chunks(self, read_chunks: Mapping[str, int]) -> dict[str, int]:
        """Zarr chunks for the output, which hold one output element each:
        ``periods_per_chunk`` periods, and ``read_chunks`` (the chunks the
        input is read in) along the other dimensions.

        Example:
          >>> import pandas as pd
          >>> source = xarray.Dataset(
          ...     {'t': (('time', 'x'), np.zeros((48, 6)))},
          ...     coords={'time': pd.date_range('2000-01-01', periods=48, freq='h')})
          >>> Resample('6h', template=source, periods_per_chunk=4).zarr_chunks(
          ...     {'time': 24, 'x': 3})
          {'time': 4, 'x': 3}
        """
        dim = self.periods.dim
        chunks = {dim: self.periods.per_chunk}
        chunks.update({d: s for d, s in read_chunks.items() if d != dim})
        return chunks

    def expand(self, pcoll):
        return (
            pcoll
            | "ReducePeriods"
            >> beam.ParDo(
                threadmap.ThreadMap(
                    _ReducePeriods(self.reducer, self.periods, self.times),
                    self.num_threads,
                )
            ).with_output_types(coders.KEYED_PARTIAL)
            | "Combine"
            >> combiners.choose_merge(
                pcoll.pipeline,
                self.reducer,
                self.fanout,
                self.temp_store,
                self.max_mem,
                self.storage_options,
                self._estimate,
            )
            | "Finish"
            >> beam.Map(_Finish(self.periods, self._template)).with_output_types(
                coders.KEYED_DATASET
            )
        )
