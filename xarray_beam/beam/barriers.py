"""Steps that wait for whole PCollections: start once, run after all of them.

Beam's ``Create([None])`` and ``combiners.Count.Globally()`` do both jobs,
but expand into about ten transforms and one to three shuffle stages each;
every stage costs a bundle (and, on the DirectRunner, up to 0.2 s of
waiting for its state sampler to stop). Here a start is one ``Impulse`` and
waiting is a side input of one ``None`` per bundle.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue


def start(pipeline: beam.Pipeline, label: str) -> beam.PCollection:
    """A PCollection of one element (``b''``), to hang a one-off step on.

    Example:
      ``token = start(pipeline, "StartSetup") | "Setup" >> beam.Map(setup)``
    """
    return pipeline | label >> beam.Impulse()


def after(
    pcolls: beam.PCollection | list[beam.PCollection],
    label: str,
    value: Any = None,
) -> beam.PCollection:
    """One element, emitted once every element of ``pcolls`` exists.

    Args:
      pcolls: what to wait for (a PCollection or several).
      label: a name unique in the pipeline, prefixing the steps added.
      value: what the element is: a constant, or a ``beam.pvalue.AsSingleton``
        (e.g. a setup's token), whose value it then is.

    Raises:
      ValueError: if ``pcolls`` is an empty list.

    Example:
      ``after(written, "AllWritten") | beam.Map(remove_temp_store)``
    """
    if isinstance(pcolls, beam.PCollection):
        pcolls = [pcolls]
    if not pcolls:
        raise ValueError(f"{label}: nothing to wait for (no PCollections given)")
    waited = [
        beam.pvalue.AsIter(pcoll | f"{label}Mark{i}" >> beam.ParDo(_MarkBundles()))
        for i, pcoll in enumerate(pcolls)
    ]
    return start(pcolls[0].pipeline, f"{label}Start") | f"{label}Done" >> beam.Map(
        _value, value, *waited
    )


class _MarkBundles(beam.DoFn):
    """One ``None`` per bundle that had elements: what waiting needs, so the
    side input stays small however many elements there are."""

    def start_bundle(self) -> None:
        self._seen = False

    def process(self, element):
        self._seen = True
        return ()

    def finish_bundle(self):
        if self._seen:
            yield WindowedValue(None, MIN_TIMESTAMP, [GlobalWindow()])


def _value(_, value, *waited) -> Any:
    """``value``, once the side inputs ``waited`` are complete (Beam
    computes a step's side inputs before it runs the step)."""
    return value
