"""Run a per-element function on several elements of a bundle at once.

Loading and writing chunks spend most of their time waiting on storage, so
a worker keeps a few of them in flight instead of one. At most
``num_threads`` elements are held at any moment, which bounds memory; the
next element starts as soon as any of them is done.
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
        if len(self._pending) >= self._num_threads:
            yield from self._emit_finished()

    def finish_bundle(self):
        while self._pending:
            yield from self._emit_finished()

    def _emit_finished(self):
        """Wait until an element is done, then emit every finished one.

        Whichever finishes first frees its thread for the next element:
        waiting for the oldest instead would leave a thread idle for as long
        as a slow element outlasts a quick one (regions of unequal size).
        """
        concurrent.futures.wait(
            [future for future, _, _ in self._pending],
            return_when=concurrent.futures.FIRST_COMPLETED,
        )
        running: collections.deque = collections.deque()
        while self._pending:
            future, window, timestamp = self._pending.popleft()
            if not future.done():
                running.append((future, window, timestamp))
                continue
            for output in future.result():
                yield WindowedValue(output, timestamp, [window])
        self._pending = running


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
