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

from xarray_beam.beam import coders
from xarray_beam.model import assembly, planning
from xarray_beam.model import chunks as chunks_lib
from xarray_beam.model.key import Key, describe_dataset, require_offsets

Chunk = tuple[Key, xarray.Dataset]
_KEYED = coders.KEYED_DATASET
# A chunk keyed by the place it goes to, before a GroupByKey.
_REKEYED = beam.typehints.Tuple[Key, coders.KEYED_DATASET]
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

    Args:
      key: the chunk's key (its offsets place it in the whole dataset).
      dataset: the chunk's data.
      target_chunks: chunk size per dimension (-1: do not split).

    Yields:
      ``(key, piece)`` pairs, keys offset to each piece.

    Example:
      >>> ds = xarray.Dataset({'foo': ('x', list(range(5)))})
      >>> [(k, ds.sizes['x']) for k, ds in split_chunks(Key({'x': 3}), ds, {'x': 4})]
      [(Key(offsets={'x': 3}), 1), (Key(offsets={'x': 4}), 4)]
    """
    require_offsets(key, "split_chunks")
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

    Each new key has ``vars={name}`` and keeps only the offsets (or chunk
    indices) of that variable's dimensions.

    Args:
      key: the chunk's key.
      dataset: the chunk's data, with any number of data variables.

    Yields:
      One ``(key, dataset)`` pair per data variable.

    Example:
      >>> ds = xarray.Dataset({'a': ('x', [1, 2]), 'b': ((), 3)})
      >>> [k for k, _ in split_variables(Key({'x': 2}), ds)]
      [Key(offsets={'x': 2}, vars={'a'}), Key(vars={'b'})]
    """
    for name, var in dataset.data_vars.items():
        offsets = {d: o for d, o in key.offsets.items() if d in var.dims}
        indices = {d: i for d, i in key.indices.items() if d in var.dims}
        # Keys name variables by str, as the package does throughout.
        yield Key(offsets, {cast(str, name)}, indices), dataset[[name]]


def _full_offsets(key: Key, dims: Iterable[str]) -> dict[str, int]:
    return {dim: key.offsets.get(dim, 0) for dim in dims}


def _require_offsets(inputs: list[Chunk], purpose: str) -> None:
    for key, _ in inputs:
        require_offsets(key, purpose)


def consolidate_chunks(
    inputs: Iterable[Chunk], combine_kwargs: Mapping[str, Any] | None = None
) -> Iterator[Chunk]:
    """Combine chunks that tile larger blocks, one block per group of ``vars``.

    Args:
      inputs: ``(Key, Dataset)`` pairs; those with the same ``vars`` must have
        offsets that form a complete, contiguous grid, and every group must
        cover the same offsets along the dimensions they share.
      combine_kwargs: if given, the chunks are combined with
        ``xarray.combine_nested`` instead of the default direct assembly
        (which takes variables that do not span a combined dimension from the
        first chunk); these options override ``data_vars='minimal',
        coords='minimal', compat='override', join='exact',
        combine_attrs='override'``.

    Yields:
      For each distinct ``vars``, in order of first appearance, the key of
      its first (lowest offsets) chunk and the combined dataset.

    Raises:
      ValueError: naming the keys at fault, if keys repeat or have chunk
        indices only, or chunks are missing, overlap, leave gaps, or disagree
        in variables, dimensions or dtypes.

    Example:
      >>> ds = xarray.Dataset({'foo': ('x', [1, 2, 3])})
      >>> pieces = [(Key({'x': 0}), ds.isel(x=slice(0, 2))),
      ...           (Key({'x': 2}), ds.isel(x=[2]))]
      >>> [(key, out.foo.values.tolist()) for key, out in consolidate_chunks(pieces)]
      [(Key(offsets={'x': 0}), [1, 2, 3])]
    """
    inputs = list(inputs)
    _require_offsets(inputs, "consolidate_chunks")
    counts = collections.Counter(key for key, _ in inputs)
    repeated = [key for key, count in counts.items() if count > 1]
    if repeated:
        raise ValueError(
            f"keys of the chunks to consolidate are not unique: duplicate chunks "
            f"for {assembly.listed(repeated)}"
        )
    groups: dict[frozenset[str] | None, list[Chunk]] = {}
    for key, dataset in inputs:
        groups.setdefault(key.vars, []).append((key, dataset))
    if len(groups) > 1:
        _check_groups_cover_the_same_offsets(groups)
    for group in groups.values():
        yield _consolidate_one_group(group, combine_kwargs)


