"""Progress of local pipeline runs, from the counters Dataflow also shows.

Transforms count their work with Beam metrics counters (see
``xarray_beam.beam.metrics``), which runners such as Dataflow display. On a
runner that executes in this process, the same counts also feed
``Progress``, which draws a one-line progress bar.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from xarray_beam.beam import metrics
from xarray_beam.model.units import format_bytes


class Progress:
    """A progress bar for a pipeline run in this process.

    Args:
      total: units of work expected (e.g. chunks).
      counter: the counter that counts them.
      bytes_counter: the counter of bytes, for MB/s.
      unit: what a unit is called, for display.
      stream: where to draw (default stderr).
      enabled: draw the bar (and its final line); default: only if
        ``stream`` is a terminal.

    Example:
      ``with Progress(plan_tasks, 'rechunk_regions_copied',
      'rechunk_bytes_copied', 'regions'): pipeline.run()``
    """

    def __init__(
        self,
        total: int,
        counter: str,
        bytes_counter: str,
        unit: str = "chunks",
        stream: TextIO | None = None,
        enabled: bool | None = None,
        interval: float = 0.5,
    ):
        self.total = max(total, 1)
        self.counter = counter
        self.bytes_counter = bytes_counter
        self.unit = unit
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.interval = interval
        self._stop = threading.Event()
        self._tally = metrics.Tally([counter, bytes_counter])

    def line(self) -> str:
        """The progress line as it stands."""
        done, nbytes = self._tally[self.counter], self._tally[self.bytes_counter]
        seconds = max(time.perf_counter() - self._start, 1e-9)
        filled = int(20 * min(done, self.total) / self.total)
        return (
            f"[{'#' * filled}{'.' * (20 - filled)}] {done}/{self.total} {self.unit}, "
            f"{format_bytes(nbytes)} at {format_bytes(nbytes / seconds)}/s, "
            f"{seconds:.1f} s"
        )

    def _draw(self) -> None:
        while not self._stop.wait(self.interval):
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def __enter__(self) -> Progress:
        self._tally.__enter__()
        self._start = time.perf_counter()
        if self.enabled:
            self._thread = threading.Thread(target=self._draw, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self.enabled:
            self._thread.join()
        self._tally.__exit__(*exc)
        if self.enabled:
            self.stream.write("\r" + self.line() + "\n")
            self.stream.flush()
