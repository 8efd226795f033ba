"""Synthetic ERA5-like data, for examples, tests and benchmarks.

Hourly fields on a regular latitude/longitude grid (latitude descending from
90 to -90, longitude from 0 to 360), float32, with the structure that makes
real reanalysis data interesting to process: a seasonal cycle of opposite
sign in each hemisphere, a diurnal cycle that follows local solar time and is
stronger over land, travelling weather waves, noise, and an ocean-only
variable that is NaN over land.

Values depend only on the seed, the variable and the timestamp, never on how
the data is chunked or where the time axis starts, so any slice can be
regenerated on its own and stores larger than memory are written chunk by
chunk.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import dask.array
import numpy as np
import pandas as pd
import xarray

from xarray_beam.io import job_records, stores, zarr_io
from xarray_beam.model import fingerprints, templates


@dataclasses.dataclass(frozen=True)
class _Field:
    units: str
    long_name: str
    make: Callable[[dict[str, np.ndarray]], np.ndarray]


def _temperature(g: dict[str, np.ndarray]) -> np.ndarray:
    lat, land = g["lat"], g["land"]
    base = 301.0 - 50.0 * np.sin(lat) ** 2 - 12.0 * g["antarctica"]
    seasonal = -(6.0 + 12.0 * land) * np.sin(lat) * g["season"]
    diurnal = (1.0 + 5.0 * land) * np.cos(lat) * np.cos(g["solar"] - np.pi / 4)
    return base + seasonal + diurnal + 4.0 * g["waves"] + 0.8 * g["noise"]


def _pressure(g: dict[str, np.ndarray]) -> np.ndarray:
    lat = g["lat"]
    base = 101325.0 + 700.0 * np.cos(3.0 * lat) ** 2 - 400.0
    return (
        base + 250.0 * np.sin(lat) * g["season"] + 1200.0 * g["waves"] + 60 * g["noise"]
    )


def _u_wind(g: dict[str, np.ndarray]) -> np.ndarray:
    return -6.0 * np.cos(3.0 * g["lat"]) + 5.0 * g["waves"] + 1.5 * g["noise"]


def _v_wind(g: dict[str, np.ndarray]) -> np.ndarray:
    return 5.0 * g["waves_shifted"] + 1.5 * g["noise"]


def _precipitation(g: dict[str, np.ndarray]) -> np.ndarray:
    wet = np.cos(g["lat"]) ** 4 + 0.5 * g["waves"] + 0.5 * g["noise"]
    return 4e-4 * np.maximum(wet, 0.0)


def _sea_surface_temperature(g: dict[str, np.ndarray]) -> np.ndarray:
    lat = g["lat"]
    base = 302.0 - 32.0 * np.sin(lat) ** 2 - 3.0 * np.sin(lat) * g["season_lagged"]
    sst = np.maximum(base + 0.1 * g["noise"], 271.35)
    return np.where(g["land"] > 0.5, np.nan, sst)


FIELDS: Mapping[str, _Field] = {
    "2m_temperature": _Field("K", "2 metre temperature", _temperature),
    "mean_sea_level_pressure": _Field("Pa", "Mean sea level pressure", _pressure),
    "10m_u_component_of_wind": _Field("m s**-1", "10 metre U wind component", _u_wind),
    "10m_v_component_of_wind": _Field("m s**-1", "10 metre V wind component", _v_wind),
    "total_precipitation": _Field("m", "Total precipitation", _precipitation),
    "sea_surface_temperature": _Field(
        "K", "Sea surface temperature (NaN over land)", _sea_surface_temperature
    ),
}
DEFAULT_VARIABLES = (
    "2m_temperature",
    "mean_sea_level_pressure",
    "10m_u_component_of_wind",
    "sea_surface_temperature",
)

# Rough continents as (centre latitude, centre longitude, half-height,
# half-width) in degrees: enough for maps that read as maps.
_CONTINENTS = (
    (47.0, 258.0, 22.0, 34.0),  # North America
    (72.0, 318.0, 10.0, 20.0),  # Greenland
    (-14.0, 299.0, 25.0, 15.0),  # South America
    (52.0, 85.0, 20.0, 75.0),  # Eurasia
    (5.0, 20.0, 30.0, 22.0),  # Africa
    (23.0, 72.0, 10.0, 18.0),  # Arabia and India
    (-25.0, 134.0, 12.0, 19.0),  # Australia
)


def grid(resolution: float) -> tuple[np.ndarray, np.ndarray]:
    """Latitude (90 to -90) and longitude (0 to 360, exclusive) at a resolution.

    Example:
      >>> lat, lon = grid(2.5)
      >>> lat[:2].tolist(), lon[:2].tolist(), lat.size, lon.size
      ([90.0, 87.5], [0.0, 2.5], 73, 144)
    """
    n_lat = 180.0 / resolution if resolution > 0 else 0.5
    n_lon = 360.0 / resolution if resolution > 0 else 0.5
    if not (n_lat.is_integer() and n_lon.is_integer()):
        raise ValueError(
            f"resolution must divide 180 degrees, e.g. 0.25, 1 or 2.5; got "
            f"{resolution!r}"
        )
    latitude = np.linspace(90.0, -90.0, int(n_lat) + 1).astype(np.float32)
    longitude = (np.arange(int(n_lon)) * resolution).astype(np.float32)
    return latitude, longitude


def land_mask(latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
    """A deterministic (latitude, longitude) boolean mask of rough continents."""
    lat = np.asarray(latitude, np.float64)[:, None]
    lon = np.asarray(longitude, np.float64)[None, :]
    land = lat < -66.0
    for lat0, lon0, half_height, half_width in _CONTINENTS:
        dlon = (lon - lon0 + 180.0) % 360.0 - 180.0
        land = land | (((lat - lat0) / half_height) ** 2 + (dlon / half_width) ** 2 < 1)
    return land


def _check_variables(variables: Sequence[str]) -> tuple[str, ...]:
    if isinstance(variables, str):
        variables = (variables,)
    unknown = [name for name in variables if name not in FIELDS]
    if unknown:
        raise ValueError(f"unknown variable(s) {unknown}; choose from {list(FIELDS)}")
    return tuple(variables)


def values(
    name: str,
    times: np.ndarray,
    latitude: np.ndarray,
    longitude: np.ndarray,
    seed: int = 0,
) -> np.ndarray:
    """The (time, latitude, longitude) float32 values of one variable.

    Example:
      >>> lat, lon = grid(10.0)
      >>> times = pd.date_range('2020-01-01', periods=2, freq='h').values
      >>> values('2m_temperature', times, lat, lon).shape
      (2, 19, 36)
    """
    (name,) = _check_variables([name])
    field = FIELDS[name]
    var_id = list(FIELDS).index(name)
    lat = np.radians(np.asarray(latitude, np.float64))[:, None]
    lon_deg = np.asarray(longitude, np.float64)[None, :]
    lon = np.radians(lon_deg)
    land = land_mask(latitude, longitude).astype(np.float64)
    hours_since_epoch = np.asarray(times).astype("datetime64[h]").astype(np.int64)
    stamps = pd.DatetimeIndex(np.asarray(times))
    day_of_year = (stamps.day_of_year.values - 1 + stamps.hour.values / 24.0).astype(
        np.float64
    )
    out = np.empty((len(times), lat.size, lon_deg.size), np.float32)
    for i, hour in enumerate(hours_since_epoch):
        season_angle = 2 * np.pi * (day_of_year[i] - 16.0) / 365.25
        utc_hours = float(hour % 24)
        inputs = {
            "lat": lat,
            "land": land,
            "antarctica": (lat < np.radians(-66.0)).astype(np.float64),
            "season": np.cos(season_angle),
            "season_lagged": np.cos(season_angle - 0.8),
            "solar": 2 * np.pi * (utc_hours + lon_deg / 15.0 - 12.0) / 24.0,
            "waves": _waves(lat, lon, float(hour), seed, 0.0),
            "waves_shifted": _waves(lat, lon, float(hour), seed, np.pi / 2),
            "noise": np.random.default_rng(
                [seed, var_id, int(hour) + 10_000_000]
            ).standard_normal((lat.size, lon_deg.size)),
        }
        out[i] = field.make(inputs)
    return out


def _waves(lat, lon, hour: float, seed: int, shift: float) -> np.ndarray:
    """Travelling mid-latitude waves, amplitude about 1."""
    rng = np.random.default_rng([seed, 99])
    total = 0.0
    for wavenumber in (3, 5, 7):
        phase = rng.uniform(0, 2 * np.pi)
        speed = rng.uniform(0.01, 0.04)
        total = total + np.cos(wavenumber * lon - speed * hour + phase + shift)
    return total / 2.0 * np.sin(2.0 * lat) ** 2


def era5_like(
    *,
    hours: int = 48,
    resolution: float = 2.5,
    start: str = "2020-01-01",
    variables: Sequence[str] = DEFAULT_VARIABLES,
    seed: int = 0,
    chunks: Mapping[str, int] | None = None,
) -> xarray.Dataset:
    """A lazy (Dask-backed) synthetic ERA5-like dataset.

    Args:
      hours: number of hourly time steps.
      resolution: grid spacing in degrees (0.25 is ERA5's 721 x 1440 grid).
      start: first timestamp.
      variables: names from ``FIELDS``.
      seed: random seed for the noise.
      chunks: Dask chunks along 'time' (default 24: one day per chunk).

    Example:
      >>> ds = era5_like(hours=24, resolution=10.0)
      >>> dict(ds.sizes), ds['2m_temperature'].dtype
      ({'time': 24, 'latitude': 19, 'longitude': 36}, dtype('float32'))
    """
    variables = _check_variables(variables)
    if hours < 1:
        raise ValueError(f"hours must be at least 1, got {hours}")
    latitude, longitude = grid(resolution)
    times = pd.date_range(start, periods=hours, freq="h").values.astype(
        "datetime64[ns]"
    )
    time_chunk = (chunks or {}).get("time", 24)
    data_vars = {}
    for name in variables:
        data = dask.array.map_blocks(
            _dask_block,
            dtype=np.float32,
            chunks=(
                dask.array.core.normalize_chunks(time_chunk, (hours,))[0],
                (latitude.size,),
                (longitude.size,),
            ),
            meta=np.empty((0, 0, 0), np.float32),
            name=f"era5_like-{name}-{seed}-{start}-{hours}-{resolution}",
            variable=name,
            times=times,
            latitude=latitude,
            longitude=longitude,
            seed=seed,
        )
        attrs = {"units": FIELDS[name].units, "long_name": FIELDS[name].long_name}
        data_vars[name] = (("time", "latitude", "longitude"), data, attrs)
    return xarray.Dataset(
        data_vars,
        coords={
            "time": ("time", times),
            "latitude": ("latitude", latitude, {"units": "degrees_north"}),
            "longitude": ("longitude", longitude, {"units": "degrees_east"}),
        },
        attrs={"title": "Synthetic ERA5-like data from xarray_beam.synthetic"},
    )


def _dask_block(variable, times, latitude, longitude, seed, block_info=None):
    (t0, t1), _, _ = block_info[None]["array-location"]
    return values(variable, times[t0:t1], latitude, longitude, seed)


def hours_for_size(
    nbytes: float, resolution: float = 0.25, n_variables: int = 4
) -> int:
    """Hours of data that make a store of about ``nbytes`` (uncompressed).

    Example:
      >>> hours_for_size(2e9, resolution=0.25, n_variables=4)
      121
    """
    latitude, longitude = grid(resolution)
    per_hour = latitude.size * longitude.size * 4 * n_variables
    return max(1, math.ceil(nbytes / per_hour))


def write_era5_like(
    store: str,
    *,
    chunks: Mapping[str, int] | None = None,
    zarr_format: int = 3,
    mode: str = "w-",
    **kwargs: Any,
) -> xarray.Dataset:
    """Write a synthetic ERA5-like store one time chunk at a time.

    Memory stays at about one time chunk, so stores larger than RAM are fine.
    Written with plain xarray, independently of the transforms it is used to
    test.

    Args:
      store: path of the Zarr store to create.
      chunks: Zarr chunks per dimension; default ``{'time': 24}`` and whole
        latitude/longitude ("pancakes").
      zarr_format: 2 or 3.
      mode: 'w-' refuses an existing store, 'w' overwrites it.
      **kwargs: ``hours``, ``resolution``, ``start``, ``variables``, ``seed``
        as for ``era5_like``.

    Returns:
      The written store, opened lazily with ``xarray.open_zarr``.

    Example:
      ``write_era5_like('era5.zarr', hours=24 * 31, resolution=1.0)``
    """
    chunks = {"time": 24, **(chunks or {})}
    dataset = era5_like(chunks={"time": chunks["time"]}, **kwargs)
    target = cast(str, stores.normalize_store(store))  # a path stays a path
    mode_name = stores.check_mode_name(mode)  # ``mode`` itself, once checked
    stores.check_mode(target, mode_name)
    sizes = cast("Mapping[str, int]", dataset.sizes)
    names = cast("list[str]", list(dataset.data_vars))
    zarr_chunks = tuple(
        min(chunks.get(dim, -1) if chunks.get(dim, -1) != -1 else size, size)
        for dim, size in sizes.items()
    )
    encoding: dict[str, dict[str, Any]] = {
        name: {"chunks": zarr_chunks} for name in names
    }
    encoding["time"] = {"units": "hours since 1900-01-01", "dtype": np.dtype("int64")}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata")
        dataset.to_zarr(
            target,
            mode=mode_name,
            compute=False,
            zarr_format=zarr_format,
            encoding=encoding,
            consolidated=True,
            write_empty_chunks=True,
        )
    step = zarr_chunks[0]
    latitude, longitude = dataset.latitude.values, dataset.longitude.values
    times = dataset.time.values
    for t0 in range(0, dataset.sizes["time"], step):
        t1 = min(t0 + step, dataset.sizes["time"])
        block = xarray.Dataset(
            {
                name: (
                    dataset[name].dims,
                    values(
                        name, times[t0:t1], latitude, longitude, kwargs.get("seed", 0)
                    ),
                )
                for name in names
            }
        )
        block.to_zarr(
            target,
            region={"time": slice(t0, t1)},
            zarr_format=zarr_format,
            write_empty_chunks=True,
        )
    _record(target, dataset)
    return xarray.open_zarr(target)


def _record(store: str, dataset: xarray.Dataset) -> None:
    """Say, as the package's own stores do, that every chunk is stored."""
    template = templates.make_template(dataset)
    target = zarr_io.target_from_store(
        template, zarr_io.WriteOptions(store, mode="r+"), token=""
    )
    description = fingerprints.describe("synthetic", template, target)
    record = job_records.JobRecord(
        uuid.uuid4().hex,
        fingerprints.fingerprint(description),
        description,
        writes_every_chunk=True,
        setup_done=True,
    )
    job_records.write(store, record, consolidate=True)
