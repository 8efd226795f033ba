"""The plumbing both ERA5 examples share: flags, the synthetic input, Beam
options, and the climatology map. The pipelines are in the examples."""

from __future__ import annotations

import argparse
import os
import time

import apache_beam as beam
import fsspec
import numpy as np
import pandas as pd
import xarray

from xarray_beam import synthetic
from xarray_beam.io import job_records
from xarray_beam.programs import launch

OUTPUT_DIR = "era5_output"
# The synthetic input: whole calendar months, hourly, from SYNTHETIC_START.
SYNTHETIC_START = "2020-01-01"
SYNTHETIC_MONTHS = 2


def hours_in_months(start: str, months: int) -> int:
    """Hours from ``start`` to the same day ``months`` calendar months later
    (January and February 2020, a leap year: 60 days, 1440 hours)."""
    begin = pd.Timestamp(start)
    end = begin + pd.DateOffset(months=months)
    return int((end - begin) / pd.Timedelta(hours=1))


DEFAULT_HOURS = hours_in_months(SYNTHETIC_START, SYNTHETIC_MONTHS)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input",
        help="the ERA5 Zarr store to read (path or URL); default: a synthetic "
        "ERA5-like store written first into --output-dir",
    )
    parser.add_argument(
        "--output-dir",
        default=OUTPUT_DIR,
        help=f"where default outputs go (default {OUTPUT_DIR}/)",
    )
    parser.add_argument(
        "--hours",
        type=int,
        default=DEFAULT_HOURS,
        help=f"synthetic input: hourly time steps from {SYNTHETIC_START} (default "
        f"{DEFAULT_HOURS}: {SYNTHETIC_MONTHS} whole calendar months)",
    )
    parser.add_argument(
        "--resolution",
        type=float,
        default=2.5,
        help="synthetic input: grid spacing in degrees",
    )
    parser.add_argument(
        "--mode",
        choices=("w-", "w", "r+"),
        help="output store mode (default: w for the default output, which is "
        "replaced on every run; w- otherwise, which refuses an existing store)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run into the existing output, skipping "
        "what is already written",
    )


def parse(
    parser: argparse.ArgumentParser, argv, default_output: str
) -> tuple[argparse.Namespace, list]:
    """Our flags, and the rest for Beam (everything after '--' too).

    Fills in ``args.input`` (by default a synthetic store, written now
    unless an earlier run wrote the same one: see ``input_store``),
    ``args.output`` (``default_output`` in --output-dir by default) and
    ``args.mode`` (see ``output_mode``).
    """
    args, beam_args = parser.parse_known_args(argv)
    output_given = args.output is not None
    args.input = input_store(args)
    args.output = args.output or os.path.join(args.output_dir, default_output)
    args.mode = output_mode(args, output_given)
    return args, [a for a in beam_args if a != "--"]


def input_store(args: argparse.Namespace) -> str:
    """The input store: --input, or a synthetic ERA5-like one.

    The synthetic store is written into --output-dir, unless the one there
    already is what would be written (see ``why_not_reused``): then it is
    reused, which saves most of a small example's run time.
    """
    if args.input:
        return args.input
    path = os.path.join(args.output_dir, "era5_like.zarr")
    wanted = synthetic.era5_like(
        hours=args.hours, resolution=args.resolution, start=SYNTHETIC_START
    )
    reason = why_not_reused(path, wanted)
    if reason is None:
        print(
            f"reusing {path}, the synthetic ERA5-like input an earlier run "
            f"wrote ({args.hours} hours, {args.resolution} degree grid); pass "
            f"--input to use real data"
        )
        return path
    start = time.perf_counter()
    synthetic.write_era5_like(
        path,
        hours=args.hours,
        resolution=args.resolution,
        start=SYNTHETIC_START,
        mode="w",
    )
    print(
        f"wrote a synthetic ERA5-like input to {path} ({reason}; "
        f"{time.perf_counter() - start:.1f} s); pass --input to use real data"
    )
    return path


