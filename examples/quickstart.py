"""Quick start: stream a synthetic ERA5-like Zarr store through Beam into Zarr.

Writes a small ERA5-like store (hourly, global grid, four float32 variables,
one of them NaN over land), reads it back as ``(Key, Dataset)`` chunks with
``DatasetToChunks``, writes them to a new Zarr v3 store with ``ChunksToZarr``,
checks the copy against xarray, and prints what it did.

    python examples/quickstart.py
    python examples/quickstart.py --hours 2000 --resolution 1.0
    python examples/quickstart.py -- --runner DirectRunner \
        --direct_running_mode multi_processing --direct_num_workers 2

Unknown flags (or everything after ``--``) go to Beam's PipelineOptions.
"""

from __future__ import annotations

import argparse
import os
import time

import apache_beam as beam
import xarray
from apache_beam.options.pipeline_options import PipelineOptions

import xarray_beam as xbeam
from xarray_beam import synthetic


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--output-dir", default="quickstart_output", help="where both stores go"
    )
    parser.add_argument("--hours", type=int, default=24 * 31, help="time steps")
    parser.add_argument(
        "--resolution", type=float, default=2.5, help="grid spacing in degrees"
    )
    args, beam_args = parser.parse_known_args(argv)
    return args, [a for a in beam_args if a != "--"]


def main(argv: list[str] | None = None) -> xarray.Dataset:
    args, beam_args = parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    source_path = os.path.join(args.output_dir, "era5_like.zarr")
    copy_path = os.path.join(args.output_dir, "era5_like_copy.zarr")

    start = time.perf_counter()
    synthetic.write_era5_like(
        source_path, hours=args.hours, resolution=args.resolution, mode="w"
    )
    source, chunks = xbeam.open_zarr(source_path)
    size_mb = source.nbytes / 1e6
    print(
        f"wrote synthetic input {source_path}: {dict(source.sizes)}, "
        f"{len(source.data_vars)} variables, {size_mb:.0f} MB "
        f"({time.perf_counter() - start:.1f} s)"
    )

    to_chunks = xbeam.DatasetToChunks(source, chunks)
    print(f"reading it as {to_chunks.chunk_count} chunks of {chunks}")
    options = PipelineOptions(beam_args)
    if "--runner" not in " ".join(beam_args):
        options = PipelineOptions(["--runner", "DirectRunner", *beam_args])

    start = time.perf_counter()
    with beam.Pipeline(options=options) as pipeline:
        _ = (
            pipeline
            | "Read" >> to_chunks
            | "Write"
            >> xbeam.ChunksToZarr(
                copy_path, xbeam.make_template(source), chunks, mode="w"
            )
        )
    seconds = time.perf_counter() - start
    print(
        f"copied to {copy_path} with Beam in {seconds:.1f} s "
        f"({size_mb / seconds:.0f} MB/s)"
    )

    copy = xarray.open_zarr(copy_path)
    xarray.testing.assert_identical(copy.compute(), source.compute())
    print("verified: the copy is identical to the input (checked with xarray)")
    return copy


if __name__ == "__main__":
    main()
