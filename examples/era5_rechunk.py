"""ERA5 rechunk: time-chunked "pancakes" to space-chunked "pencils", store to store.

    python examples/era5_rechunk.py
    python examples/era5_rechunk.py --input era5.zarr --output pencils.zarr \
        --target-chunks time=-1,latitude=23,longitude=45 --max-mem 256MB
    python examples/era5_rechunk.py --input gs://bucket/era5.zarr \
        --output gs://bucket/pencils.zarr --temp-store gs://bucket/tmp.zarr \
        -- --runner DataflowRunner --project my-project --region us-central1 \
        --temp_location gs://bucket/tmp --setup_file ./setup.py

With no --input, a small synthetic ERA5-like store is written first. The plan
(passes, chunk shapes, bytes moved, projected memory) is printed before
anything runs. Unknown flags (and everything after '--') go to Beam.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import _common  # noqa: E402

from xarray_beam.programs import jobs, launch  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
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
    parser.add_argument("--num-threads", type=int, default=None)
    args, beam_args = _common.parse(parser, argv)
    source = _common.input_store(args)
    output = args.output or os.path.join(args.output_dir, "pencils.zarr")
    result = jobs.rechunk_job(
        source,
        output,
        args.target_chunks,
        args.max_mem,
        args.temp_store,
        beam_args=beam_args,
        mode=_common.output_mode(args, args.output is not None),
        num_threads=args.num_threads,
        resume=args.resume,
    )
    return {"job": result, "output": output, "input": source}


if __name__ == "__main__":
    main()
