"""Progress of local pipeline runs, from the counters Dataflow also shows.

Transforms count their work with Beam metrics counters (see
``xarray_beam.beam.metrics``), which runners such as Dataflow display. On a
runner that executes in this process, the same counts also feed
``Progress``, which shows them in one of three styles:

- ``'bar'``: one line redrawn in place, with an estimate of the time left
  (for a terminal);
- ``'lines'``: a plain line every 30 seconds (for logs: ``nohup``, ``tee``,
  batch schedulers, where a redrawn line shows nothing until the end);
- ``'none'``.

``'auto'`` chooses a bar on a terminal and lines elsewhere. When the run
ends, ``Progress.final`` holds the counts and the time the last line showed,
so a summary printed from it says the same.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
from typing import Literal, TextIO, cast

from xarray_beam.beam import metrics
from xarray_beam.model.units import format_bytes

Style = Literal["bar", "lines", "none"]
STYLES = ("auto", "bar", "lines", "none")
LINES_INTERVAL = 30.0  # seconds between two plain lines
BAR_INTERVAL = 0.5  # seconds between two redraws of a bar
_BAR_WIDTH = 20


def choose_style(requested: str, stream: TextIO) -> Style:
    """The style to show progress in: ``requested``, or for ``'auto'`` a bar
    on a terminal and plain lines elsewhere.

    Example:
      >>> import io
      >>> choose_style('auto', io.StringIO()), choose_style('none', io.StringIO())
      ('lines', 'none')
    """
    if requested not in STYLES:
        raise ValueError(f"progress style must be one of {STYLES}, got {requested!r}")
    if requested == "auto":
        isatty = getattr(stream, "isatty", None)
        return "bar" if isatty is not None and isatty() else "lines"
    return cast(Style, requested)


def format_duration(seconds: float) -> str:
    """A duration as people read it: seconds, then minutes, then hours.

    Example:
      >>> format_duration(4.26), format_duration(185), format_duration(7530)
      ('4.3 s', '3 min 05 s', '2 h 05 min')
    """
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The counts of a run at one moment.

    Attributes:
      done: units of work finished, including those skipped.
      skipped: units found already done (a resumed run), which took no time.
      total: units expected.
      nbytes: bytes counted (what they are is the ``what`` of ``Progress``).
      total_bytes: bytes expected, if known.
      seconds: time since the run began.
    """

    done: int
    skipped: int
    total: int
    nbytes: int
    total_bytes: int | None
    seconds: float

    @property
    def rate(self) -> float:
        """Bytes per second."""
        return self.nbytes / max(self.seconds, 1e-9)

    @property
    def eta(self) -> float | None:
        """Seconds left at the pace of this run so far (None before any unit
        of work finished)."""
        worked = self.done - self.skipped
        if worked <= 0:
            return None
        return max(self.total - self.done, 0) * self.seconds / worked

    def counts(self, unit: str) -> str:
        """``done/total unit (percent)``, and how many were already done.

        Example:
          >>> Snapshot(30, 10, 120, 0, None, 1.0).counts('tasks')
          '30/120 tasks (25%, 10 already done)'
        """
        percent = 100 * min(self.done, self.total) // max(self.total, 1)
        skipped = f", {self.skipped} already done" if self.skipped else ""
        return f"{self.done}/{self.total} {unit} ({percent}%{skipped})"

    def amount(self, what: str) -> str:
        """The bytes counted, of how many, and what they are.

        Example:
          >>> Snapshot(1, 0, 2, 3 * 2**20, 6 * 2**20, 1.0).amount('read')
          '3.0 MiB of 6.0 MiB read'
        """
        of = f" of {format_bytes(self.total_bytes)}" if self.total_bytes else ""
        return f"{format_bytes(self.nbytes)}{of}" + (f" {what}" if what else "")


