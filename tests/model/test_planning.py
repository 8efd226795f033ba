"""The rechunk planner, checked against plain arithmetic and numpy simulations,
and the shuffle-based ``Rechunk`` transform, checked against xarray slicing.
"""

import itertools
import math

import apache_beam as beam
import numpy as np
import pytest
import xarray
from hypothesis import given, settings
from hypothesis import strategies as st

import xarray_beam as xbeam
from xarray_beam.beam import runners
from xarray_beam.model import planning
from xarray_beam.model.key import Key, offsets_to_slices
from xarray_beam.model.planning import (
    CostModel,
    VariableShape,
    plan_dataset_rechunk,
    plan_rechunk,
)

ERA5_YEAR = {"time": 8760, "lat": 721, "lon": 1440}
ERA5_FULL = {"time": 350640, "lat": 721, "lon": 1440}
PANCAKE = {"time": 24}
PENCIL = {"time": -1, "lat": 23, "lon": 45}

# --- helpers -----------------------------------------------------------------


def _nbytes(sizes, shape, itemsize: int) -> int:
    """Bytes of a block of ``sizes`` (clipped to ``shape``)."""
    return math.prod(min(s, n) for s, n in zip(sizes, shape, strict=True)) * itemsize


def _explicit(spec, n: int) -> tuple[int, ...]:
    """Explicit chunk sizes along a dimension of size ``n``."""
    if isinstance(spec, tuple):
        return spec
    step = n if spec == -1 else spec
    return tuple(min(step, n - start) for start in range(0, n, step))


def _edges(sizes) -> list[int]:
    return [0, *itertools.accumulate(sizes)]


def _intervals(n: int, size: int) -> list[tuple[int, int]]:
    """A regular grid of ``[start, stop)`` intervals of ``size`` over ``n``."""
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def _expected_target(plan_source, target, shape) -> tuple[int, ...]:
    """The documented target chunk sizes: -1 is whole, missing keeps source."""
    result = []
    for i, n in enumerate(shape):
        size = target.get(i)
        if size is None:
            result.append(plan_source[i][0])
        else:
            result.append(n if size == -1 else min(size, n))
    return tuple(result)


def _default_cost(plan) -> float:
    """A storage plan's cost under the default ``CostModel``, from its counts."""
    costs = CostModel()
    seconds = 0.0
    for j, stage in enumerate(plan.stages):
        last = j == len(plan.stages) - 1
        read = costs.read_compressed if j == 0 else costs.read_temp
        write = costs.write_compressed if last else costs.write_temp
        seconds += (
            stage.bytes_read * read
            + stage.bytes_written * write
            + stage.pieces * costs.per_read
            + stage.objects * costs.per_object
            + costs.per_pass
        )
    return seconds


@st.composite
def _source_chunks(draw, n: int):
    """An int, -1 or (sometimes) irregular chunk sizes along a dimension."""
    if n > 1 and draw(st.integers(0, 3)) == 0:
        cuts = draw(st.sets(st.integers(1, n - 1), min_size=1, max_size=5))
        edges = [0, *sorted(cuts), n]
        return tuple(b - a for a, b in itertools.pairwise(edges))
    return draw(st.one_of(st.just(-1), st.integers(1, n + 5)))


