"""Appending along a dimension of an existing Zarr store, idempotently.

``plan_append`` compares the new data's template with the store and decides,
before anything is written, where the new data goes:

* new labels all after the store's last one: a fresh append, at the end;
* new labels equal to the store's last ones: the same append again (or one
  that was interrupted); the data goes there again and chunks already
  written are skipped, so re-running an append is a no-op;
* anything else (overlap, gaps in the order, labels out of order, other
  variables, dims or dtypes): ValueError, and the store is not touched.

``extend_store`` then grows the arrays and writes the new labels, in an
order that a crash at any point leaves re-runnable: data arrays are resized
first, the index coordinate (which decides what the store holds) last.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray
import zarr

from xarray_beam.io import chunk_writer, stores
from xarray_beam.model import templates
from xarray_beam.model import zarr_layout as layout_lib


@dataclasses.dataclass(frozen=True)
class AppendPlan:
    """Where new data goes along ``dim``.

    Attributes:
      dim: the dimension appended along.
      offset: position of the new data's first element in the store.
      size: the store's size along ``dim`` after the append.
      labels: the store's index labels along ``dim`` after the append.
      repeat: whether the store already has the new labels (a re-run).
    """

    dim: str
    offset: int
    size: int
    labels: np.ndarray
    repeat: bool


def _open(store: Any, storage_options: Mapping[str, Any] | None) -> xarray.Dataset:
    kwargs: dict[str, Any] = (
        {"storage_options": dict(storage_options)} if storage_options else {}
    )
    return xarray.open_zarr(store, chunks=None, consolidated=False, **kwargs)


def plan_append(
    store: Any,
    template: xarray.Dataset,
    dim: str,
    storage_options: Mapping[str, Any] | None = None,
) -> AppendPlan:
    """Check that ``template`` can be appended to ``store`` along ``dim``.

    Raises:
      FileNotFoundError: if there is no Zarr store.
      ValueError: naming the variable, dimension or labels at fault.

    Example:
      ``plan_append('era5.zarr', make_template(new_days), 'time')``
    """
    name = stores.describe(store)
    if stores.store_state(store, storage_options) != "zarr":
        raise FileNotFoundError(f"cannot append to {name}: there is no Zarr store")
    if dim not in template.dims:
        raise ValueError(
            f"cannot append along {dim!r}: the new data has dimensions "
            f"{list(template.dims)}"
        )
    if dim not in template.indexes:
        raise ValueError(f"appending along {dim!r} needs an index coordinate for it")
    existing = _open(store, storage_options)
    if dim not in existing.indexes:
        raise ValueError(f"the Zarr store at {name} has no {dim!r} coordinate")
    for var_name, var in template.data_vars.items():
        if var_name not in existing:
            raise ValueError(
                f"variable {var_name!r} is not in the Zarr store at {name}; "
                f"appending cannot add variables"
            )
        have = existing[var_name]
        if have.dims != var.dims:
            raise ValueError(
                f"variable {var_name!r} has dims {var.dims} in the new data but "
                f"{have.dims} in the Zarr store at {name}"
            )
        if have.dtype != var.dtype:
            raise ValueError(
                f"variable {var_name!r} has dtype {var.dtype} in the new data but "
                f"{have.dtype} in the Zarr store at {name}"
            )
    missing = [v for v in existing.data_vars if dim in existing[v].dims]
    missing = [v for v in missing if v not in template.data_vars]
    if missing:
        raise ValueError(
            f"the new data lacks variable(s) {missing} that the Zarr store at {name} "
            f"has along {dim!r}; an append must extend every one of them"
        )
    for other, size in template.sizes.items():
        if other == dim:
            continue
        if existing.sizes.get(other) != size:
            raise ValueError(
                f"dimension {other!r} has size {size} in the new data but "
                f"{existing.sizes.get(other)} in the Zarr store at {name}"
            )
        if (
            other in template.indexes
            and other in existing.indexes
            and not template.indexes[other].equals(existing.indexes[other])
        ):
            raise ValueError(
                f"the {other!r} coordinate of the new data differs from the "
                f"Zarr store's at {name}"
            )
    old = np.asarray(existing.indexes[dim])
    new = np.asarray(template.indexes[dim])
    if len(new) > 1 and not np.all(new[1:] > new[:-1]):
        raise ValueError(
            f"the new data's {dim!r} labels are not strictly increasing "
            f"({_show(new)}); sort them first"
        )
    if len(old) and len(new) and new[0] > old[-1]:
        offset, repeat = len(old), False
        labels = np.concatenate([old, new])
    elif len(new) <= len(old) and np.array_equal(old[len(old) - len(new) :], new):
        offset, repeat = len(old) - len(new), True
        labels = old
    else:
        raise ValueError(
            f"the new data's {dim!r} labels ({_show(new)}) overlap the Zarr store's "
            f"({_show(old)}) without being its last ones: append only data that "
            f"comes after the store's last label ({_show(old[-1:])})"
        )
    for var_name in template.data_vars:
        chunk = _chunk_along(existing[var_name], dim)
        if chunk and offset % chunk:
            raise ValueError(
                f"variable {var_name!r} is stored in chunks of {chunk} along {dim!r}, "
                f"but the store holds {offset} elements: appending would rewrite "
                f"part of its last chunk; append to a store whose size along {dim!r} "
                f"is a multiple of {chunk}"
            )
    return AppendPlan(dim, offset, len(labels), labels, repeat)


def _chunk_along(var: xarray.DataArray, dim: str) -> int | None:
    blocks = var.encoding.get("shards") or var.encoding.get("chunks")
    if not blocks:
        return None
    return int(blocks[var.dims.index(dim)])


def _show(values: np.ndarray) -> str:
    if len(values) <= 4:
        return ", ".join(map(str, values))
    return f"{values[0]}, {values[1]}, ..., {values[-1]} ({len(values)} labels)"


def full_template(template: xarray.Dataset, plan: AppendPlan) -> xarray.Dataset:
    """The template of the whole store after the append."""
    return templates.replace_template_dims(template, **{plan.dim: plan.labels})


def extend_store(
    store: Any,
    template: xarray.Dataset,
    plan: AppendPlan,
    storage_options: Mapping[str, Any] | None = None,
) -> None:
    """Grow the store's arrays along ``plan.dim`` and write the new labels.

    Re-running it (after a crash at any point, or on a repeated append) is
    harmless: resizes are to the planned size and labels are rewritten.
    """
    group = stores.open_group(store, "r+", storage_options)
    dim = plan.dim
    now = plan_append(store, template, dim, storage_options)
    if now.offset != plan.offset or now.size != plan.size:
        raise ValueError(
            f"the Zarr store at {stores.describe(store)} changed since the append "
            f"was planned (another append?); build the pipeline again"
        )
    # The index's encoding (e.g. hours since a date), read while the store is
    # still consistent: once data arrays are resized, it is not until the
    # index is too.
    index_encoding = {
        k: v
        for k, v in _open(store, storage_options)[dim].encoding.items()
        if k in layout_lib.CF_ENCODING_KEYS
    }
    index_array = None
    for name, array in group.arrays():
        dims = stores.array_dims(array)
        if dim not in dims:
            continue
        if name == dim:
            index_array = array
            continue
        shape = list(array.shape)
        shape[dims.index(dim)] = plan.size
        if tuple(shape) != array.shape:
            array.resize(tuple(shape))
    if index_array is not None and not plan.repeat:
        labels = xarray.Variable(dim, plan.labels)
        values = chunk_writer.encode(dim, labels, index_encoding)
        index_array.resize((plan.size,))
        chunk_writer.ArrayWriter(index_array).write(
            (slice(plan.offset, plan.size),),
            values[plan.offset :].astype(index_array.dtype, copy=False),
        )
    zarr.consolidate_metadata(group.store)
