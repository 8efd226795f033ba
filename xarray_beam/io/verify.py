"""Checking that a Zarr store is complete: every chunk of every array exists.

Chunk objects are found with one listing per array (not one request per
chunk), compared with the grid the array's metadata implies, and missing
chunks are reported as element ranges. Optionally every chunk is read back to
catch objects that exist but do not decode.

A store the package wrote says so (see ``job_records``): then every array
its job description lists must exist, consolidated metadata must be there,
and, since such stores keep every chunk, an absent chunk is a missing one.
Other stores may leave out chunks that hold only the fill value (zarr's
default): their absent chunks are reported apart, as reading as the fill
value, and do not make the store incomplete. An empty store is never
complete.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Callable, Mapping
from typing import Any, cast

import fsspec
import xarray
import zarr

from xarray_beam.io import _direct, job_records, stores
from xarray_beam.io.stores import StoreLike

_SHOWN = 5


@dataclasses.dataclass(frozen=True)
class ArrayReport:
    """What verification found for one array.

    Attributes:
      name: the array's name.
      dims: its dimension names.
      shape: its shape.
      blocks: shape of its stored objects (shards if sharded, else chunks).
      expected: number of objects the metadata implies.
      missing: element ranges ``((start, stop), ...)`` of each missing object.
      unreadable: element ranges of objects that failed to decode.
      absent: element ranges of objects absent from a store that may leave
        out chunks holding only the fill value (they read as the fill value).
    """

    name: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    blocks: tuple[int, ...]
    expected: int
    missing: tuple[tuple[tuple[int, int], ...], ...] = ()
    unreadable: tuple[tuple[tuple[int, int], ...], ...] = ()
    absent: tuple[tuple[tuple[int, int], ...], ...] = ()

    def _describe(self, ranges) -> str:
        shown = [
            " x ".join(
                f"{d}[{a}:{b}]" for d, (a, b) in zip(self.dims, region, strict=True)
            )
            or "(scalar)"
            for region in ranges[:_SHOWN]
        ]
        more = len(ranges) - _SHOWN
        return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")

    def __str__(self) -> str:
        lines = []
        if self.missing:
            lines.append(
                f"{self.name}: {len(self.missing)} of {self.expected} chunks missing: "
                f"{self._describe(self.missing)}"
            )
        if self.unreadable:
            lines.append(
                f"{self.name}: {len(self.unreadable)} chunks do not decode: "
                f"{self._describe(self.unreadable)}"
            )
        if self.absent:
            lines.append(
                f"{self.name}: {len(self.absent)} of {self.expected} chunks absent "
                f"(read as the fill value): {self._describe(self.absent)}"
            )
        return "\n".join(lines) or f"{self.name}: all {self.expected} chunks present"


@dataclasses.dataclass(frozen=True)
class VerifyReport:
    """The result of ``verify_zarr``; prints as a summary.

    Attributes:
      store: the store checked.
      arrays: a report per array.
      problems: metadata inconsistencies (with the template, or unreadable
        metadata).
    """

    store: str
    arrays: tuple[ArrayReport, ...]
    problems: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """Whether every chunk is present (and readable) and metadata agrees."""
        return not self.problems and not any(
            a.missing or a.unreadable for a in self.arrays
        )

    def __str__(self) -> str:
        total = sum(a.expected for a in self.arrays)
        missing = sum(len(a.missing) for a in self.arrays)
        head = (
            f"{self.store}: complete ({len(self.arrays)} arrays, {total} chunks)"
            if self.complete
            else f"{self.store}: INCOMPLETE ({missing} of {total} chunks missing, "
            f"{len(self.problems)} metadata problems)"
        )
        lines = [head]
        lines += [
            f"  {a}" for a in self.arrays if a.missing or a.unreadable or a.absent
        ]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


def block_shape(array: zarr.Array) -> tuple[int, ...]:
    shards = getattr(array, "shards", None)
    return tuple(shards) if shards else tuple(array.chunks)


def chunk_key_parser(array: zarr.Array) -> Callable[[str], tuple[int, ...] | None]:
    """A function from an object key (relative to the array) to the index of
    the chunk (or shard) it holds, or None for other keys.

    Example:
      ``chunk_key_parser(array)('c/3/0/0')`` is ``(3, 0, 0)``
    """
    prefix, separator = _direct.chunk_key_encoding(array)
    ndim = len(array.shape)

    def parse(key: str) -> tuple[int, ...] | None:
        if ndim == 0:
            return () if key in ("c", "0") else None
        if prefix and not key.startswith(prefix):
            return None
        parts = key[len(prefix) :].split(separator)
        if len(parts) != ndim or not all(p.isdigit() for p in parts):
            return None
        return tuple(int(p) for p in parts)

    return parse


def present_blocks(
    array: zarr.Array, location: str, storage_options: Mapping[str, Any] | None
) -> set[tuple[int, ...]]:
    """Chunk indices with an object in the store, from one listing."""
    fs, root = fsspec.core.url_to_fs(location, **(storage_options or {}))
    directory = f"{root.rstrip('/')}/{array.path}"
    parse = chunk_key_parser(array)
    found = set()
    for path in fs.find(directory):
        index = parse(path[len(directory) + 1 :])
        if index is not None:
            found.add(index)
    return found


def region_blocks(
    region: tuple[slice, ...], blocks: tuple[int, ...]
) -> itertools.product:
    """Indices of the stored objects (of shape ``blocks``) a region touches."""
    return itertools.product(
        *(
            range(r.start // b, -(-r.stop // b))
            for r, b in zip(region, blocks, strict=True)
        )
    )


def _region(index, blocks, shape) -> tuple[tuple[int, int], ...]:
    return tuple(
        (i * b, min((i + 1) * b, n))
        for i, b, n in zip(index, blocks, shape, strict=True)
    )


def verify_zarr(
    store: StoreLike,
    template: xarray.Dataset | None = None,
    *,
    decode: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> VerifyReport:
    """Report every missing chunk of every array of a Zarr store.

    Args:
      store: local path or URL of the store.
      template: if given, variables, dims and shapes must match it.
      decode: also read every chunk, to catch objects that do not decode.
      storage_options: fsspec options for URLs.

    Returns:
      A ``VerifyReport``; ``report.complete`` says whether all is well.

    Raises:
      FileNotFoundError: if there is no Zarr store at ``store``.

    Example:
      ``print(verify_zarr('gs://bucket/era5.zarr'))``
    """
    location = stores.normalize_store(store)
    if not isinstance(location, str):
        raise TypeError("verify_zarr needs a path or URL")
    if stores.store_state(location, storage_options) != "zarr":
        raise FileNotFoundError(f"there is no Zarr store at {location}")
    group = stores.open_group(location, "r", storage_options)
    record = job_records.read(location, storage_options)
    every_chunk = record is not None and record.writes_every_chunk
    problems = []
    reports = []
    arrays = dict(group.arrays())
    if not arrays:
        problems.append("the store holds no arrays (was its setup interrupted?)")
    if record is not None:
        problems += _compare_with_description(arrays, record.description)
    if record is not None and not _has_consolidated_metadata(location, storage_options):
        problems.append(
            "the store has no consolidated metadata (was its setup or a write "
            "interrupted?)"
        )
    for name, array in sorted(arrays.items()):
        dims = tuple(stores.array_dims(array))
        blocks = block_shape(array)
        grid = [
            math.ceil(n / b) if b else 0
            for n, b in zip(array.shape, blocks, strict=True)
        ]
        expected = set(itertools.product(*(range(g) for g in grid)))
        present = present_blocks(array, location, storage_options)
        missing = sorted(expected - present)
        unreadable = []
        if decode:
            for index in sorted(expected & present):
                region = _region(index, blocks, array.shape)
                try:
                    array.get_basic_selection(tuple(slice(a, b) for a, b in region))
                except Exception:  # noqa: BLE001 - any failure means unreadable
                    unreadable.append(region)
        ranges = tuple(_region(i, blocks, array.shape) for i in missing)
        reports.append(
            ArrayReport(
                name,
                dims,
                tuple(array.shape),
                blocks,
                len(expected),
                ranges if every_chunk else (),
                tuple(unreadable),
                () if every_chunk else ranges,
            )
        )
    if template is not None:
        problems += _compare_with_template(arrays, template)
    return VerifyReport(location, tuple(reports), tuple(problems))


def _compare_with_description(
    arrays: Mapping[str, zarr.Array], description: Mapping[str, Any]
) -> list[str]:
    """Arrays the job that wrote the store meant to create, and did not."""
    problems = []
    wanted = {
        **{n: v.get("shape") for n, v in description.get("variables", {}).items()},
        **{n: None for n in description.get("coords", {})},
    }
    for name, shape in wanted.items():
        if name not in arrays:
            problems.append(
                f"array {name!r} of the job that wrote the store is missing (was "
                f"its setup interrupted?)"
            )
        elif shape is not None and list(arrays[name].shape) != list(shape):
            problems.append(
                f"array {name!r} has shape {tuple(arrays[name].shape)}, but the "
                f"job that wrote the store made it {tuple(shape)}"
            )
    return problems


def _has_consolidated_metadata(
    location: str, storage_options: Mapping[str, Any] | None
) -> bool:
    fs, root = fsspec.core.url_to_fs(location, **(storage_options or {}))
    root = root.rstrip("/")
    if fs.exists(f"{root}/.zmetadata"):
        return True
    try:
        with fs.open(f"{root}/zarr.json", "rb") as f:
            return json.load(f).get("consolidated_metadata") is not None
    except (FileNotFoundError, ValueError):
        return False


def _compare_with_template(
    arrays: Mapping[str, zarr.Array], template: xarray.Dataset
) -> list[str]:
    problems = []
    for name, var in template.variables.items():
        if name not in arrays:
            problems.append(f"variable {name!r} of the template is not in the store")
            continue
        array = arrays[cast(str, name)]  # a key of arrays, so a str
        dims = tuple(stores.array_dims(array))
        if dims != tuple(var.dims) or tuple(array.shape) != var.shape:
            stored = dict(zip(dims, array.shape, strict=False))
            problems.append(
                f"variable {name!r} has dims {stored} in the store but "
                f"{dict(var.sizes)} in the template"
            )
    return problems
