"""Periods of a time axis, checked against the groups of xarray's resample."""

import numpy as np
import pandas as pd
import pytest
import xarray

from xarray_beam.model.periods import Periods, resample_periods

HOURLY_55 = pd.date_range("2020-01-31", periods=55, freq="h")
SIX_HOURLY = pd.date_range("2020-01-20", "2020-04-10", freq="6h")
# 20 hours of January 31, nothing for four days, then 8 hours of February 5.
GAPPY = HOURLY_55[:20].append(pd.date_range("2020-02-05 10:00", periods=8, freq="h"))


def _xarray_groups(times, freq, **options):
    """Labels of xarray's resample of ``times`` and the positions in each."""
    series = xarray.DataArray(
        np.arange(len(times)), dims="time", coords={"time": times}
    )
    resampled = series.resample(time=freq, **options)
    labels = resampled.count().time.values
    positions = {}
    for label, members in resampled.groups.items():
        positions[np.datetime64(label, "ns")] = np.arange(len(times))[members]
    return labels, positions


CASES = [
    (HOURLY_55, "1D", {}),
    (HOURLY_55, "6h", {}),
    (HOURLY_55, "7h", {}),
    (HOURLY_55, "1D", {"closed": "right", "label": "right"}),
    (HOURLY_55, "5h", {"origin": "epoch"}),
    (HOURLY_55, "1D", {"offset": "6h"}),
    (SIX_HOURLY, "1MS", {}),
    (SIX_HOURLY, "ME", {}),
    (SIX_HOURLY, "W", {}),
    (SIX_HOURLY, pd.Timedelta("2D"), {}),
    (GAPPY, "1D", {}),
    (GAPPY, "6h", {}),
]


@pytest.mark.parametrize("times,freq,options", CASES)
def test_periods_are_xarrays_resample_groups(times, freq, options):
    periods = resample_periods(times, freq, **options)
    labels, positions = _xarray_groups(times, freq, **options)

    np.testing.assert_array_equal(periods.labels, labels)
    found = periods.of_positions(0, len(times))
    for number, label in enumerate(periods.labels):
        members = np.flatnonzero(found == number)
        expected = positions.get(np.datetime64(label, "ns"), np.array([], int))
        np.testing.assert_array_equal(members, expected)
        assert periods.counts[number] == len(expected)


def test_positions_of_a_slice_are_those_of_the_whole_axis():
    periods = resample_periods(GAPPY, "1D")
    whole = periods.of_positions(0, len(GAPPY))
    for start in range(0, len(GAPPY), 5):
        stop = min(start + 5, len(GAPPY))
        np.testing.assert_array_equal(
            periods.of_positions(start, stop), whole[start:stop]
        )


def test_output_chunks_hold_whole_periods_and_a_shorter_last_one():
    periods = resample_periods(HOURLY_55, "6h", per_chunk=4)  # 10 periods
    assert periods.size == 10 and periods.chunk_count == 3
    assert [periods.chunk_size(c) for c in range(3)] == [4, 4, 2]
    assert periods.chunk_periods(2) == slice(8, 10)


def test_gap_only_output_chunks_belong_to_the_time_step_before_them():
    periods = resample_periods(GAPPY, "1D")
    # Days: Jan 31 (20 h), Feb 1 .. Feb 4 missing, Feb 5 (8 h).
    assert periods.counts.tolist() == [20, 0, 0, 0, 0, 8]
    empty, owners = periods.empty_chunks()
    assert empty.tolist() == [1, 2, 3, 4]
    assert owners.tolist() == [19, 19, 19, 19]
    assert periods.empty(1).tolist() == [True]
    assert periods.has_gaps

    paired = periods.with_per_chunk(2)  # chunks: [31, 1], [2, 3], [4, 5]
    empty, owners = paired.empty_chunks()
    assert empty.tolist() == [1] and owners.tolist() == [19]
    assert paired.empty(0).tolist() == [False, True]


def test_periods_without_gaps_have_none():
    assert not resample_periods(HOURLY_55, "1D").has_gaps
    assert resample_periods(HOURLY_55, "1D").empty_chunks()[0].size == 0


@pytest.mark.parametrize(
    "times,freq,options,match",
    [
        (np.arange(5.0), "1D", {}, "datetime64 values along 'time'"),
        (HOURLY_55[::-1], "1D", {}, "must increase.*sort"),
        (HOURLY_55.insert(3, pd.NaT), "1D", {}, "NaT \\(at position 3\\)"),
        (HOURLY_55[:0], "1D", {}, "no time steps"),
        (HOURLY_55, "1 day", {}, "not a pandas frequency"),
        (HOURLY_55, "1D", {"closed": "middle"}, "closed='middle'"),
        (HOURLY_55, "1D", {"per_chunk": 0}, "periods_per_chunk"),
    ],
)
def test_bad_axes_and_options_are_refused_with_the_reason(times, freq, options, match):
    with pytest.raises(ValueError, match=match):
        resample_periods(times, freq, **options)


def test_periods_name_the_dimension_in_errors():
    with pytest.raises(ValueError, match="'valid_time'"):
        resample_periods(HOURLY_55[::-1], "1D", dim="valid_time")


def test_periods_is_a_plain_value():
    periods = resample_periods(HOURLY_55, "1D")
    assert isinstance(periods, Periods)
    assert periods.freq == "1D" and periods.dim == "time"
