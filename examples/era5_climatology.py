"""ERA5 climatology: a statistic per month and hour of day, store to store.

    python examples/era5_climatology.py
    python examples/era5_climatology.py --input era5.zarr --output clim.zarr \
        --by month,hour --stat mean
    python examples/era5_climatology.py --input gs://bucket/era5.zarr \
        --output gs://bucket/clim.zarr -- --runner DataflowRunner \
        --project my-project --region us-central1 \
        --temp_location gs://bucket/tmp --setup_file ./setup.py

With no --input, a small synthetic ERA5-like store (two months, 2.5 degree
grid) is written first, so the example runs with no download. When
matplotlib is installed, it also saves a PNG map of the January 12 UTC mean
2 m temperature. Unknown flags (and everything after '--') go to Beam.
"""

from __future__ import annotations

import argparse
import os
import sys

import xarray

sys.path.insert(0, os.path.dirname(__file__))
import _common  # noqa: E402

from xarray_beam.programs import jobs, launch  # noqa: E402


def save_map(store: str, path: str, variable: str = "2m_temperature") -> str | None:
    """A PNG map of the climatology at January, 12 UTC; None without matplotlib."""
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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _common.add_common_arguments(parser)
    parser.add_argument("--output", help="the climatology store (path or URL)")
    parser.add_argument(
        "--by",
        type=launch.parse_names,
        default=("month", "hour"),
        help="hour, month, dayofyear, season, or several (default month,hour)",
    )
    parser.add_argument(
        "--stat",
        default="mean",
        choices=("mean", "sum", "count", "min", "max", "var", "std"),
    )
    parser.add_argument("--png", help="where the map goes (default in --output-dir)")
    args, beam_args = _common.parse(parser, argv)
    source = _common.input_store(args)
    output = args.output or os.path.join(args.output_dir, "climatology.zarr")
    result = jobs.climatology_job(
        source,
        output,
        args.by,
        args.stat,
        mode=None
        if args.resume
        else _common.output_mode(args, args.output is not None),
        beam_args=beam_args,
        resume=args.resume,
    )
    png = None
    if "://" in output or os.path.exists(output):
        default_png = os.path.join(args.output_dir, "climatology_january_12utc.png")
        path = args.png or default_png
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        png = save_map(output, path)
    return {"job": result, "output": output, "png": png, "input": source}


if __name__ == "__main__":
    main()