class Progress:
    """Progress of a pipeline run in this process (see the module docstring).

    Args:
      total: units of work expected (e.g. tasks, chunks).
      counter: the counter of units done.
      bytes_counter: the counter of bytes, for the amount and the rate.
      unit: what a unit is called.
      what: what the bytes are, e.g. 'written to the output'.
      total_bytes: bytes expected, if known.
      skipped_counter: the counter of units found already done (resuming).
      stream: where to write (default stderr).
      style: 'auto', 'bar', 'lines' or 'none' (see ``choose_style``).
      interval: seconds between two lines or redraws (default 30 for lines,
        0.5 for a bar).

    Example:
      ``with Progress(plan_tasks, 'rechunk_regions_copied',
      'rechunk_bytes_written', 'tasks') as shown: pipeline.run();
      print(shown.final.nbytes)``
    """

    def __init__(
        self,
        total: int,
        counter: str,
        bytes_counter: str,
        unit: str = "chunks",
        *,
        what: str = "",
        total_bytes: int | None = None,
        skipped_counter: str | None = None,
        stream: TextIO | None = None,
        style: str = "auto",
        interval: float | None = None,
    ):
        self.total = max(total, 1)
        self.counter = counter
        self.bytes_counter = bytes_counter
        self.skipped_counter = skipped_counter
        self.unit = unit
        self.what = what
        self.total_bytes = total_bytes
        self.stream = stream or sys.stderr
        self.style = choose_style(style, self.stream)
        if interval is None:
            interval = LINES_INTERVAL if self.style == "lines" else BAR_INTERVAL
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self.interval = interval
        self.final: Snapshot | None = None
        self._stop = threading.Event()
        skipped = [skipped_counter] if skipped_counter else []
        self._tally = metrics.Tally([counter, bytes_counter, *skipped])
        self._start = time.perf_counter()
        self._drawn = 0  # length of the bar drawn last

    def snapshot(self) -> Snapshot:
        """The counts as they stand."""
        if self.final is not None:
            return self.final
        skipped = self._tally[self.skipped_counter] if self.skipped_counter else 0
        return Snapshot(
            self._tally[self.counter] + skipped,
            skipped,
            self.total,
            self._tally[self.bytes_counter],
            self.total_bytes,
            time.perf_counter() - self._start,
        )

    def line(self, width: int | None = None) -> str:
        """The progress as one line of text, in the chosen style; a bar fits
        in ``width`` characters (shorter words first, then cut)."""
        now = self.snapshot()
        eta = (
            f", about {format_duration(now.eta)} left"
            if now.eta is not None and now.done < now.total
            else ""
        )
        counts, amount = now.counts(self.unit), now.amount(self.what)
        rate = f"{format_bytes(now.rate)}/s"
        if self.style != "bar":
            return (
                f"{time.strftime('%H:%M:%S')} progress: {counts}, {amount} at "
                f"{rate}, {format_duration(now.seconds)} elapsed{eta}"
            )
        filled = int(_BAR_WIDTH * min(now.done, now.total) / now.total)
        bar = "#" * filled + "." * (_BAR_WIDTH - filled)
        text = f"[{bar}] {counts}, {amount} at {rate}, {format_duration(now.seconds)}"
        text += eta
        if width is None or len(text) <= width:
            return text
        short = (
            f"[{bar}] {now.done}/{now.total} {self.unit}, "
            f"{format_bytes(now.nbytes)} at {rate}"
        )
        if now.eta is not None and now.done < now.total:
            short += f", {format_duration(now.eta)} left"
        return short[:width]

    def _width(self) -> int | None:
        """Characters a bar may take: one less than the terminal's width (a
        full line would wrap, and ``\\r`` then redraw only its last part)."""
        try:
            return os.get_terminal_size(self.stream.fileno()).columns - 1
        except (AttributeError, OSError, ValueError):
            return None

    def _show(self) -> None:
        if self.style == "bar":
            text = self.line(self._width())
            padding = " " * max(self._drawn - len(text), 0)
            self._drawn = len(text)
            self.stream.write("\r" + text + padding)
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def _draw(self) -> None:
        while not self._stop.wait(self.interval):
            self._show()

    def __enter__(self) -> Progress:
        self._tally.__enter__()
        self._start = time.perf_counter()
        self.final = None
        if self.style != "none":
            self._thread = threading.Thread(target=self._draw, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, kind, error, trace) -> None:
        self._stop.set()
        if self.style != "none":
            self._thread.join()
        self.final = self.snapshot()
        self._tally.__exit__(kind, error, trace)
        if kind is None and self.style != "none":
            self._show()  # the last counts, which the summary repeats
        if self.style == "bar" and (kind is None or self._drawn):
            self.stream.write("\n")  # what follows starts on a line of its own
            self.stream.flush()
