"""ERA5 rechunk: time-chunked "pancakes" to space-chunked "pencils", store to store.

    python examples/era5_rechunk.py
    python examples/era5_rechunk.py --input era5.zarr --output pencils.zarr \
        --target-chunks time=-1,latitude=23,longitude=45 --max-mem 256MB
    python examples/era5_rechunk.py --input gs://bucket/era5.zarr \
        --output gs://bucket/pencils.zarr --temp-store gs://bucket/tmp.zarr \
        -- --runner DataflowRunner --project my-project --region us-central1 \
        --temp_location gs://bucket/tmp --setup_file ./setup.py

With no --input, a small synthetic ERA5-like store is written first (or
reused, when an earlier run wrote the same one). The plan
(passes, chunk shapes, bytes moved, projected memory) is printed before
anything runs. Unknown flags (and everything after '--') go to Beam.
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

    rechunk = xbeam.RechunkZarr(
        args.input,
        args.output,
        args.target_chunks,
        args.max_mem,
        args.temp_store,
        mode=args.mode,
        resume=args.resume,
    )
    print(rechunk.plan)  # passes, chunk shapes, bytes moved, memory per task
    pipeline = beam.Pipeline(options=options)
    _ = pipeline | "RechunkZarr" >> rechunk
    result = _common.run(pipeline, f"rechunked {args.input} into {args.output}")

    return {
        "result": result,
        "plan": rechunk.plan,
        "output": args.output,
        "input": args.input,
    }


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _common.add_common_arguments(parser)
    parser.add_argument("--output", help="the rechunked store (path or URL)")
    parser.add_argument(
        "--target-chunks",
        type=launch.parse_chunks,
        default={"time": -1, "latitude": 23, "longitude": 45},
        help="new chunks, e.g. time=-1,latitude=23,longitude=45 (the default)",
    )
    parser.add_argument(
        "--max-mem",
        type=launch.parse_bytes,
        default=256 * 2**20,
        help="memory a task may use, counting its copies (default 256MiB)",
    )
    parser.add_argument("--temp-store", help="where intermediate stores go")
    return _common.parse(parser, argv, "pencils.zarr")


if __name__ == "__main__":
    main()
