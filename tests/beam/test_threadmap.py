"""ThreadMap runs a bundle's elements a few at a time, starting the next one
as soon as any thread is free, and emits every output once."""

from __future__ import annotations

import threading
import time

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import Timestamp

import xarray_beam as xb
from xarray_beam.beam import threadmap


def _values(outputs) -> list:
    return [output.value for output in outputs]


def _run_bundle(dofn: threadmap.ThreadMap, elements) -> list:
    """Process ``elements`` as one bundle, the way a runner calls a DoFn."""
    dofn.setup()
    outputs = []
    try:
        for element in elements:
            outputs += _values(
                dofn.process(element, window=GlobalWindow(), timestamp=Timestamp(0))
            )
        outputs += _values(dofn.finish_bundle())
    finally:
        dofn.teardown()
    return outputs


def test_a_slow_element_does_not_keep_a_free_thread_idle():
    # Element 0 finishes only once element 2 has started. Waiting for the
    # oldest element before starting another would never start element 2.
    third_started = threading.Event()
    waited = {}

    def fn(element):
        if element == 0:
            waited[0] = third_started.wait(timeout=10)
        elif element == 2:
            third_started.set()
        yield element * 10

    outputs = _run_bundle(threadmap.ThreadMap(fn, 2), [0, 1, 2, 3])

    assert waited == {0: True}
    assert sorted(outputs) == [0, 10, 20, 30]


def test_no_more_than_num_threads_elements_run_at_once():
    running, most = 0, 0
    lock = threading.Lock()

    def fn(element):
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.01 * (element % 3))
        with lock:
            running -= 1
        yield element

    outputs = _run_bundle(threadmap.ThreadMap(fn, 3), list(range(20)))

    assert sorted(outputs) == list(range(20))
    assert most <= 3


def test_an_error_in_an_element_reaches_the_runner():
    def fn(element):
        if element == 1:
            raise ValueError("element 1 is bad")
        yield element

    with pytest.raises(ValueError, match="element 1 is bad"):
        _run_bundle(threadmap.ThreadMap(fn, 2), [0, 1, 2, 3])


def test_in_a_pipeline_every_output_arrives_once():
    with beam.Pipeline(xb.InProcessRunner()) as p:
        outputs = (
            p
            | beam.Create(list(range(30)))
            | beam.ParDo(threadmap.ThreadMap(lambda x: [x, -x - 1], 4))
        )
        assert_that(outputs, equal_to(list(range(30)) + [-x - 1 for x in range(30)]))
