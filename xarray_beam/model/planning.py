"""Rechunk plans: pure functions over shapes, chunk sizes and byte counts.

A rechunk moves data from source chunks to target chunks in one or more
*passes*. Each pass runs tasks over a grid of *regions*; a task reads its
region from the previous layout and writes it to the next. The final pass
writes whole target chunks (or shards), so no two tasks share an object.

Two ways to run the passes:

- ``'storage'`` (Zarr to Zarr, bounded memory on any runner): intermediate
  layouts are uncompressed temporary Zarr stores. A pass's tasks pull their
  region from the previous store, re-reading any stored chunk their region
  only partly covers.
- ``'shuffle'`` (``(Key, Dataset)`` PCollections, the ``Rechunk`` transform):
  each pass splits chunks into pieces and groups them with a Beam shuffle.

Region shapes follow Rechunker's multi-stage algorithm: the source chunks are
consolidated into read regions and the target chunks into write regions, up
to the memory budget, and intermediate passes lie on a geometric progression
between them. Unlike Rechunker, plans are chosen by a cost model that counts
bytes read (including re-reads), bytes written, and the number of pieces and
objects, so a plan that re-reads source chunks can beat one with an extra
pass; and memory is projected from the real copies a task holds.

Nothing here imports Beam or touches storage.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from xarray_beam.model import chunks as chunks_lib
from xarray_beam.model.units import byte_size, format_bytes

Method = Literal["shuffle", "storage"]
MiB = 2**20
_MAX_CONCURRENCY = 8
_ZARR_CONCURRENCY = 10  # zarr-python's default async.concurrency
# Seconds a request to a cloud object store typically waits (first byte).
OBJECT_STORE_LATENCY = 0.03


@dataclasses.dataclass(frozen=True)
class CostModel:
    """Seconds per byte and per operation, to rank plans (not to promise times).

    The defaults were measured with zarr-python 3 on local disk (one core):
    decompressing and compressing dominate bytes; every chunk read or object
    written costs about half a millisecond of overhead.

    Attributes:
      read_compressed: seconds per byte read from a compressed (source) store
        (default ``1 / 300e6``: 300 MB/s).
      write_compressed: seconds per byte written to a compressed (target)
        store (default 150 MB/s).
      read_temp: seconds per byte read from an uncompressed temporary store
        (default 1.2 GB/s).
      write_temp: seconds per byte written to a temporary store (default
        0.8 GB/s).
      shuffle: seconds per byte through a Beam shuffle (default 150 MB/s).
      per_read: seconds per stored chunk read, the request and decoding
        overhead (default 0.5 ms).
      per_object: seconds per object written (default 0.5 ms).
      per_piece: seconds per piece a shuffle moves (default 0.3 ms).
      per_pass: seconds per pass of a storage plan whatever its size
        (default 0.25 s, measured on the DirectRunner): a pipeline stage to
        schedule and a temporary array per variable to create and remove.
        Small stores are rechunked in one pass (re-reading source chunks)
        when a second pass would save less than that.

    Example:
      >>> slow_disk = CostModel(read_compressed=1 / 50e6, write_compressed=1 / 25e6)
      >>> plan = plan_rechunk({'t': 100, 'x': 50}, {'t': 10}, {'t': -1, 'x': 5},
      ...                     4, method='storage', cost_model=slow_disk)
      >>> [stage.writes for stage in plan.stages]
      ['target']
    """

    read_compressed: float = 1 / 300e6
    write_compressed: float = 1 / 150e6
    read_temp: float = 1 / 1.2e9
    write_temp: float = 1 / 0.8e9
    shuffle: float = 1 / 150e6
    per_read: float = 0.5e-3
    per_object: float = 0.5e-3
    per_piece: float = 0.3e-3
    per_pass: float = 0.25

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int | float) or not 0 <= value < math.inf:
                raise ValueError(
                    f"CostModel.{field.name} must be a finite number >= 0 "
                    f"(seconds), got {value!r}"
                )

    @classmethod
    def object_store(
        cls, latency: float = OBJECT_STORE_LATENCY, in_flight: int = 8
    ) -> CostModel:
        """Costs for stores behind a network (gs://, s3://): every read and
        every object written also waits ``latency`` seconds, ``in_flight``
        requests at a time, and temporary bytes move at network rather than
        disk speed; so plans that re-read source chunks, touch more objects
        or add passes cost more than on a local disk.

        Example:
          >>> remote = CostModel.object_store(latency=0.02, in_flight=8)
          >>> round(remote.per_read - CostModel().per_read, 4)
          0.0025
        """
        if latency < 0 or in_flight < 1:
            raise ValueError(
                f"latency must be >= 0 and in_flight >= 1, got {latency}, {in_flight}"
            )
        per_request = latency / in_flight
        return cls(
            read_temp=1 / 400e6,  # uncompressed bytes come over the network
            write_temp=1 / 300e6,
            per_read=cls.per_read + per_request,
            per_object=cls.per_object + per_request,
        )


@dataclasses.dataclass(frozen=True)
class MemoryModel:
    """What a task holds at its peak.

    Attributes:
      copies: bytes held per byte of a chunk being decoded or encoded (the
        stored bytes and the array).
      shuffle_copies: bytes held per byte of a chunk being consolidated from
        pieces (the pieces and the assembled chunk).
      baseline: memory of a worker process besides the data its tasks hold:
        the interpreter, NumPy, xarray, zarr and Beam (about 250 MB measured
        before the first task) and what the C allocator keeps from finished
        tasks (up to about 100 MB more, measured during rechunks); default
        352 MiB.
    """

    copies: float = 2.0
    shuffle_copies: float = 2.0
    baseline: int = 352 * MiB


@dataclasses.dataclass(frozen=True)
class Stage:
    """One pass of a rechunk plan.

    Attributes:
      reads: what the pass reads: 'source', 'temp N' or 'chunks' (shuffle).
      writes: what it writes: 'temp N', 'target' or 'chunks' (shuffle).
      regions: shape of each task's region (the stage's chunks).
      read_units: shape of the blocks read (stored chunks, or pieces).
      write_units: shape of the blocks written (stored chunks or shards).
      tasks: number of tasks (regions).
      pieces: chunks read from storage, or pieces shuffled.
      objects: objects written (storage) or chunks assembled (shuffle).
      bytes_read: bytes read, counting re-reads of partly used chunks.
      bytes_written: bytes written.
      peak_memory: projected peak bytes held by one task.
      concurrency: blocks a task reads or writes at once.
      seconds: the cost model's estimate.
    """

    reads: str
    writes: str
    regions: tuple[int, ...]
    read_units: tuple[int, ...]
    write_units: tuple[int, ...]
    tasks: int
    pieces: int
    objects: int
    bytes_read: int
    bytes_written: int
    peak_memory: int
    concurrency: int
    seconds: float


@dataclasses.dataclass(frozen=True)
class RechunkPlan:
    """A rechunk plan for arrays of one shape and itemsize. Prints as a table.

    Attributes:
      method: 'storage' or 'shuffle'.
      dims: dimension names.
      shape: dimension sizes.
      itemsize: bytes per element (of all variables a chunk holds).
      source_chunks: explicit source chunk sizes per dimension.
      target_chunks: target chunk size per dimension.
      target_shards: target shard size per dimension, or None.
      max_mem: the memory budget of a task.
      min_mem: the smallest piece asked for, or None.
      stages: the passes, in order.
      warnings: things the user should know (budget not reachable, ...).
      variables: names of the variables this plan is for, if known.
      memory_model: the model behind ``peak_memory``.
    """

    method: Method
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    itemsize: int
    source_chunks: tuple[tuple[int, ...], ...]
    target_chunks: tuple[int, ...]
    target_shards: tuple[int, ...] | None
    max_mem: int
    min_mem: int | None
    stages: tuple[Stage, ...]
    warnings: tuple[str, ...] = ()
    variables: tuple[str, ...] = ()
    memory_model: MemoryModel = MemoryModel()

    @property
    def total_bytes(self) -> int:
        """Bytes of one array (or chunk-set) of this shape."""
        return math.prod(self.shape) * self.itemsize

    @property
    def peak_memory(self) -> int:
        """Projected peak bytes of the largest task."""
        return max((s.peak_memory for s in self.stages), default=0)

    @property
    def seconds(self) -> float:
        """The cost model's estimate for one array."""
        return sum(s.seconds for s in self.stages)

    @property
    def intermediate_chunks(self) -> tuple[tuple[int, ...], ...]:
        """Chunk shapes of the temporary stores, in pass order."""
        return tuple(s.write_units for s in self.stages if s.writes.startswith("temp"))

    def worker_peak(self, tasks_per_worker: int = 1) -> int:
        """Projected peak RSS of a worker running ``tasks_per_worker`` tasks."""
        return self.memory_model.baseline + tasks_per_worker * self.peak_memory

    def __str__(self) -> str:
        return format_plan(self)