def _check_groups_cover_the_same_offsets(
    groups: Mapping[frozenset[str] | None, list[Chunk]],
) -> None:
    """Groups of vars must have chunks at the same offsets on shared dims."""
    covered: dict[str, dict[int, Key]] = collections.defaultdict(dict)
    for group in groups.values():
        for key, _ in group:
            for dim, offset in key.offsets.items():
                covered[dim].setdefault(offset, key)
    for group in groups.values():
        for dim in dict.fromkeys(d for key, _ in group for d in key.offsets):
            here = {key.offsets[dim] for key, _ in group if dim in key.offsets}
            lacking = sorted(set(covered[dim]) - here)
            if lacking:
                other = covered[dim][lacking[0]]
                raise ValueError(
                    f"cannot consolidate chunks with different vars that cover "
                    f"different offsets: {group[0][0]} and the other chunks with "
                    f"its vars have none at offset {lacking[0]} along {dim!r}, "
                    f"where {other} has one"
                )


def _consolidate_one_group(
    inputs: list[Chunk], combine_kwargs: Mapping[str, Any] | None
) -> Chunk:
    """Combine chunks with the same vars whose offsets form a complete grid."""
    if len(inputs) == 1:
        return inputs[0]
    keys = [key for key, _ in inputs]
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
) -> Iterator[Chunk]:
    """Merge chunks holding different variables of the same region.

    If the keys agree on the offsets (or chunk indices) of every dimension
    they share, all chunks are merged into one, whose key has the union of
    their offsets. Otherwise, as in xarray-beam, chunks are merged per
    location: those whose keys have the same offsets (or indices), whatever
    their ``vars``.

    Args:
      inputs: ``(Key, Dataset)`` pairs.
      merge_kwargs: if given, merge with ``xarray.merge(..., **merge_kwargs)``
        instead of the default direct merge (which requires shared coordinates
        to be equal).

    Yields:
      For each distinct location, in order of first appearance, a key with
      its offsets (or indices) and ``vars`` naming every data variable of the
      merged dataset (also when the input keys have ``vars=None``), and the
      merged dataset.

    Raises:
      ValueError: naming the keys at fault, if a variable appears in two
        chunks with different values (identical copies, as ``split_variables``
        makes of variables lacking a split dimension, are merged into one), or
        coordinates differ.

    Example:
      >>> a = xarray.Dataset({'a': ('x', [1, 2])})
      >>> b = xarray.Dataset({'b': ('x', [3, 4])})
      >>> [(key, sorted(ds.data_vars)) for key, ds in consolidate_variables(
      ...     [(Key({'x': 0}, {'a'}), a), (Key({'x': 0}), b)])]
      [(Key(offsets={'x': 0}, vars={'a', 'b'}), ['a', 'b'])]
    """
    inputs = list(inputs)
    if _locations_agree([key for key, _ in inputs]):
        if inputs:
            yield _merge(inputs, merge_kwargs)
        return
    groups: dict[Key, list[Chunk]] = {}
    for key, dataset in inputs:
        groups.setdefault(key.replace(vars=None), []).append((key, dataset))
    for group in groups.values():
        yield _merge(group, merge_kwargs)


def _locations_agree(keys: list[Key]) -> bool:
    """Whether keys give the same offsets and indices on every shared dim."""
    seen: dict[tuple[str, str], int] = {}
    for key in keys:
        for what, located in (("offsets", key.offsets), ("indices", key.indices)):
            for dim, value in located.items():
                if seen.setdefault((what, dim), value) != value:
                    return False
    return not (
        any(what == "offsets" for what, _ in seen)
        and any(what == "indices" for what, _ in seen)
    )


