"""Reductions as mergeable partial results (pure NumPy, no Beam).

A ``Partial`` holds, for every data variable of a chunk, the few arrays from
which a statistic can be finished (sum and count for a mean; count, mean and
the sum of squared deviations for a variance, ...). Partials of different
chunks merge exactly, in any order: sums add, minima take the minimum, and
variances merge with the numerically stable parallel formula of Chan et al.
(no sum of squares). Everything accumulates in float64 (int64 for sums of
integers), and counts are stored as a scalar while they are the same
everywhere, which keeps partials of NaN-free data small.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
import xarray

Stat = Literal["mean", "sum", "count", "min", "max", "var", "std"]
STATS: tuple[str, ...] = ("mean", "sum", "count", "min", "max", "var", "std")
# Statistics that leave data they are not reduced over as it is (in xarray,
# mean, sum, min and max over no axis keep values and dtype; count gives ones
# and var zeros; 0-d variables are always reduced, mean giving floats).
_IDENTITY_STATS = frozenset({"mean", "sum", "min", "max"})

_FIELDS = {
    "count": ("n",),
    "sum": ("n", "s"),
    "mean": ("n", "s"),
    "min": ("n", "v"),
    "max": ("n", "v"),
    "var": ("n", "mean", "m2"),
    "std": ("n", "mean", "m2"),
}


@dataclasses.dataclass
class VariablePartial:
    """Partial results for one variable.

    Attributes:
      dims: dimensions of the result.
      shape: shape of the result.
      fields: arrays of the result's shape (or 0-d, broadcast): 'n' count of
        valid values (or 'w', their total weight), 's' sum, 'mean', 'm2' sum
        of squared deviations, 'v' extreme value, 'nan' whether a NaN was
        seen (only with skipna=False).
      dtype: dtype of the values reduced.
      attrs: the variable's attributes.
    """

    dims: tuple[Hashable, ...]
    shape: tuple[int, ...]
    fields: dict[str, np.ndarray]
    dtype: np.dtype
    attrs: dict[str, Any]


MapFn = Callable[[Callable[[Any], Any], list[Any]], list[Any]]
"""``map_fn(fn, items)`` returns ``[fn(item) for item in items]``, maybe on
several threads."""

# Groups smaller than this reduce their variables one after the other: a
# thread's hand-off costs more than their arithmetic.
PARALLEL_BYTES = 2**20


def _map(fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    return [fn(item) for item in items]


@dataclasses.dataclass
class Partial:
    """Partial results for a chunk: mergeable, then finished into a Dataset.

    Attributes:
      variables: partial results of the reduced variables.
      constants: variables that do not span the reduced dimensions, kept as
        they are.
      coords: coordinates of the result; None marks a non-index coordinate
        whose values differed between the merged pieces (it is dropped, as
        xarray drops conflicting coordinates in arithmetic).
      attrs: dataset attributes.
      groups: for a group's partial result, the label of the group along
        each group dimension; these dimensions (of length 1) lead every data
        variable of the result.
    """

    variables: dict[Hashable, VariablePartial]
    constants: dict[Hashable, xarray.Variable]
    coords: dict[Hashable, xarray.Variable | None]
    attrs: dict[str, Any]
    groups: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for v in self.variables.values() for a in v.fields.values())


@dataclasses.dataclass(frozen=True)
class Reducer:
    """How to reduce: which statistic, and its options.

    Attributes:
      stat: 'mean', 'sum', 'count', 'min', 'max', 'var' or 'std'.
      skipna: ignore NaNs (True) or let any NaN make the result NaN.
      min_count: results from fewer valid values than this are NaN.
      ddof: delta degrees of freedom of 'var' and 'std'.
      dtype: dtype of the results (default: as xarray would give).
      weighted: whether values come with weights (mean, var, std, sum).

    Example:
      >>> reducer = Reducer('mean')
      >>> ds = xarray.Dataset({'t': (('time', 'x'), [[1.0, 2.0], [3.0, np.nan]])})
      >>> reducer.finalize(reducer.reduce(ds, ['time'])).t.values.tolist()
      [2.0, 2.0]
    """

    stat: Stat = "mean"
    skipna: bool = True
    min_count: int | None = None
    ddof: int = 0
    dtype: Any = None
    weighted: bool = False

    def __post_init__(self):
        if self.stat not in STATS:
            raise ValueError(f"unknown statistic {self.stat!r}; choose from {STATS}")
        if self.min_count is not None and (
            not isinstance(self.min_count, int) or self.min_count < 1
        ):
            raise ValueError(
                f"min_count must be a positive int, got {self.min_count!r}"
            )
        if not isinstance(self.ddof, int) or self.ddof < 0:
            raise ValueError(f"ddof must be a non-negative int, got {self.ddof!r}")
        if self.weighted and self.stat in ("count", "min", "max"):
            raise ValueError(f"weights do not apply to {self.stat!r}")
        if self.weighted and self.ddof:
            raise ValueError(
                "ddof does not apply to weighted variances (as in xarray, they "
                "divide by the sum of weights)"
            )

    # --- partials from data ------------------------------------------------------

    def reduce(
        self,
        dataset: xarray.Dataset,
        dims: Sequence[str],
        weights: xarray.DataArray | None = None,
        across: bool = False,
        map_fn: MapFn | None = None,
    ) -> Partial:
        """The partial result of reducing ``dataset`` over ``dims``.

        Args:
          dataset: the data.
          dims: the dimensions to reduce over.
          weights: optional weights lined up with the data.
          across: how to treat numeric variables lacking every one of
            ``dims``: False keeps them as they are (the chunks of one dataset
            hold copies of them), True reduces them across the datasets
            merged, as ``reduce_element`` does (datasets of an ensemble).
          map_fn: how to map over the reduced variables, as in
            ``reduce_groups``.
        """
        dims = list(dims)
        variables = {}
        constants = {}
        reduced: list[Hashable] = []
        for name, var in dataset.data_vars.items():
            axes = tuple(var.get_axis_num(d) for d in dims if d in var.dims)
            if not axes and across and reducible(var.dtype):
                variables[name] = self._element(var)
            elif not axes:
                constants[name] = var.variable
            elif reducible(var.dtype):  # else dropped, like numeric_only
                reduced.append(name)

        def partial_of(name: Hashable) -> VariablePartial:
            var = dataset[name]
            axes = tuple(var.get_axis_num(d) for d in dims if d in var.dims)
            w = None
            if weights is not None:
                w = _broadcast_weights(weights, var, np.asarray(weights.values))
            fields = self._fields(np.asarray(var.values), axes, w)
            result_dims = tuple(d for d in var.dims if d not in dims)
            return VariablePartial(
                result_dims,
                tuple(var.sizes[d] for d in result_dims),
                fields,
                var.dtype,
                dict(var.attrs),
            )

        nbytes = sum(dataset[name].nbytes for name in reduced)
        each = map_fn if map_fn and nbytes >= PARALLEL_BYTES else _map
        variables.update(zip(reduced, each(partial_of, reduced), strict=True))
        order = {name: i for i, name in enumerate(dataset.data_vars)}
        variables = dict(sorted(variables.items(), key=lambda item: order[item[0]]))
        coords = {
            name: coord.variable
            for name, coord in dataset.coords.items()
            if not set(coord.dims) & set(dims)
        }
        return Partial(variables, constants, coords, dict(dataset.attrs))

    def reduce_element(self, dataset: xarray.Dataset) -> Partial:
        """The partial result of one element of a stack of same-shaped datasets.

        Reducing across elements (an ensemble mean, say) treats each element
        as one value at every position: merged, the partials of the elements
        give the statistic of ``xarray.concat(elements, 'member')`` over
        ``'member'``. Every numeric data variable keeps its dimensions;
        others are dropped, as xarray's reductions drop them.

        Example:
          >>> reducer = Reducer('mean')
          >>> a = xarray.Dataset({'t': ('x', [1.0, np.nan])})
          >>> b = xarray.Dataset({'t': ('x', [3.0, 4.0])})
          >>> merged = reducer.merge([reducer.reduce_element(d) for d in (a, b)])
          >>> reducer.finalize(merged).t.values.tolist()
          [2.0, 4.0]
        """
        variables = {
            name: self._element(var)
            for name, var in dataset.data_vars.items()
            if reducible(var.dtype)
        }
        coords: dict[Hashable, xarray.Variable | None] = {
            name: coord.variable for name, coord in dataset.coords.items()
        }
        return Partial(variables, {}, coords, dict(dataset.attrs))

    def _element(self, var: xarray.DataArray) -> VariablePartial:
        """The partial result of a variable as one element of a stack."""
        values = np.asarray(var.values)[np.newaxis]
        return VariablePartial(
            tuple(var.dims),
            tuple(var.shape),
            self._fields(values, (0,), None),
            var.dtype,
            dict(var.attrs),
        )

    def _fields(
        self, x: np.ndarray, axes: tuple[int, ...], w: np.ndarray | None
    ) -> dict[str, np.ndarray]:
        valid = _valid(x)
        fields: dict[str, np.ndarray] = {}
        if not self.skipna and x.dtype.kind in "fc":
            fields["nan"] = (
                np.logical_or.reduce(~valid, axis=axes)
                if valid is not None
                else np.zeros((1,) * (x.ndim - len(axes)), bool)
            )
        if w is not None:
            weight = np.where(valid, w, 0.0) if valid is not None else w
            total = weight.sum(axis=axes, dtype=np.float64)
            fields["n"] = total
            xs = np.where(valid, x, 0.0) if valid is not None else x
            weighted_sum = (weight * xs).sum(axis=axes, dtype=np.float64)
            if self.stat in ("mean", "sum"):
                fields["s"] = weighted_sum
            else:
                mean = _divide(weighted_sum, total)
                deviation = xs - np.expand_dims(mean, axes)
                fields["mean"] = mean
                fields["m2"] = (weight * deviation * deviation).sum(
                    axis=axes, dtype=np.float64
                )
            return fields
        n = (
            valid.sum(axis=axes, dtype=np.int64)
            if valid is not None
            else np.int64(np.prod([x.shape[a] for a in axes]))
        )
        fields["n"] = _compact(n)
        if self.stat == "count":
            return fields
        if self.stat in ("sum", "mean"):
            accumulate = np.int64 if x.dtype.kind in "biu" else np.float64
            if self.stat == "mean":
                accumulate = np.float64
            xs = np.where(valid, x, 0) if valid is not None else x
            fields["s"] = xs.sum(axis=axes, dtype=accumulate)
        elif self.stat in ("min", "max"):
            ufunc = np.fmin if self.stat == "min" else np.fmax
            fields["v"] = ufunc.reduce(x, axis=axes)
        else:
            xs = np.where(valid, x, 0.0) if valid is not None else x
            mean = _divide(xs.sum(axis=axes, dtype=np.float64), n)
            deviation = (
                np.where(valid, x - np.expand_dims(mean, axes), 0.0)
                if (valid is not None)
                else x - np.expand_dims(mean, axes)
            )
            fields["mean"] = mean
            fields["m2"] = np.square(deviation).sum(axis=axes, dtype=np.float64)
        return fields

    def reduce_groups(
        self,
        dataset: xarray.Dataset,
        dim: str,
        groups: np.ndarray,
        bins: np.ndarray | None = None,
        bin_coord: xarray.Variable | None = None,
        weights: xarray.DataArray | None = None,
        map_fn: MapFn | None = None,
    ) -> Iterator[tuple[int, Partial]]:
        """Partial results of each group of positions along ``dim``.

        Args:
          dataset: the chunk.
          dim: the dimension grouped (e.g. 'time').
          groups: a group number for each position along ``dim``; each group
            present gets its own partial result.
          bins: optionally, a bin for each position, in ``range(len(bin_coord))``:
            within a group, values are reduced per bin, along a leading
            dimension ``bin_coord`` (e.g. the 24 hours of a month), so one
            partial result covers every bin.
          bin_coord: the 1-D coordinate of the bins.
          weights: optional weights lined up with the chunk.
          map_fn: how to map over the variables of a group, e.g. on threads
            (``io.threads.map_compute``); used for groups of at least
            ``PARALLEL_BYTES``, and the tasks never share arrays they write.

        Yields:
          ``(group number, partial)`` for each group present, in order.
        """
        order = np.argsort(groups, kind="stable")
        ordered = groups[order]
        starts = np.flatnonzero(np.diff(ordered, prepend=ordered[:1] - 1))
        stops = np.append(starts[1:], len(ordered))
        arrays = {}
        for name, var in dataset.data_vars.items():
            if dim in var.dims and reducible(var.dtype):
                w = None
                if weights is not None:
                    w = _broadcast_weights(weights, var, np.asarray(weights.values))
                    w = np.moveaxis(w, var.get_axis_num(dim), 0)
                values = np.moveaxis(np.asarray(var.values), var.get_axis_num(dim), 0)
                arrays[name] = (var, values, w)
        extra = {} if bin_coord is None else {bin_coord.dims[0]: bin_coord.size}
        constants = {
            name: var.variable.set_dims({**extra, **var.sizes})
            for name, var in dataset.data_vars.items()
            if dim not in var.dims
        }
        coords = {
            name: coord.variable
            for name, coord in dataset.coords.items()
            if dim not in coord.dims
        }
        if bin_coord is not None:
            coords[bin_coord.dims[0]] = bin_coord

        def partial_of(
            name: Hashable, positions: np.ndarray | slice
        ) -> VariablePartial:
            var, values, all_weights = arrays[name]
            x = values[positions]
            w = None if all_weights is None else all_weights[positions]
            rest = tuple(d for d in var.dims if d != dim)
            sizes = tuple(var.sizes[d] for d in rest)
            if bins is None:
                fields = self._fields(x, (0,), w)
            else:
                coord = cast(xarray.Variable, bin_coord)  # given with bins
                fields = self._binned_fields(x, bins[positions], coord.size, w)
                rest = (*extra, *rest)
                sizes = (coord.size, *sizes)
            return VariablePartial(rest, sizes, fields, var.dtype, dict(var.attrs))

        names = list(arrays)
        row_bytes = sum(values.nbytes for _, values, _ in arrays.values()) // max(
            1, len(order)
        )
        for start, stop in zip(starts, stops, strict=True):
            rows = order[start:stop]
            positions: np.ndarray | slice = rows
            if rows[-1] - rows[0] == len(rows) - 1:
                positions = slice(rows[0], rows[-1] + 1)  # a view
            group_bytes = row_bytes * (stop - start)
            each = map_fn if map_fn and group_bytes >= PARALLEL_BYTES else _map
            found = each(functools.partial(partial_of, positions=positions), names)
            variables = dict(zip(names, found, strict=True))
            yield (
                int(ordered[start]),
                Partial(variables, dict(constants), dict(coords), dict(dataset.attrs)),
            )

    def _binned_fields(
        self, x: np.ndarray, bins: np.ndarray, n_bins: int, w: np.ndarray | None
    ) -> dict[str, np.ndarray]:
        """Fields of the values in each bin along axis 0, with a leading bin axis."""
        selectors, present = _bin_selectors(bins, n_bins)
        # Rows that cycle through every bin (hourly steps in hour bins) fold
        # into an array with a bin axis: one reduction for all bins.
        first = selectors[0] if selectors else None
        cyclic = (
            len(selectors) == n_bins
            and isinstance(first, slice)
            and first == slice(0, None, n_bins)
        )

        def per_bin(fn) -> np.ndarray:
            return np.stack([fn(i, s) for i, s in enumerate(selectors)])

        def reduce_bins(ufunc, values: np.ndarray, dtype=None, where=None):
            """``ufunc.reduce`` over each bin's rows (only where ``where`` is
            true, if given: no masked copy), stacked as ``per_bin``."""
            if not cyclic:
                return per_bin(
                    lambda i, s: ufunc.reduce(
                        values[s],
                        axis=0,
                        dtype=dtype,
                        where=True if where is None else where[s],
                    )
                )
            full = len(values) - len(values) % n_bins
            shape = (full // n_bins, n_bins, *values.shape[1:])
            mask = True if where is None else where[:full].reshape(shape)
            out = ufunc.reduce(
                values[:full].reshape(shape), axis=0, dtype=dtype, where=mask
            )
            rest = values[full:]
            if len(rest):  # the last, incomplete cycle
                head = out[: len(rest)]
                ufunc(
                    head, rest, out=head, where=True if where is None else where[full:]
                )
            return out

        in_order = len(present) == n_bins and bool((np.diff(present) == 1).all())
        missing = None if in_order else np.setdiff1d(np.arange(n_bins), present)

        def dense(values: np.ndarray, fill) -> np.ndarray:
            if in_order:  # every bin, in order: already dense (no copy)
                return values
            out = np.empty((n_bins, *values.shape[1:]), values.dtype)
            out[present] = values
            out[missing] = fill
            return out

        valid = _valid(x)
        fields: dict[str, np.ndarray] = {}
        if not self.skipna and x.dtype.kind in "fc":
            nan = np.zeros((len(selectors),) + (1,) * (x.ndim - 1), bool)
            if valid is not None:
                nan = reduce_bins(np.logical_or, ~valid)
            fields["nan"] = _compact(dense(nan, False))
        if w is not None:
            weight = np.where(valid, w, 0.0) if valid is not None else w
            xs = np.where(valid, x, 0) if valid is not None else x
            total = per_bin(lambda i, s: weight[s].sum(axis=0, dtype=np.float64))
            weighted = per_bin(
                lambda i, s: (weight[s] * xs[s]).sum(axis=0, dtype=np.float64)
            )
            fields["n"] = _compact(dense(total, 0.0))
            if self.stat in ("mean", "sum"):
                fields["s"] = dense(weighted, 0.0)
                return fields
            mean = _divide(weighted, total)
            fields["mean"] = dense(mean, 0.0)
            fields["m2"] = dense(
                per_bin(
                    lambda i, s: (weight[s] * np.square(xs[s] - mean[i])).sum(
                        axis=0, dtype=np.float64
                    )
                ),
                0.0,
            )
            return fields
        if valid is not None:
            # Counted as bytes: numpy adds booleans into int64 slowly.
            n = reduce_bins(np.add, valid.view(np.uint8), np.int64)
        else:
            lengths = [
                len(range(len(bins))[s]) if isinstance(s, slice) else len(s)
                for s in selectors
            ]
            n = np.array(lengths, np.int64).reshape((-1,) + (1,) * (x.ndim - 1))
        fields["n"] = _compact(dense(n, 0))
        if self.stat == "count":
            return fields
        if self.stat in ("sum", "mean"):
            integer_sum = x.dtype.kind in "biu" and self.stat == "sum"
            dtype = np.int64 if integer_sum else np.float64
            fields["s"] = dense(reduce_bins(np.add, x, dtype, where=valid), 0)
        elif self.stat in ("min", "max"):
            ufunc = np.fmin if self.stat == "min" else np.fmax
            fields["v"] = dense(reduce_bins(ufunc, x), _identity(x.dtype, self.stat))
        else:
            mean = _divide(reduce_bins(np.add, x, np.float64, where=valid), n)

            def squares(i: int, s) -> np.ndarray:
                deviation = x[s] - mean[i]
                if valid is not None:
                    deviation = np.where(valid[s], deviation, 0.0)
                return np.square(deviation).sum(axis=0, dtype=np.float64)

            fields["mean"] = dense(mean, 0.0)
            fields["m2"] = dense(per_bin(squares), 0.0)
        return fields

    # --- merging -----------------------------------------------------------------

    def merge(self, partials: Iterable[Partial | None]) -> Partial:
        """Merge partial results of disjoint pieces of the same region.

        None stands for no partial result and is skipped (if every one is
        None, so is the result).
        """
        result: Partial | None = None
        for partial in partials:
            if partial is None:
                continue
            if result is None:
                result = Partial(
                    dict(partial.variables),
                    dict(partial.constants),
                    dict(partial.coords),
                    partial.attrs,
                    partial.groups,
                )
                continue
            if partial.groups != result.groups:
                raise ValueError(
                    f"cannot merge partial results of different groups: "
                    f"{result.groups} and {partial.groups}"
                )
            for name, var in partial.variables.items():
                mine = result.variables.get(name)
                if mine is None:
                    result.variables[name] = var
                    continue
                if var.dims != mine.dims or var.shape != mine.shape:
                    raise ValueError(
                        f"cannot combine variable {name!r} of sizes "
                        f"{_sizes(mine.dims, mine.shape)} with one of sizes "
                        f"{_sizes(var.dims, var.shape)}: datasets combined "
                        f"together (chunks with the same key, or the elements "
                        f"of Globally/PerKey) must have the same size along "
                        f"the kept dimensions"
                    )
                result.variables[name] = VariablePartial(
                    mine.dims,
                    mine.shape,
                    self._merge_fields(mine.fields, var.fields),
                    mine.dtype,
                    mine.attrs,
                )
            for name, constant in partial.constants.items():
                result.constants.setdefault(name, constant)
            _merge_coords(result.coords, partial.coords)
        # None only if there was no partial at all (e.g. only empty
        # accumulators); callers that may pass none handle None.
        return cast(Partial, result)

    def _merge_fields(
        self, a: dict[str, np.ndarray], b: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        merged = {"n": _compact(a["n"] + b["n"])}
        if "nan" in a:
            merged["nan"] = a["nan"] | b["nan"]
        if "s" in a:
            merged["s"] = a["s"] + b["s"]
        if "v" in a:
            ufunc = np.fmin if self.stat == "min" else np.fmax
            merged["v"] = ufunc(a["v"], b["v"])
        if "m2" in a:
            delta = b["mean"] - a["mean"]
            share = _divide(b["n"], merged["n"])
            merged["mean"] = a["mean"] + delta * share
            merged["m2"] = a["m2"] + b["m2"] + delta * delta * a["n"] * share
        return merged

    # --- finishing ---------------------------------------------------------------

    def finalize(self, partial: Partial) -> xarray.Dataset:
        """Finish a (merged) partial result into a Dataset."""
        data_vars: dict[Hashable, xarray.Variable] = {}
        for name, var in partial.variables.items():
            data_vars[name] = xarray.Variable(var.dims, self._finish(var), var.attrs)
        for name, constant in partial.constants.items():
            data_vars[name] = self._reduce_over_nothing(constant)
        coords = {k: v for k, v in partial.coords.items() if v is not None}
        result = xarray.Dataset(data_vars, coords=coords, attrs=partial.attrs)
        if partial.groups:
            result = result.expand_dims({k: [v] for k, v in partial.groups.items()})
        return result

    def _reduce_over_nothing(self, var: xarray.Variable) -> xarray.Variable:
        """A variable lacking the reduced dims, reduced over none of them, as
        xarray does (mean of ints -> floats, count -> 1, var -> 0)."""
        if not reducible(var.dtype) or (var.ndim and self.stat in _IDENTITY_STATS):
            return var
        values = np.asarray(var.values)[..., np.newaxis]
        fields = self._fields(values, (var.ndim,), None)
        partial = VariablePartial(var.dims, var.shape, fields, var.dtype, var.attrs)
        return xarray.Variable(var.dims, self._finish(partial), var.attrs)

    def constant_dtype(self, var: xarray.Variable) -> np.dtype:
        """The dtype of a variable lacking the reduced dims, after reducing."""
        if not reducible(var.dtype) or (var.ndim and self.stat in _IDENTITY_STATS):
            return var.dtype
        return self.result_dtype(var.dtype)

    def _finish(self, var: VariablePartial) -> np.ndarray:
        f = var.fields
        n = f["n"]
        shape = var.shape
        if self.stat == "count":
            return np.broadcast_to(n, shape).astype(np.int64)
        if self.stat == "sum":
            result = f["s"]
            empty = None if self.min_count is None else n < self.min_count
        elif self.stat == "mean":
            result = _divide(f["s"], n)
            empty = n == 0
        elif self.stat in ("min", "max"):
            result = f["v"]
            empty = n == 0
        else:
            result = _divide(f["m2"], n if self.weighted else n - self.ddof)
            if self.stat == "std":
                result = np.sqrt(result)
            empty = n <= (0 if self.weighted else self.ddof)
        if self.min_count is not None:
            empty = (
                (n < self.min_count) if empty is None else empty | (n < self.min_count)
            )
        if "nan" in f:
            empty = f["nan"] if empty is None else empty | f["nan"]
        result = np.broadcast_to(result, shape)
        dtype = self.result_dtype(var.dtype)
        if empty is not None and np.any(empty):
            if np.dtype(dtype).kind not in "fc":
                dtype = np.dtype(np.float64)
            result = np.where(empty, np.nan, result)
        return np.asarray(result).astype(dtype, copy=False)

    def result_dtype(self, dtype: np.dtype) -> np.dtype:
        """The dtype of this statistic of values of ``dtype``, as xarray gives
        it (the ``dtype`` option, if set, wins).

        Example:
          >>> Reducer('count').result_dtype(np.dtype('f4'))
          dtype('int64')
        """
        if self.dtype is not None:
            return np.dtype(self.dtype)
        if self.stat == "count":
            return np.dtype(np.int64)
        if self.stat in ("min", "max"):
            return dtype
        if self.stat == "sum" and dtype.kind in "biu" and not self.weighted:
            return np.dtype(np.int64)
        return dtype if dtype.kind in "fc" else np.dtype(np.float64)


def _merge_coords(
    mine: dict[Hashable, xarray.Variable | None],
    theirs: Mapping[Hashable, xarray.Variable | None],
) -> None:
    """Merge ``theirs`` into ``mine``, checking the coordinates both have.

    Raises:
      ValueError: if an index coordinate (one named like its dimension)
        differs: the pieces would not line up. Other differing coordinates
        become None (dropped).
    """
    for name, coord in theirs.items():
        if name not in mine:
            mine[name] = coord
            continue
        current = mine[name]
        if current is None or coord is current:
            continue
        if coord is not None and _same_coord(current, coord):
            continue
        if current.dims == (name,):
            other = "none" if coord is None else _brief(coord)
            raise ValueError(
                f"cannot combine datasets whose coordinate {name!r} differs: "
                f"{_brief(current)} and {other} (datasets combined together "
                f"must have the same index coordinates)"
            )
        mine[name] = None


def _same_coord(a: xarray.Variable, b: xarray.Variable) -> bool:
    """Whether two coordinates have the same dims and values (NaN == NaN)."""
    if a.dims != b.dims or a.shape != b.shape:
        return False
    x, y = np.asarray(a.values), np.asarray(b.values)
    if x.dtype.kind in "fcmM" and y.dtype.kind in "fcmM":
        return bool(np.array_equal(x, y, equal_nan=True))
    return bool(np.array_equal(x, y))


def _brief(coord: xarray.Variable) -> str:
    """A short description of a coordinate's values, for error messages."""
    values = np.asarray(coord.values).ravel()
    shown = ", ".join(str(v) for v in values[:4])
    more = ", ..." if values.size > 4 else ""
    return f"{_sizes(coord.dims, coord.shape)} [{shown}{more}]"


