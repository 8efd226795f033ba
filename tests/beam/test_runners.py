"""``InProcessRunner``: Beam's in-process runner, with short state sampling.

Each bundle ends by stopping Beam's state-sampling thread, which sleeps up
to its sampling period; the runner shortens the period while it runs, and
only for a Beam whose sampler it recognises.
"""

import apache_beam as beam
import pytest
from apache_beam.runners.worker import statesampler

from xarray_beam.beam import runners


def _sampling_period(_) -> int:
    return statesampler.get_current_tracker().sampling_period_ms


def _periods_seen() -> list[int]:
    return runners.collect(
        lambda p: p | beam.Create([1, 2]) | beam.Map(_sampling_period)
    )


def test_bundles_sample_every_few_milliseconds_and_the_default_comes_back():
    default = statesampler.StateSampler.__init__.__defaults__
    assert default == (statesampler.DEFAULT_SAMPLING_PERIOD_MS,)

    assert _periods_seen() == [runners.SAMPLING_PERIOD_MS] * 2
    assert statesampler.StateSampler.__init__.__defaults__ == default


def test_a_sampler_it_does_not_recognise_is_left_alone(monkeypatch):
    monkeypatch.setattr(statesampler.StateSampler.__init__, "__defaults__", (123,))

    assert _periods_seen() == [123, 123]
    assert statesampler.StateSampler.__init__.__defaults__ == (123,)


def test_the_default_comes_back_when_the_pipeline_fails():
    def fail(_):
        raise RuntimeError("step failed")

    with pytest.raises(Exception, match="step failed"):  # Beam wraps it
        runners.collect(lambda p: p | beam.Create([1]) | beam.Map(fail))
    assert statesampler.StateSampler.__init__.__defaults__ == (
        statesampler.DEFAULT_SAMPLING_PERIOD_MS,
    )