def _shape(values: Sequence[object]) -> str:
    return "(" + ", ".join(str(v) for v in values) + ")"


def format_plan(plan: RechunkPlan) -> str:
    """A readable table of a plan."""
    source = tuple(max(c) if c else 0 for c in plan.source_chunks)
    irregular = any(len(set(c[:-1])) > 1 for c in plan.source_chunks)
    shown = list(plan.variables[:4])
    if len(plan.variables) > 4:
        shown = [*plan.variables[:3], f"and {len(plan.variables) - 3} more"]
    names = f" of {', '.join(shown)}" if shown else ""
    lines = [
        f"Rechunk plan ({plan.method}){names}: dims {_shape(plan.dims)}, shape "
        f"{_shape(plan.shape)}, {plan.itemsize} bytes/element, "
        f"{format_bytes(plan.total_bytes)}",
        f"  source chunks {_shape(source)}{' (irregular)' if irregular else ''}"
        f" -> target chunks {_shape(plan.target_chunks)}"
        + (f" in shards {_shape(plan.target_shards)}" if plan.target_shards else "")
        + f"; max_mem {format_bytes(plan.max_mem)}"
        + (f", min_mem {format_bytes(plan.min_mem)}" if plan.min_mem else ""),
    ]
    header = (
        "pass",
        "reads",
        "regions",
        "writes",
        "chunks written",
        "tasks",
        "pieces",
        "objects",
        "read",
        "written",
        "peak/task",
    )
    rows = [header]
    for i, s in enumerate(plan.stages, start=1):
        rows.append(
            (
                str(i),
                s.reads,
                _shape(s.regions),
                s.writes,
                _shape(s.write_units),
                f"{s.tasks:,}",
                f"{s.pieces:,}",
                f"{s.objects:,}",
                format_bytes(s.bytes_read),
                format_bytes(s.bytes_written),
                format_bytes(s.peak_memory),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        cells = (v.ljust(w) for v, w in zip(row, widths, strict=True))
        lines.append(("  " + "  ".join(cells)).rstrip())
    lines.append(
        f"  projected peak per worker: {format_bytes(plan.memory_model.baseline)} "
        f"baseline + {format_bytes(plan.peak_memory)} per task = "
        f"{format_bytes(plan.worker_peak())} (one task at a time)"
    )
    lines.append(f"  cost model estimate: {plan.seconds:.1f} s of work per array")
    if plan.method == "shuffle":
        lines.append(
            "  note: on local runners (DirectRunner) a shuffle holds all the data "
            "it moves in memory; for Zarr to Zarr with bounded memory anywhere, "
            "use rechunk_zarr"
        )
    for warning in plan.warnings:
        lines.append(f"  warning: {warning}")
    return "\n".join(lines)


# --- one-dimensional arithmetic ----------------------------------------------


def _bounds(sizes: Sequence[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])


def _regular_bounds(size: int, n: int) -> np.ndarray:
    return np.append(np.arange(0, n, max(size, 1), dtype=np.int64), n)


def _overlap(unit_bounds: np.ndarray, region_bounds: np.ndarray) -> tuple[int, int]:
    """Elements and units read when each region reads every unit it overlaps."""
    starts, stops = region_bounds[:-1], region_bounds[1:]
    first = np.searchsorted(unit_bounds, starts, side="right") - 1
    last = np.searchsorted(unit_bounds, stops, side="left")
    return int((unit_bounds[last] - unit_bounds[first]).sum()), int(
        (last - first).sum()
    )


def _intersections(a: np.ndarray, b: np.ndarray) -> int:
    """Number of pieces when one grid is cut at the boundaries of another."""
    return len(np.union1d(a, b)) - 1


def _shared_unit(a: int, b: int, n: int) -> int:
    """The largest block that tiles regions of size ``a`` and of size ``b``."""
    if a >= n and b >= n:
        return n
    if a >= n:
        return b
    if b >= n:
        return a
    return math.gcd(a, b)


# --- choosing region shapes ------------------------------------------------------


def consolidate(
    base: Sequence[int],
    limit: Sequence[int],
    shape: Sequence[int],
    itemsize: int,
    budget: float,
) -> tuple[int, ...]:
    """Grow ``base`` by whole multiples along each dimension within a budget.

    Each dimension grows at most to ``limit`` (and the dimension size); the
    dimension with the most room grows first, doubling, so shapes stay
    balanced; a final step fills what the budget still allows.

    Returns:
      Sizes that are multiples of ``base`` (or whole dimensions) whose volume
      times ``itemsize`` is at most ``budget`` (never below ``base``).

    Example:
      >>> consolidate((24, 721, 1440), (350640, 721, 1440), (350640, 721, 1440),
      ...             4, 1e9)
      (240, 721, 1440)
    """
    base = [max(1, min(b, n)) for b, n in zip(base, shape, strict=True)]
    cap = [
        max(n, 1) if lim >= n else max(b, lim // b * b)
        for b, lim, n in zip(base, limit, shape, strict=True)
    ]
    current = list(base)

    def fits(sizes: list[int]) -> bool:
        return math.prod(sizes) * itemsize <= budget

    def room(i: int) -> float:
        return current[i] / cap[i]

    grew = True
    while grew:
        grew = False
        for i in sorted(range(len(base)), key=room):
            if current[i] >= cap[i]:
                continue
            candidate = list(current)
            candidate[i] = min(current[i] * 2, cap[i])
            if fits(candidate):
                current = candidate
                grew = True
                break
    for i in sorted(range(len(base)), key=room):
        others = math.prod(current) // current[i]
        most = int(budget // (others * itemsize))
        current[i] = min(max(current[i], most // base[i] * base[i]), cap[i])
    return tuple(current)


def _chain(first: int, last: int, n: int, passes: int) -> list[int]:
    """Region sizes along one dimension for each pass, geometric first to last.

    Values between the ends are whole multiples of the smaller end, each a
    multiple of the one before, so stored blocks line up between passes.
    """
    first, last = min(first, n), min(last, n)
    if passes == 1:
        return [last]
    if first == last:
        return [first] * passes
    low, high = sorted((first, last))
    values = [low]
    for j in range(1, passes - 1):
        ideal = math.exp(
            math.log(low) + (math.log(high) - math.log(low)) * j / (passes - 1)
        )
        step = values[-1]
        size = step * max(1, round(ideal / step))
        values.append(min(size, high))
    values.append(high)
    return values if first <= last else values[::-1]


# --- plans -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Problem:
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    source: tuple[tuple[int, ...], ...]
    target: tuple[int, ...]
    shards: tuple[int, ...] | None
    itemsize: int
    max_mem: int
    min_mem: int | None

    @property
    def write_units(self) -> tuple[int, ...]:
        return self.shards if self.shards is not None else self.target

    @property
    def source_max(self) -> tuple[int, ...]:
        return tuple(max(c) if c else 1 for c in self.source)

    def nbytes(self, sizes: Sequence[int]) -> int:
        return math.prod(min(s, n) for s, n in zip(sizes, self.shape, strict=True)) * (
            self.itemsize
        )


def memory_bounds(
    max_mem: int | str, min_mem: int | str | None = None
) -> tuple[int, int | None]:
    """``max_mem`` and ``min_mem`` in bytes, checked (see ``units.byte_size``).

    Raises:
      TypeError, ValueError: naming the parameter, for a value that is not a
        positive size, and if ``min_mem`` is larger than ``max_mem``.

    Example:
      >>> memory_bounds('1GiB'), memory_bounds(2**30, '64MB')
      ((1073741824, None), (1073741824, 64000000))
    """
    max_bytes = byte_size(max_mem, "max_mem")
    min_bytes = None if min_mem is None else byte_size(min_mem, "min_mem")
    if min_bytes is not None and min_bytes > max_bytes:
        raise ValueError(
            f"min_mem ({format_bytes(min_bytes)}) is larger than max_mem "
            f"({format_bytes(max_bytes)})"
        )
    return max_bytes, min_bytes


def _normalize(
    dim_sizes: Mapping[str, int],
    source_chunks: Mapping[str, object],
    target_chunks: Mapping[str, int],
    itemsize: int,
    min_mem: int | str | None,
    max_mem: int | str,
    target_shards: Mapping[str, int] | None,
) -> _Problem:
    if not isinstance(dim_sizes, Mapping):
        raise TypeError(f"dim_sizes must be a mapping, got {dim_sizes!r}")
    for dim, size in dim_sizes.items():
        if not isinstance(size, numbers.Integral) or isinstance(size, bool) or size < 0:
            raise ValueError(
                f"size of dimension {dim!r} must be a non-negative int, got {size!r}"
            )
    dims = tuple(dim_sizes)
    shape = tuple(int(dim_sizes[d]) for d in dims)
    if not isinstance(itemsize, numbers.Integral) or itemsize <= 0:
        raise ValueError(f"itemsize must be a positive int, got {itemsize!r}")
    max_mem, min_mem = memory_bounds(max_mem, min_mem)
    source = chunks_lib.normalize_chunks_for_sizes(
        source_chunks, dict(zip(dims, shape, strict=False)), what="source"
    )
    target_spec = chunks_lib.check_chunk_sizes(target_chunks, "target_chunks", dims)
    requested = []
    for dim, n in zip(dims, shape, strict=True):
        if dim in target_spec:
            size = target_spec[dim]
            requested.append(max(n, 1) if size == -1 else size)
        elif len(set(source[dim][:-1])) <= 1 and source[dim]:
            requested.append(source[dim][0])  # unchanged, as in xarray's .chunk()
        else:
            requested.append(max(n, 1))
    target = [min(size, max(n, 1)) for size, n in zip(requested, shape, strict=True)]
    shards = None
    if target_shards:
        shard_spec = chunks_lib.check_chunk_sizes(target_shards, "target_shards", dims)
        shards = []
        for dim, n, asked, chunk in zip(dims, shape, requested, target, strict=True):
            covering = math.ceil(max(n, 1) / chunk) * chunk
            size = shard_spec.get(dim, asked)
            size = covering if size == -1 else size
            if size % asked:
                raise ValueError(
                    f"target shard size {size} along {dim!r} is not a multiple of "
                    f"the target chunk size {asked}"
                )
            shards.append(min(size, covering))
        shards = tuple(shards)
    problem = _Problem(
        dims,
        shape,
        tuple(source[d] for d in dims),
        tuple(target),
        shards,
        int(itemsize),
        max_mem,
        min_mem,
    )
    for what, sizes in (
        ("target chunks", target),
        ("target shards", shards),
        ("source chunks", problem.source_max),
    ):
        if sizes is not None and problem.nbytes(sizes) > max_mem:
            raise ValueError(
                f"{what} {dict(zip(dims, sizes, strict=False))} hold "
                f"{format_bytes(problem.nbytes(sizes))}, more than max_mem "
                f"({format_bytes(max_mem)}); raise max_mem or choose smaller "
                f"{what.split()[-1]}"
            )
    return problem


def _storage_stages(
    problem: _Problem,
    regions: list[tuple[int, ...]],
    costs: CostModel,
    memory: MemoryModel,
    budget: int,
) -> list[Stage]:
    p = len(regions)
    shape = problem.shape
    stages = []
    read_units = problem.source_max
    read_bounds = [_bounds(c) for c in problem.source]
    for j, region in enumerate(regions):
        last = j == p - 1
        if last:
            write_units = problem.write_units
        else:
            write_units = tuple(
                _shared_unit(a, b, n)
                for a, b, n in zip(region, regions[j + 1], shape, strict=True)
            )
        region_bounds = [
            _regular_bounds(min(r, n), n) for r, n in zip(region, shape, strict=False)
        ]
        elements, pieces = 1, 1
        for ub, rb in zip(read_bounds, region_bounds, strict=True):
            e, c = _overlap(ub, rb)
            elements *= e
            pieces *= c
        tasks = math.prod(len(b) - 1 for b in region_bounds)
        objects = math.prod(
            math.ceil(n / max(u, 1)) for u, n in zip(write_units, shape, strict=False)
        )
        # A task holds its region, plus the stored and decoded bytes of the
        # chunks it reads (``concurrency`` at once) or writes (zarr encodes up
        # to _ZARR_CONCURRENCY of the target chunks inside the region at once).
        region_bytes = problem.nbytes(region)
        in_block = problem.nbytes(read_units)
        out_block = problem.nbytes(write_units)
        spare = budget - region_bytes
        concurrency = max(
            1,
            min(
                _MAX_CONCURRENCY,
                int(spare // (memory.copies * max(in_block, out_block, 1))),
            ),
        )
        out_per_region = math.prod(
            math.ceil(min(r, n) / max(min(u, n), 1))
            for r, u, n in zip(region, write_units, shape, strict=True)
        )
        writing = min(_ZARR_CONCURRENCY, out_per_region) if last else concurrency
        peak = region_bytes + memory.copies * max(
            concurrency * in_block, writing * out_block
        )
        bytes_read = elements * problem.itemsize
        bytes_written = problem.nbytes(shape)
        seconds = (
            bytes_read * (costs.read_compressed if j == 0 else costs.read_temp)
            + bytes_written * (costs.write_compressed if last else costs.write_temp)
            + pieces * costs.per_read
            + objects * costs.per_object
            + costs.per_pass
        )
        stages.append(
            Stage(
                "source" if j == 0 else f"temp {j}",
                "target" if last else f"temp {j + 1}",
                tuple(min(r, n) for r, n in zip(region, shape, strict=False)),
                tuple(min(u, n) for u, n in zip(read_units, shape, strict=False)),
                tuple(min(u, n) for u, n in zip(write_units, shape, strict=False)),
                tasks,
                pieces,
                objects,
                bytes_read,
                bytes_written,
                int(peak),
                concurrency,
                seconds,
            )
        )
        read_units = write_units
        read_bounds = [
            _regular_bounds(min(u, n), n)
            for u, n in zip(write_units, shape, strict=False)
        ]
    return stages


def _shuffle_stages(
    problem: _Problem,
    regions: list[tuple[int, ...]],
    costs: CostModel,
    memory: MemoryModel,
    budget: int,
) -> list[Stage]:
    shape = problem.shape
    stages = []
    previous_bounds = [_bounds(c) for c in problem.source]
    previous = problem.source_max
    total = problem.nbytes(shape)
    for j, region in enumerate(regions):
        bounds = [
            _regular_bounds(min(r, n), n) for r, n in zip(region, shape, strict=False)
        ]
        pieces = math.prod(
            _intersections(a, b) for a, b in zip(previous_bounds, bounds, strict=True)
        )
        tasks = math.prod(len(b) - 1 for b in bounds)
        peak = memory.shuffle_copies * max(
            problem.nbytes(region), problem.nbytes(previous)
        )
        stages.append(
            Stage(
                "source chunks" if j == 0 else f"stage {j}",
                f"stage {j + 1}" if j < len(regions) - 1 else "target chunks",
                tuple(min(r, n) for r, n in zip(region, shape, strict=False)),
                tuple(
                    min(min(a, b), n)
                    for a, b, n in zip(previous, region, shape, strict=False)
                ),
                tuple(min(r, n) for r, n in zip(region, shape, strict=False)),
                tasks,
                pieces,
                tasks,
                total,
                total,
                int(peak),
                1,
                total * costs.shuffle + pieces * costs.per_piece,
            )
        )
        previous_bounds, previous = bounds, region
    return stages


def _without_repeats(
    regions: list[tuple[int, ...]], source: tuple[tuple[int, ...], ...]
) -> list[tuple[int, ...]]:
    """Drop shuffle stages that would leave the chunks as they are."""
    kept: list[tuple[int, ...]] = []
    previous = [
        c[0] if len(set(c[:-1])) <= 1 and c else None for c in source
    ]  # regular source chunk sizes (None: irregular)
    for region in regions:
        if list(region) != previous or not kept and len(regions) == 1:
            kept.append(region)
        previous = list(region)
    return kept


def _smallest_piece(problem: _Problem, stages: list[Stage]) -> int:
    return min(problem.nbytes(s.read_units) for s in stages)


def plan_rechunk(
    dim_sizes: Mapping[str, int],
    source_chunks: Mapping[str, int | tuple[int, ...]],
    target_chunks: Mapping[str, int],
    itemsize: int,
    min_mem: int | str | None = None,
    max_mem: int | str = "1GiB",
    *,
    method: Method = "shuffle",
    target_shards: Mapping[str, int] | None = None,
    variables: Sequence[str] = (),
    max_passes: int = 5,
    cost_model: CostModel | None = None,
    memory_model: MemoryModel | None = None,
) -> RechunkPlan:
    """Plan a rechunk of arrays of one shape and itemsize.

    Args:
      dim_sizes: size of each dimension, in array order.
      source_chunks: source chunk size per dimension: an int (ragged last
        chunk), -1 (whole) or a tuple of sizes (irregular). Missing: whole.
      target_chunks: target chunk size per dimension (int or -1). Missing
        dimensions keep their (regular) source chunks, as with xarray's
        ``.chunk()``.
      itemsize: bytes per element, summed over the variables one chunk holds.
      min_mem: smallest piece worth moving; more passes are planned to keep
        pieces at least this large (a warning says if that is impossible).
        Bytes, or a size such as '64MB' (see ``max_mem``).
      max_mem: memory a task may use, counting the copies it really holds
        (stored and decoded bytes of the blocks it reads and writes). Bytes
        (an int), or a size as text: decimal units ('256MB', '1G': powers
        of 1000, as dask and rechunker read them) or binary ones ('256MiB',
        '1GiB': powers of 1024). Default 1 GiB.
      method: 'storage' (Zarr to Zarr through temporary stores) or 'shuffle'
        (PCollections through Beam's shuffle).
      target_shards: shard size per dimension of the target store (storage).
      variables: names of the variables planned, for display.
      max_passes: most passes to consider.
      cost_model: per-byte and per-operation costs that rank candidate plans.
      memory_model: how task memory is projected.

    Returns:
      The cheapest plan whose tasks fit ``max_mem`` (or, if none fits, the one
      using least memory, with a warning).

    Raises:
      ValueError: naming the culprit, for unknown dimensions, negative sizes,
        a ``max_mem`` or ``min_mem`` that is not a size, ``min_mem >
        max_mem``, or source/target chunks larger than max_mem.

    Example:
      >>> plan = plan_rechunk({'time': 8760, 'lat': 721, 'lon': 1440},
      ...                     {'time': 24}, {'time': -1, 'lat': 23, 'lon': 45},
      ...                     itemsize=4, max_mem='1GB', method='storage')
      >>> [s.writes for s in plan.stages]
      ['temp 1', 'target']
    """
    if method not in ("shuffle", "storage"):
        raise ValueError(f"method must be 'shuffle' or 'storage', got {method!r}")
    costs = cost_model or CostModel()
    memory = memory_model or MemoryModel()
    problem = _normalize(
        dim_sizes,
        source_chunks,
        target_chunks,
        itemsize,
        min_mem,
        max_mem,
        target_shards,
    )
    if method == "shuffle" and target_shards:
        raise ValueError("target_shards only applies to method='storage'")
    # A task holds its region plus the blocks it decodes or encodes (storage),
    # or the pieces and the assembled chunk (shuffle). No task can hold less
    # than one source chunk or one target object handled that way.
    copies = memory.copies + 1 if method == "storage" else memory.shuffle_copies
    source_max = problem.source_max
    largest_block = max(problem.nbytes(source_max), problem.nbytes(problem.write_units))
    floor = int(copies * largest_block)
    budget = max(problem.max_mem, floor)
    region_budget = budget / copies
    read = consolidate(
        source_max, problem.target, problem.shape, problem.itemsize, region_budget
    )
    write = consolidate(
        problem.write_units, source_max, problem.shape, problem.itemsize, region_budget
    )
    make_stages = _storage_stages if method == "storage" else _shuffle_stages
    candidates = []
    for passes in range(1, max_passes + 1):
        columns = [
            _chain(r, w, n, passes)
            for r, w, n in zip(read, write, problem.shape, strict=True)
        ]
        regions = [tuple(sizes) for sizes in zip(*columns, strict=True)]
        if method == "shuffle":
            regions = _without_repeats(regions, problem.source)
        if regions:
            candidates.append(make_stages(problem, regions, costs, memory, budget))
    plan_stages, warnings = _choose(problem, candidates, budget)
    return RechunkPlan(
        method,
        problem.dims,
        problem.shape,
        problem.itemsize,
        problem.source,
        problem.target,
        problem.shards,
        problem.max_mem,
        problem.min_mem,
        tuple(plan_stages),
        tuple(warnings),
        tuple(variables),
        memory,
    )


def _choose(
    problem: _Problem, candidates: list[list[Stage]], budget: int
) -> tuple[list[Stage], list[str]]:
    """The cheapest candidate within the budget (and min_mem, if reachable)."""
    warnings = []

    def peak(stages: list[Stage]) -> int:
        return max(s.peak_memory for s in stages)

    def cost(stages: list[Stage]) -> float:
        return sum(s.seconds for s in stages)

    fitting = [c for c in candidates if peak(c) <= budget]
    if not fitting:
        least = min(peak(c) for c in candidates)
        fitting = [c for c in candidates if peak(c) == least]
    if problem.min_mem is not None:
        large = [c for c in fitting if _smallest_piece(problem, c) >= problem.min_mem]
        if large:
            fitting = large
        else:
            best = max(_smallest_piece(problem, c) for c in fitting)
            warnings.append(
                f"min_mem ({format_bytes(problem.min_mem)}) is not reachable: "
                f"the largest pieces any plan moves are {format_bytes(best)}"
            )
            fitting = [c for c in fitting if _smallest_piece(problem, c) == best]
    chosen = min(fitting, key=cost)
    if peak(chosen) > problem.max_mem:
        warnings.append(
            f"tasks need more than max_mem ({format_bytes(problem.max_mem)}): "
            f"a task reading or writing one chunk holds its stored and decoded "
            f"bytes, so with these chunks a task needs about "
            f"{format_bytes(peak(chosen))}; raise max_mem or use smaller "
            f"source/target chunks"
        )
    return chosen, warnings


@dataclasses.dataclass(frozen=True)
class VariableShape:
    """What the planner needs to know about one variable.

    Attributes:
      dims: dimension names.
      shape: dimension sizes.
      itemsize: bytes per stored element.
      chunks: stored (source) chunk shape.
    """

    dims: tuple[str, ...]
    shape: tuple[int, ...]
    itemsize: int
    chunks: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class DatasetRechunkPlan:
    """Plans for every group of variables that share dims, shape, itemsize and
    source chunks. Prints as one table per group.

    Attributes:
      plans: one ``RechunkPlan`` per group, with its variables' names.

    Example:
      >>> shapes = {'t': VariableShape(('time',), (100,), 4, (10,))}
      >>> plan = plan_dataset_rechunk(shapes, {'time': -1})
      >>> plan.plan_for('t').target_chunks
      (100,)
    """

    plans: tuple[RechunkPlan, ...]

    @property
    def peak_memory(self) -> int:
        """Projected peak bytes of the largest task of any group."""
        return max((p.peak_memory for p in self.plans), default=0)

    def worker_peak(self, tasks_per_worker: int = 1) -> int:
        """Projected peak RSS of a worker running ``tasks_per_worker`` tasks."""
        baseline = self.plans[0].memory_model.baseline if self.plans else 0
        return baseline + tasks_per_worker * self.peak_memory

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(w for p in self.plans for w in p.warnings))

    def plan_for(self, name: str) -> RechunkPlan:
        """The plan that covers variable ``name``."""
        for plan in self.plans:
            if name in plan.variables:
                return plan
        raise KeyError(f"no plan covers variable {name!r}")

    def __str__(self) -> str:
        parts = [str(p) for p in self.plans]
        parts.append(
            f"Projected peak per worker, one task at a time: "
            f"{format_bytes(self.worker_peak())}"
        )
        return "\n\n".join(parts)


def plan_dataset_rechunk(
    variables: Mapping[str, VariableShape],
    target_chunks: Mapping[str, int],
    max_mem: int | str = "1GiB",
    min_mem: int | str | None = None,
    *,
    method: Method = "storage",
    target_shards: Mapping[str, int] | None = None,
    cost_model: CostModel | None = None,
    memory_model: MemoryModel | None = None,
) -> DatasetRechunkPlan:
    """Plan a rechunk of several variables, one plan per group that can share it.

    Variables are grouped by dims, shape, itemsize and source chunks; each
    group gets the target chunks (and shards) of its own dimensions.

    Args:
      variables: the shape, itemsize and source chunks of each variable.
      target_chunks, max_mem, min_mem, method, target_shards, cost_model,
        memory_model: as for ``plan_rechunk`` (``max_mem`` and ``min_mem``
        in bytes or as sizes such as '1GiB'; default 'storage').

    Raises:
      ValueError: if ``target_chunks`` or ``target_shards`` name a dimension no
        variable has, or for any reason ``plan_rechunk`` gives.

    Example:
      >>> shapes = {
      ...     't2m': VariableShape(('time', 'x'), (100, 50), 4, (10, 50)),
      ...     'lsm': VariableShape(('x',), (50,), 1, (50,)),
      ... }
      >>> plan = plan_dataset_rechunk(shapes, {'time': -1, 'x': 5})
      >>> [p.variables for p in plan.plans]
      [('t2m',), ('lsm',)]
    """
    max_mem, min_mem = memory_bounds(max_mem, min_mem)
    all_dims = {d for v in variables.values() for d in v.dims}
    for name, spec in (
        ("target_chunks", target_chunks),
        ("target_shards", target_shards),
    ):
        unknown = [d for d in spec or {} if d not in all_dims]
        if unknown:
            raise ValueError(
                f"{name} names dimension(s) {unknown} that no variable has; "
                f"dimensions: {sorted(all_dims)}"
            )
    groups: dict[VariableShape, list[str]] = {}
    for name, shape in variables.items():
        groups.setdefault(shape, []).append(name)
    plans = []
    for shape, names in groups.items():
        dims = shape.dims
        plans.append(
            plan_rechunk(
                dict(zip(dims, shape.shape, strict=True)),
                dict(zip(dims, shape.chunks, strict=True)),
                {d: s for d, s in target_chunks.items() if d in dims},
                shape.itemsize,
                min_mem,
                max_mem,
                method=method,
                target_shards=(
                    {d: s for d, s in target_shards.items() if d in dims}
                    if target_shards
                    else None
                ),
                variables=tuple(names),
                cost_model=cost_model,
                memory_model=memory_model,
            )
        )
    return DatasetRechunkPlan(tuple(plans))