@st.composite
def rechunk_problems(draw, max_sizes=(200, 200, 200), shards: bool = True):
    """Keyword arguments of ``plan_rechunk`` whose source and target fit."""
    ndim = draw(st.integers(1, 3))
    dims = ("time", "lat", "lon")[:ndim]
    shape = [draw(st.integers(1, max_sizes[ndim - 1])) for _ in dims]
    source, target, target_shards = {}, {}, {}
    if ndim > 1 and draw(st.booleans()):
        # Pancakes to pencils (or back): the case that needs several passes.
        pancake = {dims[0]: draw(st.integers(1, max(1, shape[0] // 8)))}
        pencil = {dims[0]: -1}
        for dim, n in zip(dims[1:], shape[1:], strict=True):
            pancake[dim] = -1
            pencil[dim] = draw(st.integers(1, max(1, n // 4)))
        source, target = (pancake, pencil) if draw(st.booleans()) else (pencil, pancake)
    for dim, n in zip(dims, shape, strict=True):
        if dim not in source:
            source[dim] = draw(_source_chunks(n))
            if draw(st.integers(0, 5)) == 0 and not isinstance(source[dim], tuple):
                continue  # missing: keeps the source chunks
            target[dim] = draw(st.one_of(st.just(-1), st.integers(1, n + 5)))
        if shards and 0 < target[dim] <= n and draw(st.booleans()):
            target_shards[dim] = target[dim] * draw(st.integers(1, 3))
    method = draw(st.sampled_from(["storage", "shuffle"]))
    if method == "shuffle" or not draw(st.booleans()):
        target_shards = {}
    itemsize = draw(st.sampled_from([1, 2, 4, 8]))
    source_block = [
        max(_explicit(source[d], n)) for d, n in zip(dims, shape, strict=True)
    ]
    target_block = [
        n if target.get(d, source[d]) == -1 else min(target.get(d, source[d]), n)
        for d, n in zip(dims, shape, strict=True)
    ]
    shard_block = [
        min(target_shards.get(d, t), n)
        for d, t, n in zip(dims, target_block, shape, strict=True)
    ]
    largest = max(math.prod(b) for b in (source_block, target_block, shard_block))
    factor = draw(st.sampled_from([4, 5, 8, 16, 100, 10_000]))
    max_mem = factor * itemsize * largest
    min_mem = draw(st.one_of(st.none(), st.integers(1, max_mem)))
    return dict(
        dim_sizes=dict(zip(dims, shape, strict=True)),
        source_chunks=source,
        target_chunks=target,
        itemsize=itemsize,
        min_mem=min_mem,
        max_mem=max_mem,
        method=method,
        target_shards=target_shards or None,
    )


def _simulate_storage(plan, source: np.ndarray) -> np.ndarray:
    """Run a storage plan on ``source``: each task copies its region.

    Checks, stage by stage, that tasks write every element exactly once, that
    each task writes whole objects that no other task writes, and that the
    stage's tasks, reads and objects are what the simulation counts.
    """
    shape = plan.shape
    previous = source
    read_edges = [np.array(_edges(c)) for c in plan.source_chunks]
    for stage in plan.stages:
        grids = [_intervals(n, r) for n, r in zip(shape, stage.regions, strict=True)]
        # Per dimension and region: elements of the stored chunks it overlaps
        # (a task reads every chunk it touches, whole) and how many there are.
        reads = []
        for grid, edges in zip(grids, read_edges, strict=True):
            per_region = []
            for start, stop in grid:
                touched = [
                    (a, b)
                    for a, b in itertools.pairwise(edges.tolist())
                    if a < stop and b > start
                ]
                per_region.append((sum(b - a for a, b in touched), len(touched)))
            reads.append(per_region)
        object_counts = np.zeros(
            [math.ceil(n / u) for n, u in zip(shape, stage.write_units, strict=True)],
            dtype=int,
        )
        written = np.zeros_like(source)
        counts = np.zeros(shape, dtype=int)
        tasks = elements_read = chunks_read = 0
        for index in itertools.product(*(range(len(g)) for g in grids)):
            region = [grid[i] for grid, i in zip(grids, index, strict=True)]
            slices = tuple(slice(a, b) for a, b in region)
            written[slices] = previous[slices]
            counts[slices] += 1
            tasks += 1
            overlaps = [r[i] for r, i in zip(reads, index, strict=True)]
            elements_read += math.prod(extent for extent, _ in overlaps)
            chunks_read += math.prod(count for _, count in overlaps)
            objects = []
            for (start, stop), unit, n in zip(
                region, stage.write_units, shape, strict=True
            ):
                assert start % unit == 0, (stage, region)
                assert stop % unit == 0 or stop == n, (stage, region)
                objects.append(slice(start // unit, math.ceil(stop / unit)))
            object_counts[tuple(objects)] += 1
        np.testing.assert_array_equal(counts, 1)
        np.testing.assert_array_equal(object_counts, 1)
        np.testing.assert_array_equal(written, previous)
        assert tasks == stage.tasks
        assert object_counts.size == stage.objects
        assert elements_read * plan.itemsize == stage.bytes_read
        assert chunks_read == stage.pieces
        previous = written
        read_edges = [
            np.array(_edges(_explicit(u, n)))
            for u, n in zip(stage.write_units, shape, strict=True)
        ]
    return previous


# --- invariants over random problems -------------------------------------------


@settings(max_examples=100, deadline=None)
@given(rechunk_problems())
def test_stage_blocks_fit_the_memory_budget(problem):
    plan = plan_rechunk(**problem)
    shape, itemsize, max_mem = plan.shape, plan.itemsize, plan.max_mem
    limit = max(max_mem, plan.peak_memory)
    for stage in plan.stages:
        for block in (stage.regions, stage.read_units, stage.write_units):
            assert _nbytes(block, shape, itemsize) <= limit, (stage, plan)
        if not plan.warnings:
            assert _nbytes(stage.regions, shape, itemsize) <= max_mem, str(plan)
            assert stage.peak_memory <= max_mem, str(plan)
    over_budget = plan.peak_memory > max_mem
    assert over_budget == any("more than max_mem" in w for w in plan.warnings)


@settings(max_examples=100, deadline=None)
@given(rechunk_problems())
def test_storage_stages_chain_from_source_chunks_to_target(problem):
    problem["method"] = "storage"
    plan = plan_rechunk(**problem)
    shape = plan.shape
    dims = plan.dims
    source_block = tuple(max(c) for c in plan.source_chunks)
    target = {dims.index(d): s for d, s in problem["target_chunks"].items()}
    assert plan.target_chunks == _expected_target(plan.source_chunks, target, shape)
    shards = problem["target_shards"] or {}
    last_units = tuple(
        min(shards.get(d, t), n)
        for d, t, n in zip(dims, plan.target_chunks, shape, strict=True)
    )
    stages = plan.stages
    assert stages[0].read_units == source_block
    assert stages[0].reads == "source"
    assert stages[-1].write_units == last_units
    assert stages[-1].writes == "target"
    for before, after in itertools.pairwise(stages):
        assert after.read_units == before.write_units
        assert before.writes == after.reads
        for unit, region, n in zip(
            before.write_units, after.regions, shape, strict=True
        ):
            assert region % unit == 0 or region == n, (before, after)
    for stage in stages:
        for region, unit, n in zip(
            stage.regions, stage.write_units, shape, strict=True
        ):
            assert region % unit == 0 or region == n, stage
    assert plan.intermediate_chunks == tuple(s.write_units for s in stages[:-1])


@settings(max_examples=100, deadline=None)
@given(rechunk_problems(shards=False))
def test_shuffle_stages_end_on_multiples_of_target_chunks(problem):
    problem["method"] = "shuffle"
    plan = plan_rechunk(**problem)
    shape = plan.shape
    for stage in plan.stages:
        assert stage.write_units == stage.regions
        assert stage.bytes_read == stage.bytes_written == plan.total_bytes
    for region, target, n in zip(
        plan.stages[-1].regions, plan.target_chunks, shape, strict=True
    ):
        assert region % target == 0 or region == n, str(plan)
    # Pieces: every previous chunk cut at the boundaries of the stage's chunks.
    previous = [_edges(c) for c in plan.source_chunks]
    for stage in plan.stages:
        edges = [
            _edges(_explicit(r, n)) for r, n in zip(stage.regions, shape, strict=True)
        ]
        pieces = math.prod(
            len(set(a) | set(b)) - 1 for a, b in zip(previous, edges, strict=True)
        )
        assert stage.pieces == pieces
        assert stage.tasks == math.prod(len(e) - 1 for e in edges)
        previous = edges


@settings(max_examples=60, deadline=None)
@given(rechunk_problems(max_sizes=(200, 40, 14)))
def test_storage_plan_copies_every_element_exactly_once(problem):
    problem["method"] = "storage"
    plan = plan_rechunk(**problem)
    source = np.arange(math.prod(plan.shape)).reshape(plan.shape)
    np.testing.assert_array_equal(_simulate_storage(plan, source), source)


@settings(max_examples=100, deadline=None)
@given(rechunk_problems())
def test_storage_bytes_read_exceed_total_only_when_regions_cut_stored_chunks(
    problem,
):
    problem["method"] = "storage"
    plan = plan_rechunk(**problem)
    read_edges = [set(_edges(c)) for c in plan.source_chunks]
    for stage in plan.stages:
        region_edges = [
            set(_edges(_explicit(r, n)))
            for r, n in zip(stage.regions, plan.shape, strict=True)
        ]
        aligned = all(r <= e for r, e in zip(region_edges, read_edges, strict=True))
        assert stage.bytes_written == plan.total_bytes
        assert stage.bytes_read >= plan.total_bytes
        assert (stage.bytes_read == plan.total_bytes) == aligned, stage
        read_edges = [
            set(_edges(_explicit(u, n)))
            for u, n in zip(stage.write_units, plan.shape, strict=True)
        ]


@settings(max_examples=100, deadline=None)
@given(rechunk_problems())
def test_min_mem_is_met_or_warned_about(problem):
    plan = plan_rechunk(**problem)
    if problem["min_mem"] is None:
        assert not any("min_mem" in w for w in plan.warnings)
        return
    smallest = min(
        _nbytes(s.read_units, plan.shape, plan.itemsize) for s in plan.stages
    )
    warned = any("min_mem" in w for w in plan.warnings)
    assert warned or smallest >= problem["min_mem"], str(plan)


@settings(max_examples=100, deadline=None)
@given(rechunk_problems())
def test_chosen_plan_is_no_costlier_than_a_single_pass_that_fits(problem):
    problem["min_mem"] = None
    plan = plan_rechunk(**problem)
    one_pass = plan_rechunk(**problem, max_passes=1)
    assert len(one_pass.stages) == 1
    if not plan.warnings and not one_pass.warnings:
        assert plan.seconds <= one_pass.seconds


@settings(max_examples=100, deadline=None)
@given(rechunk_problems())
def test_stage_seconds_follow_the_cost_model(problem):
    plan = plan_rechunk(**problem)
    costs = CostModel()
    if plan.method == "storage":
        assert plan.seconds == pytest.approx(_default_cost(plan))
    else:
        for stage in plan.stages:
            expected = stage.bytes_read * costs.shuffle + stage.pieces * costs.per_piece
            assert stage.seconds == pytest.approx(expected)
    assert plan.seconds == pytest.approx(sum(s.seconds for s in plan.stages))


# --- concrete ERA5 cases ------------------------------------------------------


def test_era5_pancake_to_pencil_takes_two_passes_reading_whole_source_chunks():
    plan = plan_rechunk(
        ERA5_YEAR, PANCAKE, PENCIL, itemsize=4, max_mem=2**30, method="storage"
    )
    assert len(plan.stages) == 2
    first, last = plan.stages
    assert first.read_units == (24, 721, 1440)
    assert first.bytes_read == plan.total_bytes == 8760 * 721 * 1440 * 4
    assert last.write_units == (8760, 23, 45)
    assert plan.target_chunks == (8760, 23, 45)
    assert not plan.warnings
    assert plan.peak_memory <= 2**30


def test_era5_pencil_to_pancake_takes_two_passes_writing_pancakes():
    plan = plan_rechunk(
        ERA5_YEAR,
        PENCIL,
        {"time": 24, "lat": -1, "lon": -1},
        itemsize=4,
        max_mem=2**30,
        method="storage",
    )
    assert len(plan.stages) == 2
    first, last = plan.stages
    assert first.read_units == (8760, 23, 45)
    assert first.bytes_read == plan.total_bytes
    assert last.write_units == (24, 721, 1440)
    assert not plan.warnings


@pytest.mark.parametrize("method", ["storage", "shuffle"])
def test_full_era5_surface_plan_stays_within_budget(method):
    max_mem = 2**30
    plan = plan_rechunk(
        ERA5_FULL,
        PANCAKE,
        {"time": -1, "lat": 12, "lon": 12},
        itemsize=4,
        max_mem=max_mem,
        method=method,
    )
    assert not plan.warnings
    assert plan.peak_memory <= max_mem
    for stage in plan.stages:
        assert _nbytes(stage.regions, plan.shape, 4) <= max_mem
        assert stage.bytes_written == plan.total_bytes
    last = plan.stages[-1]
    assert all(
        r % t == 0 or r == n
        for r, t, n in zip(last.regions, (350640, 12, 12), plan.shape, strict=True)
    )
    if method == "storage":
        assert last.write_units == (350640, 12, 12)


# --- cost model ---------------------------------------------------------------


def test_rereading_source_chunks_beats_an_extra_pass():
    args = ({"x": 100, "y": 100}, {"x": 10}, {"x": 100, "y": 10}, 1)
    plan = plan_rechunk(*args, max_mem=6000, method="storage")
    assert len(plan.stages) == 1
    assert plan.stages[0].bytes_read > plan.total_bytes  # source chunks re-read
    # Making reads expensive exposes the multi-pass plan it passed over.
    alternative = plan_rechunk(
        *args,
        max_mem=6000,
        method="storage",
        cost_model=CostModel(read_compressed=1e-3),
    )
    assert len(alternative.stages) > 1
    assert not plan.warnings and not alternative.warnings
    assert plan.seconds <= _default_cost(alternative)


def test_one_pass_with_ample_memory_reads_each_source_chunk_once():
    plan = plan_rechunk(
        {"x": 100, "y": 100},
        {"x": 10},
        {"x": 100, "y": 50},
        1,
        max_mem=2**20,
        method="storage",
    )
    assert len(plan.stages) == 1
    assert plan.stages[0].bytes_read == plan.total_bytes


def test_extra_pass_beats_rereading_with_tight_memory():
    args = ({"x": 1000, "y": 1000}, {"x": 10}, {"x": -1, "y": 10}, 1)
    plan = plan_rechunk(*args, max_mem=100_000, method="storage")
    one_pass = plan_rechunk(*args, max_mem=100_000, method="storage", max_passes=1)
    assert len(plan.stages) > 1
    assert not plan.warnings and not one_pass.warnings
    assert one_pass.stages[0].bytes_read > one_pass.total_bytes
    assert plan.seconds < one_pass.seconds


def test_shuffle_plan_has_no_stage_that_leaves_chunks_unchanged():
    # A stage whose chunks are the chunks it receives shuffles all the data
    # for nothing; dropping it gives a cheaper plan with the same peak.
    plan = plan_rechunk(
        {"time": 48, "latitude": 19, "longitude": 36},
        {"time": 2},
        {"time": -1, "latitude": 5, "longitude": 6},
        itemsize=16,
        max_mem=60_000,
    )
    previous = tuple(max(c) for c in plan.source_chunks)
    for stage in plan.stages:
        assert stage.regions != previous, str(plan)
        previous = stage.regions


# --- min_mem and memory -------------------------------------------------------


@pytest.mark.parametrize("method", ["storage", "shuffle"])
def test_unreachable_min_mem_gives_a_warning(method):
    plan = plan_rechunk(
        {"x": 1000, "y": 1000},
        {"x": 10},
        {"x": -1, "y": 10},
        1,
        min_mem=40_000,
        max_mem=40_000,
        method=method,
    )
    assert any("min_mem" in w for w in plan.warnings), plan.warnings
    assert "min_mem" in str(plan)


@pytest.mark.parametrize("min_mem", [1000, 2001, 4000, 8000])
def test_reachable_min_mem_keeps_every_piece_at_least_that_large(min_mem):
    plan = plan_rechunk(
        {"x": 1000, "y": 1000},
        {"x": 10},
        {"x": -1, "y": 10},
        1,
        min_mem=min_mem,
        max_mem=40_000,
        method="storage",
    )
    assert not plan.warnings
    for stage in plan.stages:
        assert _nbytes(stage.read_units, plan.shape, 1) >= min_mem


def test_min_mem_changes_the_plan_when_pieces_would_be_smaller():
    args = ({"x": 1000, "y": 1000}, {"x": 10}, {"x": -1, "y": 10}, 1)
    free = plan_rechunk(*args, max_mem=40_000, method="storage")
    smallest = min(_nbytes(s.read_units, free.shape, 1) for s in free.stages)
    bounded = plan_rechunk(
        *args, min_mem=smallest + 1, max_mem=40_000, method="storage"
    )
    assert bounded.stages != free.stages
    assert min(_nbytes(s.read_units, free.shape, 1) for s in bounded.stages) > (
        smallest
    )


@pytest.mark.parametrize("method", ["storage", "shuffle"])
def test_chunk_too_large_to_hold_its_copies_warns_and_reports_peak(method):
    # A source chunk of 20000 bytes fits max_mem, but a task holds copies too.
    plan = plan_rechunk(
        {"x": 100, "y": 100},
        {"x": 50},
        {"x": -1, "y": 1},
        4,
        max_mem=30_000,
        method=method,
    )
    assert any("more than max_mem" in w for w in plan.warnings), plan.warnings
    assert plan.peak_memory > 30_000
    assert plan.worker_peak() == plan.memory_model.baseline + plan.peak_memory
    assert plan.worker_peak(3) == plan.memory_model.baseline + 3 * plan.peak_memory


@pytest.mark.parametrize("method", ["storage", "shuffle"])
def test_ample_memory_keeps_peak_within_max_mem(method):
    plan = plan_rechunk(
        {"x": 100, "y": 100},
        {"x": 50},
        {"x": -1, "y": 1},
        4,
        max_mem=200_000,
        method=method,
    )
    assert not plan.warnings
    assert plan.peak_memory <= 200_000


def test_zero_length_dimension_gives_a_plan():
    plan = plan_rechunk(
        {"x": 0, "y": 5}, {"x": 2}, {"x": 3}, 4, max_mem=2**20, method="storage"
    )
    assert plan.total_bytes == 0
    for stage in plan.stages:
        assert stage.bytes_written == 0


# --- errors at construction ---------------------------------------------------

_BAD_ARGUMENTS = [
    pytest.param(
        dict(target_chunks={"x": -1, "y": -1}, max_mem=10_000),
        "target chunks",
        id="target-larger-than-max-mem",
    ),
    pytest.param(
        dict(source_chunks={"x": -1, "y": -1}, target_chunks={"x": 1}, max_mem=10_000),
        "source chunks",
        id="source-larger-than-max-mem",
    ),
    pytest.param(
        dict(source_chunks={"z": 5}), r"\['z'\].*source", id="unknown-source-dim"
    ),
    pytest.param(
        dict(target_chunks={"w": 5}), r"target_chunks.*\['w'\]", id="unknown-target-dim"
    ),
    pytest.param(
        dict(dim_sizes={"x": -3, "y": 100}), "dimension 'x'.*-3", id="negative-size"
    ),
    pytest.param(dict(min_mem=2**21, max_mem=2**20), "min_mem", id="min-over-max"),
    pytest.param(dict(itemsize=0), "itemsize", id="zero-itemsize"),
    pytest.param(dict(itemsize=-4), "itemsize", id="negative-itemsize"),
    pytest.param(
        dict(target_chunks={"x": (50, 50)}),
        "target_chunks for dimension 'x'",
        id="tuple-target",
    ),
]


def _arguments(**overrides):
    arguments = dict(
        dim_sizes={"x": 100, "y": 100},
        source_chunks={"x": 10},
        target_chunks={"y": 10},
        itemsize=4,
        min_mem=None,
        max_mem=2**20,
    )
    arguments.update(overrides)
    return arguments


@pytest.mark.parametrize("method", ["storage", "shuffle"])
@pytest.mark.parametrize(("overrides", "culprit"), _BAD_ARGUMENTS)
def test_plan_rechunk_rejects_bad_arguments(overrides, culprit, method):
    with pytest.raises(ValueError, match=culprit):
        plan_rechunk(**_arguments(**overrides), method=method)


@pytest.mark.parametrize(("overrides", "culprit"), _BAD_ARGUMENTS)
def test_rechunk_transform_rejects_bad_arguments_when_built(overrides, culprit):
    with pytest.raises(ValueError, match=culprit):
        xbeam.Rechunk(**_arguments(**overrides))


def test_top_level_plan_rechunk_rejects_bad_arguments():
    with pytest.raises(ValueError, match="'z'"):
        xbeam.plan_rechunk(**_arguments(source_chunks={"z": 5}))


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match="'bogus'"):
        plan_rechunk(**_arguments(), method="bogus")


def test_target_shards_must_be_multiples_of_target_chunks():
    with pytest.raises(ValueError, match=r"'y'.*15.*10|15.*'y'.*10"):
        plan_rechunk(**_arguments(), method="storage", target_shards={"y": 15})


def test_target_shards_accept_chunks_larger_than_the_dimension():
    # Chunks of 40 in shards of 80 are valid for a dimension of 30 (zarr
    # allows chunks larger than the array); the last writes are whole shards.
    plan = plan_rechunk(
        {"x": 100, "y": 30},
        {"x": 10},
        {"y": 40},
        4,
        max_mem=2**20,
        method="storage",
        target_shards={"y": 80},
    )
    assert plan.stages[-1].write_units == (10, 30)


def test_target_shards_only_apply_to_storage():
    with pytest.raises(ValueError, match="target_shards"):
        plan_rechunk(**_arguments(), method="shuffle", target_shards={"y": 20})


def test_target_shards_are_the_last_write_units():
    plan = plan_rechunk(**_arguments(), method="storage", target_shards={"y": 30})
    assert plan.target_chunks == (10, 10)
    assert plan.target_shards == (10, 30)
    assert plan.stages[-1].write_units == (10, 30)


def test_rechunk_transform_plan_matches_plan_rechunk():
    arguments = _arguments(
        source_chunks={"x": 10, "y": -1}, target_chunks={"x": 10, "y": 10}
    )
    rechunk = xbeam.Rechunk(**arguments)
    assert rechunk.plan == plan_rechunk(**arguments, method="shuffle")
    assert rechunk.target_chunks == {"x": 10, "y": 10}


# --- printing -----------------------------------------------------------------


@pytest.mark.parametrize("method", ["storage", "shuffle"])
def test_printed_plan_shows_dims_regions_peak_and_warnings(method):
    plan = plan_rechunk(
        {"time": 100, "cell": 100},
        {"time": 50},
        {"time": -1, "cell": 1},
        4,
        max_mem=30_000,
        method=method,
    )
    text = str(plan)
    assert "time" in text and "cell" in text
    for stage in plan.stages:
        assert "(" + ", ".join(map(str, stage.regions)) + ")" in text
    assert "peak" in text
    assert plan.warnings
    for warning in plan.warnings:
        assert warning in text
    mentions_local_runners = "local runners" in text and "in memory" in text
    assert mentions_local_runners == (method == "shuffle")


# --- plan_dataset_rechunk -------------------------------------------------------

_VARIABLES = {
    "t2m": VariableShape(("time", "x", "y"), (48, 20, 30), 4, (6, 20, 30)),
    "u10": VariableShape(("time", "x", "y"), (48, 20, 30), 4, (6, 20, 30)),
    "count": VariableShape(("time", "x", "y"), (48, 20, 30), 8, (6, 20, 30)),
    "series": VariableShape(("time",), (48,), 4, (6,)),
    "lsm": VariableShape(("x", "y"), (20, 30), 1, (20, 30)),
}
_TARGET = {"time": -1, "x": 5, "y": 6}


def test_dataset_plan_groups_variables_that_share_shape_and_chunks():
    plan = plan_dataset_rechunk(_VARIABLES, _TARGET, max_mem=2**20)
    assert sorted(p.variables for p in plan.plans) == [
        ("count",),
        ("lsm",),
        ("series",),
        ("t2m", "u10"),
    ]
    assert plan.plan_for("u10") is plan.plan_for("t2m")
    assert plan.plan_for("count").itemsize == 8
    assert plan.peak_memory == max(p.peak_memory for p in plan.plans)


def test_dataset_plan_restricts_each_plan_to_its_variables_dims():
    plan = plan_dataset_rechunk(_VARIABLES, _TARGET, max_mem=2**20)
    series = plan.plan_for("series")
    assert series.dims == ("time",)
    assert series.target_chunks == (48,)
    lsm = plan.plan_for("lsm")
    assert lsm.dims == ("x", "y")
    assert lsm.target_chunks == (5, 6)
    expected = plan_rechunk(
        {"x": 20, "y": 30},
        {"x": 20, "y": 30},
        {"x": 5, "y": 6},
        1,
        max_mem=2**20,
        method="storage",
        variables=("lsm",),
    )
    assert lsm == expected


def test_dataset_plan_for_unknown_variable_raises_key_error():
    plan = plan_dataset_rechunk(_VARIABLES, _TARGET, max_mem=2**20)
    with pytest.raises(KeyError, match="nope"):
        plan.plan_for("nope")


def test_dataset_plan_rejects_target_dim_no_variable_has():
    with pytest.raises(ValueError, match="'level'"):
        plan_dataset_rechunk(_VARIABLES, {**_TARGET, "level": 3}, max_mem=2**20)


def test_printed_dataset_plan_names_every_group():
    text = str(plan_dataset_rechunk(_VARIABLES, _TARGET, max_mem=2**20))
    for name in _VARIABLES:
        assert name in text


# --- the Rechunk transform on the DirectRunner -----------------------------------


def _chunks_of(dataset: xarray.Dataset, chunks, vars_=None):
    """``(Key, Dataset)`` pairs of ``dataset`` cut at explicit chunk sizes."""
    edges = {
        dim: _edges(_explicit(chunks.get(dim, -1), dataset.sizes[dim]))
        for dim in dataset.dims
    }
    result = []
    for bounds in itertools.product(*(itertools.pairwise(e) for e in edges.values())):
        offsets = {dim: start for dim, (start, _) in zip(edges, bounds, strict=True)}
        slices = {dim: slice(a, b) for dim, (a, b) in zip(edges, bounds, strict=True)}
        result.append((Key(offsets, vars_), dataset.isel(slices)))
    return result


def _run(chunks, rechunk) -> list:
    return runners.collect(lambda p: p | beam.Create(chunks) | rechunk)


def _check_output(dataset: xarray.Dataset, outputs, target_chunks) -> None:
    """Outputs are slices of ``dataset`` in exactly the target chunks, once each.

    Chunks of all variables (``vars=None``) tile the dataset's dimensions;
    chunks of one variable (``vars={name}``) tile that variable's dimensions.
    """
    counts = {None: np.zeros(tuple(dataset.sizes.values()), dtype=int)}
    for name, variable in dataset.data_vars.items():
        counts[name] = np.zeros(variable.shape, dtype=int)
    for key, chunk in outputs:
        names = sorted(chunk.data_vars) if key.vars is None else sorted(key.vars)
        assert names == sorted(chunk.data_vars)
        expected = dataset[names].isel(offsets_to_slices(key.offsets, chunk.sizes))
        xarray.testing.assert_identical(chunk, expected)
        for dim, size in chunk.sizes.items():
            offset = key.offsets.get(dim, 0)
            target = target_chunks[dim]
            assert offset % target == 0, (key, dim)
            assert size == min(target, dataset.sizes[dim] - offset), (key, dim)
        (tiled,) = [None] if key.vars is None else key.vars
        dims = dataset.dims if tiled is None else dataset[tiled].dims
        starts = [key.offsets.get(d, 0) for d in dims]
        region = tuple(
            slice(start, start + chunk.sizes[d])
            for start, d in zip(starts, dims, strict=True)
        )
        counts[tiled][region] += 1
    if any(key.vars is None for key, _ in outputs):
        np.testing.assert_array_equal(counts[None], 1)
    else:
        for name in dataset.data_vars:
            np.testing.assert_array_equal(counts[name], 1, err_msg=name)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (
            {"time": 6, "latitude": -1, "longitude": -1},
            {"time": -1, "latitude": 5, "longitude": 7},
        ),
        (
            {"time": -1, "latitude": 5, "longitude": 7},
            {"time": 6, "latitude": -1, "longitude": -1},
        ),
    ],
    ids=["pancake-to-pencil", "pencil-to-pancake"],
)
def test_rechunk_era5_like_dataset(era5_small, source, target):
    chunks = list(xbeam.split_chunks(Key(), era5_small, source))
    itemsize = sum(v.dtype.itemsize for v in era5_small.data_vars.values())
    rechunk = xbeam.Rechunk(dict(era5_small.sizes), source, target, itemsize)
    _check_output(era5_small, _run(chunks, rechunk), rechunk.target_chunks)


def test_rechunk_through_several_stages(era5_small):
    source = {"time": 2, "latitude": -1, "longitude": -1}
    target = {"time": -1, "latitude": 5, "longitude": 6}
    rechunk = xbeam.Rechunk(dict(era5_small.sizes), source, target, 16, max_mem=80_000)
    assert len(rechunk.plan.stages) >= 3
    chunks = list(xbeam.split_chunks(Key(), era5_small, source))
    _check_output(era5_small, _run(chunks, rechunk), rechunk.target_chunks)


def test_rechunk_one_dimension_with_ragged_chunks():
    dataset = xarray.Dataset(
        {"foo": ("x", np.arange(23.0))}, coords={"x": np.arange(23) * 10}
    )
    rechunk = xbeam.Rechunk({"x": 23}, {"x": 4}, {"x": 5}, 8)
    chunks = list(xbeam.split_chunks(Key(), dataset, {"x": 4}))
    _check_output(dataset, _run(chunks, rechunk), {"x": 5})


def test_rechunk_two_dimensions_with_ragged_last_chunks():
    rng = np.random.default_rng(1)
    dataset = xarray.Dataset(
        {"a": (("x", "y"), rng.random((23, 17))), "b": ("x", np.arange(23))},
        coords={"y": np.arange(17)},
    )
    source = {"x": 5, "y": -1}
    target = {"x": -1, "y": 4}
    rechunk = xbeam.Rechunk({"x": 23, "y": 17}, source, target, 16, max_mem=4000)
    chunks = list(xbeam.split_chunks(Key(), dataset, source))
    _check_output(dataset, _run(chunks, rechunk), rechunk.target_chunks)


def test_rechunk_irregular_source_chunks(era5_small):
    source = {"time": (10, 3, 20, 15), "latitude": (7, 12), "longitude": -1}
    target = {"time": 16, "latitude": -1, "longitude": 9}
    rechunk = xbeam.Rechunk(dict(era5_small.sizes), source, target, 16)
    outputs = _run(_chunks_of(era5_small, source), rechunk)
    _check_output(era5_small, outputs, rechunk.target_chunks)


def test_rechunk_split_variables_with_mixed_dims(mixed_dataset):
    dataset = mixed_dataset.drop_vars("scale")
    source = {"time": 2, "latitude": -1, "longitude": 3}
    target = {"time": -1, "latitude": 1, "longitude": 2}
    chunks = [
        piece
        for key, variable in xbeam.split_variables(Key(), dataset)
        for piece in xbeam.split_chunks(key, variable, source)
    ]
    assert all(key.vars is not None for key, _ in chunks)
    itemsize = max(v.dtype.itemsize for v in dataset.data_vars.values())
    rechunk = xbeam.Rechunk(dict(dataset.sizes), source, target, itemsize, max_mem=1500)
    assert len(rechunk.plan.stages) >= 2
    outputs = _run(chunks, rechunk)
    assert {name for key, _ in outputs for name in key.vars} == set(dataset.data_vars)
    _check_output(dataset, outputs, rechunk.target_chunks)


def _requests(plan) -> int:
    return sum(stage.pieces + stage.objects for stage in plan.stages)


def test_object_store_costs_make_plans_with_fewer_requests():
    """Behind a network every request waits; the object-store cost model
    trades a temporary pass (many objects) for a re-read with fewer
    requests, where the local-disk model prefers the pass."""
    dims = {"time": 120, "latitude": 721, "longitude": 1440}
    args = (dims, {"time": 24}, {"time": -1, "latitude": 12, "longitude": 24}, 4)
    local = planning.plan_rechunk(*args, max_mem=2**30, method="storage")
    remote = planning.plan_rechunk(
        *args,
        max_mem=2**30,
        method="storage",
        cost_model=planning.CostModel.object_store(latency=0.03),
    )
    assert _requests(remote) < _requests(local)
    assert len(remote.stages) < len(local.stages)
    assert remote.stages[-1].write_units == local.stages[-1].write_units


def test_a_cost_per_pass_keeps_small_rechunks_in_one_pass():
    """Pancakes to pencils at 0.25 degrees with 256 MiB: at 31 hours a
    second pass saves less work than it costs, at 121 hours it saves more."""
    target = {"time": -1, "latitude": 23, "longitude": 45}

    def passes(hours: int, costs: planning.CostModel) -> int:
        dims = {"time": hours, "latitude": 721, "longitude": 1440}
        plan = planning.plan_rechunk(
            dims,
            {"time": 24},
            target,
            4,
            max_mem=2**28,
            method="storage",
            cost_model=costs,
        )
        return len(plan.stages)

    free = planning.CostModel(per_pass=0)
    assert passes(31, planning.CostModel()) == 1
    assert passes(31, free) == 2
    assert passes(121, planning.CostModel()) == passes(121, free) == 2


@pytest.mark.parametrize("field", ["per_pass", "read_compressed", "per_object"])
@pytest.mark.parametrize("value", [-0.25, float("nan"), float("inf"), "0.25"])
def test_a_cost_model_refuses_negative_or_non_numeric_costs(field, value):
    with pytest.raises(ValueError, match=f"CostModel.{field} must be"):
        CostModel(**{field: value})


def test_object_store_cost_model_charges_latency_per_request():
    base = planning.CostModel()
    remote = planning.CostModel.object_store(latency=0.04, in_flight=8)
    assert remote.per_read == pytest.approx(base.per_read + 0.005)
    assert remote.per_object == pytest.approx(base.per_object + 0.005)
    assert planning.CostModel.object_store(latency=0).per_read == base.per_read
    with pytest.raises(ValueError, match="in_flight"):
        planning.CostModel.object_store(in_flight=0)
