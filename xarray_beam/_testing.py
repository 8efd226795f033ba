"""Running small pipelines and collecting their output, for tests."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from xarray_beam import runners

_RESULTS: dict[str, list[Any]] = {}


def _store(elements: list[Any], token: str) -> None:
    _RESULTS[token] = elements


def collect(
    build: Callable[[beam.Pipeline], beam.PCollection],
    runner: str = runners.IN_PROCESS_RUNNER,
    **options: Any,
) -> list[Any]:
    """Run ``build(pipeline)`` in this process and return the PCollection it makes.

    Only for runners that execute in this process (``InProcessRunner``):
    results travel back through a module global.
    """
    token = uuid.uuid4().hex
    with beam.Pipeline(runner=runner, options=PipelineOptions([], **options)) as p:
        (
            build(p)
            | "ToList" >> beam.combiners.ToList()
            | "Store" >> beam.Map(_store, token)
        )
    return _RESULTS.pop(token)