def _sizes(dims: Sequence[Hashable], shape: Sequence[int]) -> dict:
    """``{dim: size}`` for messages."""
    return dict(zip(dims, shape, strict=True))


def _broadcast_weights(
    weights: xarray.DataArray, var: xarray.DataArray, values: np.ndarray
) -> np.ndarray:
    """Weights arranged (and broadcast) to a variable's dimensions.

    Weight dimensions the variable lacks are summed over, as when xarray
    broadcasts the variable against the weights before reducing.
    """
    lacking = tuple(i for i, d in enumerate(weights.dims) if d not in var.dims)
    if lacking:
        values = values.sum(axis=lacking, dtype=np.float64)
    kept = [d for d in weights.dims if d in var.dims]
    order = [kept.index(d) for d in var.dims if d in kept]
    arranged = np.transpose(values, order) if order else values
    shape = [var.sizes[d] if d in kept else 1 for d in var.dims]
    return np.broadcast_to(arranged.reshape(shape), var.shape)


def reducible(dtype: np.dtype) -> bool:
    """Whether values of ``dtype`` can be summed and compared (numbers, bools).

    Example:
      >>> reducible(np.dtype('f4')), reducible(np.dtype('M8[ns]'))
      (True, False)
    """
    return dtype.kind in "biufc"


