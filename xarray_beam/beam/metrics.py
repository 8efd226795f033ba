"""Counting work: Beam counters that runners show, and a tally in this process.

Transforms count their work with ``count`` (namespace ``xarray_beam``:
chunks and bytes read, written and copied), which runners such as Dataflow
display. While a ``Tally`` is open, the same counts also add up in this
process, for a progress bar of a pipeline that runs here.
"""

from __future__ import annotations

import collections
import threading

import apache_beam as beam

NAMESPACE = "xarray_beam"

_lock = threading.Lock()
_counts: collections.Counter = collections.Counter()
_open_tallies = 0


def count(name: str, value: int = 1) -> None:
    """Add ``value`` to the counter ``name`` (and to an open ``Tally``).

    Example:
      >>> with Tally(['chunks_written']) as tally:
      ...     count('chunks_written', 2)
      >>> tally['chunks_written']
      2
    """
    beam.metrics.Metrics.counter(NAMESPACE, name).inc(value)
    if _open_tallies:
        with _lock:
            _counts[name] += value


class Tally:
    """The counts made in this process while it is open (from zero).

    Args:
      names: the counters to follow; they start at zero when it opens.

    Example:
      ``with Tally(['chunks_written']) as tally: pipeline.run();
      tally['chunks_written']``
    """

    def __init__(self, names: list[str]):
        self.names = list(names)
        self._final: dict[str, int] | None = None

    def __getitem__(self, name: str) -> int:
        if self._final is not None:
            return self._final.get(name, 0)
        with _lock:
            return _counts[name]

    def __enter__(self) -> Tally:
        global _open_tallies
        with _lock:
            _open_tallies += 1
            for name in self.names:
                _counts.pop(name, None)
        return self

    def __exit__(self, *exc: object) -> None:
        global _open_tallies
        with _lock:
            self._final = {name: _counts[name] for name in self.names}
            _open_tallies -= 1
