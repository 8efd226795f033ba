"""Keys: where a chunk sits in a larger dataset, and checks of (key, chunk) pairs.

The data model of the package (no Beam, no I/O): a distributed dataset is a
collection of ``(Key, xarray.Dataset)`` pairs, and a ``Key`` holds the
element offsets of its chunk along each dimension and which variables it
holds. Beam encodes keys with ``xarray_beam.beam.coders.KeyCoder``.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping, Set
from types import MappingProxyType
from typing import Any, cast

import xarray

_UNSET: Any = object()


class Key:
    """Identifies one chunk of a larger virtual dataset.

    Args:
      offsets: integer offsets of the chunk from the origin, in elements, along
        each dimension. A dimension that is absent has offset 0.
      vars: names of the data variables in the chunk, or None for "all
        variables".

    Keys are immutable, hashable and compare equal when their offsets and vars
    are equal. They encode deterministically for Beam (see ``KeyCoder``).

    Example:
      >>> key = Key({'time': 48, 'latitude': 0}, vars={'t2m'})
      >>> key
      Key(offsets={'latitude': 0, 'time': 48}, vars={'t2m'})
      >>> key.with_offsets(time=None, longitude=90)
      Key(offsets={'latitude': 0, 'longitude': 90}, vars={'t2m'})
    """

    __slots__ = ("_offsets", "_vars", "_hash")

    def __init__(
        self,
        offsets: Mapping[str, int] | None = None,
        vars: Set[str] | None = None,
    ):
        self._set(_checked_offsets(offsets), _checked_vars(vars))

    def _set(self, offsets: dict[str, int], vars: frozenset[str] | None) -> None:
        self._offsets = offsets
        self._vars = vars
        self._hash = hash((frozenset(offsets.items()), vars))

    @property
    def offsets(self) -> Mapping[str, int]:
        """Read-only mapping from dimension name to offset."""
        return MappingProxyType(self._offsets)

    @property
    def vars(self) -> frozenset[str] | None:
        """Names of the variables in the chunk, or None for all variables."""
        return self._vars

    def replace(self, offsets: Any = _UNSET, vars: Any = _UNSET) -> Key:
        """A copy of this key with new offsets and/or vars.

        Example:
          >>> Key({'x': 2}).replace(vars={'foo'})
          Key(offsets={'x': 2}, vars={'foo'})
        """
        return Key(
            self._offsets if offsets is _UNSET else offsets,
            self._vars if vars is _UNSET else vars,
        )

    def with_offsets(self, **offsets: int | None) -> Key:
        """A copy with some offsets replaced; ``None`` removes a dimension.

        Example:
          >>> Key({'x': 2, 'y': 4}).with_offsets(x=None, z=6)
          Key(offsets={'y': 4, 'z': 6}, vars=None)
        """
        new = dict(self._offsets)
        for dim, offset in offsets.items():
            if offset is None:
                new.pop(dim, None)
            else:
                new[dim] = offset
        return Key(new, self._vars)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Key):
            return NotImplemented
        return self._offsets == other._offsets and self._vars == other._vars

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        offsets = ", ".join(f"{d!r}: {o}" for d, o in sorted(self._offsets.items()))
        if self._vars is None:
            vars_repr = "None"
        elif self._vars:
            vars_repr = "{" + ", ".join(repr(v) for v in sorted(self._vars)) + "}"
        else:
            vars_repr = "set()"
        return f"Key(offsets={{{offsets}}}, vars={vars_repr})"

    def __getstate__(self) -> tuple:
        # Sorted, so that Beam's fallback deterministic coder is deterministic.
        vars = None if self._vars is None else tuple(sorted(self._vars))
        return tuple(sorted(self._offsets.items())), vars

    def __setstate__(self, state: tuple) -> None:
        offsets, vars = state
        self._set(dict(offsets), None if vars is None else frozenset(vars))


def _checked_offsets(offsets: Mapping[str, int] | None) -> dict[str, int]:
    if offsets is None:
        return {}
    if not isinstance(offsets, Mapping):
        raise TypeError(
            f"Key offsets must be a mapping from dimension name to int, got "
            f"{type(offsets).__name__}: {offsets!r}"
        )
    result: dict[str, int] = {}
    for dim, offset in offsets.items():
        if not isinstance(dim, str):
            raise TypeError(f"Key offset dimension names must be str, got {dim!r}")
        if not isinstance(offset, numbers.Integral) or isinstance(offset, bool):
            raise TypeError(
                f"Key offset for dimension {dim!r} must be an int, got "
                f"{type(offset).__name__}: {offset!r}"
            )
        result[dim] = int(offset)
    return result


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


def offsets_to_slices(
    offsets: Mapping[str, int],
    sizes: Mapping[str, int],
    base: Mapping[str, int] | None = None,
) -> dict[str, slice]:
    """Slices selecting a chunk, given its offsets and sizes.

    Args:
      offsets: offsets of the chunk along each dimension.
      sizes: sizes of the chunk along each dimension (may include more
        dimensions than ``offsets``).
      base: optional offsets subtracted from ``offsets``, e.g. the origin of a
        larger chunk the slices index into. Missing dimensions count as 0.

    Returns:
      A slice for each dimension in ``offsets``.

    Raises:
      ValueError: if ``offsets`` has a dimension missing from ``sizes``.

    Example:
      >>> offsets_to_slices({'x': 100}, {'x': 10, 'y': 5}, base={'x': 90})
      {'x': slice(10, 20, None)}
    """
    missing = [dim for dim in offsets if dim not in sizes]
    if missing:
        raise ValueError(
            f"offsets name dimension(s) {missing} not found in sizes {dict(sizes)}"
        )
    base = base or {}
    return {
        dim: slice(offset - base.get(dim, 0), offset - base.get(dim, 0) + sizes[dim])
        for dim, offset in offsets.items()
    }


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

    Raises:
      TypeError: if ``key`` is not a Key or a chunk is not an xarray.Dataset.
      ValueError: if the key has offsets for dimensions the chunk lacks, or
        its vars differ from the chunk's data variables.

    Example:
      >>> ds = xarray.Dataset({'foo': ('x', [1, 2])})
      >>> validate_chunk(Key({'x': 0}, {'foo'}), ds)
      >>> validate_chunk(Key({'y': 0}), ds)
      Traceback (most recent call last):
      ...
      ValueError: Key(offsets={'y': 0}, vars=None) has offsets for dimension(s) ...
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
        unexpected = [dim for dim in key.offsets if dim not in dataset.dims]
        if unexpected:
            raise ValueError(
                f"{key} has offsets for dimension(s) {unexpected} not found in its "
                f"chunk {describe_dataset(dataset)}"
            )
        if key.vars is not None and key.vars != set(dataset.data_vars):
            # Sorted as they are named in keys: by str.
            names = cast("Iterable[str]", dataset.data_vars)
            raise ValueError(
                f"{key} names variables {sorted(key.vars)} but its chunk has data "
                f"variables {sorted(names)}: "
                f"{describe_dataset(dataset)}"
            )
