"""Periods of a time axis for resampling (pure: no Beam, no I/O).

``resample_periods`` splits a whole, increasing datetime axis into the
periods of a frequency ('1D', '1MS', '6h', ...) exactly as xarray's
``resample`` does (it asks pandas, as xarray does, with the same defaults for
``closed``, ``label``, ``origin`` and ``offset``), and returns the result as a
``Periods``: the label of every period and how many time steps it holds.
Because the axis increases, each period is a run of consecutive positions,
so the period of any position follows from the periods' first positions
alone, and a chunk at a known offset can be binned without seeing the rest.

Output chunks hold ``per_chunk`` whole periods each (the last chunk may hold
fewer). Periods without time steps (gaps in the data) exist in the result,
as in xarray; an output chunk made only of such periods gets no data from
any chunk, so it is assigned to the input position just before it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd


@dataclasses.dataclass(frozen=True)
class Periods:
    """The periods a time axis is resampled into.

    Attributes:
      dim: the time dimension.
      freq: the frequency, as given (for messages and labels).
      labels: the label of each period (the result's coordinate).
      counts: the number of time steps in each period (0 for a gap).
      per_chunk: periods per output chunk.

    Example:
      >>> times = pd.date_range('2000-01-01 12:00', periods=30, freq='h')
      >>> periods = resample_periods(times, '1D')
      >>> periods.counts.tolist(), periods.of_positions(10, 14).tolist()
      ([12, 18], [0, 0, 1, 1])
    """

    dim: str
    freq: str
    labels: np.ndarray
    counts: np.ndarray
    per_chunk: int = 1

    @property
    def size(self) -> int:
        """Number of periods."""
        return len(self.labels)

    @property
    def first(self) -> np.ndarray:
        """Position of the first time step of each period (for a gap: of the
        next time step)."""
        return np.cumsum(self.counts) - self.counts

    @property
    def chunk_count(self) -> int:
        """Number of output chunks along ``dim``."""
        return math.ceil(self.size / self.per_chunk)

    def of_positions(self, start: int, stop: int) -> np.ndarray:
        """The period of each position in ``range(start, stop)``."""
        positions = np.arange(start, stop)
        return np.searchsorted(self.first, positions, side="right") - 1

    def chunk_size(self, chunk: int) -> int:
        """Number of periods in output chunk number ``chunk``."""
        return min(self.per_chunk, self.size - chunk * self.per_chunk)

    def chunk_periods(self, chunk: int) -> slice:
        """The periods of output chunk number ``chunk``."""
        start = chunk * self.per_chunk
        return slice(start, start + self.chunk_size(chunk))

    def empty(self, chunk: int) -> np.ndarray:
        """Which periods of output chunk number ``chunk`` have no time step."""
        return self.counts[self.chunk_periods(chunk)] == 0

    @property
    def has_gaps(self) -> bool:
        """Whether some period has no time step."""
        return bool((self.counts == 0).any())

    def empty_chunks(self) -> tuple[np.ndarray, np.ndarray]:
        """Output chunks without any time step, and for each, the position of
        the last time step before it (whose input chunk makes it)."""
        starts = np.arange(0, self.size, self.per_chunk)
        empty = np.flatnonzero(np.add.reduceat(self.counts, starts) == 0)
        return empty, np.maximum(self.first[starts[empty]] - 1, 0)

    def with_per_chunk(self, per_chunk: int) -> Periods:
        """The same periods, ``per_chunk`` to an output chunk."""
        return dataclasses.replace(self, per_chunk=check_per_chunk(per_chunk))


def check_per_chunk(per_chunk: Any) -> int:
    """``per_chunk`` checked: a positive int.

    Example:
      >>> check_per_chunk(4)
      4
    """
    if isinstance(per_chunk, bool) or not isinstance(per_chunk, int) or per_chunk < 1:
        raise ValueError(f"periods_per_chunk must be a positive int, got {per_chunk!r}")
    return per_chunk


def resample_periods(
    times: Any,
    freq: Any,
    *,
    dim: str = "time",
    closed: str | None = None,
    label: str | None = None,
    origin: Any = "start_day",
    offset: Any = None,
    per_chunk: int = 1,
) -> Periods:
    """The periods of ``freq`` over the time axis ``times``, as xarray's
    ``resample`` makes them.

    Args:
      times: the whole time axis (datetime64 values, increasing, no NaT).
      freq: a pandas frequency: '1D', '1MS', '6h', 'YS', a ``DateOffset`` or
        a ``timedelta``.
      dim: the name of the time dimension (for messages).
      closed, label, origin, offset: as for ``xarray.Dataset.resample`` (and
        pandas): which side of a period is closed and labels it (by default
        the left side, except for end-anchored frequencies such as 'ME'),
        where periods start ('start_day': midnight of the first day).
      per_chunk: periods per output chunk.

    Raises:
      ValueError: for an unknown frequency or option, or times that are not
        datetime64, not increasing, or hold NaT.

    Example:
      >>> times = pd.date_range('2000-01-30', periods=4, freq='D')
      >>> periods = resample_periods(times, '1MS')
      >>> [str(t)[:10] for t in periods.labels], periods.counts.tolist()
      (['2000-01-01', '2000-02-01'], [2, 2])
    """
    values = np.asarray(times)
    if values.ndim != 1 or values.dtype.kind != "M":
        raise ValueError(
            f"resampling needs datetime64 values along {dim!r}, got "
            f"{values.dtype if values.ndim == 1 else f'{values.ndim}-d values'}"
        )
    if not len(values):
        raise ValueError(f"cannot resample along {dim!r}: it has no time steps")
    index = pd.DatetimeIndex(values)
    if index.hasnans:
        position = int(np.flatnonzero(index.isna())[0])
        raise ValueError(
            f"cannot resample along {dim!r}: it holds NaT (at position {position})"
        )
    if not index.is_monotonic_increasing:
        position = int(np.flatnonzero(np.diff(values) < np.timedelta64(0))[0])
        raise ValueError(
            f"cannot resample along {dim!r}: its times must increase, as xarray's "
            f"resample requires, but {index[position]} is followed by "
            f"{index[position + 1]} (position {position + 1}); sort the data first"
        )
    try:
        pd.tseries.frequencies.to_offset(freq)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"cannot resample {dim!r} to {freq!r}: not a pandas frequency such as "
            f"'1D', '1MS' or '6h' ({error})"
        ) from error
    try:
        counted = (
            pd.Series(np.ones(len(index), np.int8), index=index)
            .resample(freq, closed=closed, label=label, origin=origin, offset=offset)
            .count()
        )
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"cannot resample {dim!r} to {freq!r} with closed={closed!r}, "
            f"label={label!r}, origin={origin!r}, offset={offset!r}: {error}"
        ) from error
    counts = counted.to_numpy().astype(np.int64)
    if counts.sum() != len(index):  # pandas dropped some times: a surprise
        raise ValueError(
            f"resampling {dim!r} to {freq!r} placed {counts.sum()} of its "
            f"{len(index)} times in periods"
        )
    return Periods(
        dim,
        str(freq),
        np.asarray(counted.index.values),
        counts,
        check_per_chunk(per_chunk),
    )