def _merge(inputs: list[Chunk], merge_kwargs: Mapping[str, Any] | None) -> Chunk:
    """Merge chunks whose offsets agree on shared dimensions into one."""
    inputs = sorted(inputs, key=lambda kv: sorted(kv[1].data_vars))
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
    datasets = [dataset for _, dataset in inputs]
    if merge_kwargs is not None:
        merged = xarray.merge(datasets, **merge_kwargs)
    else:
        merged = _merge_directly(inputs)
    names = cast("Iterable[str]", merged.data_vars)
    return Key(offsets, set(names), inputs[0][0].indices), merged


def _merge_directly(inputs: list[Chunk]) -> xarray.Dataset:
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
        return xarray.Dataset(data_vars, coords=coords, attrs=inputs[0][1].attrs)
    except ValueError as error:
        keys = [key for key, _ in inputs]
        raise ValueError(
            f"cannot merge chunks {assembly.listed(keys)}: {error}"
        ) from error


def consolidate_fully(
    inputs: Iterable[Chunk],
    *,
    merge_kwargs: Mapping[str, Any] | None = None,
    combine_kwargs: Mapping[str, Any] | None = None,
) -> Chunk:
    """Consolidate chunks into a single ``(Key, Dataset)`` pair.

    Chunks at the same offsets are merged across variables, chunks with the
    same variables are concatenated, then the results are merged: chunks
    need not share every dimension (a variable lacking a dimension may come
    in one chunk), as long as their offsets agree on the dimensions they
    share.

    Args:
      inputs: ``(Key, Dataset)`` pairs with offsets.
      merge_kwargs: options for ``xarray.merge`` when merging variables, as
        in ``consolidate_variables``.
      combine_kwargs: options for ``xarray.combine_nested`` when
        concatenating chunks, as in ``consolidate_chunks``.

    Returns:
      A key with the lowest offset along each dimension and ``vars`` naming
      every data variable (also when the input keys have ``vars=None``), and
      the whole dataset.

    Raises:
      ValueError: naming the keys at fault, if there are no chunks, a key has
        chunk indices only, or chunks are missing, overlap or disagree.

    Example:
      >>> ds = xarray.Dataset({'a': ('x', [1, 2]), 'b': ('x', [3, 4])})
      >>> pieces = [(Key({'x': i}, {v}), ds[[v]].isel(x=[i]))
      ...           for i in range(2) for v in 'ab']
      >>> key, out = consolidate_fully(pieces)
      >>> key, out.identical(ds)
      (Key(offsets={'x': 0}, vars={'a', 'b'}), True)
    """
    inputs = list(inputs)
    if not inputs:
        raise ValueError("consolidate_fully needs at least one chunk")
    _require_offsets(inputs, "consolidate_fully")
    by_vars: dict[frozenset[str] | None, list[Chunk]] = {}
    for key, dataset in consolidate_variables(inputs, merge_kwargs):
        by_vars.setdefault(key.vars, []).append((key, dataset))
    blocks = [
        _consolidate_one_group(group, combine_kwargs) for group in by_vars.values()
    ]
    if len(blocks) == 1:
        return blocks[0]
    return _merge(blocks, merge_kwargs)