def why_not_reused(path: str, wanted: xarray.Dataset) -> str | None:
    """Why the store at ``path`` is not the synthetic store ``wanted`` (None
    if it is, completely written).

    ``synthetic.write_era5_like`` records the store's job after its last
    chunk, so a store without that record is incomplete. The rest must match
    what would be written: sizes, variables, coordinates, attributes, Zarr
    chunks, and the values of the first and last time steps (regenerated,
    which also tells a different seed or generator).
    """
    fs, root = fsspec.core.url_to_fs(path)
    if not fs.exists(root):
        return "none there yet"
    record = job_records.read(path)
    if record is None or not record.setup_done:
        return "replacing an incomplete one"
    try:
        stored = xarray.open_zarr(path)
    except (OSError, ValueError, KeyError) as error:
        return f"replacing an unreadable one ({error})"
    if dict(stored.sizes) != dict(wanted.sizes):
        return f"replacing one of sizes {dict(stored.sizes)}, not {dict(wanted.sizes)}"
    if sorted(stored.data_vars) != sorted(wanted.data_vars):
        return f"replacing one with variables {sorted(stored.data_vars)}"
    for name, coord in wanted.coords.items():
        if name not in stored.coords or not stored[name].equals(coord):
            return f"replacing one with other {name!r} values"
    if stored.attrs != wanted.attrs:
        return "replacing one with other attributes"
    seed = 0  # write_era5_like's default, as used above
    for name, var in wanted.data_vars.items():
        mine = stored[name]
        if mine.dtype != var.dtype or mine.attrs != var.attrs:
            return f"replacing one whose {name!r} has another dtype or attributes"
        if tuple(mine.encoding.get("chunks", ())) != var.data.chunksize:
            return f"replacing one whose {name!r} is in other chunks"
        for step in {0, var.sizes["time"] - 1}:
            expected = synthetic.values(
                str(name),
                wanted.time.values[step : step + 1],
                wanted.latitude.values,
                wanted.longitude.values,
                seed,
            )
            found = mine.isel(time=slice(step, step + 1)).values
            if not np.array_equal(found, expected, equal_nan=True):
                return f"replacing one with other {name!r} values"
    return None


def output_mode(args: argparse.Namespace, output_given: bool) -> str | None:
    """The output store mode: as asked, else 'w' for our own default output
    (but never when resuming, which writes into what is there)."""
    if args.resume:
        return args.mode
    return args.mode if args.mode or output_given else "w"


def pipeline_options(
    beam_args: list[str],
) -> beam.options.pipeline_options.PipelineOptions:
    """Beam options from the flags meant for Beam, saying which runner runs.

    Without ``--runner``: Beam's Python DirectRunner in this process
    (``xarray_beam.InProcessRunner``), which needs no network.
    """
    options, runner = launch.pipeline_options(beam_args)
    print(launch.describe_runner(runner, beam_args))
    return options


def local_temp_store(
    output: str, options: beam.options.pipeline_options.PipelineOptions
) -> str | None:
    """Where a climatology merges partial results, for runners in this
    process (whose shuffles hold everything in memory); None elsewhere."""
    if launch.runs_in_process(options) and "://" not in output:
        return output.rstrip("/") + ".climatology-temp"
    return None


def run(pipeline: beam.Pipeline, what: str) -> beam.runners.runner.PipelineResult:
    """Run a pipeline to the end, saying how long it took."""
    start = time.perf_counter()
    result = pipeline.run()
    result.wait_until_finish()
    print(f"{what} in {time.perf_counter() - start:.1f} s")
    return result


def save_map(store: str, path: str, variable: str = "2m_temperature") -> str | None:
    """A PNG map of a climatology at January, 12 UTC; None without matplotlib
    (or without the store: a runner elsewhere may not have written it yet)."""
    fs, root = fsspec.core.url_to_fs(store)
    if not fs.exists(root):
        print(f"no store at {store} yet: no map")
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no map (pip install matplotlib)")
        return None
    climatology = xarray.open_zarr(store)
    if variable not in climatology:
        print(f"no {variable} in the climatology: no map")
        return None
    field = climatology[variable]
    selection = {
        dim: value
        for dim, value in (("month", 1), ("hour", 12), ("season", "DJF"))
        if dim in field.dims and value in field[dim].values
    }
    field = field.sel(selection)
    rest = [d for d in field.dims if d not in ("latitude", "longitude")]
    field = field.isel({d: 0 for d in rest})
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    figure, axes = plt.subplots(figsize=(10, 5))
    image = axes.pcolormesh(
        field.longitude,
        field.latitude,
        field.transpose("latitude", "longitude"),
        cmap="RdYlBu_r",
        shading="auto",
    )
    figure.colorbar(image, ax=axes, label=field.attrs.get("units", ""))
    when = ", ".join(f"{k} {v}" for k, v in selection.items())
    axes.set_title(f"{variable} climatology ({when})")
    axes.set_xlabel("longitude (degrees east)")
    axes.set_ylabel("latitude (degrees north)")
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    print(f"saved a map to {path}")
    return path
