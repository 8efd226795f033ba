"""Keys: where a chunk sits in a larger dataset, and checks of (key, chunk) pairs.

The data model of the package (no Beam, no I/O): a distributed dataset is a
collection of ``(Key, xarray.Dataset)`` pairs, and a ``Key`` holds where its
chunk sits along each dimension (element offsets, or chunk indices) and which
variables it holds. Beam encodes keys with ``xarray_beam.beam.coders.KeyCoder``.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping, Set
from typing import Any, cast

import xarray
from immutabledict import immutabledict

_UNSET: Any = object()


class Key:
    """Identifies one chunk of a larger virtual dataset.

    Args:
      offsets: integer offsets of the chunk from the origin, in elements, along
        each dimension. A dimension that is absent has offset 0.
      vars: names of the data variables in the chunk, or None for "all
        variables".
      indices: integer chunk indices along each dimension, instead of
        ``offsets`` (with chunks of 100 along 'x', ``indices={'x': 4}`` is
        ``offsets={'x': 400}``). A key holds offsets or indices, not both.

    Keys are immutable, hashable and compare equal when their offsets, indices
    and vars are equal. ``offsets`` and ``indices`` are ``immutabledict``
    mappings (empty when unset). Keys encode deterministically for Beam (see
    ``KeyCoder``), so they group correctly in ``GroupByKey``. The transforms
    that place chunks by element (splitting, consolidating, writing) need
    offsets, and raise ValueError naming a key that has indices only.

    Raises:
      ValueError: if both ``offsets`` and ``indices`` are given.
      TypeError: naming the argument at fault, for offsets or indices that are
        not a mapping of str to int, or vars that are not a set of str.

    Example:
      >>> key = Key({'time': 48, 'latitude': 0}, vars={'t2m'})
      >>> key
      Key(offsets={'time': 48, 'latitude': 0}, vars={'t2m'})
      >>> key.with_offsets(time=None, longitude=90)
      Key(offsets={'latitude': 0, 'longitude': 90}, vars={'t2m'})
      >>> key.replace(vars=None)
      Key(offsets={'time': 48, 'latitude': 0})
      >>> Key(indices={'time': 2}).with_indices(latitude=0)
      Key(indices={'time': 2, 'latitude': 0})
    """

    __slots__ = ("_offsets", "_indices", "_vars", "_hash")

    def __init__(
        self,
        offsets: Mapping[str, int] | None = None,
        vars: Set[str] | None = None,
        indices: Mapping[str, int] | None = None,
    ):
        checked_offsets = _checked_ints(offsets, "offsets", "offset")
        checked_indices = _checked_ints(indices, "indices", "index")
        if checked_offsets and checked_indices:
            raise ValueError(
                f"a Key takes offsets or indices, not both: got "
                f"offsets={dict(checked_offsets)} and indices={dict(checked_indices)}"
            )
        self._set(checked_offsets, _checked_vars(vars), checked_indices)

    def _set(
        self,
        offsets: immutabledict[str, int],
        vars: frozenset[str] | None,
        indices: immutabledict[str, int],
    ) -> None:
        self._offsets = offsets
        self._vars = vars
        self._indices = indices
        self._hash = hash(
            (frozenset(offsets.items()), vars, frozenset(indices.items()))
        )

    @property
    def offsets(self) -> immutabledict[str, int]:
        """Immutable mapping from dimension name to element offset."""
        return self._offsets

    @property
    def indices(self) -> immutabledict[str, int]:
        """Immutable mapping from dimension name to chunk index."""
        return self._indices

    @property
    def vars(self) -> frozenset[str] | None:
        """Names of the variables in the chunk, or None for all variables."""
        return self._vars

    def replace(
        self, offsets: Any = _UNSET, vars: Any = _UNSET, indices: Any = _UNSET
    ) -> Key:
        """A copy of this key with new offsets, vars and/or indices.

        Args:
          offsets: the new offsets (None: none), or unchanged if not given.
          vars: the new variable names (None: all variables), or unchanged.
          indices: the new chunk indices (None: none), or unchanged.

        Raises:
          ValueError: if the result would have both offsets and indices.

        Example:
          >>> Key({'x': 2}).replace(vars={'foo'})
          Key(offsets={'x': 2}, vars={'foo'})
          >>> Key({'x': 2}).replace(offsets=None, indices={'x': 1})
          Key(indices={'x': 1})
        """
        return Key(
            self._offsets if offsets is _UNSET else offsets,
            self._vars if vars is _UNSET else vars,
            self._indices if indices is _UNSET else indices,
        )

    def with_offsets(self, **offsets: int | None) -> Key:
        """A copy with some offsets replaced; ``None`` removes a dimension.

        Args:
          **offsets: the new offset per dimension, or None to remove it.

        Raises:
          ValueError: if this key has indices.

        Example:
          >>> Key({'x': 2, 'y': 4}).with_offsets(x=None, z=6)
          Key(offsets={'y': 4, 'z': 6})
        """
        if self._indices:
            raise ValueError(
                f"cannot set offsets on {self}, which has indices: use "
                f"with_indices, or replace(indices=None, offsets=...)"
            )
        return self.replace(offsets=_updated(self._offsets, offsets))

    def with_indices(self, **indices: int | None) -> Key:
        """A copy with some chunk indices replaced; ``None`` removes a dimension.

        Args:
          **indices: the new chunk index per dimension, or None to remove it.

        Raises:
          ValueError: if this key has offsets.

        Example:
          >>> Key(indices={'x': 2, 'y': 4}, vars={'t'}).with_indices(x=3, y=None)
          Key(indices={'x': 3}, vars={'t'})
        """
        if self._offsets:
            raise ValueError(
                f"cannot set indices on {self}, which has offsets: use "
                f"with_offsets, or replace(offsets=None, indices=...)"
            )
        return self.replace(indices=_updated(self._indices, indices))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Key):
            return NotImplemented
        return (
            self._offsets == other._offsets
            and self._indices == other._indices
            and self._vars == other._vars
        )

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        # As xarray-beam prints keys: unset parts are left out, dimensions
        # keep their order; vars are sorted so that the text is stable.
        parts = []
        if self._offsets:
            parts.append(f"offsets={dict(self._offsets)}")
        if self._indices:
            parts.append(f"indices={dict(self._indices)}")
        if self._vars is not None:
            names = ", ".join(repr(v) for v in sorted(self._vars))
            parts.append(f"vars={{{names}}}" if names else "vars=set()")
        return f"Key({', '.join(parts)})"

    def __getstate__(self) -> tuple:
        # Sorted, so that Beam's fallback deterministic coder is deterministic.
        vars = None if self._vars is None else tuple(sorted(self._vars))
        return (
            tuple(sorted(self._offsets.items())),
            vars,
            tuple(sorted(self._indices.items())),
        )

    def __setstate__(self, state: tuple) -> None:
        offsets, vars, indices = state
        self._set(
            immutabledict(offsets),
            None if vars is None else frozenset(vars),
            immutabledict(indices),
        )


def _updated(
    mapping: Mapping[str, int], changes: Mapping[str, int | None]
) -> dict[str, int]:
    new = dict(mapping)
    for dim, value in changes.items():
        if value is None:
            new.pop(dim, None)
        else:
            new[dim] = value
    return new


def _checked_ints(
    values: Mapping[str, int] | None, what: str, singular: str
) -> immutabledict[str, int]:
    if values is None:
        return immutabledict()
    if not isinstance(values, Mapping):
        raise TypeError(
            f"Key {what} must be a mapping from dimension name to int, got "
            f"{type(values).__name__}: {values!r}"
        )
    result: dict[str, int] = {}
    for dim, value in values.items():
        if not isinstance(dim, str):
            raise TypeError(f"Key {singular} dimension names must be str, got {dim!r}")
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            raise TypeError(
                f"Key {singular} for dimension {dim!r} must be an int, got "
                f"{type(value).__name__}: {value!r}"
            )
        result[dim] = int(value)
    return immutabledict(result)


def _checked_vars(vars: Set[str] | None) -> frozenset[str] | None:
    if vars is None:
        return None
    if isinstance(vars, str):
        raise TypeError(
            f"Key vars must be a set of variable names, not a string: use "
            f"vars={{{vars!r}}}"
        )
    result = frozenset(vars)
    for name in result:
        if not isinstance(name, str):
            raise TypeError(f"Key vars must be strings, got {name!r}")
    return result


def require_offsets(key: Key, purpose: str) -> None:
    """Refuse a key that locates its chunk by chunk indices only.

    Transforms that place chunks by element (splitting, consolidating,
    writing) call this first, so an index-only key fails by name instead of
    being taken for the chunk at the origin.

    Raises:
      ValueError: naming the key and ``purpose``, if the key has indices.

    Example:
      >>> require_offsets(Key({'x': 10}), 'split_chunks')
      >>> require_offsets(Key(indices={'x': 1}), 'split_chunks')
      Traceback (most recent call last):
      ...
      ValueError: split_chunks needs element offsets, but Key(indices={'x': 1}) ...
    """
    if key.indices:
        raise ValueError(
            f"{purpose} needs element offsets, but {key} locates its chunk by "
            f"chunk indices; build keys with offsets (index * chunk size) instead"
        )


def offsets_to_slices(
    offsets: Mapping[str, int],
    sizes: Mapping[str, int],
    base: Mapping[str, int] | None = None,
) -> dict[str, slice]:
    """Slices selecting a chunk, given its offsets and sizes.

    Args:
      offsets: offsets of the chunk along each dimension; a dimension of
        ``sizes`` that is missing here has offset 0.
      sizes: sizes of the chunk along each dimension.
      base: optional offsets subtracted from ``offsets``, e.g. the origin of a
        larger chunk the slices index into. Missing dimensions count as 0.

    Returns:
      A slice (with step 1) for each dimension in ``sizes``, for
      ``xarray.Dataset.isel``.

    Raises:
      ValueError: if ``offsets`` has a dimension missing from ``sizes``.

    Example:
      >>> offsets_to_slices({'x': 100}, {'x': 10, 'y': 5}, base={'x': 90})
      {'x': slice(10, 20, 1), 'y': slice(0, 5, 1)}
    """
    missing = [dim for dim in offsets if dim not in sizes]
    if missing:
        raise ValueError(
            f"offsets name dimension(s) {missing} not found in sizes {dict(sizes)}: "
            f"offsets={dict(offsets)}"
        )
    base = base or {}
    slices = {}
    for dim, size in sizes.items():
        start = offsets.get(dim, 0) - base.get(dim, 0)
        slices[dim] = slice(start, start + size, 1)
    return slices


DatasetOrDatasets = xarray.Dataset | list[xarray.Dataset]


def describe_dataset(dataset: xarray.Dataset) -> str:
    """A one-line summary of a chunk for error messages."""
    sizes = ", ".join(f"{d}: {n}" for d, n in dataset.sizes.items())
    data_vars = ", ".join(
        f"{name} {var.dtype}{tuple(var.dims)}"
        for name, var in dataset.data_vars.items()
    )
    return f"<Dataset ({sizes}) data_vars: {data_vars or 'none'}>"


def validate_chunk(key: Key, datasets: DatasetOrDatasets) -> None:
    """Check that a key is consistent with the chunk(s) it labels.

    Args:
      key: the key.
      datasets: the chunk, or a list of chunks that the key labels alike.

    Raises:
      TypeError: if ``key`` is not a Key or a chunk is not an xarray.Dataset.
      ValueError: if a variable of the chunk is a Dask array (chunks must be
        in memory), the key has offsets or indices for dimensions the chunk
        lacks, or its vars differ from the chunk's data variables.

    Example:
      >>> ds = xarray.Dataset({'foo': ('x', [1, 2])})
      >>> validate_chunk(Key({'x': 0}, {'foo'}), ds)
      >>> validate_chunk(Key({'y': 0}), ds)
      Traceback (most recent call last):
      ...
      ValueError: Key(offsets={'y': 0}) has offsets for dimension(s) ['y'] ...
    """
    if not isinstance(key, Key):
        raise TypeError(
            f"expected a Key as the first element of a chunk, got "
            f"{type(key).__name__}: {key!r}"
        )
    for dataset in datasets if isinstance(datasets, list) else [datasets]:
        if not isinstance(dataset, xarray.Dataset):
            raise TypeError(
                f"the chunk for {key} must be an xarray.Dataset, got "
                f"{type(dataset).__name__}"
            )
        for name, variable in dataset.variables.items():
            if variable.chunks is not None:
                raise ValueError(
                    f"variable {name!r} of the chunk for {key} is a Dask array; "
                    f"chunks must hold their data in memory: load it with "
                    f".compute() (or open the source with chunks=None): "
                    f"{describe_dataset(dataset)}"
                )
        for what, located in (("offsets", key.offsets), ("indices", key.indices)):
            unexpected = [dim for dim in located if dim not in dataset.dims]
            if unexpected:
                raise ValueError(
                    f"{key} has {what} for dimension(s) {unexpected} not found in "
                    f"its chunk {describe_dataset(dataset)}"
                )
        if key.vars is not None and key.vars != set(dataset.data_vars):
            # Sorted as they are named in keys: by str.
            names = cast("Iterable[str]", dataset.data_vars)
            raise ValueError(
                f"{key} names variables {sorted(key.vars)} but its chunk has data "
                f"variables {sorted(names)}: "
                f"{describe_dataset(dataset)}"
            )
