"""How a rechunk runs: one pure function chooses the route (no Beam, no I/O).

``Dataset.rechunk`` (and ``Dataset.to_zarr`` after it) asks ``choose_route``
how to get from the current chunks to new ones, and only carries out the
answer. The routes, cheapest first:

``same``
  the chunks do not change: nothing to do;
``reread``
  the dataset is still an untransformed source (``from_xarray`` or
  ``from_zarr``) and every new chunk is made of whole stored chunks (or whole
  dimensions): the source is read again in the new chunks, with no shuffle;
``storage``
  the dataset is a whole Zarr store (``from_zarr`` with no selection) and the
  result is written straight to Zarr (``to_zarr``, no ``zarr_chunks`` of its
  own): store to store through uncompressed temporary stores
  (``RechunkZarr``), memory bounded on any runner;
``shuffle``
  anything else: ``Rechunk``'s multi-stage plan through Beam shuffles.

The answer, a ``RechunkRoute``, holds the plan of its stages and prints as
the route, the reason and the plan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal

from xarray_beam.model import planning

Route = Literal["same", "reread", "storage", "shuffle"]


@dataclasses.dataclass(frozen=True)
class SourceLayout:
    """How an untransformed source stores its data.

    Attributes:
      units: per dimension, the size of the stored blocks reading takes
        whole (Zarr chunks or shards, Dask chunks; 1 for data in memory).
      variables: for a whole Zarr store (no selection made), what the
        store-to-store planner needs about each data variable; else None.
    """

    units: Mapping[str, int]
    variables: Mapping[str, planning.VariableShape] | None = None


@dataclasses.dataclass(frozen=True)
class RechunkRequest:
    """Everything the choice of a route depends on.

    Attributes:
      sizes: dimension sizes.
      itemsize: bytes per element of a chunk (all its variables).
      chunks: the current chunk size per dimension.
      new_chunks: the requested chunk size per dimension.
      source: how the data is stored, if the dataset is an untransformed
        source; else None.
      min_mem, max_mem: memory bounds of the plan (see ``plan_rechunk``):
        bytes, or sizes such as '256MB' or '1GiB', held as bytes once the
        request is made.

    Raises:
      TypeError, ValueError: when made, naming ``max_mem`` or ``min_mem``
        if either is not a positive size, or if ``min_mem > max_mem``.
    """

    sizes: Mapping[str, int]
    itemsize: int
    chunks: Mapping[str, int]
    new_chunks: Mapping[str, int]
    source: SourceLayout | None = None
    min_mem: int | str | None = None
    max_mem: int | str = "1GiB"

    def __post_init__(self) -> None:
        max_mem, min_mem = planning.memory_bounds(self.max_mem, self.min_mem)
        object.__setattr__(self, "max_mem", max_mem)
        object.__setattr__(self, "min_mem", min_mem)


@dataclasses.dataclass(frozen=True)
class RechunkRoute:
    """How a rechunk runs (see the module docstring).

    Attributes:
      route: 'same', 'reread', 'storage' or 'shuffle'.
      chunks: the new chunk size per dimension.
      reason: why this route, in a sentence.
      plan: the stages, for 'storage' (a ``DatasetRechunkPlan``) and
        'shuffle' (a ``RechunkPlan``); None otherwise.
    """

    route: Route
    chunks: Mapping[str, int]
    reason: str
    plan: planning.RechunkPlan | planning.DatasetRechunkPlan | None = None

    def __str__(self) -> str:
        head = f"rechunk route: {self.route} ({self.reason})"
        return head if self.plan is None else f"{head}\n{self.plan}"


def can_reread(request: RechunkRequest) -> bool:
    """Whether every changed chunk is made of whole stored blocks (or is a
    whole dimension), so an untransformed source can simply be read again.

    Example:
      >>> request = RechunkRequest({'t': 10}, 4, {'t': 2}, {'t': 4},
      ...                          SourceLayout({'t': 2}))
      >>> can_reread(request)
      True
    """
    if request.source is None:
        return False
    for dim, size in request.sizes.items():
        new = request.new_chunks[dim]
        unit = request.source.units.get(dim, 1)
        if new != request.chunks[dim] and new < size and new % unit:
            return False
    return True


def choose_route(request: RechunkRequest, writes_zarr: bool = False) -> RechunkRoute:
    """The route (and its plan) of a rechunk.

    Args:
      request: what is rechunked, from what to what.
      writes_zarr: whether the result goes straight to a Zarr store whose
        chunks are the new chunks (``Dataset.to_zarr`` with no
        ``zarr_chunks`` of its own).

    Raises:
      ValueError: if no plan fits ``max_mem`` (see ``plan_rechunk``).

    Example:
      >>> request = RechunkRequest({'t': 8, 'x': 6}, 8, {'t': 2, 'x': 6},
      ...                          {'t': 8, 'x': 3})
      >>> route = choose_route(request)
      >>> route.route, len(route.plan.stages)
      ('shuffle', 1)
    """
    new = dict(request.new_chunks)
    if new == dict(request.chunks):
        return RechunkRoute("same", new, "the chunks do not change")
    if can_reread(request):
        return RechunkRoute(
            "reread",
            new,
            "the new chunks are whole stored chunks: the source is read again",
        )
    source = request.source
    if writes_zarr and source is not None and source.variables is not None:
        dataset_plan = planning.plan_dataset_rechunk(
            source.variables,
            new,
            request.max_mem,
            request.min_mem,
            method="storage",
        )
        return RechunkRoute(
            "storage",
            new,
            "a whole Zarr store written to Zarr: store to store through "
            "temporary stores (RechunkZarr)",
            dataset_plan,
        )
    plan = planning.plan_rechunk(
        dict(request.sizes),
        dict(request.chunks),
        new,
        max(request.itemsize, 1),
        request.min_mem,
        request.max_mem,
    )
    return RechunkRoute("shuffle", new, "through Beam shuffles (Rechunk)", plan)
