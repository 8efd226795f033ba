"""Progress of local pipeline runs, from the counters Dataflow also shows.

Transforms count their work with Beam metrics counters (namespace
``xarray_beam``: chunks and bytes read, written and copied), which runners
such as Dataflow display. On a runner that executes in this process, the same
counts also feed ``Progress``, which draws a one-line progress bar.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from typing import TextIO

_lock = threading.Lock()
_counts: collections.Counter = collections.Counter()
_active = 0


def record(name: str, value: int = 1) -> None:
    """Add to a local count (cheap no-op unless a Progress is showing)."""
    if _active:
        with _lock:
            _counts[name] += value


def _format_bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


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

    def line(self) -> str:
        """The progress line as it stands."""
        with _lock:
            done, nbytes = _counts[self.counter], _counts[self.bytes_counter]
        seconds = max(time.perf_counter() - self._start, 1e-9)
        filled = int(20 * min(done, self.total) / self.total)
        return (
            f"[{'#' * filled}{'.' * (20 - filled)}] {done}/{self.total} {self.unit}, "
            f"{_format_bytes(nbytes)} at {_format_bytes(nbytes / seconds)}/s, "
            f"{seconds:.1f} s"
        )

    def _draw(self) -> None:
        while not self._stop.wait(self.interval):
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def __enter__(self) -> Progress:
        global _active
        with _lock:
            _active += 1
            _counts.pop(self.counter, None)
            _counts.pop(self.bytes_counter, None)
        self._start = time.perf_counter()
        if self.enabled:
            self._thread = threading.Thread(target=self._draw, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        global _active
        self._stop.set()
        if self.enabled:
            self._thread.join()
            self.stream.write("\r" + self.line() + "\n")
            self.stream.flush()
        with _lock:
            _active -= 1
