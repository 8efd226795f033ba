"""Climatologies and anomalies: statistics per hour, month, day of year, season.

``Climatology`` reduces every input chunk to one partial result per group
(e.g. per month x hour) *before* the shuffle, so only small partials cross
it; Beam's combiner lifting merges the partials of a worker before they
leave it. Output chunks hold one group each, keyed by the group's position
along each group dimension, ready for ``ChunksToZarr`` with the template from
``climatology_template``.

Groups gather time steps across years: a 'dayofyear' climatology has 366
values, each over that calendar day of every year. Statistics per day,
month or year (a time series) are ``Resample``'s (``resample.py``).

Leap days: 'dayofyear' numbers days on a leap-year calendar (1 to 366), so a
calendar date always has the same number: March 1 is day 61 in every year,
and day 60 (February 29) only collects leap days. This keeps dates aligned
across years, unlike pandas' day of year, which shifts March to December by
one day in non-leap years.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Literal, cast

import apache_beam as beam
import numpy as np
import pandas as pd
import xarray

from xarray_beam.beam import coders, combiners, threadmap
from xarray_beam.io import threads
from xarray_beam.model import reductions, templates, units
from xarray_beam.model.key import Key
from xarray_beam.model.reductions import Reducer


def _hour(times: pd.DatetimeIndex) -> np.ndarray:
    return np.asarray(times.hour)


def _month(times: pd.DatetimeIndex) -> np.ndarray:
    return np.asarray(times.month)


def _day_of_leap_year(times: pd.DatetimeIndex) -> np.ndarray:
    day = np.asarray(times.day_of_year)
    late_in_common_year = ~np.asarray(times.is_leap_year) & (
        np.asarray(times.month) > 2
    )
    return day + late_in_common_year


_SEASONS = np.array(["DJF", "JJA", "MAM", "SON"])  # sorted, as xarray orders them
_SEASON_OF_MONTH = np.array(
    [
        "",
        "DJF",
        "DJF",
        "MAM",
        "MAM",
        "MAM",
        "JJA",
        "JJA",
        "JJA",
        "SON",
        "SON",
        "SON",
        "DJF",
    ]
)


def _season(times: pd.DatetimeIndex) -> np.ndarray:
    return _SEASON_OF_MONTH[np.asarray(times.month)]


MAX_DENSE = 24

STANDARD_GROUPS: dict[str, tuple[np.ndarray, Callable]] = {
    "hour": (np.arange(24), _hour),
    "month": (np.arange(1, 13), _month),
    "dayofyear": (np.arange(1, 367), _day_of_leap_year),
    "season": (_SEASONS, _season),
}


@dataclasses.dataclass(frozen=True)
class Grouping:
    """How time steps fall into groups.

    Attributes:
      names: the group dimensions of the result, e.g. ('month', 'hour').
      labels: every possible label along each group dimension (the result's
        coordinates).
      functions: for each group dimension, times -> labels.
    """

    names: tuple[str, ...]
    labels: tuple[np.ndarray, ...]
    functions: tuple[Callable[[pd.DatetimeIndex], np.ndarray], ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(labels) for labels in self.labels)

    @property
    def dense(self) -> bool:
        """Whether the last group dimension is kept whole in each output chunk.

        True when it has at most ``MAX_DENSE`` labels (hour, month, season):
        then a chunk of a month x hour climatology holds all 24 hours of a
        month, and partial results carry the 24 hours as an array axis
        instead of being 24 separate elements.
        """
        return len(self.labels[-1]) <= MAX_DENSE

    @property
    def keyed(self) -> tuple[str, ...]:
        """The group dimensions with one label per output chunk."""
        return self.names[:-1] if self.dense else self.names

    def indices(self, times: pd.DatetimeIndex) -> tuple[np.ndarray, ...]:
        """For each group dimension, the position of each time's label.

        Raises:
          ValueError: if a label is not among the known labels.
        """
        result = []
        for name, labels, fn in zip(
            self.names, self.labels, self.functions, strict=True
        ):
            values = np.asarray(fn(times))
            order = np.argsort(labels, kind="stable")
            found = np.searchsorted(labels, values, sorter=order)
            found = np.clip(found, 0, len(labels) - 1)
            positions = order[found]
            bad = labels[positions] != values
            if bad.any():
                raise ValueError(
                    f"group {name!r} gives label {values[bad][0]!r}, which is not "
                    f"among its labels {list(labels)[:10]}"
                )
            result.append(positions)
        return tuple(result)

    def split(self, times: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray | None]:
        """For each time: the number of its keyed labels, and its dense bin."""
        indices = self.indices(times)
        keyed = indices[:-1] if self.dense else indices
        shape = self.shape[: len(keyed)]
        numbers = (
            np.ravel_multi_index(keyed, shape) if keyed else np.zeros(len(times), int)
        )
        return numbers, (indices[-1] if self.dense else None)

    def offsets(self, number: int) -> dict[str, int]:
        """Key offsets of the output chunk of a keyed group number."""
        positions = np.unravel_index(number, self.shape[: len(self.keyed)])
        offsets = {name: int(p) for name, p in zip(self.keyed, positions, strict=True)}
        if self.dense:
            offsets[self.names[-1]] = 0
        return offsets

    def labels_of(self, number: int) -> dict[str, Any]:
        """Labels of the keyed group dimensions of a keyed group number."""
        offsets = self.offsets(number)
        return {
            name: labels[offsets[name]]
            for name, labels in zip(self.names, self.labels, strict=True)
            if name in self.keyed
        }

    def restricted_to(self, times: pd.DatetimeIndex) -> Grouping:
        """The same grouping with only the labels that ``times`` produce."""
        labels = tuple(
            known[np.isin(known, np.unique(np.asarray(fn(times))))]
            for known, fn in zip(self.labels, self.functions, strict=True)
        )
        return dataclasses.replace(self, labels=labels)

    def with_labels(self, labels: Sequence[np.ndarray]) -> Grouping:
        """The same grouping with other label sets (e.g. a climatology's)."""
        return dataclasses.replace(self, labels=tuple(np.asarray(a) for a in labels))

    def dense_coord(self) -> xarray.Variable | None:
        if not self.dense:
            return None
        return xarray.Variable((self.names[-1],), self.labels[-1])

    def coords(self) -> dict[str, np.ndarray]:
        return dict(zip(self.names, self.labels, strict=True))


def make_grouping(
    by: str | Sequence[str] | Callable, labels: Sequence[Any] | None = None
) -> Grouping:
    """A ``Grouping`` from a group name, a tuple of names, or a function.

    Args:
      by: 'hour', 'month', 'dayofyear', 'season', a tuple of them (e.g.
        ``('month', 'hour')``), or a function mapping a ``pandas.DatetimeIndex``
        to labels (the result dimension is named after the function, or
        'group' for a lambda).
      labels: for a function, every label it can return (the result's
        coordinate); required, so output chunks can be placed before the
        pipeline runs.

    Raises:
      ValueError: for unknown group names, repeated names, or a function
        without labels.

    Example:
      >>> make_grouping(('month', 'hour')).shape
      (12, 24)
    """
    if callable(by):
        if labels is None:
            raise ValueError(
                "a grouping function needs labels=[...], every label it can "
                "return, to place output chunks before the pipeline runs"
            )
        name = getattr(by, "__name__", "group")
        if not name.isidentifier() or name == "<lambda>":
            name = "group"
        values = np.asarray(list(labels))
        if len(set(values.tolist())) != len(values):
            raise ValueError(f"labels of the grouping function repeat: {list(labels)}")
        return Grouping((name,), (values,), (by,))
    if labels is not None:
        raise ValueError("labels only apply when grouping by a function")
    names = (by,) if isinstance(by, str) else tuple(by)
    if not names:
        raise ValueError("by must name at least one group")
    for name in names:
        if name not in STANDARD_GROUPS:
            raise ValueError(
                f"cannot group by {name!r}: it is not a time component; choose "
                f"from {list(STANDARD_GROUPS)}, a tuple of them, or a function. "
                f"Groups gather time steps across years (a climatology); for a "
                f"statistic per day, month or year, use Resample('1D', ...), "
                f"Resample('1MS', ...) or Resample('YS', ...)"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"group names repeat: {names}")
    return Grouping(
        names,
        tuple(STANDARD_GROUPS[n][0] for n in names),
        tuple(STANDARD_GROUPS[n][1] for n in names),
    )


def _times(chunk: xarray.Dataset, dim: str, key: Key) -> pd.DatetimeIndex:
    if dim not in chunk.dims:
        raise ValueError(
            f"chunk {key} has no dimension {dim!r} to group (dimensions: "
            f"{list(chunk.dims)})"
        )
    if dim not in chunk.coords or chunk[dim].dtype.kind != "M":
        dtype = chunk[dim].dtype if dim in chunk.coords else "no coordinate"
        raise ValueError(
            f"grouping by time components needs datetime64 values along {dim!r}, "
            f"but chunk {key} has {dtype}"
        )
    return pd.DatetimeIndex(chunk[dim].values)


def check_input(
    template: xarray.Dataset | None,
    dim: str,
    weights: xarray.DataArray | None = None,
) -> None:
    """Check a dataset (or template) can be grouped along ``dim``.

    Raises:
      ValueError: if ``dim`` is missing or not datetime64, or the weights
        have dimensions the data lacks.
    """
    if template is None:
        return
    if dim not in template.dims:
        raise ValueError(
            f"cannot group along {dim!r}: the data has dimensions {list(template.dims)}"
        )
    if dim not in template.coords or template[dim].dtype.kind != "M":
        raise ValueError(
            f"grouping by time components needs datetime64 values along {dim!r}, "
            f"got {template[dim].dtype if dim in template.coords else 'none'}"
        )
    combiners.check_weight_dims(template, weights)


class _GroupChunk:
    """Reduces one chunk to a partial result per group."""

    def __init__(self, reducer: Reducer, grouping: Grouping, dim: str, weights):
        self.reducer = reducer
        self.grouping = grouping
        self.dim = dim
        self.weights = weights

    def __call__(self, element: tuple[Key, xarray.Dataset]):
        key, chunk = element
        base = key.with_offsets(**{self.dim: None})
        if self.dim not in chunk.dims:
            # Only variables without time (e.g. one static field, read one
            # variable per element): broadcast along every group.
            yield from self._static(base, chunk, self._keyed_numbers())
            return
        numbers, bins = self.grouping.split(_times(chunk, self.dim, key))
        weights = None
        if self.weights is not None:
            weights = reductions.weights_for(self.weights, key.offsets, chunk, key)
        for number, partial in self.reducer.reduce_groups(
            chunk,
            self.dim,
            numbers,
            bins,
            self.grouping.dense_coord(),
            weights,
            map_fn=threads.map_compute,
        ):
            partial.groups = self.grouping.labels_of(number)
            yield base.with_offsets(**self.grouping.offsets(number)), partial
        static = chunk.drop_dims(self.dim)
        if static.data_vars and key.offsets.get(self.dim, 0) == 0:
            # Static variables come with every time chunk, but these only get
            # the groups the chunk's times fall in; the first time chunk also
            # gives them the other groups, so that they are broadcast along
            # every group whatever the read mode (as with one variable per
            # element, where a static chunk has no times to go by).
            absent = np.setdiff1d(self._keyed_numbers(), numbers)
            yield from self._static(base, static, absent)

    def _keyed_numbers(self) -> np.ndarray:
        """The number of every combination of keyed labels."""
        return np.arange(math.prod(self.grouping.shape[: len(self.grouping.keyed)]))

    def _static(self, base: Key, static: xarray.Dataset, numbers: np.ndarray):
        """Partial results of variables without ``dim``, one per group number:
        the variables as they are (xarray's groupby broadcasts them along the
        group dimensions)."""
        if not len(numbers):
            return
        dense = self.grouping.dense_coord()
        # Without ``dim`` every variable is a constant of each group's partial
        # result, which reduce_groups broadcasts along the dense dimension.
        for number, partial in self.reducer.reduce_groups(
            static,
            self.dim,
            numbers,
            None if dense is None else np.zeros(len(numbers), int),
            dense,
        ):
            partial.groups = self.grouping.labels_of(number)
            yield base.with_offsets(**self.grouping.offsets(number)), partial


class Climatology(beam.PTransform):
    """A statistic per group of time steps (hour, month, ...) of chunks.

    Groups gather time steps across years: by 'dayofyear', each of the 366
    results is over that calendar day of every year. For one value per day
    (or month, or year) of the data, use ``Resample('1D', ...)``.

    Args:
      by: 'hour', 'month', 'dayofyear', 'season', a tuple such as
        ``('month', 'hour')``, or a function of a ``pandas.DatetimeIndex``
        (with ``labels``).
      stat: 'mean', 'sum', 'count', 'min', 'max', 'var' or 'std'.
      dim: the time dimension.
      skipna: ignore NaNs (default) or propagate them.
      min_count: results from fewer valid values are NaN.
      ddof: delta degrees of freedom of 'var' and 'std' (the divisor is
        N - ddof); 0 by default.
      dtype: dtype of the results (default: as xarray gives it); values
        always accumulate in float64.
      weights: a DataArray along ``dim`` (and possibly other dims) weighting
        each time step (mean, sum, var, std); values a float rounding below
        zero count as 0, as for :class:`~xarray_beam.Mean`.
      labels: every label of a grouping function.
      fanout: intermediate combining steps for hot keys.
      template: the dataset the chunks come from (or its template), to check
        dims, dtypes and weights while the pipeline is built. The output then
        has only the labels its times produce (e.g. the months present), so
        every output chunk is written; without it, every possible label.
      temp_store: merge partial results through files there instead of
        Beam's combine, bounding memory on local runners (see
        :class:`~xarray_beam.CombineThroughStorage`). By default chosen for
        you: with a ``template`` whose partial results exceed 64 MiB, on a
        runner whose workers run on this machine, a local temporary
        directory; ``False`` always uses Beam's combine.
      max_mem: partial results a worker holds before writing them out to
        ``temp_store``: bytes, or a size such as '256MB' or '1GiB'. Default
        256 MiB.
      storage_options: fsspec options for ``temp_store``.
      num_threads: chunks a worker reduces at once.

    Output: ``(key, dataset)`` pairs, one per group and region, with the group
    dimensions (length 1, labelled) in place of ``dim`` and the group's
    positions as key offsets. ``template()`` (or ``climatology_template``)
    gives the matching template for ``ChunksToZarr``, whose attributes say
    what the output is (statistic, grouping and source; see
    :func:`~xarray_beam.climatology_template`). Variables without ``dim``
    (static fields such as surface geopotential or a land-sea mask) are
    broadcast along every group of the output, as xarray's groupby does,
    whether they come with the other variables or alone
    (``DatasetToChunks(..., split_vars=True)``).

    Raises:
      ValueError: when the transform is built, for an unknown statistic or
        group, invalid options, and, with ``template``, a missing or
        non-datetime ``dim`` or weights with dimensions the data lacks.

    Example:
      ``chunks | Climatology(('month', 'hour'))``
    """

    def __init__(
        self,
        by: str | Sequence[str] | Callable = "month",
        stat: str = "mean",
        *,
        dim: str = "time",
        skipna: bool = True,
        min_count: int | None = None,
        ddof: int = 0,
        dtype: Any = None,
        weights: xarray.DataArray | None = None,
        labels: Sequence[Any] | None = None,
        fanout: int | None = None,
        template: xarray.Dataset | None = None,
        temp_store: str | Literal[False] | None = None,
        max_mem: int | str = "256MiB",
        storage_options: dict | None = None,
        num_threads: int | None = None,
    ):
        super().__init__()
        max_mem = units.byte_size(max_mem, "max_mem")
        self.grouping = make_grouping(by, labels)
        self.num_threads = num_threads
        self.dim = dim
        if dim in self.grouping.names:
            raise ValueError(f"a group dimension may not be named {dim!r}")
        self.weights = reductions.check_weights(weights, [dim])
        self.reducer = Reducer(
            cast(reductions.Stat, stat),  # checked by Reducer
            skipna=skipna,
            min_count=min_count,
            ddof=ddof,
            dtype=dtype,
            weighted=weights is not None,
        )
        check_input(template, dim, self.weights)
        if template is not None:
            # Only the groups the data has: every output chunk gets written.
            self.grouping = self.grouping.restricted_to(template.indexes[dim])
        self.fanout = combiners.check_fanout(fanout)
        self.temp_store = temp_store
        self.max_mem = max_mem
        self.storage_options = storage_options
        self._estimate = (
            combiners.partial_bytes(template, [dim], math.prod(self.grouping.shape))
            if template is not None
            else None
        )

    def template(self, source: xarray.Dataset) -> xarray.Dataset:
        """The template of this climatology of ``source``, for
        ``ChunksToZarr``: group dimensions in place of ``dim``, and attributes
        saying what it is (see :func:`~xarray_beam.climatology_template`).

        Example:
          >>> ds = xarray.Dataset(
          ...     {'t': ('time', np.arange(48.0))},
          ...     coords={'time': pd.date_range('2000-01-01', periods=48, freq='h')})
          >>> template = Climatology('hour', 'max', template=ds).template(ds)
          >>> dict(template.sizes), template.attrs['climatology_statistic']
          ({'hour': 24}, 'max')
        """
        return climatology_template(
            source,
            self.grouping,
            dim=self.dim,
            stat=self.reducer.stat,
            dtype=self.reducer.dtype,
        )

    def zarr_chunks(self, read_chunks: Mapping[str, int]) -> dict[str, int]:
        """Zarr chunks for the output, which hold one output element each:
        one label along each keyed group dimension (the dense one whole) and
        ``read_chunks`` (the chunks the input is read in) along the other
        dimensions.

        Example:
          >>> Climatology(('month', 'hour')).zarr_chunks({'time': 240, 'x': 10})
          {'month': 1, 'hour': -1, 'x': 10}
        """
        chunks = {name: 1 for name in self.grouping.keyed}
        if self.grouping.dense:
            chunks[self.grouping.names[-1]] = -1
        chunks.update({d: s for d, s in read_chunks.items() if d != self.dim})
        return chunks

    def expand(self, pcoll):
        return (
            pcoll
            | "ReduceGroups"
            >> beam.ParDo(
                threadmap.ThreadMap(
                    _GroupChunk(self.reducer, self.grouping, self.dim, self.weights),
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
        )


def climatology_template(
    source: xarray.Dataset,
    by: str | Sequence[str] | Callable | Grouping,
    *,
    dim: str = "time",
    stat: str = "mean",
    dtype: Any = None,
    labels: Sequence[Any] | None = None,
) -> xarray.Dataset:
    """The template of a climatology of ``source``, for ``ChunksToZarr``.

    Every data variable gets the group dimensions first, in place of ``dim``
    (variables without ``dim`` are broadcast along them, as ``Climatology``
    and xarray's groupby do); non-numeric variables along ``dim`` are dropped.
    Variables keep their attributes (units, ...), with the statistic added to
    their CF ``cell_methods``. The dataset keeps the source's attributes and
    records what it is (see ``provenance``): ``climatology_statistic``
    (e.g. 'mean'), ``climatology_grouping`` (e.g. 'month,hour'),
    ``climatology_dim`` and, when the source was read from a store (its
    ``encoding['source']``, as ``open_zarr`` sets it), ``climatology_source``.

    Args:
      source: the dataset (or its template) the climatology is made of.
      by: the grouping: 'hour', 'month', 'dayofyear', 'season', a tuple of
        them, a function of a ``pandas.DatetimeIndex`` (with ``labels``) or a
        ``Grouping``.
      dim: the time dimension.
      stat: 'mean', 'sum', 'count', 'min', 'max', 'var' or 'std'.
      dtype: dtype of the results (default: as the statistic gives).
      labels: every label of a grouping function.

    Example:
      >>> ds = xarray.Dataset(
      ...     {'t2m': (('time', 'x'), np.zeros((48, 3), np.float32))},
      ...     coords={'time': pd.date_range('2000-01-01', periods=48, freq='h')})
      >>> template = climatology_template(ds, ('month', 'hour'))
      >>> dict(template.t2m.sizes), template.attrs['climatology_grouping']
      ({'month': 12, 'hour': 24, 'x': 3}, 'month,hour')
    """
    grouping = by if isinstance(by, Grouping) else make_grouping(by, labels)
    check_input(source, dim)
    reducer = Reducer(cast(reductions.Stat, stat), dtype=dtype)  # checked by Reducer
    group_sizes: dict[Hashable, int] = dict(
        zip(grouping.names, grouping.shape, strict=True)
    )
    data_vars: dict[Hashable, xarray.Variable] = {}
    for name, var in source.data_vars.items():
        if dim in var.dims and not reductions.reducible(var.dtype):
            continue
        rest = [d for d in var.dims if d != dim]
        sizes = {**group_sizes, **{d: var.sizes[d] for d in rest}}
        out_dtype = (
            reducer.result_dtype(var.dtype)
            if dim in var.dims
            else reducer.constant_dtype(var.variable)
        )
        # CF's record of how the values came about (statistic and grouping).
        method = f"{dim}: {stat} (comment: by {' and '.join(grouping.names)})"
        previous = var.attrs.get("cell_methods")
        attrs = {
            **var.attrs,
            "cell_methods": f"{previous} {method}" if previous else method,
        }
        data_vars[name] = xarray.Variable(
            tuple(sizes),
            templates.placeholder(tuple(sizes.values()), out_dtype),
            attrs,
        )
    coords = {
        name: coord.variable
        for name, coord in source.coords.items()
        if dim not in coord.dims
    }
    coords.update(grouping.coords())
    attrs = {**source.attrs, **provenance(source, grouping, dim, stat)}
    return xarray.Dataset(data_vars, coords=coords, attrs=attrs)


def provenance(
    source: xarray.Dataset, grouping: Grouping, dim: str, stat: str
) -> dict[str, str]:
    """The attributes saying what a climatology of ``source`` is: statistic,
    grouping, time dimension, and the source's path or URL when known.

    Example:
      >>> ds = xarray.Dataset(coords={'time': pd.date_range('2000', periods=2)})
      >>> ds.encoding['source'] = 'era5.zarr'
      >>> provenance(ds, make_grouping(('month', 'hour')), 'time', 'max')
      ... # doctest: +NORMALIZE_WHITESPACE
      {'climatology_statistic': 'max', 'climatology_grouping': 'month,hour',
       'climatology_dim': 'time', 'climatology_source': 'era5.zarr'}
    """
    attrs = {
        "climatology_statistic": stat,
        "climatology_grouping": ",".join(grouping.names),
        "climatology_dim": dim,
    }
    origin = source.encoding.get("source")
    if isinstance(origin, str) and origin:
        attrs["climatology_source"] = origin
    return attrs


class _Subtract:
    """Subtracts the climatology of each time step from a chunk."""

    def __init__(self, grouping: Grouping, dim: str):
        self.grouping = grouping
        self.dim = dim

    def __call__(self, element, climatology: xarray.Dataset):
        key, chunk = element
        region = {
            d: slice(key.offsets.get(d, 0), key.offsets.get(d, 0) + size)
            for d, size in chunk.sizes.items()
            if d != self.dim and d in climatology.dims
        }
        in_climatology = [n for n in chunk.data_vars if n in climatology.data_vars]
        timed = [n for n in in_climatology if self.dim in chunk[n].dims]
        result = chunk.copy()
        if timed:
            indices = self.grouping.indices(_times(chunk, self.dim, key))
            selection = {
                name: xarray.DataArray(index, dims=self.dim)
                for name, index in zip(self.grouping.names, indices, strict=True)
            }
            for name in timed:
                var = chunk[name]
                clim = _matching(climatology[name], chunk, region, key)
                clim = clim.isel(selection).drop_vars(
                    list(clim.coords), errors="ignore"
                )
                anomaly = var.variable - clim.variable.transpose(*var.dims)
                result[name] = anomaly.astype(var.dtype, copy=False)
        for name in in_climatology:
            var = chunk[name]
            if name in timed or var.dtype.kind not in "iufc":
                continue
            clim = _matching(climatology[name], chunk, region, key)
            result[name] = self._static_anomaly(name, var, clim, key)
        return key, result

    def _static_anomaly(
        self,
        name: Hashable,
        var: xarray.DataArray,
        clim: xarray.DataArray,
        key: Key,
    ) -> xarray.Variable:
        """A variable without ``dim`` minus its climatology, as xarray's
        ``ds.groupby(...) - climatology`` gives it at every time step: the
        climatology must be the same in every group (where defined), as it
        is for a climatology of the variable itself, so the anomaly is too."""
        groups = [g for g in self.grouping.names if g in clim.dims]
        clim = clim.drop_vars(list(clim.coords))
        lowest = clim.min(groups, skipna=True) if groups else clim
        highest = clim.max(groups, skipna=True) if groups else clim
        if not np.array_equal(lowest.values, highest.values, equal_nan=True):
            raise ValueError(
                f"variable {name!r} of chunk {key} has no {self.dim!r} dimension, "
                f"but its climatology varies along {groups}: its anomaly would "
                f"vary in time, which a chunk without {self.dim!r} cannot hold. "
                f"Use a climatology that is the same in every group for it, or "
                f"leave it out of the climatology (it then passes through)."
            )
        anomaly = var.variable - lowest.variable
        if set(anomaly.dims) != set(var.dims):
            raise ValueError(
                f"variable {name!r} of chunk {key} has dimensions {var.dims}, but "
                f"its climatology has {clim.dims} besides the group dimensions"
            )
        return anomaly.transpose(*var.dims).astype(var.dtype, copy=False)


def _matching(
    clim: xarray.DataArray,
    chunk: xarray.Dataset,
    region: dict[str, slice],
    key: Key,
) -> xarray.DataArray:
    """The part of a climatology variable that lies under a chunk.

    By the key's offsets when the labels there agree with the chunk's (the
    usual case, and the only one for dims without labels); by label when they
    do not, e.g. for chunks of a selection whose offsets count from its start.
    """
    region = {d: s for d, s in region.items() if d in clim.dims}
    part = clim.isel(region)
    labelled = [d for d in region if d in chunk.indexes and d in clim.indexes]
    if all(
        part.sizes[d] == chunk.sizes[d]
        and np.array_equal(part.indexes[d], chunk.indexes[d])
        for d in labelled
    ):
        return part
    try:
        return clim.sel({d: chunk.indexes[d] for d in labelled})
    except KeyError as error:
        raise ValueError(
            f"chunk {key} has labels the climatology lacks along "
            f"{labelled} ({error}); it must cover the chunk's region"
        ) from error


class Anomaly(beam.PTransform):
    """Subtract a climatology from chunks, time step by time step.

    Args:
      climatology: the climatology (an in-memory or lazily opened Dataset with
        the group dimensions, e.g. from ``Climatology``), or a
        ``beam.pvalue.AsSingleton`` of one.
      by, labels, dim: the grouping the climatology was made with.

    Variables missing from the climatology pass through. A numeric variable
    without ``dim`` (a static field such as surface geopotential) gets what
    xarray's ``ds.groupby(...) - climatology`` gives at each time step: its
    values minus its climatology, which must be the same in every group
    (as for a climatology made from it; the anomaly is then 0 where both
    are defined), without a time dimension, so the output keeps the
    source's layout in every read mode. Other variables without ``dim``
    pass through.

    Raises:
      ValueError: when the transform is built, if a Dataset climatology lacks
        the group dimensions; when it runs, if the climatology of a variable
        without ``dim`` differs between groups.

    Example:
      ``chunks | Anomaly(climatology, ('month', 'hour'))``
    """

    def __init__(
        self,
        climatology: xarray.Dataset | beam.pvalue.AsSideInput,
        by: str | Sequence[str] | Callable = "month",
        *,
        dim: str = "time",
        labels: Sequence[Any] | None = None,
    ):
        super().__init__()
        self.grouping = make_grouping(by, labels)
        self.dim = dim
        if isinstance(climatology, xarray.Dataset):
            missing = [n for n in self.grouping.names if n not in climatology.dims]
            if missing:
                raise ValueError(
                    f"the climatology lacks group dimension(s) {missing}; it has "
                    f"{list(climatology.dims)}"
                )
            # Time steps are looked up among the climatology's own labels.
            self.grouping = self.grouping.with_labels(
                [climatology[name].values for name in self.grouping.names]
            )
        elif not isinstance(climatology, beam.pvalue.AsSideInput):
            raise TypeError(
                f"climatology must be an xarray.Dataset or a beam.pvalue."
                f"AsSingleton, got {type(climatology).__name__}"
            )
        self.climatology = climatology

    def expand(self, pcoll):
        subtract = _Subtract(self.grouping, self.dim)
        return pcoll | "Subtract" >> beam.Map(
            subtract, self.climatology
        ).with_output_types(coders.KEYED_DATASET)
