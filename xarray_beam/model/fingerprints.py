"""What a job writes, as a description and a fingerprint (pure).

A store the package writes records which job it belongs to (see
``io/job_records.py``): a description of what is written (the variables with
their dims, shapes, dtypes, chunks, shards and encodings, the coordinates'
values, the attributes, the kind of job and what it adds: its source, plan
or statistic) and its fingerprint. Resuming compares fingerprints, and a
difference is named with ``difference``, so a resume never mixes two jobs in
one store.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray

from xarray_beam.model import zarr_layout as layout_lib


def plain(value: Any) -> Any:
    """``value`` as JSON can hold it (numbers, strings, lists, dicts), for
    descriptions that compare equal whatever types produced them.

    Example:
      >>> plain({'a': np.float32(1.5), 'b': (np.int64(2), 'x'), 'c': np.nan})
      {'a': 1.5, 'b': [2, 'x'], 'c': 'NaN'}
    """
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in sorted(value.items(), key=str)}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value).replace("nan", "NaN").replace("inf", "Infinity")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.dtype):
        return value.str
    return repr(value)


def _values_digest(values: Any) -> str:
    array = np.asarray(values)
    if array.dtype.kind in "OUS":
        data = json.dumps(plain(array.tolist())).encode()
    else:
        data = np.ascontiguousarray(array).tobytes()
    return hashlib.sha256(array.dtype.str.encode() + data).hexdigest()[:16]


def _encoding(layout: layout_lib.VariableLayout) -> Any:
    """A layout's CF encoding, without what only restates xarray's defaults
    (the variable's own dtype; NaN as the fill value of floats)."""
    encoding = dict(layout.encoding)
    if "dtype" in encoding and np.dtype(encoding["dtype"]) == layout.dtype:
        del encoding["dtype"]
    fill = encoding.get("_FillValue")
    if (
        layout.dtype.kind == "f"
        and isinstance(fill, float | np.floating)
        and np.isnan(fill)
    ):
        del encoding["_FillValue"]
    return plain(encoding)


def describe(
    kind: str,
    template: xarray.Dataset,
    target: layout_lib.ZarrTarget,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A JSON-ready description of what a job writes into a store.

    Args:
      kind: the kind of job (e.g. 'ChunksToZarr', 'RechunkZarr').
      template: the whole dataset written.
      target: how its lazy variables are laid out in the store.
      extra: what else defines the job (its source, plan, statistic, ...).

    Example:
      >>> ds = xarray.Dataset({'t': ('x', np.arange(4.0))})
      >>> target = layout_lib.plan_target(ds.chunk(), None, None, 3)
      >>> describe('ChunksToZarr', ds.chunk(), target)['variables']['t']['chunks']
      [4]
    """
    variables = {
        name: {
            "dims": list(layout.dims),
            "shape": list(layout.shape),
            "dtype": layout.dtype.str,
            "chunks": list(layout.chunks),
            "shards": None if layout.shards is None else list(layout.shards),
            "encoding": _encoding(layout),
        }
        for name, layout in target.variables.items()
    }
    coords = {
        str(name): {
            "dims": [str(d) for d in var.dims],
            "dtype": var.dtype.str,
            "values": _values_digest(var.values),
        }
        for name, var in template.variables.items()
        if name not in target.variables
    }
    attrs = {
        "": plain(template.attrs),
        **{str(n): plain(v.attrs) for n, v in template.variables.items()},
    }
    return plain(
        {
            "kind": kind,
            "zarr_format": target.zarr_format,
            "variables": variables,
            "coords": coords,
            "attrs": attrs,
            **(extra or {}),
        }
    )


def fingerprint(description: Mapping[str, Any]) -> str:
    """A short digest of a description: equal descriptions, equal fingerprints.

    Example:
      >>> fingerprint({'kind': 'x'}) == fingerprint({'kind': 'x'})
      True
    """
    text = json.dumps(plain(description), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def difference(recorded: Any, wanted: Any) -> str | None:
    """The first difference between two descriptions, in words (None if
    they are equal).

    Example:
      >>> difference({'variables': {'t': {'chunks': [24]}}},
      ...            {'variables': {'t': {'chunks': [48]}}})
      "variables['t'].chunks: [24] in the store, [48] now"
    """
    return _difference(recorded, wanted, [])


_NAMED = ("variables", "coords", "attrs")


def _path(segments: list[str]) -> str:
    text = ""
    for i, segment in enumerate(segments):
        if i and segments[i - 1] in _NAMED and i == 1:
            text += f"[{segment!r}]"
        else:
            text += f".{segment}" if text else segment
    return text or "the job"


def _difference(recorded: Any, wanted: Any, segments: list[str]) -> str | None:
    if isinstance(recorded, Mapping) and isinstance(wanted, Mapping):
        for key in sorted(set(recorded) | set(wanted), key=str):
            where = [*segments, str(key)]
            if key not in recorded:
                return f"{_path(where)}: absent in the store, {_short(wanted[key])} now"
            if key not in wanted:
                return (
                    f"{_path(where)}: {_short(recorded[key])} in the store, absent now"
                )
            found = _difference(recorded[key], wanted[key], where)
            if found:
                return found
        return None
    if recorded != wanted:
        return (
            f"{_path(segments)}: {_short(recorded)} in the store, {_short(wanted)} now"
        )
    return None


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."
