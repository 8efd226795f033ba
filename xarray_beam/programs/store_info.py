"""What ``xarray-beam info`` shows about a Zarr store.

Dimensions, the range and step of each dimension coordinate (for times: the
first and last, the frequency and the number of steps), and per variable
its dtype, dimensions, units, size in memory and on disk, chunks (how many,
of what shape, in which shards) and compression. Sizes on disk are the sums
of the objects' sizes, from one listing of the store (local, gs://, s3://).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal, cast

import fsspec
import numpy as np
import xarray
import zarr

from xarray_beam.io import stores, zarr_io
from xarray_beam.model.units import format_bytes

# Regular time steps with a name of their own.
_STEP_NAMES = {"1s": "every second", "1min": "every minute", "1h": "hourly"}
_STEP_NAMES.update({"1d": "daily", "7d": "weekly"})


def _step_text(step: np.timedelta64) -> str:
    """A time step as ``3h``, ``1d``, ``30min``, ``10s`` (or ns)."""
    nanoseconds = int(step.astype("m8[ns]").astype(np.int64))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if nanoseconds % (size * 10**9) == 0:
            return f"{nanoseconds // (size * 10**9)}{unit}"
    return f"{nanoseconds}ns"


TimeUnit = Literal["D", "h", "m", "s", "ns"]


def _time_unit(values: np.ndarray) -> TimeUnit:
    """The coarsest numpy unit that prints every value exactly (up to s)."""
    seconds = values.astype("M8[s]")
    if not np.array_equal(seconds, values):
        return "ns"
    units: tuple[TimeUnit, ...] = ("D", "h", "m")
    for unit in units:
        if np.array_equal(values.astype(f"M8[{unit}]"), values):
            return unit
    return "s"


def _is_monthly(values: np.ndarray) -> bool:
    """Whether times fall one month apart, on the same day and time."""
    months = values.astype("M8[M]")
    if not np.all(np.diff(months.astype(np.int64)) == 1):
        return False
    offsets = values - months.astype(values.dtype)
    return bool(np.all(offsets == offsets[0]))


def describe_times(values: np.ndarray) -> str:
    """The range, frequency and count of a time coordinate's values.

    Example:
      >>> import pandas as pd
      >>> times = pd.date_range('2020-01-01', '2020-03-01T23:00', freq='h')
      >>> describe_times(times.values)
      '2020-01-01T00 .. 2020-03-01T23, hourly (1h), 1464 steps'
      >>> describe_times(pd.date_range('2020-01-01', periods=3, freq='6h').values)
      '2020-01-01T00 .. 2020-01-01T12, every 6h, 3 steps'
    """
    values = np.asarray(values)
    valid = values[~np.isnat(values)]
    nat = values.size - valid.size
    suffix = f" ({nat} NaT)" if nat else ""
    if valid.size == 0:
        return f"no valid times, {values.size} steps{suffix}"
    unit = _time_unit(valid)
    first, last = (np.datetime_as_string(v, unit=unit) for v in (valid[0], valid[-1]))
    if valid.size == 1:
        return f"{first}, 1 step{suffix}"
    steps = np.diff(valid)
    if np.all(steps == steps[0]) and steps[0] != np.timedelta64(0):
        text = _step_text(steps[0])
        name = _STEP_NAMES.get(text.lstrip("-"))
        frequency = f"{name} ({text})" if name else f"every {text}"
    elif _is_monthly(valid):
        frequency = "monthly"
    else:
        frequency = (
            f"irregular steps of {_step_text(steps.min())} to {_step_text(steps.max())}"
        )
    return f"{first} .. {last}, {frequency}, {values.size} steps{suffix}"


def describe_values(values: np.ndarray) -> str | None:
    """The range (and step, if regular) of a numeric coordinate, or None for
    other kinds of values.

    Example:
      >>> describe_values(np.linspace(90, -90, 181))
      '90 .. -90, 181 values, step -1'
      >>> describe_values(np.array([1.0, 2.0, 4.0]))
      '1 .. 4, 3 values'
    """
    values = np.asarray(values)
    if values.dtype.kind in "mM":
        return describe_times(values)
    if values.dtype.kind not in "iuf" or values.ndim != 1 or values.size == 0:
        return None
    text = f"{values[0]:g} .. {values[-1]:g}, {values.size} values"
    if values.size > 2:
        steps = np.diff(values.astype(np.float64))
        if np.allclose(steps, steps[0], rtol=1e-6, atol=0):
            text += f", step {steps[0]:.6g}"
    return text


def codec_names(array: zarr.Array) -> str:
    """The filters and compressors of an array, by name ('none' without).

    Example:
      >>> import tempfile
      >>> codec_names(zarr.create_array(tempfile.mkdtemp(), shape=(4,), dtype='i4'))
      'zstd'
    """
    names = [
        _codec_name(codec)
        for codec in (*(array.filters or ()), *(array.compressors or ()))
    ]
    return "+".join(names) or "none"


def _codec_name(codec: Any) -> str:
    name = getattr(codec, "codec_id", None)  # numcodecs (Zarr v2)
    if name is not None:
        config = codec.get_config()
    else:
        try:
            spec = codec.to_dict()
            name, config = spec.get("name"), spec.get("configuration") or {}
        except Exception:  # a codec that cannot describe itself
            name, config = type(codec).__name__, {}
    inner = config.get("cname")
    inner = getattr(inner, "value", inner)  # an enum in Zarr v3
    return f"{name}/{inner}" if inner else str(name)


def object_sizes(
    store: str, storage_options: Mapping[str, Any] | None = None
) -> tuple[dict[str, int], int, int]:
    """Bytes of the objects of a store, from one listing: per top-level name
    (an array of the root group), in all, and the number of objects.

    Example:
      ``sizes, total, count = object_sizes('gs://bucket/era5.zarr')``
    """
    fs, root = fsspec.core.url_to_fs(store, **(storage_options or {}))
    root = root.rstrip("/")
    per_name: dict[str, int] = {}
    total = count = 0
    for path, entry in fs.find(root, detail=True).items():
        size = int(entry.get("size") or 0)
        total += size
        count += 1
        name = path[len(root) + 1 :].split("/", 1)[0]
        per_name[name] = per_name.get(name, 0) + size
    return per_name, total, count


def _grid(shape: tuple[int, ...], blocks: tuple[int, ...]) -> int:
    return math.prod(-(-n // b) if b else 0 for n, b in zip(shape, blocks, strict=True))


def _layout(array: zarr.Array) -> str:
    shape, chunks = tuple(array.shape), tuple(array.chunks)
    text = f"{_grid(shape, chunks):,} x {chunks}"
    shards = getattr(array, "shards", None)
    if shards:
        text += f" in {_grid(shape, tuple(shards)):,} shards {tuple(shards)}"
    return text


def describe_store(store: str, storage_options: Mapping[str, Any] | None = None) -> str:
    """What ``xarray-beam info`` prints about a store.

    Example:
      ``print(describe_store('era5.zarr'))``
    """
    kwargs = {"storage_options": dict(storage_options)} if storage_options else {}
    dataset, chunks = zarr_io.open_zarr(store, **kwargs)
    location = stores.normalize_store(store)
    group = stores.open_group(location, "r", storage_options)
    per_name, on_disk, objects = object_sizes(cast(str, location), storage_options)
    data = [name for name in dataset.data_vars]
    lines = [
        f"{store}: Zarr format {group.metadata.zarr_format}, {len(data)} data "
        f"variables, {format_bytes(dataset.nbytes)} in memory, "
        f"{format_bytes(on_disk)} on disk in {objects:,} objects",
        "dimensions: " + ", ".join(f"{d}={n}" for d, n in dataset.sizes.items()),
    ]
    for dim in dataset.dims:
        if dim in dataset.coords:
            described = describe_values(dataset[dim].values)
            if described is not None:
                lines.append(f"{dim}: {described}")
    lines.append(f"chunks to read it by: {chunks}")
    lines.append("variables:")
    rows = [
        ("", "name", "dtype", "dims", "units", "size", "on disk", "chunks", "codecs")
    ]
    variables = cast("Mapping[str, xarray.Variable]", dataset.variables)
    for name, var in sorted(variables.items(), key=lambda i: i[0] not in data):
        array = cast("zarr.Array | None", group.get(name))
        rows.append(
            (
                "data" if name in data else "coord",
                str(name),
                str(var.dtype),
                "(" + ", ".join(str(d) for d in var.dims) + ")",
                str(var.attrs.get("units", "")),
                format_bytes(var.nbytes),
                format_bytes(per_name.get(str(name), 0)),
                _layout(array) if array is not None else "",
                codec_names(array) if array is not None else "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (v.ljust(w) for v, w in zip(row, widths, strict=True))
        lines.append(("  " + "  ".join(cells)).rstrip())
    lines.append(
        f"total: {format_bytes(dataset.nbytes)} in memory, "
        f"{format_bytes(on_disk)} on disk"
    )
    return "\n".join(lines)
