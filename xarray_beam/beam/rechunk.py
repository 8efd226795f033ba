"""Splitting and consolidating chunks, in memory and as Beam transforms.

The in-memory functions work on plain lists of ``(Key, Dataset)`` pairs; the
transforms are thin wiring around them.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Hashable, Iterable, Iterator, Mapping
from typing import Any, cast

import apache_beam as beam
import xarray

from xarray_beam.model import assembly, planning
from xarray_beam.model import chunks as chunks_lib
from xarray_beam.model.key import Key, describe_dataset

Chunk = tuple[Key, xarray.Dataset]
_KEYED = beam.typehints.Tuple[Key, beam.typehints.Any]
# Options for xarray.combine_nested that reassemble split chunks exactly;
# combine_kwargs given by users override them.
_COMBINE_DEFAULTS = {
    "data_vars": "minimal",
    "coords": "minimal",
    "compat": "override",
    "join": "exact",
    "combine_attrs": "override",
}


def split_chunks(
    key: Key, dataset: xarray.Dataset, target_chunks: Mapping[str, int]
) -> Iterator[Chunk]:
    """Split a chunk at absolute multiples of ``target_chunks``.

    Pieces are aligned to the global grid of target chunks, not to the start of
    this chunk, so chunks split independently fit together. Dimensions of
    ``target_chunks`` that the chunk lacks are ignored; -1 means "do not split".

    Example:
      >>> ds = xarray.Dataset({'foo': ('x', list(range(5)))})
      >>> [(k, ds.sizes['x']) for k, ds in split_chunks(Key({'x': 3}), ds, {'x': 4})]
      [(Key(offsets={'x': 3}, vars=None), 1), (Key(offsets={'x': 4}, vars=None), 4)]
    """
    target_chunks = chunks_lib.check_chunk_sizes(target_chunks)
    pieces = {}
    for dim, target in target_chunks.items():
        if dim in dataset.dims and target != -1:
            offset = key.offsets.get(dim, 0)
            pieces[dim] = chunks_lib.aligned_pieces(offset, dataset.sizes[dim], target)
    if all(len(p) == 1 for p in pieces.values()):
        new_offsets = {dim: p[0][0] for dim, p in pieces.items()}
        yield key.with_offsets(**new_offsets), dataset
        return
    for combo in itertools.product(*pieces.values()):
        new_offsets = {}
        slices = {}
        for dim, (start, stop) in zip(pieces, combo, strict=True):
            base = key.offsets.get(dim, 0)
            new_offsets[dim] = start
            slices[dim] = slice(start - base, stop - base)
        yield key.with_offsets(**new_offsets), dataset.isel(slices)


def split_variables(key: Key, dataset: xarray.Dataset) -> Iterator[Chunk]:
    """Split a chunk into one chunk per data variable.

    Each new key has ``vars={name}`` and keeps only the offsets of that
    variable's dimensions.

    Example:
      >>> ds = xarray.Dataset({'a': ('x', [1, 2]), 'b': ((), 3)})
      >>> [k for k, _ in split_variables(Key({'x': 2}), ds)]
      [Key(offsets={'x': 2}, vars={'a'}), Key(offsets={}, vars={'b'})]
    """
    for name, var in dataset.data_vars.items():
        offsets = {d: o for d, o in key.offsets.items() if d in var.dims}
        # Keys name variables by str, as the package does throughout.
        yield Key(offsets, {cast(str, name)}), dataset[[name]]


def _full_offsets(key: Key, dims: Iterable[str]) -> dict[str, int]:
    return {dim: key.offsets.get(dim, 0) for dim in dims}


def consolidate_chunks(
    inputs: Iterable[Chunk], combine_kwargs: Mapping[str, Any] | None = None
) -> Chunk:
    """Combine chunks that tile a larger block into one chunk.

    Args:
      inputs: ``(Key, Dataset)`` pairs with the same ``vars`` whose offsets form
        a complete, contiguous grid.
      combine_kwargs: if given, the chunks are combined with
        ``xarray.combine_nested`` instead of the default direct assembly
        (which takes variables that do not span a combined dimension from the
        first chunk); these options override ``data_vars='minimal',
        coords='minimal', compat='override', join='exact',
        combine_attrs='override'``.

    Returns:
      The key of the first (lowest offsets) chunk and the combined dataset.

    Raises:
      ValueError: naming the keys at fault, if chunks are missing, duplicated,
        overlap, leave gaps, or disagree in variables, dimensions or dtypes.

    Example:
      >>> ds = xarray.Dataset({'foo': ('x', [1, 2, 3])})
      >>> pieces = [(Key({'x': 0}), ds.isel(x=slice(0, 2))),
      ...           (Key({'x': 2}), ds.isel(x=[2]))]
      >>> key, out = consolidate_chunks(pieces)
      >>> key, out.foo.values.tolist()
      (Key(offsets={'x': 0}, vars=None), [1, 2, 3])
    """
    inputs = list(inputs)
    if not inputs:
        raise ValueError("consolidate_chunks needs at least one chunk")
    if len(inputs) == 1:
        return inputs[0]
    keys = [key for key, _ in inputs]
    vars_values = {key.vars for key in keys}
    if len(vars_values) > 1:
        first_by_vars = {key.vars: key for key in reversed(keys)}
        raise ValueError(
            f"cannot consolidate chunks with different vars: "
            f"{assembly.listed(list(first_by_vars.values()))}; consolidate variables "
            f"first (ConsolidateVariables) or group chunks by vars"
        )
    all_dims = list(dict.fromkeys(d for key in keys for d in key.offsets))
    offsets = [_full_offsets(key, all_dims) for key in keys]
    combined = [d for d in all_dims if len({o[d] for o in offsets}) > 1]
    axis_offsets = {d: sorted({o[d] for o in offsets}) for d in combined}
    position_of = {
        d: {off: i for i, off in enumerate(axis_offsets[d])} for d in combined
    }

    grid: dict[tuple[int, ...], Chunk] = {}
    for (key, dataset), offs in zip(inputs, offsets, strict=True):
        pos = tuple(position_of[d][offs[d]] for d in combined)
        if pos in grid:
            raise ValueError(f"duplicate chunks to consolidate for {key}")
        missing_dims = [d for d in combined if d not in dataset.dims]
        if missing_dims:
            raise ValueError(
                f"chunk {key} lacks dimension(s) {missing_dims} that its offsets "
                f"vary along: {describe_dataset(dataset)}"
            )
        grid[pos] = (key, dataset)
    shape = tuple(len(axis_offsets[d]) for d in combined)
    assembly.check_complete(grid, shape, combined, axis_offsets, keys[0])
    sizes = assembly.axis_sizes(grid, combined, axis_offsets)

    origin_key = grid[(0,) * len(combined)][0]
    result_key = Key({d: min(o[d] for o in offsets) for d in all_dims}, origin_key.vars)
    if combine_kwargs is not None:
        kwargs = {**_COMBINE_DEFAULTS, **combine_kwargs}
        dataset = assembly.combine_with_xarray(grid, shape, combined, kwargs)
    else:
        dataset = assembly.assemble(grid, combined, sizes)
    return result_key, dataset


def consolidate_variables(
    inputs: Iterable[Chunk], merge_kwargs: Mapping[str, Any] | None = None
) -> Chunk:
    """Merge chunks holding different variables of the same region.

    Args:
      inputs: ``(Key, Dataset)`` pairs with disjoint variables whose offsets
        agree on shared dimensions.
      merge_kwargs: if given, merge with ``xarray.merge(..., **merge_kwargs)``
        instead of the default direct merge (which requires shared coordinates
        to be equal).

    Returns:
      A key with the union of offsets and vars, and the merged dataset.

    Raises:
      ValueError: naming the keys at fault, if offsets disagree, or a variable
        appears in two chunks with different values (identical copies, as
        ``split_variables`` makes of variables lacking a split dimension, are
        merged into one).

    Example:
      >>> a = xarray.Dataset({'a': ('x', [1, 2])})
      >>> b = xarray.Dataset({'b': ('x', [3, 4])})
      >>> key, ds = consolidate_variables(
      ...     [(Key({'x': 0}, {'a'}), a), (Key({'x': 0}, {'b'}), b)])
      >>> key, sorted(ds.data_vars)
      (Key(offsets={'x': 0}, vars={'a', 'b'}), ['a', 'b'])
    """
    inputs = sorted(inputs, key=lambda kv: sorted(kv[1].data_vars))
    if not inputs:
        raise ValueError("consolidate_variables needs at least one chunk")
    if len(inputs) == 1:
        return inputs[0]
    offsets: dict[str, int] = {}
    offsets_from: dict[str, Key] = {}
    for key, _ in inputs:
        for dim, offset in key.offsets.items():
            if dim in offsets and offsets[dim] != offset:
                raise ValueError(
                    f"cannot consolidate variables of chunks at different offsets "
                    f"along {dim!r}: {offsets_from[dim]} and {key}"
                )
            offsets[dim] = offset
            offsets_from[dim] = key
    vars_: frozenset[str] | None = None
    all_vars = [key.vars for key, _ in inputs]
    if all(v is not None for v in all_vars):
        vars_ = frozenset().union(*cast("list[frozenset[str]]", all_vars))
    new_key = Key(offsets, vars_)
    datasets = [dataset for _, dataset in inputs]
    if merge_kwargs is not None:
        return new_key, xarray.merge(datasets, **merge_kwargs)

    data_vars: dict[Hashable, xarray.Variable] = {}
    coords: dict[Hashable, xarray.Variable] = {}
    owner: dict[Hashable, Key] = {}
    for key, dataset in inputs:
        for name, var in dataset.variables.items():
            is_coord = name in dataset.coords
            if name in owner:
                seen = data_vars[name] if name in data_vars else coords[name]
                if (name in data_vars) != (not is_coord) or not seen.equals(var):
                    what = "coordinate" if is_coord else "data variable"
                    raise ValueError(
                        f"{what} {name!r} differs between chunks {owner[name]} and "
                        f"{key}; each variable must come from one chunk (or from "
                        f"identical copies)"
                    )
                continue
            owner[name] = key
            (coords if is_coord else data_vars)[name] = var
    try:
        merged = xarray.Dataset(data_vars, coords=coords, attrs=datasets[0].attrs)
    except ValueError as error:
        keys = [key for key, _ in inputs]
        raise ValueError(
            f"cannot merge chunks {assembly.listed(keys)}: {error}"
        ) from error
    return new_key, merged


def consolidate_fully(inputs: Iterable[Chunk]) -> Chunk:
    """Consolidate chunks into a single ``(Key, Dataset)`` pair.

    Chunks at the same offsets are merged across variables, chunks with the
    same variables are concatenated, then the results are merged.

    Example:
      >>> ds = xarray.Dataset({'a': ('x', [1, 2]), 'b': ('x', [3, 4])})
      >>> pieces = [(Key({'x': i}, {v}), ds[[v]].isel(x=[i]))
      ...           for i in range(2) for v in 'ab']
      >>> key, out = consolidate_fully(pieces)
      >>> key, out.identical(ds)
      (Key(offsets={'x': 0}, vars={'a', 'b'}), True)
    """
    by_offsets: dict[Any, list[Chunk]] = collections.defaultdict(list)
    for key, dataset in inputs:
        by_offsets[frozenset(key.offsets.items())].append((key, dataset))
    if not by_offsets:
        raise ValueError("consolidate_fully needs at least one chunk")
    by_vars: dict[Any, list[Chunk]] = collections.defaultdict(list)
    for group in by_offsets.values():
        key, dataset = consolidate_variables(group)
        by_vars[key.vars].append((key, dataset))
    return consolidate_variables(
        consolidate_chunks(group) for group in by_vars.values()
    )


def in_memory_rechunk(
    inputs: Iterable[Chunk], target_chunks: Mapping[str, int]
) -> Iterator[Chunk]:
    """Rechunk chunks held in memory: consolidate fully, then split.

    Example:
      >>> ds = xarray.Dataset({'foo': ('x', list(range(6)))})
      >>> pieces = [(Key({'x': 0}), ds.isel(x=slice(0, 3))),
      ...           (Key({'x': 3}), ds.isel(x=slice(3, 6)))]
      >>> [k.offsets['x'] for k, _ in in_memory_rechunk(pieces, {'x': 2})]
      [0, 2, 4]
    """
    key, dataset = consolidate_fully(inputs)
    yield from split_chunks(key, dataset, target_chunks)


def _split_element(element: Chunk, target_chunks: dict[str, int]) -> Iterator[Chunk]:
    return split_chunks(*element, target_chunks)


class SplitChunks(beam.PTransform):
    """Split chunks at absolute multiples of ``target_chunks``.

    Example:
      ``chunks | xarray_beam.SplitChunks({'time': 24})``
    """

    def __init__(self, target_chunks: Mapping[str, int]):
        super().__init__()
        self.target_chunks = chunks_lib.check_chunk_sizes(target_chunks)

    def expand(self, pcoll):
        return pcoll | "Split" >> beam.FlatMap(
            _split_element, self.target_chunks
        ).with_output_types(_KEYED)


class _TargetKey:
    """Keys a chunk by the target chunk that contains it."""

    def __init__(self, target_chunks: dict[str, int]):
        self.target_chunks = target_chunks

    def __call__(self, element: Chunk) -> tuple[Key, Chunk]:
        key, dataset = element
        offsets = {}
        for dim, target in self.target_chunks.items():
            if dim not in dataset.dims:
                continue
            start = key.offsets.get(dim, 0)
            if target == -1:
                offsets[dim] = 0
                continue
            stop = start + dataset.sizes[dim]
            group = start - start % target
            if stop > group + target:
                raise ValueError(
                    f"chunk {key} spans [{start}, {stop}) along {dim!r}, crossing a "
                    f"boundary of the target chunks of size {target}; split it "
                    f"first with SplitChunks, or use Rechunk"
                )
            offsets[dim] = group
        return key.with_offsets(**offsets), element


def _consolidate_group(group_key: Key, chunks: Iterable[Chunk]) -> Chunk:
    key, dataset = consolidate_chunks(chunks)
    starts_late = {
        d: (o, key.offsets.get(d, 0))
        for d, o in group_key.offsets.items()
        if key.offsets.get(d, 0) != o
    }
    if starts_late:
        raise ValueError(
            f"cannot consolidate into the target chunk at {group_key}: its first "
            f"chunk is missing (chunks start at {key} instead)"
        )
    return key, dataset


class ConsolidateChunks(beam.PTransform):
    """Combine chunks into larger chunks of ``target_chunks`` (a shuffle).

    Each input chunk must lie within one target chunk; -1 gathers a whole
    dimension. Target chunks with missing pieces raise ValueError.

    Example:
      ``chunks | xarray_beam.ConsolidateChunks({'time': 240})``
    """

    def __init__(self, target_chunks: Mapping[str, int]):
        super().__init__()
        self.target_chunks = chunks_lib.check_chunk_sizes(target_chunks)

    def expand(self, pcoll):
        return (
            pcoll
            | "KeyByTargetChunk"
            >> beam.Map(_TargetKey(self.target_chunks)).with_output_types(_KEYED)
            | "GroupByTargetChunk" >> beam.GroupByKey()
            | "Consolidate"
            >> beam.MapTuple(_consolidate_group).with_output_types(_KEYED)
        )


class SplitVariables(beam.PTransform):
    """Split every chunk into one chunk per data variable."""

    def expand(self, pcoll):
        return pcoll | "Split" >> beam.FlatMapTuple(split_variables).with_output_types(
            _KEYED
        )


def _key_without_vars(element: Chunk) -> tuple[Key, Chunk]:
    return element[0].replace(vars=None), element


class ConsolidateVariables(beam.PTransform):
    """Merge chunks with the same offsets into one chunk with all their variables."""

    def expand(self, pcoll):
        return (
            pcoll
            | "KeyByOffsets" >> beam.Map(_key_without_vars).with_output_types(_KEYED)
            | "GroupByOffsets" >> beam.GroupByKey()
            | "Consolidate"
            >> beam.MapTuple(
                lambda _, chunks: consolidate_variables(chunks)
            ).with_output_types(_KEYED)
        )


class Rechunk(beam.PTransform):
    """Rechunk a PCollection of chunks with the multi-stage shuffle algorithm.

    Each stage splits chunks at the boundaries of the stage's chunks and
    consolidates the pieces through a Beam shuffle (what Dataflow does best);
    a final split gives exactly ``target_chunks``. The plan is in ``.plan``
    (print it). On local runners a shuffle holds all the data it moves in
    memory: for Zarr to Zarr with bounded memory, use ``RechunkZarr``.

    Args:
      dim_sizes: size of each dimension of the whole dataset.
      source_chunks: chunk sizes of the input (int, -1, or a tuple of sizes).
      target_chunks: chunk size per dimension of the output (int or -1);
        missing dimensions keep their source chunks.
      itemsize: bytes per element of one chunk, summed over its variables
        (e.g. 4 * number of float32 variables, or 4 after split_variables).
      min_mem: smallest piece worth shuffling (more stages keep pieces larger).
      max_mem: memory a task may use, counting the pieces and the assembled
        chunk it holds at once.

    Raises:
      ValueError: when built, for unknown dimensions, negative sizes,
        ``min_mem > max_mem``, or source/target chunks larger than max_mem.

    Example:
      >>> rechunk = Rechunk({'time': 96, 'x': 40}, {'time': 24}, {'time': -1, 'x': 10},
      ...                   itemsize=4, max_mem=2**20)
      >>> [stage.regions for stage in rechunk.plan.stages], rechunk.target_chunks
      ([(96, 40)], {'time': 96, 'x': 10})
    """

    def __init__(
        self,
        dim_sizes: Mapping[str, int],
        source_chunks: Mapping[str, int | tuple[int, ...]],
        target_chunks: Mapping[str, int],
        itemsize: int,
        min_mem: int | None = None,
        max_mem: int = 2**30,
    ):
        super().__init__()
        self.plan = planning.plan_rechunk(
            dim_sizes,
            source_chunks,
            target_chunks,
            itemsize,
            min_mem,
            max_mem,
            method="shuffle",
        )
        self.target_chunks = dict(
            zip(self.plan.dims, self.plan.target_chunks, strict=True)
        )

    def expand(self, pcoll):
        dims = self.plan.dims
        stage_chunks = None
        for number, stage in enumerate(self.plan.stages, start=1):
            stage_chunks = dict(zip(dims, stage.regions, strict=True))
            pcoll = (
                pcoll
                | f"Stage{number}Split" >> SplitChunks(stage_chunks)
                | f"Stage{number}Consolidate" >> ConsolidateChunks(stage_chunks)
            )
        if stage_chunks != self.target_chunks:
            pcoll = pcoll | "SplitToTarget" >> SplitChunks(self.target_chunks)
        return pcoll
