"""Run a per-element function on several elements of a bundle at once.

Loading and writing chunks spend most of their time waiting on storage, so
a worker keeps a few of them in flight instead of one. At most
``num_threads`` elements are held at any moment, which bounds memory.
"""

from __future__ import annotations

import collections
import concurrent.futures
from collections.abc import Callable, Iterable
from typing import Any

import apache_beam as beam
from apache_beam.utils.windowed_value import WindowedValue


class ThreadMap(beam.DoFn):
    """A FlatMap whose function runs on up to ``num_threads`` elements at once.

    Args:
      fn: called as ``fn(element)``; returns an iterable of outputs.
      num_threads: elements processed concurrently; ``None`` or 1 processes
        them one after the other in the calling thread.
    """

    def __init__(self, fn: Callable[..., Iterable[Any]], num_threads: int | None):
        if num_threads is not None and num_threads < 1:
            raise ValueError(f"num_threads must be at least 1, got {num_threads}")
        self._fn = fn
        self._num_threads = num_threads or 1

    def setup(self) -> None:
        self._executor = (
            concurrent.futures.ThreadPoolExecutor(self._num_threads)
            if self._num_threads > 1
            else None
        )
        self._pending: collections.deque = collections.deque()

    def teardown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def _run(self, element: Any, args: tuple) -> list[Any]:
        return list(self._fn(element, *args))

    # No annotations here: Beam would read them as type hints.
    def process(
        self, element, window=beam.DoFn.WindowParam, timestamp=beam.DoFn.TimestampParam
    ):
        return self._process(element, (), window, timestamp)

    def _process(self, element, args, window, timestamp):
        if self._executor is None:
            yield from self._fn(element, *args)
            return
        future = self._executor.submit(self._run, element, args)
        self._pending.append((future, window, timestamp))
        while len(self._pending) >= self._num_threads:
            yield from self._emit_oldest()

    def finish_bundle(self):
        while self._pending:
            yield from self._emit_oldest()

    def _emit_oldest(self):
        future, window, timestamp = self._pending.popleft()
        for output in future.result():
            yield WindowedValue(output, timestamp, [window])


class ThreadMapWithSideInput(ThreadMap):
    """``ThreadMap`` for a ParDo with one side input: ``fn(element, side_input)``."""

    def process(
        self,
        element,
        side_input,
        window=beam.DoFn.WindowParam,
        timestamp=beam.DoFn.TimestampParam,
    ):
        return self._process(element, (side_input,), window, timestamp)