def in_memory_rechunk(
    inputs: Iterable[Chunk], target_chunks: Mapping[str, int]
) -> Iterator[Chunk]:
    """Rechunk chunks held in memory: consolidate, then split.

    Chunks are consolidated with ``consolidate_chunks`` (one block per group
    of ``vars``), and each block is split with ``split_chunks``.

    Args:
      inputs: ``(key, dataset)`` chunks that together form complete grids.
      target_chunks: chunk size per dimension of the result (-1: whole).

    Yields:
      ``(key, dataset)`` chunks of ``target_chunks``.

    Raises:
      ValueError: naming the keys at fault, if keys repeat or the chunks do
        not form complete grids (see ``consolidate_chunks``).

    Example:
      >>> ds = xarray.Dataset({'foo': ('x', list(range(6)))})
      >>> pieces = [(Key({'x': 0}), ds.isel(x=slice(0, 3))),
      ...           (Key({'x': 3}), ds.isel(x=slice(3, 6)))]
      >>> [k.offsets['x'] for k, _ in in_memory_rechunk(pieces, {'x': 2})]
      [0, 2, 4]
    """
    for key, dataset in consolidate_chunks(inputs):
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
        require_offsets(key, "ConsolidateChunks")
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
    ((key, dataset),) = consolidate_chunks(chunks)
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
            >> beam.Map(_TargetKey(self.target_chunks)).with_output_types(_REKEYED)
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


def _merge_group(location: Key, chunks: Iterable[Chunk]) -> Chunk:
    ((_, dataset),) = consolidate_variables(chunks)
    return location, dataset


class ConsolidateVariables(beam.PTransform):
    """Merge chunks with the same offsets into one chunk with all their variables.

    The merged chunks' keys have ``vars=None`` ("all variables"), as in
    xarray-beam.

    Example:
      ``chunks | xarray_beam.SplitVariables() | xarray_beam.ConsolidateVariables()``
    """

    def expand(self, pcoll):
        return (
            pcoll
            | "KeyByOffsets" >> beam.Map(_key_without_vars).with_output_types(_REKEYED)
            | "GroupByOffsets" >> beam.GroupByKey()
            | "Consolidate" >> beam.MapTuple(_merge_group).with_output_types(_KEYED)
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
      source_chunks: chunk sizes of the input (int, -1, or a tuple of sizes);
        dimensions missing here are not chunked.
      target_chunks: chunk size per dimension of the output (int or -1), for
        exactly the dimensions of ``source_chunks`` (as in xarray-beam).
      itemsize: bytes per element of one chunk, summed over its variables
        (e.g. 4 * number of float32 variables, or 4 after split_variables).
      min_mem: smallest piece worth shuffling (more stages keep pieces
        larger): bytes, or a size such as '16MB' (see ``max_mem``).
      max_mem: memory a task may use, counting the pieces and the assembled
        chunk it holds at once: bytes (an int), or a size as text, in
        decimal units ('256MB', '1G') or binary ones ('256MiB', '1GiB').
        Default 1 GiB.

    Raises:
      ValueError: when built, if ``source_chunks`` and ``target_chunks`` name
        different dimensions, for unknown dimensions, negative sizes, a
        ``max_mem`` or ``min_mem`` that is not a size, ``min_mem > max_mem``,
        or source/target chunks larger than max_mem.

    Example:
      >>> rechunk = Rechunk({'time': 96, 'x': 40}, {'time': 24, 'x': -1},
      ...                   {'time': -1, 'x': 10}, itemsize=4, max_mem='1MiB')
      >>> [stage.regions for stage in rechunk.plan.stages], rechunk.target_chunks
      ([(96, 40)], {'time': 96, 'x': 10})
    """

    def __init__(
        self,
        dim_sizes: Mapping[str, int],
        source_chunks: Mapping[str, int | tuple[int, ...]],
        target_chunks: Mapping[str, int],
        itemsize: int,
        min_mem: int | str | None = None,
        max_mem: int | str = "1GiB",
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
        # Checked after planning, so that bad sizes are named first.
        if (
            isinstance(source_chunks, Mapping)
            and isinstance(target_chunks, Mapping)
            and source_chunks.keys() != target_chunks.keys()
        ):
            only_source = [d for d in source_chunks if d not in target_chunks]
            only_target = [d for d in target_chunks if d not in source_chunks]
            raise ValueError(
                f"Rechunk needs source_chunks and target_chunks for the same "
                f"dimensions: {only_source} only in source_chunks, {only_target} "
                f"only in target_chunks (give -1 for a dimension kept whole): "
                f"source_chunks={dict(source_chunks)}, "
                f"target_chunks={dict(target_chunks)}"
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