def normalize_dims(dim: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """Dimensions to reduce over, as a tuple (None: every dimension).

    Example:
      >>> normalize_dims('time'), normalize_dims(['time', 'x']), normalize_dims(None)
      (('time',), ('time', 'x'), None)
    """
    if dim is None:
        return None
    if isinstance(dim, str):
        return (dim,)
    dims = tuple(dim)
    if not dims or not all(isinstance(d, str) for d in dims):
        raise ValueError(f"dim must be a name or a list of names, got {dim!r}")
    return dims


def _divide(a: npt.ArrayLike, b: npt.ArrayLike) -> np.ndarray:
    """a / b, with 0 where b is 0 (those results are masked later)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b != 0, np.true_divide(a, np.where(b != 0, b, 1)), 0.0)


def _compact(n: npt.ArrayLike) -> np.ndarray:
    """A count (or weight) array with every axis it is constant along shrunk
    to length 1 (it broadcasts back), so counts of NaN-free data stay tiny."""
    counts = np.asarray(n)
    for axis in range(counts.ndim):
        if counts.shape[axis] > 1:
            first = np.take(counts, [0], axis=axis)
            if (counts == first).all():
                counts = first
    return counts


def _bin_selectors(bins: np.ndarray, n_bins: int) -> tuple[list, np.ndarray]:
    """Index expressions selecting each present bin's rows, and the bins.

    Strided slices when the bins cycle regularly (hourly steps in hour bins),
    contiguous slices when they are sorted, index arrays otherwise: no copy of
    the data in the first two cases.
    """
    count = len(bins)
    cycle = (bins[0] + np.arange(count)) % n_bins if count else bins
    if count and np.array_equal(bins, cycle):
        steps = min(count, n_bins)
        return [slice(k, None, n_bins) for k in range(steps)], bins[:steps]
    order = None
    if (np.diff(bins) < 0).any():
        order = np.argsort(bins, kind="stable")
        bins = bins[order]
    starts = np.flatnonzero(np.diff(bins, prepend=bins[:1] - 1))
    stops = np.append(starts[1:], count)
    selectors: list[slice] | list[np.ndarray]
    if order is None:
        selectors = [slice(a, b) for a, b in zip(starts, stops, strict=True)]
    else:
        selectors = [order[a:b] for a, b in zip(starts, stops, strict=True)]
    return selectors, bins[starts]


def _valid(x: np.ndarray) -> np.ndarray | None:
    """Where values are not NaN; None when all are (or cannot be NaN)."""
    if x.dtype.kind not in "fc":
        return None
    with np.errstate(all="ignore"):
        total = np.sum(x)  # NaN if any value is (or, rarely, from inf - inf)
    if not np.isnan(total):
        return None
    valid = ~np.isnan(x)
    return None if valid.all() else valid


def _identity(dtype: np.dtype, stat: str):
    """A value that never wins a minimum (or maximum) of this dtype."""
    if dtype.kind in "fc":
        return np.nan
    info = np.iinfo(dtype) if dtype.kind in "iu" else None
    if info is None:  # booleans
        return stat == "min"
    return info.max if stat == "min" else info.min


# How far below zero a float weight may be and still count as 0 (rounding):
# cos(90 degrees) computed in float32 is -4.4e-8.
WEIGHT_ROUNDING = 1e-6


def check_weights(
    weights: xarray.DataArray | None, dims: Sequence[str] | None
) -> xarray.DataArray | None:
    """Validate weights for a reduction over ``dims``; return them, with
    rounding below zero clipped.

    Weights that are negative by float rounding only, at most
    ``WEIGHT_ROUNDING`` below zero (times the largest weight, when that is
    above 1), count as 0: ``np.cos(np.deg2rad(latitude))`` with float32
    latitude is -4.4e-8 at the poles.

    Raises:
      TypeError: if weights are not a DataArray.
      ValueError: if they hold NaNs or values further below zero, or do not
        span any of the reduced dimensions (they would not change the
        result).

    Example:
      >>> lat = xarray.DataArray(np.float32([-90, 0, 90]), dims='lat')
      >>> weights = check_weights(np.cos(np.deg2rad(lat)), ['lat'])
      >>> weights.values.tolist()
      [0.0, 1.0, 0.0]
    """
    if weights is None:
        return None
    if not isinstance(weights, xarray.DataArray):
        raise TypeError(
            f"weights must be an xarray.DataArray over some dimensions of the data, "
            f"got {type(weights).__name__}"
        )
    values = np.asarray(weights.values)
    if values.dtype.kind not in "biuf":
        raise TypeError(f"weights must be numeric, got dtype {values.dtype}")
    if np.isnan(values.astype(np.float64)).any():
        raise ValueError("weights must not contain NaN")
    if values.dtype.kind == "f" and values.size:
        # Only for floats: exact types have no rounding to forgive.
        tolerance = WEIGHT_ROUNDING * max(1.0, float(np.abs(values).max()))
        rounded = (values < 0) & (values >= -tolerance)
        if rounded.any():
            values = np.where(rounded, values.dtype.type(0), values)
            weights = weights.copy(data=values)
    if (values < 0).any():
        where = np.unravel_index(np.argmin(values), values.shape)
        at = ", ".join(
            f"{dim}={weights[dim].values[i] if dim in weights.coords else i}"
            for dim, i in zip(weights.dims, where, strict=True)
        )
        raise ValueError(
            f"weights must not be negative, got {values[where]:.3g} at {at} "
            f"(only values within {WEIGHT_ROUNDING:g} below zero are taken as "
            f"float rounding, and as 0)"
        )
    if dims is not None and not set(weights.dims) & set(dims):
        raise ValueError(
            f"weights over dimensions {list(weights.dims)} do not vary along the "
            f"reduced dimensions {list(dims)}, so they would not change the result"
        )
    return weights


def weights_for(
    weights: xarray.DataArray, offsets: Mapping[str, int], chunk: xarray.Dataset, key
) -> xarray.DataArray:
    """The part of ``weights`` that lines up with a chunk at ``offsets``.

    Raises:
      ValueError: if the weights have dimensions the chunk lacks, or do not
        cover the chunk.
    """
    foreign = [d for d in weights.dims if d not in chunk.dims]
    if foreign:
        raise ValueError(
            f"weights have dimension(s) {foreign} that chunk {key} lacks; weights "
            f"may only use dimensions of the data ({list(chunk.dims)})"
        )
    # Offsets are by str, as in keys; xarray's names are Hashable.
    by_dim = cast("Mapping[Hashable, int]", offsets)
    selection = {}
    for dim in weights.dims:
        start = by_dim.get(dim, 0)
        stop = start + chunk.sizes[dim]
        if stop > weights.sizes[dim]:
            raise ValueError(
                f"weights have {weights.sizes[dim]} elements along {dim!r}, but "
                f"chunk {key} reaches element {stop}"
            )
        selection[dim] = slice(start, stop)
    return weights.isel(selection)
