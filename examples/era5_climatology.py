"""ERA5 climatology: a statistic per month and hour of day, store to store.

    python examples/era5_climatology.py
    python examples/era5_climatology.py --input era5.zarr --output clim.zarr \
        --by month,hour --stat mean
    python examples/era5_climatology.py --input gs://bucket/era5.zarr \
        --output gs://bucket/clim.zarr -- --runner DataflowRunner \
        --project my-project --region us-central1 \
        --temp_location gs://bucket/tmp --setup_file ./setup.py

With no --input, a small synthetic ERA5-like store (January and February
2020, hourly, 2.5 degree grid) is written first, so the example runs with no
download; later runs reuse it while it matches their flags. When
matplotlib is installed, it also saves a PNG map of the January 12 UTC mean
2 m temperature. Unknown flags (and everything after '--') go to Beam.
"""

from __future__ import annotations

import argparse
import os
import sys

import apache_beam as beam

sys.path.insert(0, os.path.dirname(__file__))
import _common  # noqa: E402

import xarray_beam as xbeam  # noqa: E402
from xarray_beam.programs import launch  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    args, beam_args = parse_args(argv)
    options = _common.pipeline_options(beam_args)

    source, stored_chunks = xbeam.open_zarr(args.input)
    # Read about 64 MiB of one variable at a time: whole stored chunks.
    read_chunks = xbeam.normalize_chunks(
        {"time": "64MiB", ...: -1},
        source,
        split_vars=True,
        previous_chunks=stored_chunks,
    )
    climatology = xbeam.Climatology(
        args.by,
        args.stat,
        template=source,
        temp_store=_common.local_temp_store(args.output, options),
        num_threads=2,
    )
    pipeline = beam.Pipeline(options=options)
    _ = (
        pipeline
        | "Read" >> xbeam.DatasetToChunks(source, read_chunks, split_vars=True)
        | "Climatology" >> climatology
        | "Write"
        >> xbeam.ChunksToZarr(
            args.output,
            climatology.template(source),
            climatology.zarr_chunks(read_chunks),
            mode=args.mode,
            resume=args.resume,
        )
    )
    result = _common.run(pipeline, f"computed the climatology into {args.output}")

    png = _common.save_map(args.output, args.png)
    return {"result": result, "output": args.output, "png": png, "input": args.input}


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
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
    args, beam_args = _common.parse(parser, argv, "climatology.zarr")
    args.png = args.png or os.path.join(
        args.output_dir, "climatology_january_12utc.png"
    )
    return args, beam_args


if __name__ == "__main__":
    main()
